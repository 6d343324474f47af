package target

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"reflect"
	"strings"
	"sync"

	xfslog "github.com/masahiro331/go-xfs-filesystem/log"
	"github.com/masahiro331/go-xfs-filesystem/xfs"
	"go.uber.org/zap"
)

// linuxFS adapts a Linux file system reader to rootfs.Base: plain lookups only,
// symlinks reported, never followed; the rootfs package does the resolution. It
// adds what every reader needs against a corrupt image: a directory cycle is an
// error, a file larger than its file system is not opened, and a panic inside a
// reader on corrupt metadata is an error for that call.
//
// ext4 is read by vouch's own reader (ext4.go), which is safe for concurrent
// use. XFS is read by github.com/masahiro331/go-xfs-filesystem (the reader Trivy
// uses for VM scanning), which takes paths with a leading "/" or none, does not
// open directories, and seeks a shared reader: every call to it holds serial.
type linuxFS struct {
	kind   string
	size   int64       // bytes in the file system
	serial *sync.Mutex // non-nil when the reader is not safe for concurrent use

	dirsMu sync.Mutex
	dirs   map[uint64]string // directory inode -> first path it was listed at
	// infos caches what Lstat and ReadDir learnt, for the XFS library only:
	// it resolves each path from the root, and rootfs looks up every prefix
	// of every path it resolves. vouch's ext4 reader has its own caches.
	infos map[string]fs.FileInfo

	readDir  func(string) ([]fs.DirEntry, error)
	lstat    func(string) (fs.FileInfo, error)
	open     func(string) (fs.File, error)
	readLink func(string) (string, error)
}

// call runs f under the reader's lock (if it needs one), turning a panic into an error.
func (l *linuxFS) call(f func() error) error {
	if l.serial != nil {
		l.serial.Lock()
		defer l.serial.Unlock()
	}
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

// quietLibraries turns off the XFS library's debug logging: it logs through a
// package-level zap logger to stderr at debug level by default, which would
// interleave with vouch's output on a corrupt image.
var quietLibraries = sync.OnceFunc(func() {
	xfslog.SetLogger(zap.NewNop().Sugar())
})

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
	quietLibraries()
	var x *xfs.FileSystem
	err := guard("xfs", func() (err error) {
		x, err = xfs.NewFS(*r, newCache())
		return err
	})
	if err != nil {
		return nil, err
	}
	l := &linuxFS{
		kind:    "xfs",
		size:    r.Size(),
		serial:  new(sync.Mutex),
		readDir: func(p string) ([]fs.DirEntry, error) { return x.ReadDir(slash(p)) },
		lstat: func(p string) (fs.FileInfo, error) {
			if p == "." {
				return x.ReadDirInfo("/")
			}
			return x.ReadDirInfo(p)
		},
		open: x.Open,
	}
	l.readLink = func(p string) (string, error) {
		info, err := x.ReadDirInfo(p)
		if err != nil {
			return "", err
		}
		return xfsLinkTarget(info)
	}
	return l, nil
}

// xfsLinkTarget reads the target of an XFS symlink. The library parses inline
// ("local" format) symlink targets but keeps them in an unexported field and
// offers no ReadLink; reflection reads that field without modifying anything.
// Targets stored in extents (longer than the inode's literal area, over ~300
// bytes) are not parsed by the library and give an error here.
func xfsLinkTarget(info fs.FileInfo) (s string, err error) {
	defer func() {
		if recover() != nil {
			err = errors.New("xfs: cannot read symlink target")
		}
	}()
	if info.Mode()&fs.ModeSymlink == 0 {
		return "", fmt.Errorf("xfs: %s is not a symlink", info.Name())
	}
	v := reflect.ValueOf(info).FieldByName("inode")
	if v.IsNil() {
		return "", errors.New("xfs: symlink without inode")
	}
	sl := v.Elem().FieldByName("symlinkString")
	if sl.IsNil() {
		return "", errors.New("xfs: symlink target stored in extents is not supported")
	}
	return sl.Elem().FieldByName("Name").String(), nil
}

func slash(p string) string {
	if p == "." || p == "" {
		return "/"
	}
	return p
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
	if ino, ok := inodeNumber(info); ok {
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
	if err == nil && l.serial != nil {
		for _, e := range out {
			if info, ierr := e.Info(); ierr == nil {
				l.remember(path.Join(name, e.Name()), info)
			}
		}
	}
	return out, err
}

// maxCachedInfos bounds linuxFS.infos; it is emptied when full.
const maxCachedInfos = 1 << 16

func (l *linuxFS) remember(name string, info fs.FileInfo) {
	l.dirsMu.Lock()
	defer l.dirsMu.Unlock()
	if l.infos == nil || len(l.infos) >= maxCachedInfos {
		l.infos = map[string]fs.FileInfo{}
	}
	l.infos[name] = info
}

// inodeNumber returns the inode number of a FileInfo: vouch's ext4 reader has
// an Ino method; the XFS library keeps it in an unexported field
// (FileInfo.inode.inodeCore.Ino), which reflection reads without modifying
// anything. false if the shape changed.
func inodeNumber(info fs.FileInfo) (n uint64, ok bool) {
	if i, isExt4 := info.(interface{ Ino() uint64 }); isExt4 {
		return i.Ino(), true
	}
	defer func() {
		if recover() != nil {
			n, ok = 0, false
		}
	}()
	v := reflect.ValueOf(info)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return 0, false
	}
	if f := v.FieldByName("ino"); f.IsValid() && f.CanInt() {
		return uint64(f.Int()), true
	}
	if in := v.FieldByName("inode"); in.IsValid() && in.Kind() == reflect.Pointer && !in.IsNil() {
		if core := in.Elem().FieldByName("inodeCore"); core.IsValid() {
			if ino := core.FieldByName("Ino"); ino.IsValid() && ino.CanUint() {
				return ino.Uint(), true
			}
		}
	}
	return 0, false
}

func (l *linuxFS) Lstat(name string) (info fs.FileInfo, err error) {
	if l.serial != nil {
		l.dirsMu.Lock()
		info = l.infos[name]
		l.dirsMu.Unlock()
		if info != nil {
			return info, nil
		}
	}
	err = l.call(func() error {
		info, err = l.lstat(name)
		return err
	})
	if err == nil && l.serial != nil {
		l.remember(name, info)
	}
	return info, err
}

func (l *linuxFS) ReadLink(name string) (target string, err error) {
	err = l.call(func() error {
		target, err = l.readLink(name)
		return err
	})
	return target, err
}

// Open opens a regular file or a directory. Reads of a file go through the
// reader's lock when it has one, since the XFS library's files share its reader.
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

// cache is a bounded map cache for the libraries' parsed inodes and directories.
type cache struct {
	mu sync.Mutex
	m  map[string]any
}

const cacheLimit = 1 << 14

func newCache() *cache { return &cache{m: map[string]any{}} }

func (c *cache) Add(k string, v any) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= cacheLimit {
		clear(c.m)
	}
	c.m[k] = v
	return true
}

func (c *cache) Get(k string) (any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[k]
	return v, ok
}
