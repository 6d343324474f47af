package efi

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"testing/fstest"
)

// makeFV builds a firmware volume of size bytes holding an empty
// authenticated variable store that fills it, like a small OVMF_VARS.fd
// without the FTW areas.
func makeFV(size int) []byte {
	b := bytes.Repeat([]byte{0xff}, size)
	copy(b[0:16], make([]byte, 16))
	copy(b[16:32], systemNvDataFvGUID[:])
	binary.LittleEndian.PutUint64(b[32:], uint64(size))
	copy(b[40:44], fvSignature)
	binary.LittleEndian.PutUint32(b[44:], 0x0004feff)
	binary.LittleEndian.PutUint16(b[48:], 0x48)
	binary.LittleEndian.PutUint16(b[50:], 0)
	binary.LittleEndian.PutUint16(b[52:], 0)
	b[54], b[55] = 0, 2
	binary.LittleEndian.PutUint32(b[56:], uint32(size/0x200))
	binary.LittleEndian.PutUint32(b[60:], 0x200)
	binary.LittleEndian.PutUint64(b[64:], 0)
	var sum uint16
	for i := 0; i < 0x48; i += 2 {
		sum += binary.LittleEndian.Uint16(b[i:])
	}
	binary.LittleEndian.PutUint16(b[50:], -sum)
	copy(b[0x48:], authVariableStoreGUID[:])
	binary.LittleEndian.PutUint32(b[0x48+16:], uint32(size-0x48))
	b[0x48+20], b[0x48+21] = storeFormatted, storeHealthy
	copy(b[0x48+22:0x48+28], make([]byte, 6))
	return b
}

// smallStore is makeFV(size) with a couple of variables set, one of them
// replaced once.
func smallStore(t testing.TB, size int) []byte {
	t.Helper()
	s, err := ParseVarStore(makeFV(size))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []Variable{
		{Name: "Timeout", GUID: GlobalVariableGUID, Attributes: NonVolatile | BootServiceAccess | RuntimeAccess, Data: []byte{0, 0}},
		{Name: "Timeout", GUID: GlobalVariableGUID, Attributes: NonVolatile | BootServiceAccess | RuntimeAccess, Data: []byte{5, 0}},
		{Name: "dbx", GUID: ImageSecurityDatabaseGUID, Attributes: NonVolatile | BootServiceAccess | RuntimeAccess | TimeBasedAuthenticatedWriteAccess,
			Data: MarshalSignatureLists([]SignatureList{{Type: CertSHA256GUID, Signatures: []SignatureData{{Data: make([]byte, 32)}}}})},
	} {
		if err := s.Set(v); err != nil {
			t.Fatal(err)
		}
	}
	return s.Bytes()
}

func sha256List(n int) []byte {
	l := SignatureList{Type: CertSHA256GUID, SignatureSize: 48}
	for i := 0; i < n; i++ {
		l.Signatures = append(l.Signatures, SignatureData{Data: bytes.Repeat([]byte{byte(i)}, 32)})
	}
	return MarshalSignatureLists([]SignatureList{l})
}

func putU32(b []byte, off int, v uint32) []byte {
	b = bytes.Clone(b)
	binary.LittleEndian.PutUint32(b[off:], v)
	return b
}

func authVar2(certType uint16, guid GUID, length uint32) []byte {
	b := make([]byte, 16+24+4)
	copy(b, []byte{0xe8, 0x07, 1, 1})
	binary.LittleEndian.PutUint32(b[16:], length)
	binary.LittleEndian.PutUint16(b[20:], 0x0200)
	binary.LittleEndian.PutUint16(b[22:], certType)
	copy(b[24:40], guid[:])
	return b
}

