package container

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// qcow2 layout and flags, from QEMU's docs/interop/qcow2.txt.
const (
	qcow2HeaderV2      = 72  // length of the version 2 header
	qcow2HeaderV3      = 104 // minimum header_length of version 3
	qcow2MinCluster    = 9
	qcow2MaxCluster    = 21
	qcow2MaxL1Entries  = 32 << 20 / 8 // QEMU's QCOW_MAX_L1_SIZE
	qcow2MaxBackingLen = 1023
	qcow2OffsetMask    = 0x00fffffffffffe00 // bits 9-55 of L1 and standard L2 entries
	qcow2Compressed    = 1 << 62
	qcow2ZeroFlag      = 1 // L2 entry bit 0, version 3
	qcow2ExtBackingFmt = 0xe2792aca
	qcow2ExtMaxArea    = 64 << 10 // header extensions are read up to this offset

	qcow2IncompatDirty       = 1 << 0
	qcow2IncompatCorrupt     = 1 << 1
	qcow2IncompatDataFile    = 1 << 2
	qcow2IncompatCompression = 1 << 3
	qcow2IncompatExtL2       = 1 << 4
)

// qcow2Image reads a qcow2 version 2 or 3 image.
type qcow2Image struct {
	src         *source
	size        int64
	version     uint32
	clusterBits uint
	clusterSize int64
	l2Bits      uint // log2 of the entries in an L2 table
	zstd        bool
	backing     Image

	mu      sync.Mutex
	l1      *pagedTable
	l2      l2Cache
	cKey    uint64 // L2 entry of the compressed cluster in cBuf
	cBuf    []byte // last decompressed cluster
	cIn     []byte
	inflate io.ReadCloser
	zdec    *zstd.Decoder
}

func openQCOW2(src *source, o openOptions) (Image, error) {
	h := make([]byte, qcow2HeaderV3+8)
	if src.size < qcow2HeaderV2 {
		return nil, src.formatErr(0, "qcow2 header truncated: file has %d bytes", src.size)
	}
	if err := src.readAt(h[:min(int64(len(h)), src.size)], 0, "qcow2 header"); err != nil {
		return nil, err
	}
	be := binary.BigEndian
	q := &qcow2Image{src: src, version: be.Uint32(h[4:])}
	if q.version != 2 && q.version != 3 {
		return nil, src.unsupported(4, "qcow2 version %d is not supported", q.version)
	}
	cb := be.Uint32(h[20:])
	if cb < qcow2MinCluster || cb > qcow2MaxCluster {
		return nil, src.formatErr(20, "qcow2 cluster_bits %d is out of range %d..%d", cb, qcow2MinCluster, qcow2MaxCluster)
	}
	q.clusterBits = uint(cb)
	q.clusterSize = 1 << cb
	q.l2Bits = q.clusterBits - 3
	if crypt := be.Uint32(h[32:]); crypt != 0 {
		return nil, src.unsupported(32, "qcow2 encryption (crypt_method %d) is not supported", crypt)
	}
	extStart := int64(qcow2HeaderV2)
	if q.version == 3 {
		hl := int64(be.Uint32(h[100:]))
		if src.size < qcow2HeaderV3 || hl < qcow2HeaderV3 {
			return nil, src.formatErr(100, "qcow2 version 3 header truncated")
		}
		if hl > q.clusterSize || hl > src.size {
			return nil, src.formatErr(100, "qcow2 header_length %d is larger than the header cluster", hl)
		}
		extStart = hl
		if err := q.checkFeatures(be.Uint64(h[72:]), hl, h); err != nil {
			return nil, err
		}
	}
	size := be.Uint64(h[24:])
	if size > 1<<62 {
		return nil, src.formatErr(24, "qcow2 virtual size %d is too large", size)
	}
	q.size = int64(size)
	l1Size := int64(be.Uint32(h[36:]))
	l1Off := int64(be.Uint64(h[40:])) // negative when huge: past end of file
	shift := q.clusterBits + q.l2Bits
	need := q.size >> shift
	if q.size&(1<<shift-1) != 0 {
		need++
	}
	if l1Size > qcow2MaxL1Entries || need > qcow2MaxL1Entries {
		return nil, src.formatErr(36, "qcow2 l1 table of %d entries is too large (at most %d)", max(l1Size, need), qcow2MaxL1Entries)
	}
	if l1Size < need {
		return nil, src.formatErr(36, "qcow2 l1 table of %d entries is too small for a virtual size of %d bytes", l1Size, q.size)
	}
	if need > 0 && l1Off&(q.clusterSize-1) != 0 {
		return nil, src.formatErr(40, "qcow2 l1 table offset 0x%x is not cluster-aligned", l1Off)
	}
	var err error
	if q.l1, err = newPagedTable(src, l1Off, need, 8, "qcow2 l1 table"); err != nil {
		return nil, err
	}
	q.l2.init(q.clusterSize)

	backingOff := int64(be.Uint64(h[8:]))
	backingLen := int64(be.Uint32(h[16:]))
	if backingOff != 0 {
		if err := q.openBacking(backingOff, backingLen, extStart, o); err != nil {
			return nil, err
		}
	}
	return q, nil
}

