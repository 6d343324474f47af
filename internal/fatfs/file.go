package fatfs

import (
	"errors"
	"io"
	"io/fs"
	"slices"
	"strings"
)

var (
	_ fs.FS          = (*FS)(nil)
	_ fs.ReadDirFS   = (*FS)(nil)
	_ fs.StatFS      = (*FS)(nil)
	_ fs.ReadFileFS  = (*FS)(nil)
	_ fs.ReadDirFile = (*file)(nil)
	_ io.ReaderAt    = (*file)(nil)
	_ io.Seeker      = (*file)(nil)
)

var (
	errIsDir  = errors.New("fatfs: is a directory")
	errNotDir = errors.New("fatfs: not a directory")
)

// lookup resolves a path, comparing each element case-insensitively. A
// subdirectory entry must point at a data cluster that is none of its ancestors,
// so that a crafted directory cannot make a tree walk loop forever.
func (f *FS) lookup(op, name string) (*entry, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		root := rootEntry
		return &root, nil
	}
	dir := dirRef{root: true}
	ancestors := []uint32{f.rootCluster}
	var cur *entry
	for elem := range strings.SplitSeq(name, "/") {
		if cur != nil {
			if !cur.isDir() {
				return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
			}
			dir = dirRef{cluster: cur.cluster}
		}
		list, err := f.readDir(dir)
		if err != nil {
			return nil, &fs.PathError{Op: op, Path: name, Err: err}
		}
		// An exact match wins over a case-insensitive one, should a damaged
		// directory hold both.
		i := slices.IndexFunc(list.entries, func(e *entry) bool { return e.name == elem })
		if i < 0 {
			i = slices.IndexFunc(list.entries, func(e *entry) bool { return e.matches(elem) })
		}
		if i < 0 {
			return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		cur = list.entries[i]
		if cur.isDir() {
			if !f.validCluster(cur.cluster) {
				return nil, &fs.PathError{Op: op, Path: name, Err: formatErr(cur.off, "directory %q starts at cluster %d, outside 2..%d", cur.name, cur.cluster, uint64(f.clusterCount)+1)}
			}
			if slices.Contains(ancestors, cur.cluster) {
				return nil, &fs.PathError{Op: op, Path: name, Err: formatErr(cur.off, "directory %q at cluster %d is its own ancestor", cur.name, cur.cluster)}
			}
			ancestors = append(ancestors, cur.cluster)
		}
	}
	return cur, nil
}

func dirRefOf(e *entry) dirRef {
	if e.root {
		return dirRef{root: true}
	}
	return dirRef{cluster: e.cluster}
}

// Open opens the named file or directory. Path elements match case-insensitively.
func (f *FS) Open(name string) (fs.File, error) {
	e, err := f.lookup("open", name)
	if err != nil {
		return nil, err
	}
	fl := &file{fs: f, path: name, e: e}
	if !e.isDir() {
		fl.ch = f.newChain(e.cluster)
	}
	return fl, nil
}

// Stat returns the FileInfo of the named file or directory.
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	e, err := f.lookup("stat", name)
	if err != nil {
		return nil, err
	}
	return e, nil
}