func TestMalformed(t *testing.T) {
	store := smallStore(t, 0x1000)
	firstRec := 0x64
	parsed, err := ParseVarStore(store)
	if err != nil {
		t.Fatal(err)
	}
	lastRec := parsed.recs[len(parsed.recs)-1].off
	parseStore := func(b []byte) func() error {
		return func() error { _, err := ParseVarStore(b); return err }
	}
	sigs := func(b []byte) func() error {
		return func() error { _, err := ParseSignatureLists(b); return err }
	}
	loadOpt := func(b []byte) func() error {
		return func() error { _, err := ParseLoadOption(b); return err }
	}
	authv := func(b []byte) func() error {
		return func() error { _, err := ParseAuthVar2(b); return err }
	}
	// A load option: attributes, path length, "A\0", then the path.
	loadOption := func(fpLen uint16, path []byte) []byte {
		b := []byte{1, 0, 0, 0, byte(fpLen), byte(fpLen >> 8), 'A', 0, 0, 0}
		return append(b, path...)
	}
	// A store with no free space and nothing to reclaim: a write fails with
	// ErrStoreFull and changes nothing.
	fullStore := func() error {
		s, err := ParseVarStore(store)
		if err != nil {
			return err
		}
		if err := s.Compact(); err != nil {
			return err
		}
		if err := s.Set(Variable{Name: "Fill", GUID: testGUID, Attributes: NonVolatile | BootServiceAccess, Data: make([]byte, s.Free()-authRecHeaderSize-10)}); err != nil {
			return err
		}
		if s.Free() != 0 {
			return errors.New("store not full")
		}
		before := s.Bytes()
		err = s.Set(Variable{Name: "More", GUID: testGUID, Attributes: NonVolatile | BootServiceAccess, Data: []byte{1}})
		if !bytes.Equal(before, s.Bytes()) {
			return errors.New("failed write changed the store")
		}
		return err
	}

	for _, tc := range []struct {
		name   string
		run    func() error
		want   string // substring of the error
		offset int64  // FormatError offset; -1: not a FormatError
	}{
		{"truncated ESL", sigs(sha256List(2)[:28+48+10]), "extends past end", 0},
		{"truncated ESL header", sigs(sha256List(1)[:20]), "truncated signature list header", 0},
		{"second ESL truncated", sigs(append(sha256List(1), sha256List(1)[:40]...)), "extends past end", 76},
		{"ListSize < header", sigs(putU32(sha256List(1), 16, 20)), "smaller than its header", 0},
		{"ListSize < header size field", sigs(putU32(sha256List(1), 20, 1000)), "smaller than its header", 0},
		{"SignatureSize 0", sigs(putU32(putU32(sha256List(0), 24, 0), 16, 28)), "smaller than the owner", 0},
		{"SignatureSize not dividing", sigs(putU32(putU32(sha256List(2), 0, 0x1234), 24, 40)), "not a multiple", 0},
		{"SHA256 with wrong size", sigs(putU32(putU32(sha256List(2), 16, 28+80), 24, 40)), "signature size 40, want 48", 0},
		{"efivars file of 3 bytes", func() error {
			_, err := ReadVarDir(fstest.MapFS{"PK-8be4df61-93ca-11d2-aa0d-00e098032b8c": {Data: []byte{7, 0, 0}}}, "dir")
			return err
		}, "PK-8be4df61-93ca-11d2-aa0d-00e098032b8c", 3},
		{".fd not a FV", parseStore(bytes.Repeat([]byte{0}, 4096)), "not a firmware volume", 40},
		{".fd too small", parseStore([]byte("_FVH")), "too small", 0},
		{"FV of another file system", parseStore(append(append(bytes.Clone(store[:16]), make([]byte, 16)...), store[32:]...)), "not the NV variable volume", 16},
		{"FV length past file", parseStore(store[:0x800]), "exceeds file size", 32},
		{"FV with a bad store GUID", parseStore(func() []byte { b := bytes.Clone(store); b[0x48] ^= 1; return b }()), "variable store signature", 0x48},
		{"store size past FV", parseStore(putU32(store, 0x48+16, 0x1000)), "does not fit the firmware volume", 0x58},
		{"store not healthy", parseStore(func() []byte { b := bytes.Clone(store); b[0x48+21] = 0xff; return b }()), "format 0x5a state 0xff", 0x5c},
		{"record NameSize past end", parseStore(putU32(store, firstRec+36, 0x10000)), "name size 0x10000 extends past end", int64(firstRec)},
		{"record DataSize past end", parseStore(putU32(store, firstRec+40, 0xfffffff0)), "data size 0xfffffff0 extends past end", int64(firstRec)},
		{"record header past end", parseStore(func() []byte {
			b := makeFV(0x200)
			binary.LittleEndian.PutUint16(b[0x200-8:], varStartID) // a StartId too close to the end
			// Chain a record that ends right before it.
			rec := (&VarStore{auth: true}).encodeRecord(record{state: stateAdded, attrs: NonVolatile | BootServiceAccess, name: "A"}, make([]byte, 0x200-8-0x64-64))
			copy(b[0x64:], rec)
			return b
		}()), "variable header extends past end of store", 0x200 - 8},
		{"live record with empty name", parseStore(putU32(store, lastRec+36, 0)), "name size 0", int64(lastRec)},
		{"store with no free space", fullStore, "variable store full", -1},
		{"AuthVar2 bad cert type", authv(authVar2(0x0002, CertTypePKCS7GUID, 24)), "certificate type 0x0002", 22},
		{"AuthVar2 bad cert guid", authv(authVar2(0x0ef1, CertX509GUID, 24)), "certificate guid", 24},
		{"AuthVar2 length past end", authv(authVar2(0x0ef1, CertTypePKCS7GUID, 100)), "certificate length 100", 16},
		{"AuthVar2 length below header", authv(authVar2(0x0ef1, CertTypePKCS7GUID, 8)), "certificate length 8", 16},
		{"AuthVar2 truncated", authv(make([]byte, 30)), "too short", 0},
		{"AuthVar2 bad time", authv(func() []byte { b := authVar2(0x0ef1, CertTypePKCS7GUID, 24); b[2] = 13; return b }()), "invalid EFI_TIME", 0},
		{"load option with truncated device path", loadOpt(loadOption(40, []byte{4, 4, 10, 0, 'A', 0, 0, 0})), "device path list length 40 extends past end", 4},
		{"device path node length 0", loadOpt(loadOption(8, []byte{1, 1, 0, 0, 0x7f, 0xff, 4, 0})), "node length 0 is shorter", 10},
		{"device path node length 3", loadOpt(loadOption(8, []byte{1, 1, 3, 0, 0x7f, 0xff, 4, 0})), "node length 3 is shorter", 10},
		{"device path node past path", loadOpt(loadOption(8, []byte{1, 1, 12, 0, 0, 0, 0x7f, 0xff})), "extends past end of path", 10},
		{"device path without end node", loadOpt(loadOption(6, []byte{1, 1, 6, 0, 0, 0})), "without an end node", 16},
		{"load option description not terminated", loadOpt([]byte{1, 0, 0, 0, 4, 0, 'A', 0, 'B'}), "not NUL-terminated", 6},
		{"load option too short", loadOpt([]byte{1, 0, 0}), "too short", 0},
		{"BootOrder of odd length", func() error {
			_, err := NewVarSet("x", []Variable{{Name: "BootOrder", GUID: GlobalVariableGUID, Data: []byte{1, 0, 2}}}).BootOrder()
			return err
		}, "odd length 3", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A parser that loops is caught by go test's -timeout, which
			// prints every goroutine's stack.
			err := tc.run()
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "efi: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			var fe *FormatError
			if tc.offset < 0 {
				if errors.As(err, &fe) {
					t.Errorf("unexpected FormatError %v", err)
				}
				return
			}
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FormatError", err)
			}
			if fe.Offset != tc.offset {
				t.Errorf("offset 0x%x, want 0x%x (%v)", fe.Offset, tc.offset, err)
			}
		})
	}
}