// checkFeatures refuses the incompatible features this reader does not
// implement and reads the compression type.
func (q *qcow2Image) checkFeatures(incompat uint64, headerLen int64, h []byte) error {
	src := q.src
	switch {
	case incompat&qcow2IncompatDataFile != 0:
		return src.unsupported(72, "qcow2 external data file is not supported")
	case incompat&qcow2IncompatExtL2 != 0:
		return src.unsupported(72, "qcow2 extended L2 entries (subclusters) are not supported")
	}
	known := uint64(qcow2IncompatDirty | qcow2IncompatCorrupt | qcow2IncompatCompression)
	if unknown := incompat &^ known; unknown != 0 {
		return src.unsupported(72, "qcow2 unknown incompatible feature bit %d is not supported", bits.TrailingZeros64(unknown))
	}
	ctype := byte(0)
	if headerLen > qcow2HeaderV3 {
		ctype = h[104]
	}
	switch ctype {
	case 0:
		if incompat&qcow2IncompatCompression != 0 {
			return src.formatErr(72, "qcow2 compression type bit is set but the compression type is zlib")
		}
	case 1:
		if incompat&qcow2IncompatCompression == 0 {
			return src.formatErr(104, "qcow2 compression type is zstd but the compression type bit is not set")
		}
		q.zstd = true
	default:
		return src.unsupported(104, "qcow2 compression type %d is not supported", ctype)
	}
	return nil
}

// openBacking reads the backing file name and format and opens the backing file.
func (q *qcow2Image) openBacking(off, n, extStart int64, o openOptions) error {
	src := q.src
	if n == 0 {
		return nil // an empty name is no backing file, as in QEMU
	}
	if n > qcow2MaxBackingLen || off < 0 || off >= q.clusterSize || n > q.clusterSize-off {
		return src.formatErr(8, "qcow2 backing file name (%d bytes at offset 0x%x) lies outside the header cluster", n, off)
	}
	name := make([]byte, n)
	if err := src.readAt(name, off, "qcow2 backing file name"); err != nil {
		return err
	}
	format, err := q.backingFormat(extStart, off)
	if err != nil {
		return err
	}
	if o.backing == nil {
		return src.unsupported(off, "qcow2 backing file %q cannot be opened from this source", name)
	}
	q.backing, err = o.backing(string(name), format, off)
	return err
}

