package rootfs

import (
	"io/fs"
	"os"
	"path/filepath"
)

// Dir returns the Base of a directory on the host holding a root file system
// (or "/" for the live host). Its FileInfos carry a *Meta read from stat(2),
// with a symlink's target.
func Dir(dir string) Base {
	return dirBase{dir: dir, Base: os.DirFS(dir).(Base)}
}

type dirBase struct {
	dir string
	Base
}

func (d dirBase) Lstat(name string) (fs.FileInfo, error) {
	info, err := d.Base.Lstat(name)
	if err != nil {
		return nil, err
	}
	return d.withMeta(name, info)
}

func (d dirBase) withMeta(name string, info fs.FileInfo) (fs.FileInfo, error) {
	m, err := MetaOf(info)
	if err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: name, Err: err}
	}
	if info.Mode()&fs.ModeSymlink != 0 {
		m.Link, _ = os.Readlink(filepath.Join(d.dir, filepath.FromSlash(name)))
	}
	return NewFileInfo(info.Name(), m), nil
}

func (d dirBase) ReadDir(name string) ([]fs.DirEntry, error) {
	ents, err := d.Base.ReadDir(name)
	out := make([]fs.DirEntry, len(ents))
	for i, e := range ents {
		out[i] = dirEntry{DirEntry: e, d: d, path: joinPath(name, e.Name())}
	}
	return out, err
}

func joinPath(dir, name string) string {
	if dir == "." {
		return name
	}
	return dir + "/" + name
}

type dirEntry struct {
	fs.DirEntry
	d    dirBase
	path string
}

func (e dirEntry) Info() (fs.FileInfo, error) {
	info, err := e.DirEntry.Info()
	if err != nil {
		return nil, err
	}
	return e.d.withMeta(e.path, info)
}

func (e dirEntry) String() string { return fs.FormatDirEntry(e) }
