package container

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
)

// VHD layout, from Microsoft's Virtual Hard Disk Image Format Specification.
const (
	vhdFooterSize       = 512
	vhdDynHeaderSize    = 1024
	vhdTypeFixed        = 2
	vhdTypeDynamic      = 3
	vhdTypeDifferencing = 4
	vhdUnallocated      = 0xffffffff
	// QEMU's limits (block/vpc.c): the largest CHS geometry, and 2040 GiB.
	vhdMaxGeometry = 65535 * 16 * 255
	vhdMaxSectors  = 0xff000000
	vhdMaxBAT      = 16 << 20 // BAT entries we accept (64 MiB of table)
)

// findVHDFooter looks for a VHD footer: in the last 512 bytes, in the last 511
// bytes (old Virtual PC images lack the last reserved byte), then the copy at
// offset 0 that dynamic disks have. It returns the footer (512 bytes) and its
// offset, or nil when there is none. head is the file's first (up to) 512 bytes.
func findVHDFooter(r io.ReaderAt, size int64, head []byte) ([]byte, int64, error) {
	cookie := []byte("conectix")
	if size >= vhdFooterSize-1 {
		tail := make([]byte, min(size, vhdFooterSize))
		off := size - int64(len(tail))
		if err := readFullAt(r, tail, off); err != nil {
			return nil, 0, fmt.Errorf("container: read vhd footer: %w", err)
		}
		if len(tail) == vhdFooterSize && bytes.HasPrefix(tail, cookie) {
			return tail, off, nil
		}
		if bytes.HasPrefix(tail[len(tail)-(vhdFooterSize-1):], cookie) {
			f := make([]byte, vhdFooterSize)
			copy(f, tail[len(tail)-(vhdFooterSize-1):])
			return f, size - (vhdFooterSize - 1), nil
		}
	}
	if bytes.HasPrefix(head, cookie) {
		f := make([]byte, vhdFooterSize)
		copy(f, head)
		return f, 0, nil
	}
	return nil, 0, nil
}

// vhdChecksum is the one's complement of the byte sum of b with the checksum
// field (at off) taken as zero.
func vhdChecksum(b []byte, off int) uint32 {
	var sum uint32
	for i, c := range b {
		if i < off || i >= off+4 {
			sum += uint32(c)
		}
	}
	return ^sum
}

// vhdImage reads a fixed or dynamic VHD.
type vhdImage struct {
	src     *source
	size    int64
	fixed   bool
	dataEnd int64 // fixed: end of the data, where the footer starts

	blockSize  int64 // dynamic
	bitmapSize int64 // bytes of sector bitmap before each block's data
	mu         sync.Mutex
	bat        *pagedTable
}

func openVHD(src *source) (Image, error) {
	head := make([]byte, min(src.size, vhdFooterSize))
	if err := src.readAt(head, 0, "vhd first sector"); err != nil {
		return nil, err
	}
	f, foff, err := findVHDFooter(src, src.size, head)
	if err != nil {
		return nil, err
	}
	if f == nil || src.size < vhdFooterSize {
		return nil, src.formatErr(0, "vhd footer truncated: file has %d bytes", src.size)
	}
	be := binary.BigEndian
	if sum, want := be.Uint32(f[64:]), vhdChecksum(f, 64); sum != want {
		return nil, src.formatErr(foff, "vhd footer checksum 0x%08x does not match computed 0x%08x", sum, want)
	}
	v := &vhdImage{src: src}
	if v.size, err = vhdVirtualSize(f); err != nil {
		return nil, src.formatErr(foff+48, "%v", err)
	}
	switch t := be.Uint32(f[60:]); t {
	case vhdTypeFixed:
		v.fixed = true
		v.dataEnd = foff
		if foff == 0 { // only a footer copy at the start: no data
			v.dataEnd = 0
		}
		return v, nil
	case vhdTypeDynamic:
	case vhdTypeDifferencing:
		return nil, src.unsupported(foff+60, "differencing VHD is not supported yet")
	default:
		return nil, src.formatErr(foff+60, "unknown VHD disk type %d", t)
	}

	hoff := be.Uint64(f[16:])
	if hoff > 1<<62 {
		return nil, src.formatErr(foff+16, "vhd dynamic header offset 0x%x is out of range", hoff)
	}
	h := make([]byte, vhdDynHeaderSize)
	if err := src.readAt(h, int64(hoff), "vhd dynamic header"); err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(h, []byte("cxsparse")) {
		return nil, src.formatErr(int64(hoff), "vhd dynamic header has no cxsparse cookie")
	}
	if sum, want := be.Uint32(h[36:]), vhdChecksum(h, 36); sum != want {
		return nil, src.formatErr(int64(hoff), "vhd dynamic header checksum 0x%08x does not match computed 0x%08x", sum, want)
	}
	bs := int64(be.Uint32(h[32:]))
	if bs < 512 || bs > 1<<30 || bs&(bs-1) != 0 {
		return nil, src.formatErr(int64(hoff)+32, "vhd block size %d is not a power of two in 512..1 GiB", bs)
	}
	v.blockSize = bs
	// One bit per sector, rounded up to a whole sector; QEMU's formula
	// (block/vpc.c), which agrees for all block sizes of 4 KiB and more.
	v.bitmapSize = (bs/(8*512) + 511) &^ 511
	need := (v.size + bs - 1) / bs
	entries := int64(be.Uint32(h[28:]))
	if entries < need {
		return nil, src.formatErr(int64(hoff)+28, "vhd block allocation table has %d entries, the disk needs %d", entries, need)
	}
	if need > vhdMaxBAT {
		return nil, src.unsupported(int64(hoff)+28, "vhd block allocation table of %d entries is too large", need)
	}
	batOff := be.Uint64(h[16:])
	if batOff > 1<<62 {
		return nil, src.formatErr(int64(hoff)+16, "vhd block allocation table offset 0x%x is out of range", batOff)
	}
	if v.bat, err = newPagedTable(src, int64(batOff), need, 4, "vhd block allocation table"); err != nil {
		return nil, err
	}
	return v, nil
}

