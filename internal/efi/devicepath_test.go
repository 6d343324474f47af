package efi

import (
	"encoding/binary"
	"testing"
)

func node(typ, sub uint8, data ...byte) []byte {
	b := []byte{typ, sub, 0, 0}
	binary.LittleEndian.PutUint16(b[2:], uint16(4+len(data)))
	return append(b, data...)
}

func utf16z(s string) []byte { return encodeUTF16Z(s) }

func TestDevicePathText(t *testing.T) {
	le32 := func(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
	le64 := func(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }
	cat := func(parts ...[]byte) []byte {
		var out []byte
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	partGUID := mustGUID("927f5841-dc54-4ff4-821c-d29b59c48ab1")
	end := node(0x7f, 0xff)
	for _, tc := range []struct {
		path []byte
		want string
		file string
	}{
		{cat(node(2, 1, cat(le32(0x0a0341d0), le32(0))...), node(1, 1, 1, 2), node(3, 18, 0, 0, 0xff, 0xff, 0, 0),
			node(4, 1, cat(le32(1), le64(0x800), le64(0x100000), partGUID[:], []byte{2, 2})...),
			node(4, 4, utf16z(`\EFI\debian\shimx64.efi`)...), end),
			`PciRoot(0x0)/Pci(0x2,0x1)/Sata(0x0,0xffff,0x0)/HD(1,GPT,927f5841-dc54-4ff4-821c-d29b59c48ab1,0x800,0x100000)/File(\EFI\debian\shimx64.efi)`,
			`\EFI\debian\shimx64.efi`},
		{cat(node(2, 1, cat(le32(0x0a0841d0), le32(1))...), node(3, 2, 1, 0, 2, 0),
			node(4, 1, cat(le32(2), le64(63), le64(2048), le32(0xdeadbeef), make([]byte, 12), []byte{1, 1})...),
			node(4, 4, utf16z(`\EFI`)...), node(4, 4, utf16z(`BOOT\BOOTX64.EFI`)...), end),
			`PcieRoot(0x1)/Scsi(0x1,0x2)/HD(2,MBR,0xdeadbeef,0x3f,0x800)/File(\EFI)/File(BOOT\BOOTX64.EFI)`,
			`\EFI\BOOT\BOOTX64.EFI`},
		{cat(node(3, 11, append([]byte{0x52, 0x54, 0, 0x12, 0x34, 0x56}, make([]byte, 27)...)...)[:4+33], end),
			`MAC(525400123456,0x0)`, ""},
		{cat(node(4, 7, GlobalVariableGUID[:]...), node(4, 6, ShimLockGUID[:]...), end),
			`Fv(8be4df61-93ca-11d2-aa0d-00e098032b8c)/FvFile(605dab50-e046-4300-abb6-3dd810dd8b23)`, ""},
		{cat(node(1, 4, append(GlobalVariableGUID[:], 0xab)...), node(3, 10, ShimLockGUID[:]...), end),
			`VenHw(8be4df61-93ca-11d2-aa0d-00e098032b8c,AB)/VenMsg(605dab50-e046-4300-abb6-3dd810dd8b23)`, ""},
		{cat(node(3, 23, cat(le32(1), []byte{1, 2, 3, 4, 5, 6, 7, 8})...), end), `NVMe(0x1,08-07-06-05-04-03-02-01)`, ""},
		{cat(node(3, 12, cat([]byte{10, 0, 0, 2}, []byte{10, 0, 0, 1}, []byte{0, 0, 0, 0}, []byte{6, 0}, []byte{1})...), end),
			`IPv4(10.0.0.1,TCP,Static,10.0.0.2)`, ""},
		{cat(node(9, 9, 1, 2), node(1, 1, 1, 2), node(0x7f, 0x01), node(1, 1, 3, 4), end),
			`Path(9,9,0102)/Pci(0x2,0x1),Pci(0x4,0x3)`, ""},
		{cat(node(1, 1, 1), end), `Path(1,1,01)`, ""},
	} {
		dp, err := ParseDevicePath(tc.path)
		if err != nil {
			t.Errorf("%s: %v", tc.want, err)
			continue
		}
		if got := dp.String(); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
		if got := dp.FilePath(); got != tc.file {
			t.Errorf("%s: file %q, want %q", tc.want, got, tc.file)
		}
	}
}
