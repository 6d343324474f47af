package efi

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// TestRealStoresGolden lists every variable of Debian's OVMF variable store
// templates, and the signature lists of PK, KEK, db and dbx.
func TestRealStoresGolden(t *testing.T) {
	testfixtures.Long(t, testfixtures.OVMF)
	for _, name := range realStores {
		t.Run(name, func(t *testing.T) {
			s, err := ReadVarStoreFile(ovmfPath(t, name))
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "stores/"+name+".txt", []byte(describeStore(name, s)))
		})
	}
}

// TestMicrosoftStoreFacts checks what Debian's OVMF_VARS_4M.ms.fd is known to
// hold.
func TestMicrosoftStoreFacts(t *testing.T) {
	testfixtures.Long(t, testfixtures.OVMF)
	b := readFile(t, ovmfPath(t, "OVMF_VARS_4M.ms.fd"))
	if len(b) != 540672 {
		t.Errorf("size %d, want 540672", len(b))
	}
	s, err := ParseVarStore(b)
	if err != nil {
		t.Fatal(err)
	}
	vs := s.Vars()
	if _, ok := vs.Get("PK", GlobalVariableGUID); !ok {
		t.Error("PK missing")
	}
	has := func(name string, guid GUID, cn string) {
		t.Helper()
		lists, err := vs.SignatureLists(name, guid)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, l := range lists {
			for _, sig := range l.Signatures {
				if l.Type == CertX509GUID && certName(sig.Data) == "CN="+cn {
					return
				}
			}
		}
		t.Errorf("%s lacks %q", name, cn)
	}
	has("KEK", GlobalVariableGUID, "Microsoft Corporation KEK CA 2011")
	has("db", ImageSecurityDatabaseGUID, "Microsoft Windows Production PCA 2011")
	has("db", ImageSecurityDatabaseGUID, "Microsoft Corporation UEFI CA 2011")
	if v, ok := vs.Get("db", ImageSecurityDatabaseGUID); !ok || v.Attributes != NonVolatile|BootServiceAccess|RuntimeAccess|TimeBasedAuthenticatedWriteAccess {
		t.Errorf("db attributes %v (present %v), want NV|BS|RT|AT", v.Attributes, ok)
	}
	if s.Free() <= 0 || s.Free() > len(b) {
		t.Errorf("free %d out of range", s.Free())
	}
}

