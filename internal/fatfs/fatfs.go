// Package fatfs reads FAT12/16/32 file systems offline and serves them read-only as
// an io/fs.FS.
//
// It exists because github.com/diskfs/go-diskfs reads only FAT32, while the EFI
// System Partitions that mkfs.vfat makes on small partitions are FAT16 or FAT12; an
// ESP must be readable whatever its FAT width.
//
// The layout rules follow Microsoft's "FAT: General Overview of On-Disk Format"
// (fatgen103): the FAT width is decided by the count of data clusters alone (below
// 4085 is FAT12, below 65525 is FAT16, else FAT32), never by the BS_FilSysType
// string. Lookups are case-insensitive, as FAT is; names returned keep their stored
// case: the VFAT long file name when present and valid, else the 8.3 name with the
// Windows NT lower-case flags applied. Short names are decoded as code page 437,
// the Linux default.
//
// Nothing is written and nothing is mounted. The FAT is cached lazily in chunks;
// file data is read from the underlying io.ReaderAt on demand, one run of
// contiguous clusters at a time. Every number read from the image is
// bounds-checked; malformed structures are reported as *FormatError.
package fatfs

import (
	"encoding/binary"
	"fmt"
	"io"
	"sync"
)

// FormatError reports a malformed or unsupported FAT structure. Offset is the byte
// offset in the partition where the problem was found.
type FormatError struct {
	Offset int64
	Reason string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("fatfs: %s (offset 0x%x)", e.Reason, e.Offset)
}

func formatErr(off int64, format string, args ...any) error {
	return &FormatError{Offset: off, Reason: fmt.Sprintf(format, args...)}
}

// Cluster-count limits from fatgen103, "FAT Type Determination".
const (
	maxFAT12Clusters = 4084
	maxFAT16Clusters = 65524
	maxFAT32Clusters = 0x0FFFFFF5 // highest usable cluster number is 0x0FFFFFF6
)

// maxDirBytes bounds a directory: fatgen103 allows at most 65536 32-byte entries.
const maxDirBytes = 65536 * 32

// FS is a read-only FAT12, FAT16 or FAT32 file system. It is safe for concurrent
// use.
type FS struct {
	r    io.ReaderAt
	size int64

	bits         int    // 12, 16 or 32
	clusterSize  int64  // bytes per cluster
	clusterCount uint32 // data clusters; valid cluster numbers are 2..clusterCount+1
	fatOffset    int64  // byte offset of the FAT in use
	fatBytes     int64  // bytes of that FAT covering clusters 0..clusterCount+1
	rootOffset   int64  // FAT12/16: byte offset of the fixed root directory
	rootBytes    int64  // FAT12/16: size of the fixed root directory
	rootCluster  uint32 // FAT32: first cluster of the root directory
	dataOffset   int64  // byte offset of cluster 2
	serial       uint32
	bpbLabel     string

	fatMu     sync.Mutex
	fatChunks [][]byte // lazily read pieces of the FAT, fatChunk bytes each

	dirMu     sync.Mutex
	dirCache  map[uint32]*dirList // by first cluster; 0 is the root directory
	dirCached int                 // entries held by dirCache

	labelOnce sync.Once
	label     string
}

// bpb holds the BIOS Parameter Block fields we use (fatgen103, "Boot Sector and
// BPB Structure").
type bpb struct {
	bytesPerSec uint16
	secPerClus  uint8
	rsvdSecCnt  uint16
	numFATs     uint8
	rootEntCnt  uint16
	totSec      uint32
	media       uint8
	fatSz16     uint16
	fatSz       uint32
	fat32Layout bool // BPB_FATSz16 is zero: the extended fields follow the FAT32 layout
	extFlags    uint16
	fsVer       uint16
	rootClus    uint32
	bootSig     uint8
	volID       uint32
	volLab      [11]byte
}

