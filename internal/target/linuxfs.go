package target

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"sync"

	"github.com/vouch-dev/vouch/internal/rootfs"
)

// linuxFS adapts a Linux file system reader to rootfs.Base: plain lookups only,
// symlinks reported, never followed; the rootfs package does the resolution. It
// adds what every reader needs against a corrupt image: a directory cycle is an
// error, a file larger than its file system is not opened, and a panic inside a
// reader on corrupt metadata is an error for that call.
//
// ext2/3/4 and XFS are read by vouch's own readers (ext4.go, xfs.go), which are
// safe for concurrent use and describe every file with a *rootfs.Meta.
type linuxFS struct {
	kind string
	size int64 // bytes in the file system

	dirsMu sync.Mutex
	dirs   map[uint64]string // directory inode -> first path it was listed at

	readDir  func(string) ([]fs.DirEntry, error)
	lstat    func(string) (fs.FileInfo, error)
	open     func(string) (fs.File, error)
	readLink func(string) (string, error)
}

// call runs f, turning a panic into an error.
func (l *linuxFS) call(f func() error) error {
	return guard(l.kind, f)
}

// checkExtSuperblock rejects superblock values the library would accept and
// then misread (it trusts them): block size, group sizes, inode size.
func checkExtSuperblock(r io.ReaderAt) error {
	sb := make([]byte, 1024)
	if _, err := r.ReadAt(sb, 1024); err != nil {
		return fmt.Errorf("ext4: cannot read superblock: %w", err)
	}
	le := binary.LittleEndian
	logBlock := le.Uint32(sb[24:])
	inodes, blocks := le.Uint32(sb[0:]), le.Uint32(sb[4:])
	blocksPerGroup, inodesPerGroup := le.Uint32(sb[32:]), le.Uint32(sb[40:])
	inodeSize := le.Uint16(sb[88:])
	switch {
	case logBlock > 6:
		return fmt.Errorf("ext4: superblock block size 2^(10+%d) is impossible (offset 0x418)", logBlock)
	case inodes == 0 || blocks == 0:
		return fmt.Errorf("ext4: superblock counts %d inodes and %d blocks (offset 0x400)", inodes, blocks)
	case blocksPerGroup == 0 || inodesPerGroup == 0 || inodesPerGroup > inodes:
		return fmt.Errorf("ext4: superblock group sizes are impossible: %d blocks and %d inodes per group (offset 0x420)", blocksPerGroup, inodesPerGroup)
	case le.Uint32(sb[76:]) >= 1 && (inodeSize < 128 || inodeSize&(inodeSize-1) != 0 || uint32(inodeSize) > 1024<<logBlock):
		return fmt.Errorf("ext4: superblock inode size %d is impossible (offset 0x458)", inodeSize)
	}
	return nil
}

func newExt4(r *io.SectionReader) (*linuxFS, error) {
	var e *ext4FS
	err := guard("ext4", func() (err error) {
		e, err = newExt4FS(r)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &linuxFS{
		kind:     "ext4",
		size:     r.Size(),
		readDir:  e.readDir,
		lstat:    e.lstat,
		open:     e.open,
		readLink: e.readLink,
	}, nil
}

func newXFS(r *io.SectionReader) (*linuxFS, error) {
	var x *xfsFS
	err := guard("xfs", func() (err error) {
		x, err = newXFSFS(r)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &linuxFS{
		kind:     "xfs",
		size:     r.Size(),
		readDir:  x.readDir,
		lstat:    x.lstat,
		open:     x.open,
		readLink: x.readLink,
	}, nil
}

func guard(op string, f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: corrupt file system metadata (%v)", op, r)
		}
	}()
	return f()
}

// ReadDir lists a directory. A corrupt file system can hold a directory entry
// that points back at an ancestor; walking it would never end, so a directory
// reached again below the path it was first listed at is an error.
func (l *linuxFS) ReadDir(name string) (out []fs.DirEntry, err error) {
	info, err := l.Lstat(name)
	if err != nil {
		return nil, err
	}
	if m, merr := rootfs.MetaOf(info); merr == nil {
		ino := m.Inode
		l.dirsMu.Lock()
		if l.dirs == nil {
			l.dirs = map[uint64]string{}
		}
		first, seen := l.dirs[ino]
		if !seen {
			l.dirs[ino] = name
		}
		l.dirsMu.Unlock()
		if seen && first != name && (first == "." || strings.HasPrefix(name, first+"/")) {
			return nil, &fs.PathError{Op: "readdir", Path: name, Err: fmt.Errorf("%s: directory cycle: this is %q again (corrupt file system)", l.kind, first)}
		}
	}
	err = l.call(func() error {
		out, err = l.readDir(name)
		return err
	})
	return out, err
}

func (l *linuxFS) Lstat(name string) (info fs.FileInfo, err error) {
	err = l.call(func() error {
		info, err = l.lstat(name)
		return err
	})
	return info, err
}

func (l *linuxFS) ReadLink(name string) (target string, err error) {
	err = l.call(func() error {
		target, err = l.readLink(name)
		return err
	})
	return target, err
}

// Open opens a regular file or a directory.
func (l *linuxFS) Open(name string) (fs.File, error) {
	info, err := l.Lstat(name)
	if err != nil {
		return nil, err
	}
	if info.IsDir() {
		return &dirFile{fsys: l, name: name, info: info}, nil
	}
	if !info.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("%s: not a regular file", l.kind)}
	}
	if info.Size() > l.size {
		// Only a sparse file can be larger than its file system; none that vouch
		// reads is, and a corrupt inode claiming gigabytes would be read forever.
		return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("%s: file claims %d bytes, more than its %d-byte file system (corrupt inode?)", l.kind, info.Size(), l.size)}
	}
	var f fs.File
	err = l.call(func() (err error) {
		f, err = l.open(name)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &lockedFile{f: f, l: l, info: info}, nil
}

type lockedFile struct {
	f    fs.File
	l    *linuxFS
	info fs.FileInfo
}

func (f *lockedFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *lockedFile) Close() error               { return f.f.Close() }
func (f *lockedFile) Read(p []byte) (n int, err error) {
	err = f.l.call(func() error {
		n, err = f.f.Read(p)
		return err
	})
	return n, err
}

// dirFile is an opened directory.
type dirFile struct {
	fsys    *linuxFS
	name    string
	info    fs.FileInfo
	entries []fs.DirEntry
	read    bool
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return renamed{d.info, path.Base(d.name)}, nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.name, Err: errors.New("is a directory")}
}
func (d *dirFile) Close() error { return nil }
func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	if !d.read {
		e, err := d.fsys.ReadDir(d.name)
		if err != nil {
			return nil, err
		}
		d.entries, d.read = e, true
	}
	if n <= 0 {
		out := d.entries
		d.entries = nil
		return out, nil
	}
	if len(d.entries) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(d.entries))
	out := d.entries[:n]
	d.entries = d.entries[n:]
	return out, nil
}

// renamed gives the root directory the name "." as io/fs expects.
type renamed struct {
	fs.FileInfo
	name string
}

func (r renamed) Name() string {
	if r.name == "/" || r.name == "" {
		return "."
	}
	return strings.TrimSuffix(r.name, "/")
}
