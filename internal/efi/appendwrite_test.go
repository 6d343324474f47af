package efi

import (
	"bytes"
	"testing"

	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// efiTime encodes an EFI_TIME (year to second).
func efiTime(year int, month, day, hour byte) []byte {
	return []byte{byte(year), byte(year >> 8), month, day, hour, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
}

func ownedSHA256List(owner GUID, hashes ...byte) []byte {
	l := SignatureList{Type: CertSHA256GUID, SignatureSize: 48}
	for _, h := range hashes {
		l.Signatures = append(l.Signatures, SignatureData{Owner: owner, Data: bytes.Repeat([]byte{h}, 32)})
	}
	return MarshalSignatureLists([]SignatureList{l})
}

// TestAppendWrite checks edk2's append semantics: FilterSignatureList drops
// entries equal in owner and data, keeps repeats inside the new data and
// entries of another owner, appends the rest as new lists after the old
// data, and the timestamp becomes the later one.
func TestAppendWrite(t *testing.T) {
	testfixtures.Long(t, testfixtures.OVMF)
	s, err := ParseVarStore(readFile(t, ovmfPath(t, "OVMF_VARS_4M.ms.fd")))
	if err != nil {
		t.Fatal(err)
	}
	a, b := mustGUID("11111111-1111-1111-1111-111111111111"), mustGUID("22222222-2222-2222-2222-222222222222")
	attrs := NonVolatile | BootServiceAccess | RuntimeAccess | TimeBasedAuthenticatedWriteAccess | AppendWrite
	old := s.Vars()
	dbx0, _ := old.Get("dbx", ImageSecurityDatabaseGUID)
	info0, _ := s.AuthInfo("dbx", ImageSecurityDatabaseGUID)

	// Older timestamp: data appended, timestamp kept.
	added, err := s.AppendWrite("dbx", ImageSecurityDatabaseGUID, attrs, ownedSHA256List(a, 1, 2), efiTime(2010, 3, 6, 19))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(added, ownedSHA256List(a, 1, 2)) {
		t.Errorf("added %x", added)
	}
	v, _ := s.Vars().Get("dbx", ImageSecurityDatabaseGUID)
	if !bytes.Equal(v.Data, append(bytes.Clone(dbx0.Data), ownedSHA256List(a, 1, 2)...)) || v.Attributes != dbx0.Attributes {
		t.Error("dbx is not the old data followed by the new list")
	}
	if info, _ := s.AuthInfo("dbx", ImageSecurityDatabaseGUID); info.TimeStamp != info0.TimeStamp {
		t.Errorf("timestamp moved back to %v", info.Time())
	}

	// 1 of owner a is present: dropped; 1 of owner b and the repeat of 3 stay.
	added, err = s.AppendWrite("dbx", ImageSecurityDatabaseGUID, attrs, append(ownedSHA256List(a, 1, 3, 3), ownedSHA256List(b, 1)...), efiTime(2030, 1, 2, 3))
	if err != nil {
		t.Fatal(err)
	}
	if want := append(ownedSHA256List(a, 3, 3), ownedSHA256List(b, 1)...); !bytes.Equal(added, want) {
		t.Errorf("filtered payload %x, want %x", added, want)
	}
	if info, _ := s.AuthInfo("dbx", ImageSecurityDatabaseGUID); info.Time().Year() != 2030 {
		t.Errorf("timestamp %v, want the update's 2030", info.Time())
	}

	// Nothing new and no newer time: the store is unchanged.
	img := s.Bytes()
	if added, err = s.AppendWrite("dbx", ImageSecurityDatabaseGUID, attrs, ownedSHA256List(a, 1, 2), efiTime(2011, 1, 1, 1)); err != nil || len(added) != 0 || !bytes.Equal(img, s.Bytes()) {
		t.Errorf("no-op append: added %x err %v changed %v", added, err, !bytes.Equal(img, s.Bytes()))
	}
	// Nothing new but a newer time: a new record with the newer time.
	if _, err = s.AppendWrite("dbx", ImageSecurityDatabaseGUID, attrs, ownedSHA256List(a, 1), efiTime(2031, 1, 1, 1)); err != nil {
		t.Fatal(err)
	}
	if info, _ := s.AuthInfo("dbx", ImageSecurityDatabaseGUID); info.Time().Year() != 2031 {
		t.Errorf("timestamp %v, want 2031", info.Time())
	}

	// A missing variable is created with the attributes less AP.
	if _, err := s.AppendWrite("dbt", ImageSecurityDatabaseGUID, attrs, ownedSHA256List(a, 9), nil); err != nil {
		t.Fatal(err)
	}
	if v, ok := s.Vars().Get("dbt", ImageSecurityDatabaseGUID); !ok || v.Attributes != attrs&^AppendWrite {
		t.Errorf("dbt %+v", v)
	}
	// A variable that is not a signature database is appended as is.
	g := mustGUID("33333333-3333-3333-3333-333333333333")
	if err := s.Set(Variable{Name: "Plain", GUID: g, Attributes: NonVolatile | BootServiceAccess, Data: []byte("ab")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendWrite("Plain", g, NonVolatile|BootServiceAccess|AppendWrite, []byte("ab"), nil); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Vars().Get("Plain", g); string(v.Data) != "abab" {
		t.Errorf("plain append %q", v.Data)
	}
	// Malformed signature lists are refused and change nothing.
	img = s.Bytes()
	if _, err := s.AppendWrite("db", ImageSecurityDatabaseGUID, attrs, []byte{1, 2, 3}, nil); err == nil || !bytes.Equal(img, s.Bytes()) {
		t.Errorf("malformed payload: %v", err)
	}
	if _, err := s.AppendWrite("db", ImageSecurityDatabaseGUID, attrs, ownedSHA256List(a, 1), []byte{1}); err == nil {
		t.Error("short timestamp accepted")
	}
}