// TestRoundTrip: parsing and re-encoding every real store changes nothing.
func TestRoundTrip(t *testing.T) {
	testfixtures.Long(t, testfixtures.OVMF)
	for _, name := range realStores {
		b := readFile(t, ovmfPath(t, name))
		s, err := ParseVarStore(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(s.Bytes(), b) {
			t.Errorf("%s: Bytes() differs from the file", name)
		}
		// Compaction keeps every live variable and the bytes outside the store.
		before := describeVars(s.Vars())
		if err := s.Compact(); err != nil {
			t.Fatalf("%s: compact: %v", name, err)
		}
		if after := describeVars(s.Vars()); after != before {
			t.Errorf("%s: compaction changed the variables:\n%s\nwant\n%s", name, after, before)
		}
		checkOutsideStore(t, name, b, s)
	}
}

// checkOutsideStore: the FV header and everything after the store are
// byte-for-byte those of the original file.
func checkOutsideStore(t *testing.T, name string, orig []byte, s *VarStore) {
	t.Helper()
	got := s.Bytes()
	l := s.Layout()
	if len(got) != len(orig) {
		t.Fatalf("%s: length %d, want %d", name, len(got), len(orig))
	}
	if !bytes.Equal(got[:l.StoreOffset+storeHeaderSize], orig[:l.StoreOffset+storeHeaderSize]) {
		t.Errorf("%s: firmware volume or store header changed", name)
	}
	if !bytes.Equal(got[l.StoreEnd:], orig[l.StoreEnd:]) {
		t.Errorf("%s: bytes after the store (0x%x..) changed", name, l.StoreEnd)
	}
}

var testGUID = mustGUID("3e0f5c36-7b0e-4a4e-9d39-6a2f5b4b1e01")

func TestSetAppendDelete(t *testing.T) {
	testfixtures.Long(t, testfixtures.OVMF)
	orig := readFile(t, ovmfPath(t, "OVMF_VARS_4M.ms.fd"))
	s, err := ParseVarStore(orig)
	if err != nil {
		t.Fatal(err)
	}
	free0 := s.Free()
	dbBefore, _ := s.Vars().Get("db", ImageSecurityDatabaseGUID)

	// A new variable.
	nv := Variable{Name: "VouchTest", GUID: testGUID, Attributes: NonVolatile | BootServiceAccess | RuntimeAccess, Data: []byte("hello")}
	if err := s.Set(nv); err != nil {
		t.Fatal(err)
	}
	// Replace it: the old record is marked deleted in place.
	nv.Data = []byte("hello again")
	if err := s.Set(nv); err != nil {
		t.Fatal(err)
	}
	// Append the Microsoft UEFI CA 2023 to db, twice: the second is a no-op.
	ca2023 := readFile(t, sbData("certs", "db-microsoft-uefi-ca-2023.der"))
	msOwner := mustGUID("77fa9abd-0359-4d32-bd60-28f4e78f784b")
	add := SignatureList{Type: CertX509GUID, Signatures: []SignatureData{{Owner: msOwner, Data: ca2023}}}
	for i := 0; i < 2; i++ {
		if err := s.AppendSignatureList("db", ImageSecurityDatabaseGUID, add); err != nil {
			t.Fatal(err)
		}
	}
	// A SHA256 list appended to dbx, with an internal duplicate.
	h1, h2 := bytes.Repeat([]byte{0x11}, 32), bytes.Repeat([]byte{0x22}, 32)
	hashes := SignatureList{Type: CertSHA256GUID, SignatureSize: 48, Signatures: []SignatureData{{msOwner, h1}, {msOwner, h2}, {msOwner, h1}}}
	if err := s.AppendSignatureList("dbx", ImageSecurityDatabaseGUID, hashes); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("VouchTest", testGUID); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("VouchTest", testGUID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: %v, want ErrNotFound", err)
	}
	if err := s.Set(Variable{Name: "VouchKeep", GUID: testGUID, Attributes: NonVolatile | BootServiceAccess, Data: []byte{1, 2, 3}}); err != nil {
		t.Fatal(err)
	}
	if s.Free() >= free0 {
		t.Errorf("free %d not below %d after writes", s.Free(), free0)
	}

	out := s.Bytes()
	checkOutsideStore(t, "written store", orig, s)
	s2, err := ParseVarStore(out)
	if err != nil {
		t.Fatalf("re-parse: %v", err)
	}
	vs := s2.Vars()
	if _, ok := vs.Get("VouchTest", testGUID); ok {
		t.Error("deleted VouchTest still present")
	}
	if v, ok := vs.Get("VouchKeep", testGUID); !ok || !bytes.Equal(v.Data, []byte{1, 2, 3}) || v.Attributes != NonVolatile|BootServiceAccess {
		t.Errorf("VouchKeep = %+v, %v", v, ok)
	}
	db, _ := vs.Get("db", ImageSecurityDatabaseGUID)
	if db.Attributes != dbBefore.Attributes {
		t.Errorf("db attributes %v, want %v", db.Attributes, dbBefore.Attributes)
	}
	lists, err := ParseSignatureLists(db.Data)
	if err != nil {
		t.Fatal(err)
	}
	var cns []string
	for _, l := range lists {
		for _, sig := range l.Signatures {
			cns = append(cns, certName(sig.Data))
		}
	}
	want := "CN=Microsoft Windows Production PCA 2011,CN=Microsoft Corporation UEFI CA 2011,CN=Microsoft UEFI CA 2023"
	if got := strings.Join(cns, ","); got != want {
		t.Errorf("db certificates %s, want %s", got, want)
	}
	dbx, err := vs.SignatureLists("dbx", ImageSecurityDatabaseGUID)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range dbx {
		for _, sig := range l.Signatures {
			if l.Type == CertSHA256GUID && (bytes.Equal(sig.Data, h1) || bytes.Equal(sig.Data, h2)) {
				n++
			}
		}
	}
	if n != 2 {
		t.Errorf("dbx holds %d of the 2 appended hashes (want each once)", n)
	}
	// The authenticated record kept its timestamp: compare the raw headers.
	for _, i := range s2.find("db", ImageSecurityDatabaseGUID) {
		r := s2.recs[i]
		old, _ := ParseVarStore(orig)
		o := old.recs[old.find("db", ImageSecurityDatabaseGUID)[0]]
		if r.time != o.time || r.monotone != o.monotone || r.pubKey != o.pubKey {
			t.Errorf("db record auth fields changed: %x/%d/%d, want %x/%d/%d", r.time, r.monotone, r.pubKey, o.time, o.monotone, o.pubKey)
		}
	}
	// Old records are retired the way edk2 retires them.
	states := map[byte]int{}
	for _, r := range s2.recs {
		states[r.state]++
	}
	if states[stateAdded&stateInDeletedTransition&stateDeleted] == 0 || states[stateAdded&stateDeleted] == 0 {
		t.Errorf("record states %v: want replaced (0x3c) and deleted (0x3d) records", states)
	}
}

func TestSetNoOpAndValidation(t *testing.T) {
	testfixtures.Long(t, testfixtures.OVMF)
	orig := readFile(t, ovmfPath(t, "OVMF_VARS_4M.ms.fd"))
	s, err := ParseVarStore(orig)
	if err != nil {
		t.Fatal(err)
	}
	db, _ := s.Vars().Get("db", ImageSecurityDatabaseGUID)
	if err := s.Set(db); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s.Bytes(), orig) {
		t.Error("setting db to its own value changed the store")
	}
	for _, v := range []Variable{
		{Name: "", GUID: testGUID, Attributes: NonVolatile | BootServiceAccess, Data: []byte{1}},
		{Name: "Volatile", GUID: testGUID, Attributes: BootServiceAccess, Data: []byte{1}},
		{Name: "RTonly", GUID: testGUID, Attributes: NonVolatile | RuntimeAccess, Data: []byte{1}},
		{Name: "Append", GUID: testGUID, Attributes: NonVolatile | BootServiceAccess | AppendWrite, Data: []byte{1}},
		{Name: "Empty", GUID: testGUID, Attributes: NonVolatile | BootServiceAccess},
		{Name: "Nul\x00", GUID: testGUID, Attributes: NonVolatile | BootServiceAccess, Data: []byte{1}},
	} {
		if err := s.Set(v); err == nil {
			t.Errorf("Set(%q, %v) accepted", v.Name, v.Attributes)
		}
	}
	if !bytes.Equal(s.Bytes(), orig) {
		t.Error("rejected writes changed the store")
	}
}

