package fatfs

import (
	"encoding/binary"
	"fmt"
	"io"
	"sync"
)

// fatChunk is the unit in which the FAT is read and cached; a multiple of 4 so
// that FAT16 and FAT32 entries never straddle two chunks.
const fatChunk = 32 << 10

// fatByteLocked returns byte off of the FAT in use, reading its chunk if needed.
// f.fatMu must be held.
func (f *FS) fatByteLocked(off int64) (byte, error) {
	i := off / fatChunk
	if off < 0 || off >= f.fatBytes || i >= int64(len(f.fatChunks)) {
		return 0, formatErr(f.fatOffset+off, "FAT offset 0x%x outside the FAT", off)
	}
	c := f.fatChunks[i]
	if c == nil {
		n := min(int64(fatChunk), f.fatBytes-i*fatChunk)
		c = make([]byte, n)
		pos := f.fatOffset + i*fatChunk
		if m, err := f.r.ReadAt(c, pos); m < len(c) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, fmt.Errorf("fatfs: read FAT at offset 0x%x: %w", pos, err)
		}
		f.fatChunks[i] = c
	}
	return c[off-i*fatChunk], nil
}

// fatEntry returns the FAT entry of cluster c, masked to its width (FAT32 entries
// keep only their low 28 bits), and the entry's byte offset in the partition.
func (f *FS) fatEntry(c uint32) (uint32, int64, error) {
	f.fatMu.Lock()
	defer f.fatMu.Unlock()
	var off int64
	var n int
	switch f.bits {
	case 12:
		off, n = int64(c)+int64(c)/2, 2
	case 16:
		off, n = int64(c)*2, 2
	default:
		off, n = int64(c)*4, 4
	}
	var b [4]byte
	for i := range n {
		v, err := f.fatByteLocked(off + int64(i))
		if err != nil {
			return 0, f.fatOffset + off, err
		}
		b[i] = v
	}
	v := binary.LittleEndian.Uint32(b[:])
	switch f.bits {
	case 12:
		if c&1 == 1 {
			v >>= 4
		}
		v &= 0xFFF
	case 32:
		v &= 0x0FFFFFFF
	}
	return v, f.fatOffset + off, nil
}

// isEOC reports whether FAT entry v marks the end of a cluster chain.
func (f *FS) isEOC(v uint32) bool {
	switch f.bits {
	case 12:
		return v >= 0xFF8
	case 16:
		return v >= 0xFFF8
	default:
		return v >= 0x0FFFFFF8
	}
}

// isBad reports whether FAT entry v marks a bad cluster.
func (f *FS) isBad(v uint32) bool {
	switch f.bits {
	case 12:
		return v == 0xFF7
	case 16:
		return v == 0xFFF7
	default:
		return v == 0x0FFFFFF7
	}
}

// validCluster reports whether c numbers a data cluster.
func (f *FS) validCluster(c uint32) bool {
	return c >= 2 && uint64(c) <= uint64(f.clusterCount)+1
}

// clusterOffset returns the byte offset of data cluster c, which must be valid.
func (f *FS) clusterOffset(c uint32) int64 {
	return f.dataOffset + int64(c-2)*f.clusterSize
}

// chain is the lazily resolved cluster chain of one file or directory. Its methods
// are safe for concurrent use, since io.ReaderAt allows parallel calls.
type chain struct {
	fs    *FS
	first uint32

	mu       sync.Mutex
	clusters []uint32
	done     bool // the end-of-chain mark was reached
	seen     clusterSet
}

func (f *FS) newChain(first uint32) *chain {
	return &chain{fs: f, first: first}
}