// parseBPB decodes and sanity-checks the first 512 bytes of a volume.
func parseBPB(b []byte) (*bpb, error) {
	if len(b) < 512 {
		return nil, formatErr(0, "boot sector truncated to %d bytes", len(b))
	}
	if b[510] != 0x55 || b[511] != 0xAA {
		return nil, formatErr(510, "boot sector signature is 0x%02x%02x, not 0x55aa", b[510], b[511])
	}
	le := binary.LittleEndian
	p := &bpb{
		bytesPerSec: le.Uint16(b[11:]),
		secPerClus:  b[13],
		rsvdSecCnt:  le.Uint16(b[14:]),
		numFATs:     b[16],
		rootEntCnt:  le.Uint16(b[17:]),
		media:       b[21],
		fatSz16:     le.Uint16(b[22:]),
	}
	switch p.bytesPerSec {
	case 512, 1024, 2048, 4096:
	default:
		return nil, formatErr(11, "bytes per sector %d is not 512, 1024, 2048 or 4096", p.bytesPerSec)
	}
	if s := p.secPerClus; s == 0 || s&(s-1) != 0 {
		return nil, formatErr(13, "sectors per cluster %d is not a power of two", s)
	}
	if p.rsvdSecCnt == 0 {
		return nil, formatErr(14, "reserved sector count is zero")
	}
	if p.numFATs == 0 {
		return nil, formatErr(16, "number of FATs is zero")
	}
	if p.media != 0xF0 && p.media < 0xF8 {
		return nil, formatErr(21, "media descriptor 0x%02x is not 0xf0 or 0xf8-0xff", p.media)
	}
	if t16 := le.Uint16(b[19:]); t16 != 0 {
		p.totSec = uint32(t16)
	} else {
		p.totSec = le.Uint32(b[32:])
	}
	if p.totSec == 0 {
		return nil, formatErr(19, "total sector count is zero")
	}
	ext := 36 // FAT12/16 extended BPB
	if p.fatSz16 != 0 {
		p.fatSz = uint32(p.fatSz16)
	} else {
		p.fat32Layout = true
		p.fatSz = le.Uint32(b[36:])
		p.extFlags = le.Uint16(b[40:])
		p.fsVer = le.Uint16(b[42:])
		p.rootClus = le.Uint32(b[44:])
		ext = 64
	}
	if p.fatSz == 0 {
		return nil, formatErr(22, "sectors per FAT is zero")
	}
	p.bootSig = b[ext+2]
	if p.bootSig == 0x28 || p.bootSig == 0x29 {
		p.volID = le.Uint32(b[ext+3:])
	}
	if p.bootSig == 0x29 {
		copy(p.volLab[:], b[ext+7:ext+18])
	}
	return p, nil
}

// Probe reports whether the start of r looks like a FAT boot sector: a jump
// instruction, the 0x55AA signature and a plausible BPB. It reads 512 bytes.
func Probe(r io.ReaderAt, size int64) bool {
	if size < 512 {
		return false
	}
	b := make([]byte, 512)
	if _, err := r.ReadAt(b, 0); err != nil {
		return false
	}
	if b[0] != 0xEB && b[0] != 0xE9 {
		return false
	}
	_, err := parseBPB(b)
	return err == nil
}

