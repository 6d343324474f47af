package target

import (
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"slices"
)

// XFS directories (see xfs.go): short form in the inode, or data blocks below
// XFS_DIR2_LEAF_OFFSET in the directory's block map. A directory's di_size
// covers exactly its data blocks, so reading [0, size) lists every entry.

// dir returns the listing of directory inode in, reading it on first use.
func (x *xfsFS) dir(in *xfsInode) (*xfsDir, error) {
	if d := x.dirs.get(in.ino); d != nil {
		return d, nil
	}
	d := newDirTable[uint64]()
	switch in.format {
	case xfsFmtLocal:
		if err := x.parseShortDir(d, in); err != nil {
			return nil, err
		}
	case xfsFmtExtents, xfsFmtBtree:
		if in.size > min(x.size, xfsLeafOffset, ext4MaxDirSize) {
			return nil, fmt.Errorf("directory inode %d claims %d bytes (corrupt inode?)", in.ino, in.size)
		}
		runs, err := x.runs(in)
		if err != nil {
			return nil, fmt.Errorf("directory inode %d: %w", in.ino, err)
		}
		f := &runFile{data: x.data, blockSize: x.blockSize, size: in.size, ino: in.ino, runs: runs}
		buf := make([]byte, x.dirBlkSize)
		for off := int64(0); off < in.size; off += x.dirBlkSize {
			if !f.mapped(uint64(off / x.blockSize)) {
				continue // a hole left by a removed data block
			}
			f.off = off
			n, err := io.ReadFull(f, buf)
			if err != nil && !(err == io.ErrUnexpectedEOF && n > 0) {
				return nil, fmt.Errorf("directory inode %d: %w", in.ino, err)
			}
			if err := x.parseDirBlock(d, buf[:n], in.ino, off); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("directory inode %d: data fork format %d (corrupt inode)", in.ino, in.format)
	}
	x.dirs.put(in.ino, d.done())
	return d, nil
}

// parseShortDir reads a short-form directory (xfs_dir2_sf_hdr, then entries of
// name length, 2-byte offset tag, name, file type when the file system records
// it, and a 4-byte inode number, 8-byte when the header's i8count is set).
func (x *xfsFS) parseShortDir(d *xfsDir, in *xfsInode) error {
	b := in.fork
	if in.size < int64(len(b)) {
		b = b[:in.size]
	}
	if len(b) < 6 {
		return fmt.Errorf("directory inode %d: short-form header truncated (corrupt inode)", in.ino)
	}
	count, i8 := int(b[0]), b[1] != 0
	inoLen := 4
	if i8 {
		inoLen = 8
	}
	p := 2 + inoLen
	ft := 0
	if x.ftype {
		ft = 1
	}
	for i := range count {
		if p+3 > len(b) {
			return fmt.Errorf("directory inode %d: short-form entry %d truncated (corrupt inode)", in.ino, i)
		}
		nameLen := int(b[p])
		end := p + 3 + nameLen + ft + inoLen
		if nameLen == 0 || end > len(b) {
			return fmt.Errorf("directory inode %d: short-form entry %d truncated (corrupt inode)", in.ino, i)
		}
		name := string(b[p+3 : p+3+nameLen])
		var typ byte
		if ft == 1 {
			typ = b[p+3+nameLen]
		}
		var ino uint64
		if i8 {
			ino = binary.BigEndian.Uint64(b[end-8:])
		} else {
			ino = uint64(binary.BigEndian.Uint32(b[end-4:]))
		}
		d.add(name, ino, typ)
		p = end
	}
	return nil
}

// parseDirBlock reads the entries of a directory data block: "XD2B"/"XDB3"
// (single-block directory, with a leaf and a tail at its end) or
// "XD2D"/"XDD3" (data block of a leaf or node directory). Entries are 8-byte
// aligned: a 64-bit inode number, name length, name, file type, tag; a free
// region starts with 0xffff and its length.
func (x *xfsFS) parseDirBlock(d *xfsDir, b []byte, ino uint64, off int64) error {
	be := binary.BigEndian
	bad := func(what string) error {
		return fmt.Errorf("directory inode %d: block at offset %d: %s (corrupt directory)", ino, off, what)
	}
	if len(b) < 64 {
		return bad("truncated")
	}
	hdr, single := 16, false
	switch be.Uint32(b) {
	case 0x58443242: // XD2B
		single = true
	case 0x58443244: // XD2D
	case 0x58444233: // XDB3
		hdr, single = 64, true
	case 0x58444433: // XDD3
		hdr = 64
	default:
		return bad(fmt.Sprintf("bad magic %#x", be.Uint32(b)))
	}
	if (hdr == 64) != x.v5 {
		return bad("block format does not match the superblock version")
	}
	end := len(b)
	if single {
		count := int(be.Uint32(b[len(b)-8:]))
		end = len(b) - 8 - count*8
		if count < 0 || end < hdr {
			return bad(fmt.Sprintf("leaf of %d entries does not fit", count))
		}
	}
	ft := 0
	if x.ftype {
		ft = 1
	}
	for p := hdr; p+8 <= end; {
		if be.Uint16(b[p:]) == 0xFFFF {
			n := int(be.Uint16(b[p+2:]))
			if n < 8 || n%8 != 0 || p+n > end {
				return bad(fmt.Sprintf("free region of %d bytes at %d", n, p))
			}
			p += n
			continue
		}
		if p+9 > end {
			return bad(fmt.Sprintf("entry at %d truncated", p))
		}
		nameLen := int(b[p+8])
		size := (8 + 1 + nameLen + ft + 2 + 7) &^ 7
		if nameLen == 0 || p+size > end {
			return bad(fmt.Sprintf("entry at %d (name length %d) does not fit", p, nameLen))
		}
		var typ byte
		if ft == 1 {
			typ = b[p+9+nameLen]
		}
		d.add(string(b[p+9:p+9+nameLen]), be.Uint64(b[p:]), typ)
		p += size
	}
	return nil
}

// runFile reads a file's content through its runs of blocks: each Read is one
// read of the image, straight into the caller's buffer.
type runFile struct {
	data      io.ReaderAt
	blockSize int64
	size      int64
	ino       uint64
	runs      []ext4Run
	info      fs.FileInfo
	off       int64
	next      int // index of the run to search from
}

func (f *runFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *runFile) Close() error               { return nil }

// mapped reports whether logical block blk is in a run.
func (f *runFile) mapped(blk uint64) bool {
	i, _ := slices.BinarySearchFunc(f.runs, blk, func(r ext4Run, b uint64) int {
		if r.logical+r.n <= b {
			return -1
		}
		if r.logical > b {
			return 1
		}
		return 0
	})
	return i < len(f.runs) && f.runs[i].logical <= blk && blk < f.runs[i].logical+f.runs[i].n
}

func (f *runFile) Read(p []byte) (int, error) {
	return readRuns(f.data, f.blockSize, f.runs, f.size, f.ino, &f.off, &f.next, p)
}

// readRuns reads from byte *off of a file of the given size whose blocks are
// runs (sorted; blocks in none are holes, read as zeros).
func readRuns(data io.ReaderAt, bs int64, runs []ext4Run, size int64, ino uint64, off *int64, next *int, p []byte) (int, error) {
	if *off >= size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if int64(len(p)) > size-*off {
		p = p[:size-*off]
	}
	blk := uint64(*off / bs)
	// Find the run holding blk, or the next one after it (a hole before it).
	for *next > 0 && runs[*next-1].logical+runs[*next-1].n > blk {
		*next--
	}
	for *next < len(runs) && runs[*next].logical+runs[*next].n <= blk {
		*next++
	}
	if *next == len(runs) || runs[*next].logical > blk {
		end := size
		if *next < len(runs) {
			end = min(end, int64(runs[*next].logical)*bs)
		}
		n := int(min(int64(len(p)), end-*off))
		clear(p[:n])
		*off += int64(n)
		return n, nil
	}
	r := runs[*next]
	within := *off - int64(r.logical)*bs
	n := int(min(int64(len(p)), int64(r.n)*bs-within))
	if r.zero {
		clear(p[:n])
	} else {
		m, err := data.ReadAt(p[:n], int64(r.phys)*bs+within)
		if m < n {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			*off += int64(m)
			return m, fmt.Errorf("inode %d: %w", ino, err)
		}
	}
	*off += int64(n)
	return n, nil
}
