package disk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
)

// Filesystem types reported by Probe, named as blkid names them.
const (
	FSVFAT    = "vfat"
	FSExt2    = "ext2"
	FSExt3    = "ext3"
	FSExt4    = "ext4"
	FSXFS     = "xfs"
	FSBtrfs   = "btrfs"
	FSLVM     = "LVM2_member"
	FSSwap    = "swap"
	FSLUKS    = "crypto_LUKS"
	FSSquash  = "squashfs"
	FSISO9660 = "iso9660"
	FSNTFS    = "ntfs"
	FSMDRaid  = "linux_raid_member"
	FSUnknown = ""
)

// FSInfo identifies what a partition holds.
type FSInfo struct {
	Type  string // one of the FS* constants; "" when unrecognised
	Label string
	UUID  string
}

// Probe identifies the file system or volume format at the start of r. It reads a
// handful of small blocks (the places each format keeps its magic number).
func Probe(r io.ReaderAt, size int64) FSInfo {
	head := readAt(r, 0, 4096)
	switch {
	case bytes.HasPrefix(head, []byte("XFSB")):
		return FSInfo{Type: FSXFS, UUID: uuidString(head[32:48]), Label: cstr(head[108:120])}
	case bytes.HasPrefix(head, []byte("LUKS\xba\xbe")):
		return FSInfo{Type: FSLUKS, UUID: cstr(head[168:208])}
	case bytes.HasPrefix(head, []byte("hsqs")):
		return FSInfo{Type: FSSquash}
	case len(head) >= 11 && string(head[3:11]) == "NTFS    ":
		return FSInfo{Type: FSNTFS}
	}
	for s := 0; s < 4; s++ { // LVM2 label may sit in any of the first four sectors
		if len(head) >= s*512+32 && string(head[s*512:s*512+8]) == "LABELONE" && string(head[s*512+24:s*512+32]) == "LVM2 001" {
			return FSInfo{Type: FSLVM, UUID: cstr(head[s*512+32 : s*512+64])}
		}
	}
	if sb := readAt(r, 1024, 264); len(sb) == 264 && binary.LittleEndian.Uint16(sb[56:58]) == 0xef53 {
		return probeExt(sb)
	}
	if fat, ok := probeFAT(head); ok {
		return fat
	}
	if b := readAt(r, 0x10000, 0x12b+256); len(b) == 0x12b+256 && string(b[0x40:0x48]) == "_BHRfS_M" {
		return FSInfo{Type: FSBtrfs, UUID: uuidString(b[0x20:0x30]), Label: cstr(b[0x12b:])}
	}
	if md := readAt(r, 4096, 4); len(md) == 4 && binary.LittleEndian.Uint32(md) == 0xa92b4efc {
		return FSInfo{Type: FSMDRaid}
	}
	for _, page := range []int64{4096, 65536} {
		if m := readAt(r, page-10, 10); len(m) == 10 && (string(m) == "SWAPSPACE2" || string(m) == "SWAP-SPACE") {
			return FSInfo{Type: FSSwap}
		}
	}
	if iso := readAt(r, 0x8001, 5); string(iso) == "CD001" {
		return FSInfo{Type: FSISO9660}
	}
	return FSInfo{}
}

// probeExt reads the ext2/3/4 superblock fields blkid uses to tell them apart.
func probeExt(sb []byte) FSInfo {
	compat := binary.LittleEndian.Uint32(sb[92:96])
	incompat := binary.LittleEndian.Uint32(sb[96:100])
	info := FSInfo{Type: FSExt2, UUID: uuidString(sb[104:120]), Label: cstr(sb[120:136])}
	const (
		compatJournal   = 0x4
		incompatExtents = 0x40
		incompat64bit   = 0x80
		incompatFlexBG  = 0x200
	)
	switch {
	case incompat&(incompatExtents|incompat64bit|incompatFlexBG) != 0:
		info.Type = FSExt4
	case compat&compatJournal != 0:
		info.Type = FSExt3
	}
	return info
}

func probeFAT(b []byte) (FSInfo, bool) {
	if len(b) < 512 || b[510] != 0x55 || b[511] != 0xaa || (b[0] != 0xeb && b[0] != 0xe9) {
		return FSInfo{}, false
	}
	bps := binary.LittleEndian.Uint16(b[11:13])
	if bps != 512 && bps != 1024 && bps != 2048 && bps != 4096 {
		return FSInfo{}, false
	}
	switch {
	case string(b[82:87]) == "FAT32":
		return FSInfo{Type: FSVFAT, UUID: fatSerial(b[67:71]), Label: fatLabel(b[71:82])}, true
	case string(b[54:57]) == "FAT":
		return FSInfo{Type: FSVFAT, UUID: fatSerial(b[39:43]), Label: fatLabel(b[43:54])}, true
	}
	return FSInfo{}, false
}

func fatSerial(b []byte) string {
	v := binary.LittleEndian.Uint32(b)
	return fmt.Sprintf("%04X-%04X", v>>16, v&0xffff)
}

func fatLabel(b []byte) string {
	l := strings.TrimRight(string(b), " \x00")
	if l == "NO NAME" {
		return ""
	}
	return l
}

func readAt(r io.ReaderAt, off int64, n int) []byte {
	b := make([]byte, n)
	m, _ := r.ReadAt(b, off)
	return b[:m]
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return strings.TrimSpace(string(b))
}

func uuidString(b []byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
