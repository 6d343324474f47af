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

// ErrTooManyLinks reports a symlink loop or an over-long chain.
var ErrTooManyLinks = errors.New("rootfs: too many levels of symbolic links")

// Resolve returns the path of name with every symlink expanded, including the
// last element when follow is true. The result is a valid fs path ("." for root).
func (f *FS) Resolve(name string, follow bool) (string, error) {
	if !fs.ValidPath(name) {
		return "", &fs.PathError{Op: "resolve", Path: name, Err: fs.ErrInvalid}
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

// ReadFile reads the whole file name.
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
	buf := make([]byte, 0, max(info.Size(), 0)+1)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := file.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil {
			if errors.Is(err, io.EOF) {
				return buf, nil
			}
			return buf, err
		}
	}
}