// ReadDir returns the entries of the named directory sorted by name, without "."
// and "..", deleted entries and the volume label.
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	e, err := f.lookup("readdir", name)
	if err != nil {
		return nil, err
	}
	if !e.isDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errNotDir}
	}
	list, err := f.readDir(dirRefOf(e))
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	out := make([]fs.DirEntry, len(list.entries))
	for i, de := range list.entries {
		out[i] = de
	}
	slices.SortFunc(out, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

// ReadFile returns the content of the named file. The cluster chain is checked to
// cover the file size before the buffer is allocated.
func (f *FS) ReadFile(name string) ([]byte, error) {
	e, err := f.lookup("open", name)
	if err != nil {
		return nil, err
	}
	if e.isDir() {
		return nil, &fs.PathError{Op: "read", Path: name, Err: errIsDir}
	}
	if e.size == 0 {
		return []byte{}, nil
	}
	ch := f.newChain(e.cluster)
	if err := f.checkSize(e, ch); err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	buf := make([]byte, e.size)
	if err := ch.readAt(buf, 0); err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	return buf, nil
}

// checkSize verifies that the cluster chain of e is long enough for its size.
func (f *FS) checkSize(e *entry, ch *chain) error {
	if int64(e.size) > f.size {
		return formatErr(e.off+28, "file size %d exceeds the %d-byte partition", e.size, f.size)
	}
	need := (int64(e.size) + f.clusterSize - 1) / f.clusterSize
	if need > int64(f.clusterCount) {
		return formatErr(e.off+28, "file size %d exceeds the data area", e.size)
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if err := ch.extend(int(need)); err != nil {
		return err
	}
	if int64(len(ch.clusters)) < need {
		return formatErr(e.off+28, "file size %d needs %d clusters but its chain from %d has %d", e.size, need, e.cluster, len(ch.clusters))
	}
	return nil
}

// file is an open file or directory. Files also implement io.ReaderAt (safe for
// parallel calls) and io.Seeker.
type file struct {
	fs     *FS
	path   string
	e      *entry
	ch     *chain // regular files only
	off    int64
	closed bool

	dirRead bool     // directories: entries have been loaded
	dirList []*entry // directories: entries not yet returned by ReadDir
}

func (fl *file) Stat() (fs.FileInfo, error) {
	if fl.closed {
		return nil, &fs.PathError{Op: "stat", Path: fl.path, Err: fs.ErrClosed}
	}
	return fl.e, nil
}

func (fl *file) Close() error {
	if fl.closed {
		return &fs.PathError{Op: "close", Path: fl.path, Err: fs.ErrClosed}
	}
	fl.closed = true
	return nil
}

func (fl *file) Read(p []byte) (int, error) {
	n, err := fl.ReadAt(p, fl.off)
	fl.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// ReadAt reads len(p) bytes at offset off of the file.
func (fl *file) ReadAt(p []byte, off int64) (int, error) {
	switch {
	case fl.closed:
		return 0, &fs.PathError{Op: "read", Path: fl.path, Err: fs.ErrClosed}
	case fl.e.isDir():
		return 0, &fs.PathError{Op: "read", Path: fl.path, Err: errIsDir}
	case off < 0:
		return 0, &fs.PathError{Op: "read", Path: fl.path, Err: fs.ErrInvalid}
	}
	size := int64(fl.e.size)
	if off >= size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), size-off))
	if err := fl.ch.readAt(p[:n], off); err != nil {
		return 0, &fs.PathError{Op: "read", Path: fl.path, Err: err}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (fl *file) Seek(offset int64, whence int) (int64, error) {
	if fl.closed {
		return 0, &fs.PathError{Op: "seek", Path: fl.path, Err: fs.ErrClosed}
	}
	if fl.e.isDir() {
		return 0, &fs.PathError{Op: "seek", Path: fl.path, Err: errIsDir}
	}
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += fl.off
	case io.SeekEnd:
		offset += int64(fl.e.size)
	default:
		return 0, &fs.PathError{Op: "seek", Path: fl.path, Err: fs.ErrInvalid}
	}
	if offset < 0 {
		return 0, &fs.PathError{Op: "seek", Path: fl.path, Err: fs.ErrInvalid}
	}
	fl.off = offset
	return offset, nil
}

// ReadDir returns the next n entries in directory order (all remaining ones when
// n <= 0), as fs.ReadDirFile specifies.
func (fl *file) ReadDir(n int) ([]fs.DirEntry, error) {
	if fl.closed {
		return nil, &fs.PathError{Op: "readdir", Path: fl.path, Err: fs.ErrClosed}
	}
	if !fl.e.isDir() {
		return nil, &fs.PathError{Op: "readdir", Path: fl.path, Err: errNotDir}
	}
	if !fl.dirRead {
		list, err := fl.fs.readDir(dirRefOf(fl.e))
		if err != nil {
			return nil, &fs.PathError{Op: "readdir", Path: fl.path, Err: err}
		}
		fl.dirList, fl.dirRead = list.entries, true
	}
	k := len(fl.dirList)
	if n > 0 {
		if k == 0 {
			return nil, io.EOF
		}
		k = min(k, n)
	}
	out := make([]fs.DirEntry, k)
	for i, de := range fl.dirList[:k] {
		out[i] = de
	}
	fl.dirList = fl.dirList[k:]
	return out, nil
}