func TestSmallStore(t *testing.T) {
	b := smallStore(t, 0x1000)
	s, err := ParseVarStore(b)
	if err != nil {
		t.Fatal(err)
	}
	vs := s.Vars()
	if v, ok := vs.Get("Timeout", GlobalVariableGUID); !ok || !bytes.Equal(v.Data, []byte{5, 0}) {
		t.Errorf("Timeout %v %v", v.Data, ok)
	}
	if l := s.Layout(); l.Records != 3 || l.Live != 2 {
		t.Errorf("layout %+v", l)
	}
	// A record in deleted transition without an added twin is still live,
	// as edk2's FindVariableEx has it; with an added twin the twin wins.
	b2 := bytes.Clone(b)
	b2[s.recs[1].off+2] = stateAdded & stateInDeletedTransition
	s2, err := ParseVarStore(b2)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := s2.Vars().Get("Timeout", GlobalVariableGUID); !ok || !bytes.Equal(v.Data, []byte{5, 0}) {
		t.Errorf("transition Timeout %v %v", v.Data, ok)
	}
	b2[s.recs[0].off+2] = stateAdded & stateInDeletedTransition
	b2[s.recs[1].off+2] = stateAdded & stateInDeletedTransition & stateDeleted
	s2, err = ParseVarStore(b2)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := s2.Vars().Get("Timeout", GlobalVariableGUID); !ok || !bytes.Equal(v.Data, []byte{0, 0}) {
		t.Errorf("transition-only Timeout %v %v", v.Data, ok)
	}
	// Compaction promotes it to ADDED.
	if err := s2.Compact(); err != nil {
		t.Fatal(err)
	}
	if s2.recs[0].state != stateAdded || len(s2.recs) != 2 {
		t.Errorf("after compaction: %d records, first state 0x%x", len(s2.recs), s2.recs[0].state)
	}
	// Garbage in the free area makes the next write compact first.
	b3 := bytes.Clone(b)
	b3[len(b3)-1] = 0
	s3, err := ParseVarStore(b3)
	if err != nil {
		t.Fatal(err)
	}
	if err := s3.Set(Variable{Name: "New", GUID: testGUID, Attributes: NonVolatile | BootServiceAccess, Data: []byte{1}}); err != nil {
		t.Fatal(err)
	}
	if out := s3.Bytes(); out[len(out)-1] != 0xff || s3.Layout().Records != 3 {
		t.Errorf("dirty free area not reclaimed: last byte 0x%x, %d records", out[len(out)-1], s3.Layout().Records)
	}
	// A plain (non-authenticated) store refuses authenticated variables.
	b4 := makeFV(0x400)
	copy(b4[0x48:], variableStoreGUID[:])
	s4, err := ParseVarStore(b4)
	if err != nil {
		t.Fatal(err)
	}
	if err := s4.Set(Variable{Name: "A", GUID: testGUID, Attributes: NonVolatile | BootServiceAccess | TimeBasedAuthenticatedWriteAccess, Data: []byte{1}}); err == nil {
		t.Error("plain store accepted an AT variable")
	}
	if err := s4.Set(Variable{Name: "A", GUID: testGUID, Attributes: NonVolatile | BootServiceAccess, Data: []byte{1}}); err != nil {
		t.Fatal(err)
	}
	s5, err := ParseVarStore(s4.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := s5.Vars().Get("A", testGUID); !ok || s5.Authenticated() || !bytes.Equal(v.Data, []byte{1}) {
		t.Errorf("plain store variable %v %v", v, ok)
	}
}
