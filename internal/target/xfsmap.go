package target

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Where an XFS file's blocks are (see xfs.go): the data fork's extent list,
// or a B+tree of extent records when they do not fit in the inode, turned
// into the same runs as ext4's (ext4map.go) so that one file reader serves
// both.

// runs maps a file's blocks from its extent list or B+tree, sorted by logical
// block; blocks in no run are holes.
func (x *xfsFS) runs(in *xfsInode) ([]ext4Run, error) {
	nblocks := uint64((in.size + x.blockSize - 1) / x.blockSize)
	var out []ext4Run
	switch in.format {
	case xfsFmtExtents:
		if in.nextents > uint64(len(in.fork)/16) {
			return nil, fmt.Errorf("inode %d: %d extents do not fit its data fork (corrupt inode)", in.ino, in.nextents)
		}
		var err error
		if out, err = x.addExtents(out, in.fork[:in.nextents*16], nblocks); err != nil {
			return nil, fmt.Errorf("inode %d: %w", in.ino, err)
		}
	case xfsFmtBtree:
		be := binary.BigEndian
		if len(in.fork) < 4 {
			return nil, fmt.Errorf("inode %d: B+tree root does not fit (corrupt inode)", in.ino)
		}
		level, n := int(be.Uint16(in.fork)), int(be.Uint16(in.fork[2:]))
		maxRecs := (len(in.fork) - 4) / 16
		if level == 0 || level > 9 || n > maxRecs {
			return nil, fmt.Errorf("inode %d: B+tree root of level %d with %d entries (corrupt inode)", in.ino, level, n)
		}
		budget := 2*nblocks + 8
		for i := range n {
			ptr := be.Uint64(in.fork[4+maxRecs*8+i*8:])
			var err error
			if out, err = x.btreeRuns(ptr, level-1, nblocks, &budget, out); err != nil {
				return nil, fmt.Errorf("inode %d: %w", in.ino, err)
			}
		}
	default:
		return nil, fmt.Errorf("inode %d: data fork format %d has no blocks", in.ino, in.format)
	}
	return sortRuns(out, in.ino)
}

// addExtents decodes packed extent records (xfs_bmbt_rec: a flag bit, 54
// bits of logical offset, 52 of start block, 21 of length).
func (x *xfsFS) addExtents(out []ext4Run, recs []byte, nblocks uint64) ([]ext4Run, error) {
	be := binary.BigEndian
	for p := 0; p+16 <= len(recs); p += 16 {
		l0, l1 := be.Uint64(recs[p:]), be.Uint64(recs[p+8:])
		unwritten := l0>>63 != 0
		logical := (l0 & (1<<63 - 1)) >> 9
		start := (l0&0x1FF)<<43 | l1>>21
		n := l1 & (1<<21 - 1)
		if logical >= nblocks || n == 0 {
			continue
		}
		n = min(n, nblocks-logical)
		phys, err := x.linear(start)
		if err != nil {
			return nil, fmt.Errorf("extent at logical block %d: %w", logical, err)
		}
		if last, err := x.linear(start + n - 1); err != nil || last != phys+n-1 {
			return nil, fmt.Errorf("extent at logical block %d runs past its allocation group (corrupt extent)", logical)
		}
		out = append(out, ext4Run{logical: logical, n: n, phys: phys, zero: unwritten})
	}
	return out, nil
}

// btreeRuns walks a block of the extent B+tree (long-format block: "BMAP" on
// v4, "BMA3" with a larger header on v5) at the given level.
func (x *xfsFS) btreeRuns(fsb uint64, level int, nblocks uint64, budget *uint64, out []ext4Run) ([]ext4Run, error) {
	if *budget == 0 {
		return nil, errors.New("extent B+tree has more blocks than the file (corrupt B+tree)")
	}
	*budget--
	be := binary.BigEndian
	buf := make([]byte, x.blockSize)
	if err := x.readFSB(buf, fsb); err != nil {
		return nil, fmt.Errorf("extent B+tree: %w", err)
	}
	magic, hdr := uint32(0x424d4150), 24 // "BMAP"
	if x.v5 {
		magic, hdr = 0x424d4133, 72 // "BMA3"
	}
	if be.Uint32(buf) != magic {
		return nil, fmt.Errorf("extent B+tree block %d: bad magic (corrupt B+tree)", fsb)
	}
	if got := int(be.Uint16(buf[4:])); got != level {
		return nil, fmt.Errorf("extent B+tree block %d: level %d, want %d (corrupt B+tree)", fsb, got, level)
	}
	n := int(be.Uint16(buf[6:]))
	if level == 0 {
		if hdr+n*16 > len(buf) {
			return nil, fmt.Errorf("extent B+tree block %d: %d records do not fit (corrupt B+tree)", fsb, n)
		}
		return x.addExtents(out, buf[hdr:hdr+n*16], nblocks)
	}
	maxRecs := (len(buf) - hdr) / 16
	if n > maxRecs {
		return nil, fmt.Errorf("extent B+tree block %d: %d entries do not fit (corrupt B+tree)", fsb, n)
	}
	for i := range n {
		var err error
		if out, err = x.btreeRuns(be.Uint64(buf[hdr+maxRecs*8+i*8:]), level-1, nblocks, budget, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}
