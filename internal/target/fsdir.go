package target

import (
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
)

// What the ext4 and XFS readers share above their on-disk formats: a
// directory read once into a table of names, a bounded cache of those
// tables, the walk of a path through them, and directory entries whose
// inode is read only when asked for.

// inodeNum is an inode number: 32 bits on ext4, 64 on XFS.
type inodeNum interface{ ~uint32 | ~uint64 }

// dirEnt is one directory entry.
type dirEnt[I inodeNum] struct {
	ino I
	typ byte // EXT4_FT_* or XFS_DIR3_FT_* (the same numbers), 0 when unknown
}

// dirTable is a directory read once: its entries by name and in name order.
type dirTable[I inodeNum] struct {
	byName map[string]dirEnt[I]
	sorted []string
}

func newDirTable[I inodeNum]() *dirTable[I] {
	return &dirTable[I]{byName: map[string]dirEnt[I]{}}
}

// add records an entry; ".", "..", names that cannot be a path element and
// a second entry of a name (corrupt) are skipped.
func (d *dirTable[I]) add(name string, ino I, typ byte) {
	if name == "." || name == ".." || name == "" || strings.Contains(name, "/") {
		return
	}
	if _, dup := d.byName[name]; !dup {
		d.byName[name] = dirEnt[I]{ino: ino, typ: typ}
	}
}

// done sorts the names once every entry is added.
func (d *dirTable[I]) done() *dirTable[I] {
	d.sorted = make([]string, 0, len(d.byName))
	for name := range d.byName {
		d.sorted = append(d.sorted, name)
	}
	slices.Sort(d.sorted)
	return d
}

// dirCache keeps directory tables by inode, dropping them all when they
// would hold more than ext4MaxCachedNames names (memory stays bounded on
// images with huge directories).
type dirCache[I inodeNum] struct {
	mu    sync.Mutex
	dirs  map[I]*dirTable[I]
	names int
}

func (c *dirCache[I]) get(ino I) *dirTable[I] {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dirs[ino]
}

func (c *dirCache[I]) put(ino I, d *dirTable[I]) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dirs == nil || c.names+len(d.sorted) > ext4MaxCachedNames {
		c.dirs, c.names = map[I]*dirTable[I]{}, 0
	}
	c.dirs[ino] = d
	c.names += len(d.sorted)
}

// fsTree is what walking a path needs of a file system: its root, whether
// an inode is a directory, a directory's table and an inode by number.
type fsTree[N any, I inodeNum] struct {
	root  func() (N, error)
	isDir func(N) bool
	dir   func(N) (*dirTable[I], error)
	inode func(I) (N, error)
}

// lookup walks name (a valid io/fs path, "." for the root) from the root
// without following symlinks, and returns its inode.
func (t fsTree[N, I]) lookup(name string) (N, error) {
	in, err := t.root()
	if err != nil || name == "." || name == "" {
		return in, err
	}
	var zero N
	for elem := range strings.SplitSeq(name, "/") {
		if !t.isDir(in) {
			return zero, fmt.Errorf("%s: %w (a path element is not a directory)", name, fs.ErrNotExist)
		}
		d, err := t.dir(in)
		if err != nil {
			return zero, err
		}
		ent, ok := d.byName[elem]
		if !ok {
			return zero, fs.ErrNotExist
		}
		if in, err = t.inode(ent.ino); err != nil {
			return zero, err
		}
	}
	return in, nil
}

// readDir lists directory name, each entry described by info on demand.
func (t fsTree[N, I]) readDir(name string, info func(name string, ino I) (fs.FileInfo, error)) ([]fs.DirEntry, error) {
	in, err := t.lookup(name)
	if err != nil {
		return nil, err
	}
	if !t.isDir(in) {
		return nil, fmt.Errorf("%s: not a directory", name)
	}
	d, err := t.dir(in)
	if err != nil {
		return nil, err
	}
	out := make([]fs.DirEntry, 0, len(d.sorted))
	for _, n := range d.sorted {
		out = append(out, &dirEntry[I]{name: n, ent: d.byName[n], info: info})
	}
	return out, nil
}

// baseName is the last element of an io/fs path, "/" for the root.
func baseName(name string) string {
	if name == "." {
		return "/"
	}
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		return name[i+1:]
	}
	return name
}

// dirEntry is a directory entry; its inode is read only when needed.
type dirEntry[I inodeNum] struct {
	name string
	ent  dirEnt[I]
	info func(name string, ino I) (fs.FileInfo, error)
}

func (d *dirEntry[I]) Name() string { return d.name }
func (d *dirEntry[I]) IsDir() bool  { return d.Type().IsDir() }

// Type comes from the entry's file type when the file system records it,
// else from the inode.
func (d *dirEntry[I]) Type() fs.FileMode {
	if t, ok := direntType(d.ent.typ); ok {
		return t
	}
	info, err := d.Info()
	if err != nil {
		return fs.ModeIrregular
	}
	return info.Mode().Type()
}

func (d *dirEntry[I]) Info() (fs.FileInfo, error) {
	fi, err := d.info(d.name, d.ent.ino)
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: d.name, Err: err}
	}
	return fi, nil
}

func (d *dirEntry[I]) String() string { return fs.FormatDirEntry(d) }
