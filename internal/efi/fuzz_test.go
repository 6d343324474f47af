package efi

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// Seeds from real samples; TestFuzzSeeds writes them to testdata/fuzz with
// -update so that plain `go test` replays them too.

func sampleVar(t testing.TB, dir, name string) []byte {
	t.Helper()
	b := readFile(t, sbData(dir, name))
	if len(b) < 4 {
		t.Fatalf("%s/%s: short", dir, name)
	}
	return b[4:]
}

func sigListSeeds(t testing.TB) map[string][]byte {
	a, err := ParseAuthVar2(readFile(t, sbData("dbx", "DBXUpdate-amd64.bin")))
	if err != nil {
		t.Fatal(err)
	}
	d := "efivars-shim-test-data-1"
	return map[string][]byte{
		"db-ami":      sampleVar(t, d, "db-d719b2cb-3d3a-4596-a3bc-dad00e67656f"),
		"dbx-ami":     sampleVar(t, d, "dbx-d719b2cb-3d3a-4596-a3bc-dad00e67656f"),
		"kek-ami":     sampleVar(t, d, "KEK-8be4df61-93ca-11d2-aa0d-00e098032b8c"),
		"moklist":     sampleVar(t, d, "MokList-605dab50-e046-4300-abb6-3dd810dd8b23"),
		"moklistx":    sampleVar(t, d, "MokListX-605dab50-e046-4300-abb6-3dd810dd8b23"),
		"dbx-update":  a.Payload,
		"two-small":   append(sha256List(1), MarshalSignatureLists([]SignatureList{{Type: CertX509SHA256GUID, Signatures: []SignatureData{{Data: make([]byte, 48)}}}})...),
		"unknown-hdr": MarshalSignatureLists([]SignatureList{{Type: testGUID, Header: []byte{1, 2, 3}, SignatureSize: 20, Signatures: []SignatureData{{Data: []byte{9, 9, 9, 9}}}}}),
	}
}

func varStoreSeeds(t testing.TB) map[string][]byte {
	// Debian's Microsoft-keyed store cut down to its Secure Boot and boot
	// variables in a 10 KiB volume, and a small store with a replaced record.
	src, err := ReadVarStoreFile(ovmfPath(t, "OVMF_VARS.ms.fd"))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := ParseVarStore(makeFV(0x2800))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range src.Vars().All() {
		if strings.HasPrefix(v.Name, "Attempt") || strings.HasPrefix(v.Name, "Con") || v.Name == "ErrOut" {
			continue
		}
		if err := ms.Set(v); err != nil {
			t.Fatal(err)
		}
	}
	return map[string][]byte{
		"small":    smallStore(t, 0x1000),
		"ms-keyed": ms.Bytes(),
		"empty":    makeFV(0x200),
	}
}

func loadOptionSeeds(t testing.TB) map[string][]byte {
	out := map[string][]byte{}
	d := "efivars-shim-test-data-1"
	for _, n := range []string{"Boot0000", "Boot0001", "Boot0003", "Boot0006"} {
		out["ami-"+n] = sampleVar(t, d, n+"-8be4df61-93ca-11d2-aa0d-00e098032b8c")
	}
	// Boot entries OVMF writes: UiApp (Fv/FvFile), DVD (Sata), PXE (MAC/IPv4), HTTP (Uri).
	fv := []byte{9, 1, 0, 0, 0x2c, 0, 'U', 0, 0, 0,
		4, 7, 20, 0, 0xc9, 0xbd, 0xb8, 0x7c, 0xeb, 0xf8, 0x34, 0x4f, 0xaa, 0xea, 0x3e, 0xe4, 0xaf, 0x65, 0x16, 0xa1,
		4, 6, 20, 0, 0x21, 0xaa, 0x2c, 0x46, 0x14, 0x76, 0x03, 0x45, 0x83, 0x6e, 0x8a, 0xb6, 0xf4, 0x66, 0x23, 0x31,
		0x7f, 0xff, 4, 0}
	out["ovmf-uiapp"] = fv
	pxe := []byte{1, 0, 0, 0, 0x4c, 0, 'P', 0, 0, 0,
		2, 1, 12, 0, 0xd0, 0x41, 3, 0x0a, 0, 0, 0, 0,
		1, 1, 6, 0, 0, 2,
		3, 11, 37, 0, 0x52, 0x54, 0, 0x12, 0x34, 0x56}
	pxe = append(pxe, make([]byte, 26)...)
	pxe = append(pxe, 1)
	pxe = append(pxe, 3, 12, 27, 0)
	pxe = append(pxe, make([]byte, 23)...)
	pxe = append(pxe, 0x7f, 0xff, 4, 0, 0x4e, 0xac)
	out["ovmf-pxe"] = pxe
	return out
}

func authVarSeeds(t testing.TB) map[string][]byte {
	min := authVar2(0x0ef1, CertTypePKCS7GUID, 24+4)
	return map[string][]byte{
		"dbxupdate-amd64": readFile(t, sbData("dbx", "DBXUpdate-amd64.bin")),
		"minimal":         append(min, sha256List(1)...),
	}
}