// New opens the FAT file system in r, a partition of size bytes whose offset 0 is
// the boot sector. It reads only the boot sector; the FAT and directories are read
// when needed.
func New(r io.ReaderAt, size int64) (*FS, error) {
	if size < 512 {
		return nil, formatErr(0, "boot sector truncated: partition is %d bytes", size)
	}
	b := make([]byte, 512)
	if n, err := r.ReadAt(b, 0); n < len(b) {
		return nil, fmt.Errorf("fatfs: read boot sector: %w", err)
	}
	p, err := parseBPB(b)
	if err != nil {
		return nil, err
	}

	bps := uint64(p.bytesPerSec)
	rootDirSectors := (uint64(p.rootEntCnt)*32 + bps - 1) / bps
	fatEnd := uint64(p.rsvdSecCnt) + uint64(p.numFATs)*uint64(p.fatSz) // in sectors
	meta := fatEnd + rootDirSectors
	if meta >= uint64(p.totSec) {
		return nil, formatErr(19, "no data area: %d total sectors but %d sectors of reserved area, FATs and root directory", p.totSec, meta)
	}
	if fatEnd*bps > uint64(size) {
		return nil, formatErr(22, "FAT region ends at 0x%x, past the end of the %d-byte partition", fatEnd*bps, size)
	}
	if meta*bps > uint64(size) {
		return nil, formatErr(17, "root directory ends at 0x%x, past the end of the %d-byte partition", meta*bps, size)
	}
	count := (uint64(p.totSec) - meta) / uint64(p.secPerClus)
	if count == 0 {
		return nil, formatErr(13, "volume has no data clusters")
	}
	if count > maxFAT32Clusters {
		return nil, formatErr(19, "%d data clusters exceed the FAT32 maximum", count)
	}

	f := &FS{
		r:            r,
		size:         size,
		clusterSize:  int64(bps) * int64(p.secPerClus),
		clusterCount: uint32(count),
		dataOffset:   int64(meta * bps),
		serial:       p.volID,
		bpbLabel:     decodeLabel(p.volLab[:]),
	}
	switch {
	case count <= maxFAT12Clusters:
		f.bits = 12
	case count <= maxFAT16Clusters:
		f.bits = 16
	default:
		f.bits = 32
	}

	activeFAT := uint64(0)
	if f.bits == 32 {
		if !p.fat32Layout {
			return nil, formatErr(22, "%d clusters make the volume FAT32 but the boot sector has a FAT12/16 layout", count)
		}
		if p.rootEntCnt != 0 {
			return nil, formatErr(17, "FAT32 volume declares %d fixed root directory entries", p.rootEntCnt)
		}
		if p.fsVer != 0 {
			return nil, formatErr(42, "unsupported FAT32 version 0x%04x", p.fsVer)
		}
		if p.rootClus < 2 || uint64(p.rootClus) > count+1 {
			return nil, formatErr(44, "root directory cluster %d outside 2..%d", p.rootClus, count+1)
		}
		f.rootCluster = p.rootClus
		if p.extFlags&0x80 != 0 { // mirroring disabled: only one FAT is active
			activeFAT = uint64(p.extFlags & 0x0F)
			if activeFAT >= uint64(p.numFATs) {
				return nil, formatErr(40, "active FAT %d but only %d FATs", activeFAT, p.numFATs)
			}
		}
	} else {
		if p.fat32Layout {
			return nil, formatErr(22, "boot sector has the FAT32 layout but %d clusters make the volume FAT%d", count, f.bits)
		}
		if p.rootEntCnt == 0 {
			return nil, formatErr(17, "FAT%d volume has no root directory entries", f.bits)
		}
		f.rootOffset = int64(fatEnd * bps)
		f.rootBytes = int64(p.rootEntCnt) * 32
	}

	maxCluster := int64(count) + 1
	switch f.bits {
	case 12:
		f.fatBytes = maxCluster + maxCluster/2 + 2
	case 16:
		f.fatBytes = (maxCluster + 1) * 2
	default:
		f.fatBytes = (maxCluster + 1) * 4
	}
	if uint64(f.fatBytes) > uint64(p.fatSz)*bps {
		return nil, formatErr(22, "FAT of %d sectors is too small for %d clusters", p.fatSz, count)
	}
	f.fatOffset = int64((uint64(p.rsvdSecCnt) + activeFAT*uint64(p.fatSz)) * bps)
	f.fatChunks = make([][]byte, (f.fatBytes+fatChunk-1)/fatChunk)
	return f, nil
}

// Type returns "FAT12", "FAT16" or "FAT32", decided by the cluster count.
func (f *FS) Type() string { return fmt.Sprintf("FAT%d", f.bits) }

// Serial returns the volume serial number from the extended BPB, or 0 when the
// boot sector has none.
func (f *FS) Serial() uint32 { return f.serial }

// Label returns the volume label, trimmed: the root directory's volume label entry
// when there is one, else the boot sector's label. mkfs's placeholder "NO NAME"
// counts as no label.
func (f *FS) Label() string {
	f.labelOnce.Do(func() {
		f.label = f.bpbLabel
		if d, err := f.readDir(dirRef{root: true}); err == nil && d.hasLabel {
			f.label = d.label
		}
		if f.label == "NO NAME" {
			f.label = ""
		}
	})
	return f.label
}
