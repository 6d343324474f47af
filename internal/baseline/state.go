package baseline

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/vouch-dev/vouch/internal/check"
	"github.com/vouch-dev/vouch/internal/osrelease"
	"github.com/vouch-dev/vouch/internal/rootfs"
	"github.com/vouch-dev/vouch/internal/target"
)

// State is what the rules of one scan share: the target's root and the facts
// parsed from it, each read once.
type State struct {
	Root  *rootfs.FS
	Live  bool
	Image *target.Image
	// ESP is the EFI System Partition when the target has one; its GRUB
	// configuration is a source of the kernel command line.
	ESP     fs.FS
	ESPPath string

	mu   sync.Mutex
	memo map[string]*memoEntry
}

type memoEntry struct {
	once sync.Once
	v    any
	err  error
}

// stateFact is the State the baseline checks of a run share.
var stateFact = check.NewFact[*State]("baseline.state")

// StateFor returns the State of env, creating it once on first use.
func StateFor(env *check.Env) *State {
	return stateFact.Once(env, func() *State {
		t := env.Target
		s := NewState(t.Root, t.Kind == target.KindLive)
		s.Image, s.ESP, s.ESPPath = t.Image, t.ESP, t.ESPPath
		return s
	})
}

// NewState returns a State over root.
func NewState(root *rootfs.FS, live bool) *State {
	return &State{Root: root, Live: live, memo: map[string]*memoEntry{}}
}

// cached computes f once per key.
func cached[T any](s *State, key string, f func() (T, error)) (T, error) {
	s.mu.Lock()
	e, ok := s.memo[key]
	if !ok {
		e = &memoEntry{}
		s.memo[key] = e
	}
	s.mu.Unlock()
	e.once.Do(func() { e.v, e.err = f() })
	v, _ := e.v.(T)
	return v, e.err
}

// ConfigError is a configuration file vouch cannot use because of its
// content (binary); the parsers report Include loops and malformed lines as
// *sysconf.Error.
type ConfigError struct {
	Path   string
	Reason string
}

func (e *ConfigError) Error() string { return "baseline: " + e.Path + ": " + e.Reason }

// readText reads a text file. A missing file is (nil, nil) with exists false;
// binary content is a *ConfigError.
func (s *State) readText(name string) (text string, exists bool, err error) {
	type res struct {
		t  string
		ok bool
	}
	r, err := cached(s, "text:"+name, func() (res, error) {
		b, err := s.readAll(name)
		if errors.Is(err, fs.ErrNotExist) {
			return res{}, nil
		}
		if err != nil {
			return res{ok: true}, fmt.Errorf("baseline: read %s: %w", name, err)
		}
		if !isText(b) {
			return res{ok: true}, &ConfigError{Path: name, Reason: "not a text file (binary content)"}
		}
		return res{string(b), true}, nil
	})
	return r.t, r.ok, err
}

// readAll reads a whole file without trusting its stated size: files under
// /proc report size 0.
func (s *State) readAll(name string) ([]byte, error) {
	f, err := s.Root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if info, err := f.Stat(); err == nil && info.IsDir() {
		return nil, &fs.PathError{Op: "read", Path: name, Err: errors.New("is a directory")}
	}
	return io.ReadAll(f)
}

func isText(b []byte) bool {
	return bytes.IndexByte(b, 0) < 0 && utf8.Valid(b)
}

// glob lists files of dir whose names end in suffix, sorted, skipping
// directories. A missing dir is no files.
func (s *State) glob(dir, suffix string) ([]string, error) {
	ents, err := s.Root.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("baseline: read directory %s: %w", dir, err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), suffix) && !e.IsDir() {
			out = append(out, path.Join(dir, e.Name()))
		}
	}
	sort.Strings(out)
	return out, nil
}

// exists reports whether name exists (following symlinks).
func (s *State) exists(name string) bool {
	_, err := s.Root.Stat(name)
	return err == nil
}

type osDesc struct {
	ids  []string
	desc string
}

func (o *osDesc) matches(platforms []string) bool {
	for _, p := range platforms {
		for _, id := range o.ids {
			if p == id {
				return true
			}
		}
	}
	return false
}

// OS returns the target's os-release identity, nil when it has none.
func (s *State) OS() *osDesc {
	o, _ := cached(s, "os", func() (*osDesc, error) {
		info, err := osrelease.Read(s.Root)
		if err != nil {
			return nil, err
		}
		return &osDesc{ids: append([]string{info.ID}, info.IDLike...), desc: info.String()}, nil
	})
	return o
}

// owner returns the uid and gid of a file from the metadata every rootfs
// backend (directory, live host, ext2/3/4, XFS, FAT) gives its files. An error
// means the owner is unknown: callers report it as an error naming the file,
// never as a pass.
func owner(info fs.FileInfo) (uid, gid uint32, err error) {
	m, err := rootfs.MetaOf(info)
	if err != nil {
		return 0, 0, err
	}
	return m.UID, m.GID, nil
}
