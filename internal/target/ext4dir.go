package target

import (
	"encoding/binary"
	"fmt"
	"io/fs"
)

// ext4 directories (see ext4.go): linear directory blocks, or entries inline
// in the inode, read once per directory and kept by inode; and the walk of a
// path from the root through them.

// ext4Dir is a directory read once (fsdir.go).
type ext4Dir = dirTable[uint32]

// dir returns the listing of directory inode in, reading it on first use.
func (e *ext4FS) dir(in *ext4Inode) (*ext4Dir, error) {
	if d := e.dirs.get(in.ino); d != nil {
		return d, nil
	}
	d := newDirTable[uint32]()
	if in.flags&ext4InlineDataFl != 0 {
		// i_block: the parent's inode number, then entries; system.data
		// holds more entries (fs/ext4/inline.c).
		if err := e.parseDirBlock(d, in.block[4:], in.ino); err != nil {
			return nil, err
		}
		if len(in.inline) > 0 {
			if err := e.parseDirBlock(d, in.inline, in.ino); err != nil {
				return nil, err
			}
		}
	} else {
		if in.size > min(e.size, ext4MaxDirSize) {
			return nil, fmt.Errorf("directory inode %d claims %d bytes (corrupt inode?)", in.ino, in.size)
		}
		runs, err := e.runs(in)
		if err != nil {
			return nil, fmt.Errorf("directory inode %d: %w", in.ino, err)
		}
		for _, r := range runs {
			if r.zero {
				continue // unwritten blocks hold no entries
			}
			buf := make([]byte, int64(r.n)*e.blockSize)
			if _, err := e.data.ReadAt(buf, int64(r.phys)*e.blockSize); err != nil {
				return nil, fmt.Errorf("directory inode %d: %w", in.ino, err)
			}
			for b := int64(0); b < int64(len(buf)); b += e.blockSize {
				if err := e.parseDirBlock(d, buf[b:b+e.blockSize], in.ino); err != nil {
					return nil, err
				}
			}
		}
	}
	e.dirs.put(in.ino, d.done())
	return d, nil
}

// parseDirBlock adds the entries of one linear directory block
// (struct ext4_dir_entry_2). Unused entries (inode 0: deleted entries, the
// checksum tail, htree index blocks) are skipped, and so are "." and "..".
func (e *ext4FS) parseDirBlock(d *ext4Dir, b []byte, dirIno uint32) error {
	le := binary.LittleEndian
	for p := 0; p+8 <= len(b); {
		ino := le.Uint32(b[p:])
		recLen := int(le.Uint16(b[p+4:]))
		if e.blockSize == 65536 && (recLen == 65535 || recLen == 0) {
			recLen = 65536 // ext4_rec_len_from_disk
		}
		nameLen, typ := int(b[p+6]), b[p+7]
		if !e.fileTypeInDir {
			nameLen, typ = int(le.Uint16(b[p+6:])), 0
		}
		if recLen < 8 || recLen%4 != 0 || p+recLen > len(b) || (ino != 0 && 8+nameLen > recLen) {
			return fmt.Errorf("directory inode %d: corrupt entry at byte %d (record length %d, name length %d)", dirIno, p, recLen, nameLen)
		}
		if ino != 0 && nameLen > 0 {
			d.add(string(b[p+8:p+8+nameLen]), ino, typ)
		}
		p += recLen
	}
	return nil
}

// tree is what fsTree's path walk needs of the file system.
func (e *ext4FS) tree() fsTree[*ext4Inode, uint32] {
	return fsTree[*ext4Inode, uint32]{
		root:  func() (*ext4Inode, error) { return e.inode(ext4RootIno) },
		isDir: func(in *ext4Inode) bool { return in.mode&0xF000 == 0x4000 },
		dir:   e.dir,
		inode: e.inode,
	}
}

// lookup walks name (a valid io/fs path, "." for the root) from the root
// without following symlinks, and returns its inode.
func (e *ext4FS) lookup(name string) (*ext4Inode, error) { return e.tree().lookup(name) }

func (e *ext4FS) lstat(name string) (fs.FileInfo, error) {
	in, err := e.lookup(name)
	if err != nil {
		return nil, err
	}
	return &ext4Info{name: baseName(name), in: in}, nil
}

func (e *ext4FS) readDir(name string) ([]fs.DirEntry, error) {
	return e.tree().readDir(name, func(name string, ino uint32) (fs.FileInfo, error) {
		in, err := e.inode(ino)
		if err != nil {
			return nil, err
		}
		return &ext4Info{name: name, in: in}, nil
	})
}

func (e *ext4FS) readLink(name string) (string, error) {
	in, err := e.lookup(name)
	if err != nil {
		return "", err
	}
	if in.mode&0xF000 != 0xA000 {
		return "", fmt.Errorf("%s: not a symlink", name)
	}
	t, err := e.linkTarget(in)
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return t, nil
}