// vhdVirtualSize is the disk size as QEMU computes it (block/vpc.c): from the
// CHS geometry for images written by Virtual PC and QEMU, from the current
// size field for Hyper-V, Disk2vhd, XenServer and qemu's "qem2", and when the
// geometry is the largest possible.
func vhdVirtualSize(f []byte) (int64, error) {
	be := binary.BigEndian
	sectors := int64(be.Uint16(f[56:])) * int64(f[58]) * int64(f[59])
	switch string(f[28:32]) {
	case "win ", "qem2", "d2v ", "CTXS", "tap\x00":
		sectors = -1
	}
	if sectors < 0 || sectors == vhdMaxGeometry {
		cur := be.Uint64(f[48:])
		if cur > vhdMaxSectors*512 {
			return 0, fmt.Errorf("vhd current size %d exceeds 2040 GiB", cur)
		}
		sectors = int64(cur / 512)
	}
	if sectors > vhdMaxSectors {
		return 0, fmt.Errorf("vhd size of %d sectors exceeds 2040 GiB", sectors)
	}
	return sectors * 512, nil
}

func (v *vhdImage) Size() int64      { return v.size }
func (v *vhdImage) BytesRead() int64 { return v.src.n.Load() }
func (v *vhdImage) Close() error     { return v.src.close() }

func (v *vhdImage) Format() Format {
	if v.fixed {
		return FormatVHDFixed
	}
	return FormatVHDDynamic
}

func (v *vhdImage) ReadAt(p []byte, off int64) (int, error) {
	if v.fixed {
		return readVirtual(p, off, v.size, v.readFixed)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	return readVirtual(p, off, v.size, v.readDynamic)
}

// readFixed reads the data before the footer; a geometry larger than the data
// reads as zeros past it.
func (v *vhdImage) readFixed(p []byte, off int64) error {
	n := max(0, min(int64(len(p)), v.dataEnd-off))
	if n > 0 {
		if err := v.src.readAt(p[:n], off, "vhd data"); err != nil {
			return err
		}
	}
	clear(p[n:])
	return nil
}

func (v *vhdImage) readDynamic(p []byte, off int64) error {
	for len(p) > 0 {
		blk, in := off/v.blockSize, off%v.blockSize
		n := min(v.blockSize-in, int64(len(p)))
		b, err := v.bat.entry(blk)
		if err != nil {
			return err
		}
		if sec := binary.BigEndian.Uint32(b); sec == vhdUnallocated {
			clear(p[:n])
		} else {
			// The sector bitmap is not consulted, as QEMU does not for
			// dynamic disks: sectors are in the file once their block is.
			start := int64(sec)*512 + v.bitmapSize + in
			if err := v.src.readData(p[:n], start, fmt.Sprintf("vhd data block %d", blk)); err != nil {
				return err
			}
		}
		p, off = p[n:], off+n
	}
	return nil
}
