package container

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"strings"
	"sync"
)

// VHDX layout, from [MS-VHDX] section 2.
const (
	vhdxHeader1       = 64 << 10  // 2.2.2: headers at 64 KiB and 128 KiB
	vhdxHeaderSize    = 4 << 10   // each checksummed over 4 KiB
	vhdxRegionTable1  = 192 << 10 // 2.2.3: region tables at 192 KiB and 256 KiB
	vhdxRegionSize    = 64 << 10
	vhdxMaxRegions    = 2047
	vhdxMetaTableSize = 64 << 10
	vhdxMaxMetaItem   = 1 << 20
	vhdxMB            = 1 << 20
	vhdxMaxDiskSize   = 64 << 40
	vhdxMaxBAT        = 64 << 20 // BAT entries we accept (512 MiB of table)
	vhdxMaxLog        = 32 << 20 // log size we scan for entries to replay
	vhdxLogSector     = 4 << 10

	// 2.5.1.1 payload block states.
	vhdxBlockNotPresent       = 0
	vhdxBlockUndefined        = 1
	vhdxBlockZero             = 2
	vhdxBlockUnmapped         = 3
	vhdxBlockFullyPresent     = 6
	vhdxBlockPartiallyPresent = 7
)

// GUIDs as stored on disk (the first three fields little-endian).
var (
	vhdxRegionBAT      = guid("2DC27766-F623-4200-9D64-115E9BFD4A08")
	vhdxRegionMetadata = guid("8B7CA206-4790-4B9A-B8FE-575F050F886E")
	vhdxFileParameters = guid("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")
	vhdxVirtualSize    = guid("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
	vhdxVirtualDiskID  = guid("BECA12AB-B2E6-4523-93EF-C309E000C746")
	vhdxLogicalSector  = guid("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")
	vhdxPhysicalSector = guid("CDA348C7-445D-4471-9CC9-E9885251C556")
	vhdxParentLocator  = guid("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// guid encodes a GUID string in its on-disk form.
func guid(s string) [16]byte {
	raw, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(raw) != 16 {
		panic("container: bad GUID literal " + s) // only called on the constants above
	}
	return [16]byte{raw[3], raw[2], raw[1], raw[0], raw[5], raw[4], raw[7], raw[6],
		raw[8], raw[9], raw[10], raw[11], raw[12], raw[13], raw[14], raw[15]}
}

// vhdxChecksumOK checks the CRC-32C of b, stored at off, computed with that
// field zeroed.
func vhdxChecksumOK(b []byte, off int) bool {
	want := binary.LittleEndian.Uint32(b[off:])
	c := make([]byte, len(b))
	copy(c, b)
	clear(c[off : off+4])
	return crc32.Checksum(c, castagnoli) == want
}

// vhdxImage reads a fixed or dynamic VHDX.
type vhdxImage struct {
	src        *source
	size       int64
	blockSize  int64
	chunkRatio int64
	mu         sync.Mutex
	bat        *pagedTable
}

func openVHDX(src *source) (Image, error) {
	x := &vhdxImage{src: src}
	if err := x.readHeader(); err != nil {
		return nil, err
	}
	batOff, batLen, metaOff, metaLen, err := x.readRegions()
	if err != nil {
		return nil, err
	}
	lss, err := x.readMetadata(metaOff, metaLen)
	if err != nil {
		return nil, err
	}
	// 2.4: a sector bitmap block covers 2^23 sectors; the chunk ratio is the
	// number of payload blocks it covers.
	x.chunkRatio = (1 << 23) * lss / x.blockSize
	blocks := (x.size + x.blockSize - 1) / x.blockSize
	// 2.5: payload entries interleaved with one sector bitmap entry per chunk.
	need := int64(0)
	if blocks > 0 {
		need = blocks + (blocks-1)/x.chunkRatio
	}
	if need > vhdxMaxBAT {
		return nil, src.unsupported(batOff, "vhdx block allocation table of %d entries is too large", need)
	}
	if need*8 > batLen {
		return nil, src.formatErr(batOff, "vhdx bat region of %d bytes is too small for %d entries", batLen, need)
	}
	if x.bat, err = newPagedTable(src, batOff, need, 8, "vhdx bat"); err != nil {
		return nil, err
	}
	return x, nil
}

// readHeader picks the valid header with the higher sequence number (2.2.2)
// and refuses an image whose log needs replaying.
func (x *vhdxImage) readHeader() error {
	src := x.src
	var best []byte
	var bestOff int64
	for i := int64(0); i < 2; i++ {
		off := vhdxHeader1 + i*vhdxHeader1
		if !src.inFile(off, vhdxHeaderSize) {
			continue
		}
		h := make([]byte, vhdxHeaderSize)
		if err := src.readAt(h, off, "vhdx header"); err != nil {
			return err
		}
		if !bytes.HasPrefix(h, []byte("head")) || !vhdxChecksumOK(h, 4) {
			continue
		}
		if best == nil || binary.LittleEndian.Uint64(h[8:]) > binary.LittleEndian.Uint64(best[8:]) {
			best, bestOff = h, off
		}
	}
	if best == nil {
		return src.formatErr(vhdxHeader1, "vhdx has no valid header (signature or CRC-32C wrong in both)")
	}
	if v := binary.LittleEndian.Uint16(best[66:]); v != 1 {
		return src.unsupported(bestOff+66, "vhdx version %d is not supported", v)
	}
	if logGUID := best[48:64]; !bytes.Equal(logGUID, make([]byte, 16)) {
		return x.checkLog(best, bestOff)
	}
	return nil
}

// checkLog refuses an image whose log holds an entry to replay (2.3.3): one
// with the header's LogGuid, the "loge" signature and a valid CRC-32C. A
// non-zero LogGuid alone only says the log may have been written to.
func (x *vhdxImage) checkLog(h []byte, hoff int64) error {
	src := x.src
	le := binary.LittleEndian
	logLen, logOff := int64(le.Uint32(h[68:])), int64(le.Uint64(h[72:]))
	replay := src.unsupported(hoff+48, "vhdx image was not closed cleanly and needs log replay (qemu-img check -r all)")
	if logLen > vhdxMaxLog {
		return replay // too large to check: assume the worst
	}
	if logOff < 0 || !src.inFile(logOff, logLen) {
		return src.formatErr(hoff+72, "vhdx log of %d bytes at offset 0x%x extends past end of file", logLen, uint64(logOff))
	}
	log := make([]byte, logLen)
	if err := src.readAt(log, logOff, "vhdx log"); err != nil {
		return err
	}
	for p := 0; p+vhdxLogSector <= len(log); p += vhdxLogSector {
		e := log[p:]
		n := int(le.Uint32(e[8:]))
		if !bytes.HasPrefix(e, []byte("loge")) || !bytes.Equal(e[32:48], h[48:64]) ||
			n < vhdxLogSector || n%vhdxLogSector != 0 || n > len(e) {
			continue
		}
		if vhdxChecksumOK(e[:n], 4) {
			return replay
		}
	}
	return nil
}

// readRegions reads the region table (2.2.3), the first copy or else the
// second, and returns the BAT and metadata regions.
func (x *vhdxImage) readRegions() (batOff, batLen, metaOff, metaLen int64, err error) {
	src := x.src
	var t []byte
	var toff int64
	for i := int64(0); i < 2; i++ {
		off := vhdxRegionTable1 + i*vhdxRegionSize
		if !src.inFile(off, vhdxRegionSize) {
			continue
		}
		b := make([]byte, vhdxRegionSize)
		if err := src.readAt(b, off, "vhdx region table"); err != nil {
			return 0, 0, 0, 0, err
		}
		if bytes.HasPrefix(b, []byte("regi")) && vhdxChecksumOK(b, 4) {
			t, toff = b, off
			break
		}
	}
	if t == nil {
		return 0, 0, 0, 0, src.formatErr(vhdxRegionTable1, "vhdx has no valid region table (signature or CRC-32C wrong in both)")
	}
	le := binary.LittleEndian
	n := int64(le.Uint32(t[8:]))
	if n > vhdxMaxRegions {
		return 0, 0, 0, 0, src.formatErr(toff+8, "vhdx region table has %d entries (at most %d)", n, vhdxMaxRegions)
	}
	for i := int64(0); i < n; i++ {
		e := t[16+32*i : 48+32*i]
		id := [16]byte(e[:16])
		off, length := int64(le.Uint64(e[16:])), int64(le.Uint32(e[24:]))
		if off < 0 || off > 1<<62 {
			return 0, 0, 0, 0, src.formatErr(toff+16+32*i, "vhdx region offset 0x%x is out of range", uint64(off))
		}
		switch {
		case id == vhdxRegionBAT:
			batOff, batLen = off, length
		case id == vhdxRegionMetadata:
			metaOff, metaLen = off, length
		case le.Uint32(e[28:])&1 != 0:
			return 0, 0, 0, 0, src.unsupported(toff+16+32*i, "vhdx required region %x is not supported", id)
		}
	}
	if batLen == 0 {
		return 0, 0, 0, 0, src.formatErr(toff, "vhdx region table has no BAT region")
	}
	if metaLen == 0 {
		return 0, 0, 0, 0, src.formatErr(toff, "vhdx region table has no metadata region")
	}
	return batOff, batLen, metaOff, metaLen, nil
}

// readMetadata reads the metadata table and the known items (2.6) and returns
// the logical sector size.
func (x *vhdxImage) readMetadata(off, length int64) (int64, error) {
	src := x.src
	if length < vhdxMetaTableSize {
		return 0, src.formatErr(off, "vhdx metadata region of %d bytes is smaller than its table", length)
	}
	t := make([]byte, vhdxMetaTableSize)
	if err := src.readAt(t, off, "vhdx metadata table"); err != nil {
		return 0, err
	}
	if !bytes.HasPrefix(t, []byte("metadata")) {
		return 0, src.formatErr(off, "vhdx metadata table has no metadata signature")
	}
	le := binary.LittleEndian
	n := int64(le.Uint16(t[10:]))
	if n > vhdxMaxRegions {
		return 0, src.formatErr(off+10, "vhdx metadata table has %d entries (at most %d)", n, vhdxMaxRegions)
	}
	// The items read are the first 8 bytes at most of each known item that
	// describes the disk; each may appear once.
	items := map[[16]byte][]byte{}
	for i := int64(0); i < n; i++ {
		e := t[32+32*i : 64+32*i]
		id := [16]byte(e[:16])
		ioff, ilen, flags := int64(le.Uint32(e[16:])), int64(le.Uint32(e[20:])), le.Uint32(e[24:])
		eoff := off + 32 + 32*i
		switch id {
		case vhdxFileParameters, vhdxVirtualSize, vhdxLogicalSector:
		case vhdxVirtualDiskID, vhdxPhysicalSector, vhdxParentLocator:
			continue // known, not needed to read the disk
		default:
			if flags&4 != 0 { // IsRequired
				return 0, src.unsupported(eoff, "vhdx required metadata item %x is not supported", id)
			}
			continue
		}
		if _, dup := items[id]; dup {
			return 0, src.formatErr(eoff, "vhdx metadata item %x appears twice", id)
		}
		if ilen > vhdxMaxMetaItem || ioff > length || ilen > length-ioff {
			return 0, src.formatErr(eoff, "vhdx metadata item lies outside the metadata region")
		}
		b := make([]byte, min(ilen, 8))
		if err := src.readAt(b, off+ioff, "vhdx metadata item"); err != nil {
			return 0, err
		}
		items[id] = b
	}
	get := func(id [16]byte, n int, what string) ([]byte, error) {
		b, ok := items[id]
		if !ok || len(b) < n {
			return nil, src.formatErr(off, "vhdx metadata has no valid %s item", what)
		}
		return b, nil
	}
	fp, err := get(vhdxFileParameters, 8, "file parameters")
	if err != nil {
		return 0, err
	}
	if le.Uint32(fp[4:])&2 != 0 {
		return 0, src.unsupported(off, "differencing VHDX is not supported yet")
	}
	x.blockSize = int64(le.Uint32(fp))
	if x.blockSize < vhdxMB || x.blockSize > 256*vhdxMB || x.blockSize&(x.blockSize-1) != 0 {
		return 0, src.formatErr(off, "vhdx block size %d is not a power of two in 1..256 MiB", x.blockSize)
	}
	ls, err := get(vhdxLogicalSector, 4, "logical sector size")
	if err != nil {
		return 0, err
	}
	lss := int64(le.Uint32(ls))
	if lss != 512 && lss != 4096 {
		return 0, src.formatErr(off, "vhdx logical sector size %d is neither 512 nor 4096", lss)
	}
	vs, err := get(vhdxVirtualSize, 8, "virtual disk size")
	if err != nil {
		return 0, err
	}
	size := le.Uint64(vs)
	if size > vhdxMaxDiskSize || size%uint64(lss) != 0 {
		return 0, src.formatErr(off, "vhdx virtual disk size %d is not a multiple of %d up to 64 TiB", size, lss)
	}
	x.size = int64(size)
	return lss, nil
}

func (x *vhdxImage) Size() int64      { return x.size }
func (x *vhdxImage) Format() Format   { return FormatVHDX }
func (x *vhdxImage) BytesRead() int64 { return x.src.n.Load() }
func (x *vhdxImage) Close() error     { return x.src.close() }

func (x *vhdxImage) ReadAt(p []byte, off int64) (int, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return readVirtual(p, off, x.size, x.read)
}

func (x *vhdxImage) read(p []byte, off int64) error {
	for len(p) > 0 {
		blk, in := off/x.blockSize, off%x.blockSize
		n := min(x.blockSize-in, int64(len(p)))
		i := blk + blk/x.chunkRatio
		b, err := x.bat.entry(i)
		if err != nil {
			return err
		}
		e := binary.LittleEndian.Uint64(b)
		switch state := e & 7; state {
		case vhdxBlockNotPresent, vhdxBlockUndefined, vhdxBlockZero, vhdxBlockUnmapped:
			clear(p[:n])
		case vhdxBlockFullyPresent:
			mb := e >> 20
			if mb == 0 || mb > uint64(x.src.size)/vhdxMB {
				return x.src.formatErr(x.bat.off+8*i, "vhdx payload block %d at %d MiB lies outside the file", blk, mb)
			}
			start := int64(mb) * vhdxMB
			if err := x.src.readData(p[:n], start+in, fmt.Sprintf("vhdx payload block %d", blk)); err != nil {
				return err
			}
		case vhdxBlockPartiallyPresent:
			return x.src.formatErr(x.bat.off+8*i, "vhdx block %d is partially present in a disk without a parent", blk)
		default:
			return x.src.formatErr(x.bat.off+8*i, "vhdx block %d has reserved state %d", blk, state)
		}
		p, off = p[n:], off+n
	}
	return nil
}