// backingFormat reads the backing file format header extension, if any, and
// maps QEMU's driver name to a Format ("" when absent or unknown).
func (q *qcow2Image) backingFormat(start, backingOff int64) (Format, error) {
	src := q.src
	end := min(q.clusterSize, src.size, qcow2ExtMaxArea)
	if backingOff > start && backingOff < end {
		end = backingOff
	}
	if end-start < 8 {
		return "", nil
	}
	area := make([]byte, end-start)
	if err := src.readAt(area, start, "qcow2 header extensions"); err != nil {
		return "", err
	}
	be := binary.BigEndian
	for p := int64(0); p+8 <= int64(len(area)); {
		typ, n := be.Uint32(area[p:]), int64(be.Uint32(area[p+4:]))
		if typ == 0 {
			break
		}
		if n > int64(len(area))-p-8 {
			return "", src.formatErr(start+p, "qcow2 header extension 0x%08x of %d bytes overruns the header", typ, n)
		}
		if typ == qcow2ExtBackingFmt {
			switch name := string(area[p+8 : p+8+n]); name {
			case "qcow2":
				return FormatQCOW2, nil
			case "raw":
				return FormatRaw, nil
			case "vpc":
				return FormatVHDDynamic, nil
			case "vhdx":
				return FormatVHDX, nil
			default:
				return "", src.unsupported(start+p, "qcow2 backing file format %q is not supported", name)
			}
		}
		p += 8 + (n+7)&^7
	}
	return "", nil
}

func (q *qcow2Image) Size() int64    { return q.size }
func (q *qcow2Image) Format() Format { return FormatQCOW2 }

func (q *qcow2Image) BytesRead() int64 {
	n := q.src.n.Load()
	if q.backing != nil {
		n += q.backing.BytesRead()
	}
	return n
}

func (q *qcow2Image) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.zdec != nil {
		q.zdec.Close()
		q.zdec = nil
	}
	err := q.src.close()
	if q.backing != nil {
		err = errors.Join(err, q.backing.Close())
		q.backing = nil
	}
	return err
}

func (q *qcow2Image) ReadAt(p []byte, off int64) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return readVirtual(p, off, q.size, q.read)
}

// read fills p from virtual offset off, which lies within the disk.
func (q *qcow2Image) read(p []byte, off int64) error {
	cs := q.clusterSize
	for len(p) > 0 {
		in := off & (cs - 1)
		n := min(cs-in, int64(len(p)))
		e, err := q.l2Entry(off >> q.clusterBits)
		if err != nil {
			return err
		}
		host := int64(e & qcow2OffsetMask)
		switch {
		case e&qcow2Compressed != 0:
			c, err := q.compressedCluster(e)
			if err != nil {
				return err
			}
			copy(p[:n], c[in:])
		case q.version >= 3 && e&qcow2ZeroFlag != 0:
			clear(p[:n])
		case host == 0:
			if err := q.readBacking(p[:n], off); err != nil {
				return err
			}
		default:
			if host&(cs-1) != 0 {
				return q.src.formatErr(host, "qcow2 data cluster offset is not cluster-aligned")
			}
			// Extend the read over following clusters stored right after this one.
			for n < int64(len(p)) {
				next, err := q.l2Entry((off + n) >> q.clusterBits)
				if err != nil {
					return err
				}
				if next&qcow2Compressed != 0 || (q.version >= 3 && next&qcow2ZeroFlag != 0) ||
					int64(next&qcow2OffsetMask) != host+in+n {
					break
				}
				n = min(n+cs, int64(len(p)))
			}
			if err := q.src.readData(p[:n], host+in, "qcow2 data cluster"); err != nil {
				return err
			}
		}
		p, off = p[n:], off+n
	}
	return nil
}

