// Package rootfs presents a root file system as an io/fs.FS whose symlinks resolve
// the way they would if that tree were "/": absolute link targets are taken
// relative to the tree's root and ".." never climbs above it.
//
// Every target kind (a disk image's ext4 or XFS file system, a directory, the live
// host) goes through this one layer, so checks read `etc/os-release` the same way
// everywhere. os.DirFS alone is not enough for a directory target: it follows an
// absolute symlink such as etc/localtime -> /usr/share/zoneinfo/UTC into the host's
// own tree, not the target's.
package rootfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
)

// maxLinks bounds symlink expansion, as Linux's MAXSYMLINKS (40) does.
const maxLinks = 40

// Base is what a backend provides: plain lookups that do not follow a symlink in
// the last path element (Lstat, ReadLink) and an Open that is only ever given
// paths whose every element is a real directory or file.
type Base interface {
	fs.FS
	fs.ReadLinkFS
	fs.ReadDirFS
}

// FS resolves symlinks of a Base within its root.
type FS struct {
	base Base
}

// New returns an FS over base.
func New(base Base) *FS { return &FS{base: base} }

var (
	_ fs.FS         = (*FS)(nil)
	_ fs.StatFS     = (*FS)(nil)
	_ fs.ReadDirFS  = (*FS)(nil)
	_ fs.ReadFileFS = (*FS)(nil)
	_ fs.ReadLinkFS = (*FS)(nil)
)

// maxPath is Linux's PATH_MAX: no real path is longer.
const maxPath = 4096

// ErrNameTooLong reports a path longer than PATH_MAX.
var ErrNameTooLong = errors.New("rootfs: file name too long")

// ErrTooManyLinks reports a symlink loop or an over-long chain.
var ErrTooManyLinks = errors.New("rootfs: too many levels of symbolic links")

// Resolve returns the path of name with every symlink expanded, including the
// last element when follow is true. The result is a valid fs path ("." for root).
func (f *FS) Resolve(name string, follow bool) (string, error) {
	if !fs.ValidPath(name) {
		return "", &fs.PathError{Op: "resolve", Path: name, Err: fs.ErrInvalid}
	}
	if len(name) > maxPath {
		return "", &fs.PathError{Op: "resolve", Path: name[:64] + "...", Err: ErrNameTooLong}
	}
	links := 0
	var done []string // resolved elements so far
	todo := splitPath(name)
	for len(todo) > 0 {
		elem := todo[0]
		todo = todo[1:]
		switch elem {
		case ".":
			continue
		case "..":
			if len(done) > 0 {
				done = done[:len(done)-1]
			}
			continue
		}
		cur := path.Join(append(done, elem)...)
		last := len(todo) == 0
		if last && !follow {
			done = append(done, elem)
			break
		}
		info, err := f.base.Lstat(cur)
		if err != nil {
			return "", &fs.PathError{Op: "resolve", Path: name, Err: unwrapNotExist(err)}
		}
		if info.Mode()&fs.ModeSymlink == 0 {
			done = append(done, elem)
			continue
		}
		links++
		if links > maxLinks {
			return "", &fs.PathError{Op: "resolve", Path: name, Err: ErrTooManyLinks}
		}
		target, err := f.base.ReadLink(cur)
		if err != nil {
			return "", &fs.PathError{Op: "readlink", Path: cur, Err: err}
		}
		if strings.HasPrefix(target, "/") {
			done = done[:0]
		}
		todo = append(splitPath(target), todo...)
	}
	if len(done) == 0 {
		return ".", nil
	}
	return path.Join(done...), nil
}

func splitPath(p string) []string {
	var out []string
	for _, e := range strings.Split(p, "/") {
		if e != "" {
			out = append(out, e)
		}
	}
	return out
}

// unwrapNotExist keeps fs.ErrNotExist recognisable whatever the backend wrapped
// around it, so callers can treat a missing file as "not applicable".
func unwrapNotExist(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fs.ErrNotExist
	}
	return err
}

// Open opens name, following symlinks.
func (f *FS) Open(name string) (fs.File, error) {
	p, err := f.Resolve(name, true)
	if err != nil {
		return nil, err
	}
	file, err := f.base.Open(p)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: unwrapNotExist(err)}
	}
	return file, nil
}

// Stat follows symlinks.
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	p, err := f.Resolve(name, true)
	if err != nil {
		return nil, err
	}
	info, err := f.base.Lstat(p)
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: unwrapNotExist(err)}
	}
	return info, nil
}

// Lstat does not follow a symlink in the last element.
func (f *FS) Lstat(name string) (fs.FileInfo, error) {
	p, err := f.Resolve(name, false)
	if err != nil {
		return nil, err
	}
	info, err := f.base.Lstat(p)
	if err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: name, Err: unwrapNotExist(err)}
	}
	return info, nil
}

// ReadLink returns the target of the symlink name as stored.
func (f *FS) ReadLink(name string) (string, error) {
	p, err := f.Resolve(name, false)
	if err != nil {
		return "", err
	}
	return f.base.ReadLink(p)
}

// ReadDir follows symlinks to the directory.
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	p, err := f.Resolve(name, true)
	if err != nil {
		return nil, err
	}
	entries, err := f.base.ReadDir(p)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: unwrapNotExist(err)}
	}
	return entries, nil
}

// MaxReadFile bounds ReadFile: vouch reads configuration files, boot loaders and
// kernels, never anything near this size, and a corrupt inode can claim any size.
const MaxReadFile = 1 << 30

// ErrNoProgress is returned when a file's reader keeps returning no data and no
// error, as a reader confused by corrupt metadata can.
var ErrNoProgress = errors.New("rootfs: file reader makes no progress")

// ReadFile reads the whole file name: exactly as many bytes as its size says.
func (f *FS) ReadFile(name string) ([]byte, error) {
	file, err := f.Open(name)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	info, err := file.Stat()
	if err != nil {
		return nil, err
	}
	if info.IsDir() {
		return nil, &fs.PathError{Op: "read", Path: name, Err: errors.New("is a directory")}
	}
	return readAll(file, name, info.Size())
}

func readAll(r io.Reader, name string, size int64) ([]byte, error) {
	if size < 0 || size > MaxReadFile {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fmt.Errorf("file size %d is beyond what vouch reads (%d)", size, MaxReadFile)}
	}
	buf := make([]byte, size)
	got, stalls := 0, 0
	for got < len(buf) {
		n, err := r.Read(buf[got:])
		got += n
		if err == io.EOF {
			return buf[:got], nil
		}
		if err != nil {
			return buf[:got], err
		}
		if n == 0 {
			if stalls++; stalls > 100 {
				return buf[:got], &fs.PathError{Op: "read", Path: name, Err: ErrNoProgress}
			}
			continue
		}
		stalls = 0
	}
	return buf, nil
}
