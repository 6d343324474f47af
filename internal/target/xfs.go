package target

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"
	"time"

	"github.com/vouch-dev/vouch/internal/rootfs"
)

// xfsFS reads XFS (v4 and v5 superblocks, inode versions 1 to 3). vouch reads
// XFS itself, as it does ext4: github.com/masahiro331/go-xfs-filesystem, used
// before, keeps the inode (owner, times, inode number, symlink target) in
// unexported fields, reads every file through one shared seek position, does
// not read symlink targets stored in extents, and refuses v4 inodes in places.
//
// Only what a read-only reader needs is parsed, following the on-disk format
// (the XFS Algorithms & Data Structures book; fs/xfs/libxfs/xfs_format.h,
// xfs_da_format.h): the superblock, inode cores, the data fork in device,
// local, extents and B+tree form, short-form and block/leaf/node directory
// data blocks (the hash index of leaf and node directories is not needed to
// list them), and symlink targets inline or in blocks. CRCs are not verified
// and the log is not replayed. Every number read from the image is
// bounds-checked; a corrupt structure is an error for the call that met it.
// xfsmap.go maps a file's blocks; xfsdir.go reads directories.
type xfsFS struct {
	meta io.ReaderAt // superblock, inodes, B+tree and symlink blocks (read-ahead)
	data io.ReaderAt // file contents and directory blocks

	size       int64 // bytes in the file system
	blockSize  int64
	dblocks    uint64
	agBlocks   uint64
	agCount    uint64
	agBlkLog   uint
	inoPBLog   uint
	inodeSize  int64
	rootIno    uint64
	v5         bool
	ftype      bool // directory entries carry the file type
	nrext64    bool // large extent counters (di_big_nextents)
	dirBlkSize int64

	mu     sync.Mutex // guards inodeC
	inodeC map[uint64]*xfsInode
	dirs   dirCache[uint64]
}

// xfsInode is the part of an inode vouch uses.
type xfsInode struct {
	ino      uint64
	mode     uint16
	format   uint8 // di_format: 0 device, 1 local, 2 extents, 3 B+tree
	size     int64
	nextents uint64
	fork     []byte // the data fork's literal area
	meta     rootfs.Meta
	linkErr  error // why meta.Link is empty for a symlink
}

// xfsDir is a directory read once (fsdir.go).
type xfsDir = dirTable[uint64]

const (
	xfsSBMagic       = 0x58465342 // "XFSB"
	xfsInodeMagic    = 0x494e     // "IN"
	xfsFmtDev        = 0
	xfsFmtLocal      = 1
	xfsFmtExtents    = 2
	xfsFmtBtree      = 3
	xfsIncompatFtype = 0x1
	xfsIncompatNrext = 0x20
	xfsV2Ftype       = 0x200 // sb_features2 on a v4 file system
	xfsDiflag2Bigtm  = 0x8
	xfsDiflag2Nrext  = 0x10
	xfsLeafOffset    = int64(1) << 35 // XFS_DIR2_LEAF_OFFSET: data blocks lie below
	xfsMaxLink       = 1024           // XFS_SYMLINK_MAXLEN
)

