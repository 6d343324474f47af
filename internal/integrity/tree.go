package integrity

import (
	"errors"
	"io/fs"
	"path"
	"strings"
	"sync"

	"github.com/vouch-dev/vouch/internal/rootfs"
)

// tree caches directory listings of the root and resolves directory symlinks
// one element at a time from them. On a disk image every path lookup re-reads
// each directory on the way from the root; a listing per directory, made once,
// replaces a lookup per file.
type tree struct {
	root *rootfs.FS
	mu   sync.Mutex
	dirs map[string]*listing // by resolved path
	res  map[string]string   // unresolved dir -> resolved dir
}

type listing struct {
	once    sync.Once
	entries map[string]fs.DirEntry
	err     error
}

func newTree(root *rootfs.FS) *tree {
	return &tree{root: root, dirs: map[string]*listing{}, res: map[string]string{".": "."}}
}

// list returns the entries of the resolved directory dir; nil without error
// when it does not exist.
func (t *tree) list(dir string) (map[string]fs.DirEntry, error) {
	t.mu.Lock()
	l := t.dirs[dir]
	if l == nil {
		l = &listing{}
		t.dirs[dir] = l
	}
	t.mu.Unlock()
	l.once.Do(func() {
		entries, err := t.root.ReadDir(dir)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || strings.Contains(err.Error(), "not a directory") {
				return
			}
			l.err = err
			return
		}
		l.entries = make(map[string]fs.DirEntry, len(entries))
		for _, e := range entries {
			l.entries[e.Name()] = e
		}
	})
	return l.entries, l.err
}

// resolveDir resolves every symlink of the directory path dir (relative, clean).
func (t *tree) resolveDir(dir string) string {
	if dir == "" || dir == "." {
		return "."
	}
	t.mu.Lock()
	r, ok := t.res[dir]
	t.mu.Unlock()
	if ok {
		return r
	}
	parent := t.resolveDir(path.Dir(dir))
	base := path.Base(dir)
	r = path.Join(parent, base)
	if entries, _ := t.list(parent); entries != nil {
		if e := entries[base]; e != nil && e.Type()&fs.ModeSymlink != 0 {
			if rr, err := t.root.Resolve(r, true); err == nil {
				r = rr
			}
		}
	}
	t.mu.Lock()
	t.res[dir] = r
	t.mu.Unlock()
	return r
}

// resolveParent resolves the directories of rel (merged-/usr: bin/x is
// usr/bin/x) but not its last element, so a file replaced by a symlink is seen.
func (t *tree) resolveParent(rel string) string {
	dir, base := path.Split(rel)
	r := t.resolveDir(strings.TrimSuffix(dir, "/"))
	if r == "." {
		return base
	}
	return r + "/" + base
}

// entry returns the directory entry of the resolved path p, nil when absent.
func (t *tree) entry(p string) (fs.DirEntry, error) {
	entries, err := t.list(path.Dir(p))
	if err != nil || entries == nil {
		return nil, err
	}
	return entries[path.Base(p)], nil
}
