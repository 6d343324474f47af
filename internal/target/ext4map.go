package target

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// Where an ext2/3/4 file's blocks are: the extent tree (ext4) or the block
// map of direct and indirect blocks (ext2/ext3), turned into runs of
// contiguous blocks so that a read of the file is one read of the image per
// run. See ext4.go.

// ext4Run maps logical blocks [logical, logical+n) of a file to physical
// blocks [phys, phys+n); zero marks an unwritten extent (reads as zeros).
type ext4Run struct {
	logical, n uint64
	phys       uint64
	zero       bool
}

// runs maps the first ceil(size/blockSize) logical blocks of in, sorted by
// logical block; blocks in no run are holes.
func (e *ext4FS) runs(in *ext4Inode) ([]ext4Run, error) {
	nblocks := uint64((in.size + e.blockSize - 1) / e.blockSize)
	var out []ext4Run
	var err error
	if in.flags&ext4ExtentsFl != 0 {
		budget := 2*nblocks + 8 // tree nodes visited: a real tree has fewer
		out, err = e.extentRuns(in.block[:], ext4MaxExtentDepth+1, nblocks, &budget, nil)
	} else {
		out, err = e.indirectRuns(in, nblocks)
	}
	if err != nil {
		return nil, err
	}
	return sortRuns(out, uint64(in.ino))
}

// sortRuns orders runs by logical block and rejects overlapping ones (ext4
// and XFS).
func sortRuns(out []ext4Run, ino uint64) ([]ext4Run, error) {
	slices.SortFunc(out, func(a, b ext4Run) int { return cmp.Compare(a.logical, b.logical) })
	for i := 1; i < len(out); i++ {
		if out[i-1].logical+out[i-1].n > out[i].logical {
			return nil, fmt.Errorf("inode %d: extents overlap at logical block %d (corrupt extent map)", ino, out[i].logical)
		}
	}
	return out, nil
}

// extentRuns walks an extent tree node (ext4_extents.h): a 12-byte header, then
// leaf extents or index entries pointing at child nodes one level down.
func (e *ext4FS) extentRuns(node []byte, maxDepth int, nblocks uint64, budget *uint64, out []ext4Run) ([]ext4Run, error) {
	le := binary.LittleEndian
	if *budget == 0 {
		return nil, errors.New("extent tree has more nodes than the file has blocks (corrupt extent tree)")
	}
	*budget--
	if len(node) < 12 || le.Uint16(node) != ext4ExtentMagic {
		return nil, errors.New("bad extent header magic (corrupt extent tree)")
	}
	entries, depth := int(le.Uint16(node[2:])), int(le.Uint16(node[6:]))
	if depth >= maxDepth {
		return nil, fmt.Errorf("extent tree depth %d is impossible here (corrupt extent tree)", depth)
	}
	if 12+entries*12 > len(node) {
		return nil, fmt.Errorf("extent node claims %d entries, room for %d (corrupt extent tree)", entries, (len(node)-12)/12)
	}
	var child []byte
	for i := range entries {
		ent := node[12+i*12:]
		lblk := uint64(le.Uint32(ent))
		if depth == 0 {
			n := uint64(le.Uint16(ent[4:]))
			zero := false
			if n > 32768 { // EXT_INIT_MAX_LEN: an unwritten extent
				n -= 32768
				zero = true
			}
			phys := uint64(le.Uint16(ent[6:]))<<32 | uint64(le.Uint32(ent[8:]))
			if lblk >= nblocks || n == 0 {
				continue // past the end of the file (preallocated) or empty
			}
			n = min(n, nblocks-lblk)
			if !zero && (phys >= e.blocks || phys+n > e.blocks || phys == 0) {
				return nil, fmt.Errorf("extent at logical block %d points at blocks %d..%d, beyond the file system (corrupt extent tree)", lblk, phys, phys+n)
			}
			out = append(out, ext4Run{logical: lblk, n: n, phys: phys, zero: zero})
			continue
		}
		if lblk >= nblocks {
			continue
		}
		leaf := uint64(le.Uint16(ent[8:]))<<32 | uint64(le.Uint32(ent[4:]))
		if child == nil {
			child = make([]byte, e.blockSize)
		}
		if err := e.readBlock(e.meta, child, leaf); err != nil {
			return nil, fmt.Errorf("extent tree: %w", err)
		}
		var err error
		if out, err = e.extentRuns(child, depth, nblocks, budget, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// indirectRuns reads the ext2/ext3 block map: 12 direct blocks, then single,
// double and triple indirect blocks of block numbers; 0 is a hole.
func (e *ext4FS) indirectRuns(in *ext4Inode, nblocks uint64) ([]ext4Run, error) {
	le := binary.LittleEndian
	var out []ext4Run
	add := func(lblk, phys uint64) error {
		if phys == 0 {
			return nil
		}
		if phys >= e.blocks {
			return fmt.Errorf("inode %d: block %d is beyond the file system (corrupt block map)", in.ino, phys)
		}
		if k := len(out) - 1; k >= 0 && out[k].logical+out[k].n == lblk && out[k].phys+out[k].n == phys {
			out[k].n++
			return nil
		}
		out = append(out, ext4Run{logical: lblk, n: 1, phys: phys})
		return nil
	}
	lblk := uint64(0)
	for i := 0; i < 12 && lblk < nblocks; i++ {
		if err := add(lblk, uint64(le.Uint32(in.block[i*4:]))); err != nil {
			return nil, err
		}
		lblk++
	}
	per := uint64(e.blockSize / 4)
	// walk visits an indirect block of the given level (1: it lists data
	// blocks), covering per^level logical blocks from lblk.
	var walk func(blk uint64, level int) error
	walk = func(blk uint64, level int) error {
		span := uint64(1)
		for range level - 1 {
			span *= per
		}
		if blk == 0 {
			lblk += span * per
			return nil
		}
		buf := make([]byte, e.blockSize)
		if err := e.readBlock(e.meta, buf, blk); err != nil {
			return fmt.Errorf("inode %d: indirect block: %w", in.ino, err)
		}
		for j := uint64(0); j < per && lblk < nblocks; j++ {
			p := uint64(le.Uint32(buf[j*4:]))
			if level == 1 {
				if err := add(lblk, p); err != nil {
					return err
				}
				lblk++
				continue
			}
			if err := walk(p, level-1); err != nil {
				return err
			}
		}
		return nil
	}
	for level := 1; level <= 3 && lblk < nblocks; level++ {
		if err := walk(uint64(le.Uint32(in.block[(11+level)*4:])), level); err != nil {
			return nil, err
		}
	}
	return out, nil
}