func newXFSFS(r *io.SectionReader) (*xfsFS, error) {
	sb := make([]byte, 512)
	if _, err := r.ReadAt(sb, 0); err != nil {
		return nil, fmt.Errorf("xfs: cannot read superblock: %w", err)
	}
	be := binary.BigEndian
	if be.Uint32(sb) != xfsSBMagic {
		return nil, errors.New("xfs: no superblock magic XFSB (offset 0)")
	}
	x := &xfsFS{
		meta:      newReadAhead(r, r.Size()),
		data:      r,
		size:      r.Size(),
		blockSize: int64(be.Uint32(sb[4:])),
		dblocks:   be.Uint64(sb[8:]),
		rootIno:   be.Uint64(sb[56:]),
		agBlocks:  uint64(be.Uint32(sb[84:])),
		agCount:   uint64(be.Uint32(sb[88:])),
		inodeSize: int64(be.Uint16(sb[104:])),
		inoPBLog:  uint(sb[123]),
		agBlkLog:  uint(sb[124]),
		inodeC:    map[uint64]*xfsInode{},
	}
	version := be.Uint16(sb[100:]) & 0xF
	blockLog, inodeLog := uint(sb[120]), uint(sb[122])
	switch {
	case version != 4 && version != 5:
		return nil, fmt.Errorf("xfs: superblock version %d is not 4 or 5 (offset 0x64)", version)
	case blockLog < 9 || blockLog > 16 || x.blockSize != 1<<blockLog:
		return nil, fmt.Errorf("xfs: block size %d is impossible (offset 0x4)", x.blockSize)
	case inodeLog < 8 || inodeLog > 11 || x.inodeSize != 1<<inodeLog || x.inodeSize > x.blockSize:
		return nil, fmt.Errorf("xfs: inode size %d is impossible (offset 0x68)", x.inodeSize)
	case x.inoPBLog != blockLog-inodeLog:
		return nil, fmt.Errorf("xfs: %d inodes per block do not match the block and inode sizes (offset 0x7b)", 1<<x.inoPBLog)
	case x.agBlocks == 0 || x.agCount == 0 || x.agBlkLog > 31 || x.agBlocks > 1<<x.agBlkLog:
		return nil, fmt.Errorf("xfs: %d allocation groups of %d blocks (log %d) are impossible (offset 0x54)", x.agCount, x.agBlocks, x.agBlkLog)
	case x.dblocks == 0 || x.dblocks > uint64(x.size/x.blockSize) || x.dblocks > x.agCount*x.agBlocks:
		return nil, fmt.Errorf("xfs: superblock counts %d blocks of %d bytes, the partition holds only %d bytes (truncated image or corrupt superblock)", x.dblocks, x.blockSize, x.size)
	}
	x.v5 = version == 5
	if x.v5 {
		incompat := be.Uint32(sb[216:])
		x.ftype = incompat&xfsIncompatFtype != 0
		x.nrext64 = incompat&xfsIncompatNrext != 0
	} else {
		x.ftype = be.Uint32(sb[200:])&xfsV2Ftype != 0
	}
	dirBlkLog := uint(sb[192])
	if blockLog+dirBlkLog > 16 {
		return nil, fmt.Errorf("xfs: directory block size 2^%d is impossible (offset 0xc0)", blockLog+dirBlkLog)
	}
	x.dirBlkSize = x.blockSize << dirBlkLog
	root, err := x.inode(x.rootIno)
	if err != nil {
		return nil, fmt.Errorf("xfs: root directory: %w", err)
	}
	if root.mode&0xF000 != 0x4000 {
		return nil, errors.New("xfs: the root inode is not a directory")
	}
	return x, nil
}

// linear turns a file system block number (AG number in the high bits, block
// within the AG in the low agblklog bits) into a block offset from the start.
func (x *xfsFS) linear(fsb uint64) (uint64, error) {
	ag, agb := fsb>>x.agBlkLog, fsb&(1<<x.agBlkLog-1)
	if ag >= x.agCount || agb >= x.agBlocks {
		return 0, fmt.Errorf("block %d (AG %d, block %d) is beyond the file system (corrupt metadata)", fsb, ag, agb)
	}
	l := ag*x.agBlocks + agb
	if l >= x.dblocks {
		return 0, fmt.Errorf("block %d is beyond the file system (corrupt metadata)", fsb)
	}
	return l, nil
}

// readFSB reads the block at file system block number fsb into buf.
func (x *xfsFS) readFSB(buf []byte, fsb uint64) error {
	l, err := x.linear(fsb)
	if err != nil {
		return err
	}
	if int64(l) > (x.size-int64(len(buf)))/x.blockSize {
		return fmt.Errorf("block %d is beyond the file system (corrupt metadata)", fsb)
	}
	if _, err := x.meta.ReadAt(buf, int64(l)*x.blockSize); err != nil {
		return fmt.Errorf("read block %d: %w", fsb, err)
	}
	return nil
}