// extend resolves the chain until it holds at least n clusters or ends. A cluster
// number outside the data area, a free or bad cluster inside the chain, a cluster
// visited twice (a loop) or a chain longer than the cluster count are errors.
func (ch *chain) extend(n int) error {
	f := ch.fs
	if len(ch.clusters) == 0 && !ch.done && n > 0 {
		if !f.validCluster(ch.first) {
			return formatErr(f.dataOffset, "first cluster %d outside 2..%d", ch.first, uint64(f.clusterCount)+1)
		}
		ch.clusters = append(ch.clusters, ch.first)
		ch.seen.add(ch.first, f.clusterCount)
	}
	for len(ch.clusters) < n && !ch.done {
		c := ch.clusters[len(ch.clusters)-1]
		next, off, err := f.fatEntry(c)
		if err != nil {
			return err
		}
		switch {
		case f.isEOC(next):
			ch.done = true
			return nil
		case f.isBad(next):
			return formatErr(off, "cluster chain runs into bad cluster %d", c)
		case next == 0:
			return formatErr(off, "cluster %d links to a free cluster", c)
		case !f.validCluster(next):
			return formatErr(off, "cluster %d links to cluster %d, outside 2..%d", c, next, uint64(f.clusterCount)+1)
		case uint64(len(ch.clusters)) >= uint64(f.clusterCount):
			return formatErr(off, "cluster chain from %d is longer than the %d clusters of the volume", ch.first, f.clusterCount)
		case ch.seen.has(next):
			return formatErr(off, "cluster chain from %d loops back to cluster %d", ch.first, next)
		}
		ch.clusters = append(ch.clusters, next)
		ch.seen.add(next, f.clusterCount)
	}
	return nil
}

// readAt reads len(p) bytes at byte offset off of the chain's data into p,
// coalescing runs of contiguous clusters into one read. The caller bounds off and
// len(p) by the file size; running off the end of the chain is an error.
func (ch *chain) readAt(p []byte, off int64) error {
	if len(p) == 0 {
		return nil
	}
	f := ch.fs
	cs := f.clusterSize
	first := off / cs
	last := (off + int64(len(p)) - 1) / cs
	if last >= int64(f.clusterCount) {
		return formatErr(f.dataOffset, "offset 0x%x lies beyond the %d clusters of the volume", off+int64(len(p))-1, f.clusterCount)
	}
	ch.mu.Lock()
	err := ch.extend(int(last) + 1)
	clusters := ch.clusters
	ch.mu.Unlock()
	if err != nil {
		return err
	}
	if int64(len(clusters)) <= last {
		return formatErr(f.dataOffset, "data at offset 0x%x is past the end of the %d-cluster chain from %d", off+int64(len(p))-1, len(clusters), ch.first)
	}
	for i := first; i <= last; {
		// Extend the run while the next cluster follows on disk.
		j := i
		for j < last && clusters[j+1] == clusters[j]+1 {
			j++
		}
		runStart := f.clusterOffset(clusters[i]) + (off - i*cs)
		runEnd := f.clusterOffset(clusters[j]) + cs
		n := min(runEnd-runStart, int64(len(p)))
		if runStart+n > f.size {
			return formatErr(runStart, "cluster %d lies past the end of the %d-byte partition", clusters[i], f.size)
		}
		if m, err := f.r.ReadAt(p[:n], runStart); m < int(n) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("fatfs: read cluster %d at offset 0x%x: %w", clusters[i], runStart, err)
		}
		p = p[n:]
		off += n
		i = j + 1
	}
	return nil
}

// clusterSet records the clusters of one chain for loop detection: a map while
// the chain is short, a bitmap over all clusters once it grows.
type clusterSet struct {
	small map[uint32]struct{}
	bits  []uint64
}

const clusterSetSmall = 1024

func (s *clusterSet) add(c uint32, count uint32) {
	if s.bits == nil && len(s.small) >= clusterSetSmall {
		s.bits = make([]uint64, (uint64(count)+2+63)/64)
		for k := range s.small {
			s.bits[k/64] |= 1 << (k % 64)
		}
		s.small = nil
	}
	if s.bits != nil {
		if i := c / 64; int(i) < len(s.bits) {
			s.bits[i] |= 1 << (c % 64)
		}
		return
	}
	if s.small == nil {
		s.small = make(map[uint32]struct{})
	}
	s.small[c] = struct{}{}
}

func (s *clusterSet) has(c uint32) bool {
	if s.bits != nil {
		i := c / 64
		return int(i) < len(s.bits) && s.bits[i]&(1<<(c%64)) != 0
	}
	_, ok := s.small[c]
	return ok
}