// TestStoreFull: a write that cannot fit even after compaction fails with
// ErrStoreFull and leaves the bytes unchanged; one that fits only after
// compaction succeeds.
func TestStoreFull(t *testing.T) {
	testfixtures.Long(t, testfixtures.OVMF)
	orig := readFile(t, ovmfPath(t, "OVMF_VARS.ms.fd"))
	s, err := ParseVarStore(orig)
	if err != nil {
		t.Fatal(err)
	}
	// Room after compaction, measured on a compacted copy.
	c, err := ParseVarStore(orig)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Compact(); err != nil {
		t.Fatal(err)
	}
	room := c.Free()
	if room <= s.Free() {
		t.Fatalf("compaction gained nothing: %d <= %d", room, s.Free())
	}
	recOverhead := authRecHeaderSize + len(encodeUTF16Z("Big"))
	big := Variable{Name: "Big", GUID: testGUID, Attributes: NonVolatile | BootServiceAccess, Data: make([]byte, room-recOverhead+1)}
	if err := s.Set(big); !errors.Is(err, ErrStoreFull) {
		t.Fatalf("oversized Set: %v, want ErrStoreFull", err)
	}
	if !bytes.Equal(s.Bytes(), orig) {
		t.Fatal("failed Set changed the store")
	}
	if err := s.AppendSignatureList("dbx", ImageSecurityDatabaseGUID, SignatureList{Type: CertX509GUID, Signatures: []SignatureData{{Data: make([]byte, room)}}}); !errors.Is(err, ErrStoreFull) {
		t.Fatalf("oversized append: %v, want ErrStoreFull", err)
	}
	if !bytes.Equal(s.Bytes(), orig) {
		t.Fatal("failed append changed the store")
	}
	// Exactly the room after compaction: fits only by compacting.
	big.Data = big.Data[:room-recOverhead]
	if err := s.Set(big); err != nil {
		t.Fatalf("Set that fits after compaction: %v", err)
	}
	if s.Free() != 0 {
		t.Errorf("free %d after filling the store, want 0", s.Free())
	}
	checkOutsideStore(t, "filled store", orig, s)
	if err := s.Set(Variable{Name: "X", GUID: testGUID, Attributes: NonVolatile | BootServiceAccess, Data: []byte{1}}); !errors.Is(err, ErrStoreFull) {
		t.Fatalf("Set into a full store: %v, want ErrStoreFull", err)
	}
	if err := s.Delete("Big", testGUID); err != nil {
		t.Fatal(err)
	}

	// Fill the store with rewrites of one variable until only compaction
	// makes room: each rewrite leaves a deleted record behind.
	v := Variable{Name: "Churn", GUID: testGUID, Attributes: NonVolatile | BootServiceAccess, Data: make([]byte, 4000)}
	liveBefore := s.Layout().Live
	for i := 0; i < 100; i++ {
		v.Data[0] = byte(i)
		if err := s.Set(v); err != nil {
			t.Fatalf("rewrite %d: %v", i, err)
		}
	}
	got, ok := s.Vars().Get("Churn", testGUID)
	if !ok || got.Data[0] != 99 {
		t.Fatalf("Churn after rewrites: %v %v", ok, got.Data[:1])
	}
	if l := s.Layout(); l.Live != liveBefore+1 {
		t.Errorf("live variables %d, want %d", l.Live, liveBefore+1)
	}
	checkOutsideStore(t, "churned store", orig, s)
	if _, err := ParseVarStore(s.Bytes()); err != nil {
		t.Fatal(err)
	}
}