// inode reads inode number ino, from the cache when it is there.
func (x *xfsFS) inode(ino uint64) (*xfsInode, error) {
	x.mu.Lock()
	in := x.inodeC[ino]
	x.mu.Unlock()
	if in != nil {
		return in, nil
	}
	agIno := x.agBlkLog + x.inoPBLog
	ag, agb, idx := ino>>agIno, (ino>>x.inoPBLog)&(1<<x.agBlkLog-1), ino&(1<<x.inoPBLog-1)
	if agIno >= 64 || ag >= x.agCount || agb >= x.agBlocks {
		return nil, fmt.Errorf("inode %d does not exist (AG %d, block %d; corrupt directory entry?)", ino, ag, agb)
	}
	off := int64(ag*x.agBlocks+agb)*x.blockSize + int64(idx)*x.inodeSize
	if off < 0 || off > x.size-x.inodeSize {
		return nil, fmt.Errorf("inode %d is beyond the file system", ino)
	}
	raw := make([]byte, x.inodeSize)
	if _, err := x.meta.ReadAt(raw, off); err != nil {
		return nil, fmt.Errorf("inode %d: %w", ino, err)
	}
	in, err := x.parseInode(ino, raw)
	if err != nil {
		return nil, fmt.Errorf("inode %d: %w", ino, err)
	}
	if in.mode&0xF000 == 0xA000 {
		in.meta.Link, in.linkErr = x.linkTarget(in)
	}
	x.mu.Lock()
	if len(x.inodeC) >= ext4MaxCachedInodes {
		clear(x.inodeC)
	}
	x.inodeC[ino] = in
	x.mu.Unlock()
	return in, nil
}

// parseInode reads an on-disk inode (struct xfs_dinode).
func (x *xfsFS) parseInode(ino uint64, raw []byte) (*xfsInode, error) {
	be := binary.BigEndian
	if be.Uint16(raw) != xfsInodeMagic {
		return nil, errors.New("bad inode magic (corrupt inode table)")
	}
	version := raw[4]
	core := 100
	switch {
	case version == 3 && x.v5:
		core = 176
	case (version == 1 || version == 2) && !x.v5:
	default:
		return nil, fmt.Errorf("inode version %d on a v%d file system (corrupt inode)", version, map[bool]int{true: 5, false: 4}[x.v5])
	}
	in := &xfsInode{
		ino:      ino,
		mode:     be.Uint16(raw[2:]),
		format:   raw[5],
		size:     int64(be.Uint64(raw[56:])),
		nextents: uint64(be.Uint32(raw[76:])),
	}
	var flags2 uint64
	if version == 3 {
		flags2 = be.Uint64(raw[120:])
		if x.nrext64 && flags2&xfsDiflag2Nrext != 0 {
			in.nextents = be.Uint64(raw[24:])
		}
	}
	if in.size < 0 {
		return nil, errors.New("size is negative (corrupt inode)")
	}
	forkSize := int(x.inodeSize) - core
	if off := int(raw[82]); off != 0 {
		forkSize = off * 8
	}
	if forkSize <= 0 || core+forkSize > len(raw) {
		return nil, fmt.Errorf("data fork of %d bytes does not fit the inode (corrupt inode)", forkSize)
	}
	in.fork = raw[core : core+forkSize]
	nlink := be.Uint32(raw[16:])
	if version == 1 {
		nlink = uint32(be.Uint16(raw[6:]))
	}
	when := func(off int) time.Time {
		v := be.Uint64(raw[off:])
		if flags2&xfsDiflag2Bigtm != 0 {
			// Nanoseconds since the start of the 32-bit epoch (1901).
			return time.Unix(int64(v/1e9)-1<<31, int64(v%1e9))
		}
		nsec := int64(uint32(v))
		if nsec > 999999999 {
			nsec = 0
		}
		return time.Unix(int64(int32(v>>32)), nsec)
	}
	if nlink == 0 || ext4TypeMode(in.mode>>12) == fs.ModeIrregular {
		return nil, fmt.Errorf("inode is not in use or has no valid file type (mode %#o, link count %d; corrupt directory entry or inode)", in.mode, nlink)
	}
	in.meta = rootfs.Meta{
		Mode:       ext4FileMode(in.mode),
		UID:        be.Uint32(raw[8:]),
		GID:        be.Uint32(raw[12:]),
		Size:       in.size,
		Nlink:      nlink,
		Inode:      ino,
		AccessTime: when(32),
		ModTime:    when(40),
		ChangeTime: when(48),
	}
	return in, nil
}