// readBacking fills p with the backing file's data at off, or zeros.
func (q *qcow2Image) readBacking(p []byte, off int64) error {
	if q.backing == nil {
		clear(p)
		return nil
	}
	n, err := q.backing.ReadAt(p, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	clear(p[n:]) // the backing file may be smaller than this image
	return nil
}

// l2Entry returns the L2 entry of virtual cluster vc (0 when unallocated).
func (q *qcow2Image) l2Entry(vc int64) (uint64, error) {
	l1i := vc >> q.l2Bits
	if l1i >= q.l1.n {
		return 0, nil
	}
	b, err := q.l1.entry(l1i)
	if err != nil {
		return 0, err
	}
	l2Off := int64(binary.BigEndian.Uint64(b) & qcow2OffsetMask)
	if l2Off == 0 {
		return 0, nil
	}
	if l2Off&(q.clusterSize-1) != 0 {
		return 0, q.src.formatErr(q.l1.off+l1i*8, "qcow2 l2 table offset 0x%x is not cluster-aligned", l2Off)
	}
	t, err := q.l2.get(l2Off, q.src)
	if err != nil {
		return 0, err
	}
	i := vc & (1<<q.l2Bits - 1)
	return binary.BigEndian.Uint64(t[i*8:]), nil
}

// compressedCluster returns the decompressed cluster of compressed L2 entry e.
func (q *qcow2Image) compressedCluster(e uint64) ([]byte, error) {
	if q.cBuf != nil && q.cKey == e {
		return q.cBuf, nil
	}
	// The descriptor splits at x = 62 - (cluster_bits - 8): the host offset
	// below, the count of additional 512-byte sectors above.
	x := 62 - (q.clusterBits - 8)
	off := int64(e & (1<<x - 1))
	sectors := int64((e>>x)&(1<<(q.clusterBits-8)-1)) + 1
	n := sectors*512 - off&511
	if off >= q.src.size {
		return nil, q.src.formatErr(off, "qcow2 compressed cluster lies past end of file")
	}
	n = min(n, q.src.size-off) // the last cluster may be cut short at end of file
	if int64(cap(q.cIn)) < n {
		q.cIn = make([]byte, n)
	}
	in := q.cIn[:n]
	if err := q.src.readAt(in, off, "qcow2 compressed cluster"); err != nil {
		return nil, err
	}
	if q.cBuf == nil {
		q.cBuf = make([]byte, q.clusterSize)
	}
	q.cKey = 0
	if err := q.decompress(q.cBuf, in); err != nil {
		return nil, q.src.formatErr(off, "qcow2 compressed cluster is corrupt: %v", err)
	}
	q.cKey = e
	return q.cBuf, nil
}

// decompress fills out, exactly, from the compressed data in. Trailing input
// (padding up to the sector) is ignored, as QEMU does.
func (q *qcow2Image) decompress(out, in []byte) error {
	var r io.Reader
	if q.zstd {
		if q.zdec == nil {
			d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
				zstd.WithDecoderMaxMemory(64<<20), zstd.WithDecoderMaxWindow(8<<20))
			if err != nil {
				return err
			}
			q.zdec = d
		}
		if err := q.zdec.Reset(bytes.NewReader(in)); err != nil {
			return err
		}
		r = q.zdec
	} else {
		// qcow2 stores raw deflate streams (zlib with a window of 4 KiB and no header).
		if q.inflate == nil {
			q.inflate = flate.NewReader(bytes.NewReader(in))
		} else if err := q.inflate.(flate.Resetter).Reset(bytes.NewReader(in), nil); err != nil {
			return err
		}
		r = q.inflate
	}
	if _, err := io.ReadFull(r, out); err != nil {
		return fmt.Errorf("decompressed to less than a cluster: %w", err)
	}
	return nil
}

// l2Cache holds recently used L2 tables, least recently used evicted first.
type l2Cache struct {
	slots     []l2Slot
	max       int
	tableSize int64
	tick      uint64
}

type l2Slot struct {
	off  int64
	buf  []byte
	used uint64
}

func (c *l2Cache) init(clusterSize int64) {
	c.tableSize = clusterSize
	c.max = int(min(max(16<<20/clusterSize, 4), 64))
}

// get returns the L2 table at file offset off, reading it on a miss.
func (c *l2Cache) get(off int64, src *source) ([]byte, error) {
	c.tick++
	victim := -1
	for i := range c.slots {
		if c.slots[i].off == off {
			c.slots[i].used = c.tick
			return c.slots[i].buf, nil
		}
		if victim < 0 || c.slots[i].used < c.slots[victim].used {
			victim = i
		}
	}
	if !src.inFile(off, c.tableSize) {
		return nil, src.formatErr(off, "qcow2 l2 table extends past end of file")
	}
	var s *l2Slot
	if len(c.slots) < c.max {
		c.slots = append(c.slots, l2Slot{buf: make([]byte, c.tableSize)})
		s = &c.slots[len(c.slots)-1]
	} else {
		s = &c.slots[victim]
	}
	s.off, s.used = -1, c.tick
	if err := src.readAt(s.buf, off, "qcow2 l2 table"); err != nil {
		return nil, err
	}
	s.off = off
	return s.buf, nil
}