// TestFuzzSeeds keeps testdata/fuzz in step with the real samples.
func TestFuzzSeeds(t *testing.T) {
	testfixtures.Long(t, testfixtures.OVMF)
	for fuzzer, seeds := range map[string]map[string][]byte{
		"FuzzSignatureLists": sigListSeeds(t),
		"FuzzVarStore":       varStoreSeeds(t),
		"FuzzLoadOption":     loadOptionSeeds(t),
		"FuzzAuthVar2":       authVarSeeds(t),
	} {
		dir := filepath.Join("testdata", "fuzz", fuzzer)
		for name, b := range seeds {
			p := filepath.Join(dir, "seed-"+name)
			content := []byte(fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b))
			if len(content) > 64<<10 {
				t.Errorf("%s: seed file of %d bytes exceeds 64 KiB", p, len(content))
			}
			if *update {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, content, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(p)
			if err != nil || !bytes.Equal(got, content) {
				t.Errorf("%s out of date (go test ./internal/efi -run TestFuzzSeeds -update): %v", p, err)
			}
		}
	}
}

func addSeeds(f *testing.F, seeds map[string][]byte) {
	for _, b := range seeds {
		f.Add(b)
	}
}

func checkFormatError(t *testing.T, err error) {
	t.Helper()
	var fe *FormatError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v is not a *FormatError", err)
	}
}

func FuzzSignatureLists(f *testing.F) {
	addSeeds(f, sigListSeeds(f))
	f.Fuzz(func(t *testing.T, b []byte) {
		lists, err := ParseSignatureLists(b)
		if err != nil {
			checkFormatError(t, err)
			return
		}
		if got := MarshalSignatureLists(lists); !bytes.Equal(got, b) {
			t.Fatalf("marshal(parse(b)) != b:\n%x\n%x", got, b)
		}
		for _, l := range lists {
			_ = l.TypeName()
		}
		merged, err := appendSignatureLists(b, SignatureList{Type: CertSHA256GUID, Signatures: []SignatureData{{Data: make([]byte, 32)}}})
		if err != nil {
			t.Fatalf("append to valid lists: %v", err)
		}
		if _, err := ParseSignatureLists(merged); err != nil {
			t.Fatalf("appended lists do not parse: %v", err)
		}
	})
}

func FuzzVarStore(f *testing.F) {
	addSeeds(f, varStoreSeeds(f))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseVarStore(b)
		if err != nil {
			checkFormatError(t, err)
			return
		}
		if !bytes.Equal(s.Bytes(), b) {
			t.Fatal("Bytes() != input")
		}
		before := s.Vars()
		l := s.Layout()
		nv := Variable{Name: "FuzzVar", GUID: testGUID, Attributes: NonVolatile | BootServiceAccess, Data: []byte{1, 2, 3}}
		setErr := s.Set(nv)
		if setErr != nil && !errors.Is(setErr, ErrStoreFull) {
			t.Fatalf("Set: %v", setErr)
		}
		out := s.Bytes()
		if len(out) != len(b) || !bytes.Equal(out[:l.StoreOffset+storeHeaderSize], b[:l.StoreOffset+storeHeaderSize]) || !bytes.Equal(out[l.StoreEnd:], b[l.StoreEnd:]) {
			t.Fatal("write touched bytes outside the variable area")
		}
		if setErr != nil && !bytes.Equal(out, b) {
			t.Fatal("failed Set changed the store")
		}
		s2, err := ParseVarStore(out)
		if err != nil {
			t.Fatalf("store does not parse after Set: %v", err)
		}
		after := s2.Vars()
		if setErr == nil {
			if v, ok := after.Get(nv.Name, nv.GUID); !ok || !bytes.Equal(v.Data, nv.Data) || v.Attributes != nv.Attributes {
				t.Fatalf("FuzzVar after Set: %+v %v", v, ok)
			}
		}
		for _, v := range before.All() {
			if v.Name == nv.Name && v.GUID == nv.GUID {
				continue
			}
			w, ok := after.Get(v.Name, v.GUID)
			if !ok || !bytes.Equal(w.Data, v.Data) || w.Attributes != v.Attributes {
				t.Fatalf("variable %s-%s lost or changed by Set", v.Name, v.GUID)
			}
		}
		if setErr == nil {
			if err := s2.Delete(nv.Name, nv.GUID); err != nil {
				t.Fatal(err)
			}
			if _, ok := s2.Vars().Get(nv.Name, nv.GUID); ok {
				t.Fatal("deleted variable still present")
			}
		}
		if err := s2.Compact(); err != nil {
			t.Fatalf("compacting a parsed store: %v", err)
		}
		if _, err := ParseVarStore(s2.Bytes()); err != nil {
			t.Fatalf("compacted store does not parse: %v", err)
		}
	})
}

func FuzzLoadOption(f *testing.F) {
	addSeeds(f, loadOptionSeeds(f))
	f.Fuzz(func(t *testing.T, b []byte) {
		lo, err := ParseLoadOption(b)
		if err != nil {
			checkFormatError(t, err)
			return
		}
		_ = lo.FilePath.String()
		_ = lo.FilePath.FilePath()
		if _, err := ParseDevicePath(b); err != nil {
			checkFormatError(t, err)
		}
	})
}

func FuzzAuthVar2(f *testing.F) {
	addSeeds(f, authVarSeeds(f))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseAuthVar2(b)
		if err != nil {
			checkFormatError(t, err)
			return
		}
		if efiTimeSize+winCertUEFIGUIDHdr+len(a.PKCS7)+len(a.Payload) != len(b) {
			t.Fatalf("sizes do not add up: %d + %d of %d", len(a.PKCS7), len(a.Payload), len(b))
		}
		if a.CertType != CertTypePKCS7GUID {
			t.Fatal("accepted a non-PKCS7 certificate")
		}
	})
}