// linkTarget reads a symlink's target: inline in the data fork, or in blocks
// (each with an "XSLM" header on v5 as the kernel writes them).
func (x *xfsFS) linkTarget(in *xfsInode) (string, error) {
	if in.size == 0 || in.size > xfsMaxLink {
		return "", fmt.Errorf("symlink target of %d bytes (corrupt inode)", in.size)
	}
	if in.format == xfsFmtLocal {
		if in.size > int64(len(in.fork)) {
			return "", fmt.Errorf("inline symlink of %d bytes in a %d-byte fork (corrupt inode)", in.size, len(in.fork))
		}
		return string(in.fork[:in.size]), nil
	}
	runs, err := x.runs(in)
	if err != nil {
		return "", err
	}
	be := binary.BigEndian
	var out []byte
	buf := make([]byte, x.blockSize)
	for _, r := range runs {
		for b := range r.n {
			if err := x.readFSBLinear(buf, r.phys+b); err != nil {
				return "", fmt.Errorf("symlink block: %w", err)
			}
			data := buf
			// v5 symlink blocks start with a header ("XSLM"). mkfs.xfs -p of
			// xfsprogs 6.1 (Debian 12) writes the bare target even on v5,
			// which is read as it is.
			if x.v5 && be.Uint32(buf) == 0x58534c4d {
				n := int(be.Uint32(buf[8:]))
				if 56+n > len(buf) {
					return "", errors.New("symlink block: length past the block (corrupt symlink)")
				}
				data = buf[56 : 56+n]
			}
			out = append(out, data...)
		}
	}
	if int64(len(out)) < in.size {
		return "", fmt.Errorf("symlink holds %d of its %d bytes (corrupt symlink)", len(out), in.size)
	}
	return string(out[:in.size]), nil
}

// readFSBLinear reads the block at linear block number l (a run's phys).
func (x *xfsFS) readFSBLinear(buf []byte, l uint64) error {
	if l >= x.dblocks || int64(l) > (x.size-int64(len(buf)))/x.blockSize {
		return fmt.Errorf("block %d is beyond the file system (corrupt metadata)", l)
	}
	if _, err := x.meta.ReadAt(buf, int64(l)*x.blockSize); err != nil {
		return fmt.Errorf("read block %d: %w", l, err)
	}
	return nil
}

// tree is what fsTree's path walk needs of the file system.
func (x *xfsFS) tree() fsTree[*xfsInode, uint64] {
	return fsTree[*xfsInode, uint64]{
		root:  func() (*xfsInode, error) { return x.inode(x.rootIno) },
		isDir: func(in *xfsInode) bool { return in.mode&0xF000 == 0x4000 },
		dir:   x.dir,
		inode: x.inode,
	}
}

// lookup walks name from the root without following symlinks.
func (x *xfsFS) lookup(name string) (*xfsInode, error) { return x.tree().lookup(name) }

func (x *xfsFS) info(name string, in *xfsInode) fs.FileInfo {
	m := in.meta // a copy: the cached inode is shared
	return rootfs.NewFileInfo(name, &m)
}

func (x *xfsFS) lstat(name string) (fs.FileInfo, error) {
	in, err := x.lookup(name)
	if err != nil {
		return nil, err
	}
	return x.info(baseName(name), in), nil
}

func (x *xfsFS) readDir(name string) ([]fs.DirEntry, error) {
	return x.tree().readDir(name, func(name string, ino uint64) (fs.FileInfo, error) {
		in, err := x.inode(ino)
		if err != nil {
			return nil, err
		}
		return x.info(name, in), nil
	})
}

func (x *xfsFS) readLink(name string) (string, error) {
	in, err := x.lookup(name)
	if err != nil {
		return "", err
	}
	if in.mode&0xF000 != 0xA000 {
		return "", fmt.Errorf("%s: not a symlink", name)
	}
	if in.linkErr != nil {
		return "", fmt.Errorf("%s: %w", name, in.linkErr)
	}
	return in.meta.Link, nil
}

func (x *xfsFS) open(name string) (fs.File, error) {
	in, err := x.lookup(name)
	if err != nil {
		return nil, err
	}
	if in.mode&0xF000 != 0x8000 {
		return nil, fmt.Errorf("%s: not a regular file", name)
	}
	f := &runFile{data: x.data, blockSize: x.blockSize, size: in.size, ino: in.ino, info: x.info(baseName(name), in)}
	if in.size > 0 {
		if f.runs, err = x.runs(in); err != nil {
			return nil, err
		}
	}
	return f, nil
}
