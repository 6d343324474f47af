package nvram

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/vouch-dev/vouch/internal/efi"

	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// smallStore builds a 4 KiB firmware volume holding an authenticated
// variable store with PK and dbx of Debian's 2011 store, small enough for
// the fuzzer to mutate and minimize quickly.
func smallStore(t testing.TB) []byte {
	t.Helper()
	const total, hdr = 4 << 10, 72
	b := bytes.Repeat([]byte{0xff}, total)
	copy(b[0:16], make([]byte, 16))
	g := mustGUID("fff12b8d-7696-4c8b-a985-2747075b4f50")
	copy(b[16:32], g[:])
	binary.LittleEndian.PutUint64(b[32:], total)
	copy(b[40:44], "_FVH")
	binary.LittleEndian.PutUint32(b[44:], 0x4feff)
	binary.LittleEndian.PutUint16(b[48:], hdr)
	copy(b[50:hdr], make([]byte, hdr-50))
	b[55] = 2                                    // revision
	binary.LittleEndian.PutUint32(b[56:], 1)     // one block
	binary.LittleEndian.PutUint32(b[60:], total) // of the whole volume
	sg := mustGUID("aaf32c78-947b-439a-a180-2e144ec37792")
	copy(b[hdr:], sg[:])
	binary.LittleEndian.PutUint32(b[hdr+16:], total-hdr)
	b[hdr+20], b[hdr+21] = 0x5a, 0xfe
	copy(b[hdr+22:hdr+28], make([]byte, 6))
	s, err := efi.ParseVarStore(b)
	if err != nil {
		t.Fatal(err)
	}
	ms := msStore(t).Vars()
	for _, k := range []struct {
		name string
		guid efi.GUID
	}{{"PK", efi.GlobalVariableGUID}, {"dbx", efi.ImageSecurityDatabaseGUID}} {
		v, ok := ms.Get(k.name, k.guid)
		if !ok {
			t.Fatalf("%s missing from %s", k.name, msVars)
		}
		if err := s.Set(v); err != nil {
			t.Fatal(err)
		}
	}
	return s.Bytes()
}

// smallUpdate is an EFI_VARIABLE_AUTHENTICATION_2 with Microsoft's
// DBXUpdate timestamp, a stand-in 8-byte PKCS#7 and the update's first dbx
// entries: structurally valid, small, never verifying.
func smallUpdate(t testing.TB, entries int) []byte {
	t.Helper()
	raw := readFile(t, dbxUpdate)
	certLen := int(binary.LittleEndian.Uint32(raw[16:]))
	p := 16 + certLen
	out := bytes.Clone(raw[:16+24])
	binary.LittleEndian.PutUint32(out[16:], 24+8)
	out = append(out, 0x30, 0x06, 0x02, 0x01, 0x01, 0x31, 0x01, 0x00)
	list := bytes.Clone(raw[p : p+28+48*entries])
	binary.LittleEndian.PutUint32(list[16:], uint32(28+48*entries))
	return append(out, list...)
}

func FuzzParseUpdate(f *testing.F) {
	testfixtures.Long(f, testfixtures.OVMF)
	raw := readFile(f, dbxUpdate)
	f.Add(raw)
	f.Add(smallUpdate(f, 2))
	f.Add(raw[:100])
	st, err := Parse(smallStore(f), "small")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := ParseUpdate(b, "fuzz.bin")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "nvram: fuzz.bin: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if u.Entries() == 0 && len(u.Auth.Payload) > 0 {
			// Lists of zero entries are legal; nothing to check.
			return
		}
		for _, name := range []string{VarDB, VarDBX, VarKEK} {
			v := st.Verify(u, name)
			if v.Verified == (v.Reason != "") {
				t.Fatalf("verification %+v", v)
			}
		}
	})
}

func FuzzStoreEdit(f *testing.F) {
	testfixtures.Long(f, testfixtures.OVMF)
	store := smallStore(f)
	upd := smallUpdate(f, 3)
	f.Add(store, upd)
	f.Add(store[:1024], upd)
	f.Add(store, upd[:len(upd)-1])
	hash := sha256.Sum256([]byte("fuzz"))
	f.Fuzz(func(t *testing.T, storeB, updB []byte) {
		s, err := Parse(storeB, "fuzz.fd")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "nvram: fuzz.fd: ") {
				t.Fatalf("error does not name the store: %v", err)
			}
			return
		}
		if err := WriteTable(io.Discard, s.List()); err != nil {
			t.Fatal(err)
		}
		check := func(op string, c Change, err error, before []byte) {
			t.Helper()
			if err != nil {
				if !bytes.Equal(before, s.Bytes()) {
					t.Fatalf("%s failed (%v) and changed the store", op, err)
				}
				return
			}
			if len(s.Bytes()) != len(storeB) {
				t.Fatalf("%s changed the file size", op)
			}
			back, err := Parse(s.Bytes(), "after")
			if err != nil {
				t.Fatalf("store does not parse after %s: %v", op, err)
			}
			if c.Entries < c.Added || c.FreeAfter != back.Free() {
				t.Fatalf("%s: change %+v, free %d", op, c, back.Free())
			}
		}
		before := s.Bytes()
		c, err := s.AddHashes([][]byte{hash[:]})
		if err != nil && !errors.Is(err, efi.ErrStoreFull) && !strings.Contains(err.Error(), "nvram: ") {
			t.Fatalf("AddHashes: %v", err)
		}
		check("AddHashes", c, err, before)
		before = s.Bytes()
		c, err = s.Apply(updB, "fuzz.bin", VarDBX)
		check("Apply", c, err, before)
		if err == nil {
			// Applying the same update again adds nothing.
			c2, err := s.Apply(updB, "fuzz.bin", VarDBX)
			if err == nil && c2.Added != 0 {
				t.Fatalf("second apply added %d", c2.Added)
			}
		}
	})
}
