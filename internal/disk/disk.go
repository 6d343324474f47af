// Package disk reads the partition table of a virtual disk (GPT, with fallback to
// the backup header; protective and hybrid MBR; plain MBR with extended
// partitions) and identifies the file system or volume format inside each
// partition from its magic numbers.
//
// GPT parsing uses github.com/diskfs/go-diskfs. MBR parsing is our own: go-diskfs
// reads only the four primary entries and does not walk the chain of extended
// boot records that holds logical partitions.
package disk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"

	"github.com/diskfs/go-diskfs/partition/gpt"
)

// SectorSize is the logical sector size assumed for partition tables. Cloud and VM
// disk images use 512-byte sectors.
const SectorSize = 512

// Table is a disk's partition table.
type Table struct {
	Kind                string // "gpt", "mbr" or "none"
	GUID                string // GPT disk GUID, upper case
	Hybrid              bool   // GPT with an MBR that also lists partitions
	RecoveredFromBackup bool   // the primary GPT was invalid; the backup header was used
	Partitions          []Partition
}

// Partition is one entry of a partition table, with offsets in bytes.
type Partition struct {
	Index    int    // 1-based, as Linux numbers them (logical MBR partitions start at 5)
	Start    int64  // byte offset on the disk
	Size     int64  // bytes
	Type     string // GPT type GUID (upper case) or MBR type as "0x83"
	TypeName string // human name of Type
	Label    string // GPT partition name
	UUID     string // GPT unique partition GUID
	Bootable bool   // MBR active flag
	Logical  bool   // MBR logical partition inside an extended partition
}

// Error reports a malformed partition table.
type Error struct {
	Offset int64
	Reason string
}

func (e *Error) Error() string {
	return fmt.Sprintf("disk: %s (offset 0x%x)", e.Reason, e.Offset)
}

// maxGPTArray bounds the GPT entry array we accept (the usual one is 16 KiB).
const maxGPTArray = 1 << 20

// ReadTable reads the partition table of a disk of the given size.
func ReadTable(r io.ReaderAt, size int64) (*Table, error) {
	if size < SectorSize {
		return nil, &Error{0, fmt.Sprintf("%d bytes is too small to be a disk image", size)}
	}
	lba0 := make([]byte, SectorSize*2)
	if n, err := r.ReadAt(lba0, 0); n < len(lba0) && size >= int64(len(lba0)) {
		return nil, fmt.Errorf("disk: read first sectors: %w", err)
	}
	mbrEntries, mbrValid := parseMBRSector(lba0[:SectorSize])
	hasProtective := false
	for _, e := range mbrEntries {
		if e.typ == 0xee {
			hasProtective = true
		}
	}
	gptSig := bytes.Equal(lba0[SectorSize:SectorSize+8], []byte("EFI PART"))
	if hasProtective || gptSig {
		t, err := readGPT(r, size)
		if err != nil {
			return nil, err
		}
		for _, e := range mbrEntries {
			if e.typ != 0xee && e.typ != 0 {
				t.Hybrid = true
			}
		}
		return t, nil
	}
	if !mbrValid {
		return &Table{Kind: "none"}, nil
	}
	return readMBR(r, size, mbrEntries)
}

// readGPT validates the header geometry before go-diskfs allocates the entry
// array (a crafted count would otherwise ask for gigabytes), then lets it read.
func readGPT(r io.ReaderAt, size int64) (*Table, error) {
	if err := checkGPTHeader(r, SectorSize); err != nil {
		// The primary may be damaged while the backup is fine: go-diskfs falls back
		// only on content errors, so only give up when the backup is unusable too.
		if errBackup := checkGPTHeader(r, size-SectorSize); errBackup != nil {
			var pe, be *Error
			errors.As(err, &pe)
			errors.As(errBackup, &be)
			return nil, &Error{SectorSize, fmt.Sprintf("both GPT headers are invalid: primary: %s; backup at offset 0x%x: %s", pe.Reason, be.Offset, be.Reason)}
		}
	}
	t, err := gpt.Read(&file{r: r, size: size}, SectorSize, SectorSize)
	if err != nil {
		return nil, &Error{SectorSize, "invalid GPT: " + err.Error()}
	}
	out := &Table{Kind: "gpt", GUID: t.GUID, RecoveredFromBackup: t.RecoveredFromBackup}
	for _, p := range t.Partitions {
		if p.Type == gpt.Unused {
			continue
		}
		start := int64(p.Start) * SectorSize
		psize := int64(p.Size)
		if p.End < p.Start || start > size || psize > size-start {
			return nil, &Error{SectorSize, fmt.Sprintf("GPT partition %d (sectors %d-%d) lies outside the %d-byte disk", p.Index, p.Start, p.End, size)}
		}
		typ := strings.ToUpper(string(p.Type))
		out.Partitions = append(out.Partitions, Partition{
			Index: p.Index, Start: start, Size: psize,
			Type: typ, TypeName: GPTTypeName(typ), Label: p.Name, UUID: strings.ToUpper(p.GUID),
		})
	}
	return out, nil
}

func checkGPTHeader(r io.ReaderAt, off int64) error {
	h := make([]byte, 92)
	if off < 0 {
		return &Error{off, "GPT header outside the disk"}
	}
	if _, err := r.ReadAt(h, off); err != nil {
		return &Error{off, "cannot read GPT header: " + err.Error()}
	}
	if !bytes.Equal(h[:8], []byte("EFI PART")) {
		return &Error{off, "no GPT header signature"}
	}
	count := binary.LittleEndian.Uint32(h[80:84])
	esize := binary.LittleEndian.Uint32(h[84:88])
	if esize < 128 || esize%8 != 0 || esize > 4096 {
		return &Error{off, fmt.Sprintf("GPT entry size %d is invalid", esize)}
	}
	if uint64(count)*uint64(esize) > maxGPTArray {
		return &Error{off, fmt.Sprintf("GPT entry array of %d entries of %d bytes is implausible", count, esize)}
	}
	return nil
}

// file adapts an io.ReaderAt to go-diskfs's backend.File.
type file struct {
	r    io.ReaderAt
	size int64
	off  int64
}

func (f *file) ReadAt(p []byte, off int64) (int, error) { return f.r.ReadAt(p, off) }
func (f *file) Read(p []byte) (int, error) {
	n, err := f.r.ReadAt(p, f.off)
	f.off += int64(n)
	return n, err
}
func (f *file) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		off += f.off
	case io.SeekEnd:
		off += f.size
	default:
		return 0, errors.New("disk: bad whence")
	}
	if off < 0 {
		return 0, errors.New("disk: negative seek")
	}
	f.off = off
	return off, nil
}
func (f *file) Close() error               { return nil }
func (f *file) Stat() (fs.FileInfo, error) { return fileInfo{f.size}, nil }

type fileInfo struct{ size int64 }

func (i fileInfo) Name() string       { return "disk" }
func (i fileInfo) Size() int64        { return i.size }
func (i fileInfo) Mode() fs.FileMode  { return 0o444 }
func (i fileInfo) ModTime() time.Time { return time.Time{} }
func (i fileInfo) IsDir() bool        { return false }
func (i fileInfo) Sys() any           { return nil }
