package baseline

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/vouch-dev/vouch/internal/pkgdb"
	"github.com/vouch-dev/vouch/internal/sysconf"
)

// ---- dpkg ----------------------------------------------------------------

// packages reads the dpkg database through pkgdb (var/lib/dpkg/status and
// status.d/ of distroless images), every state but not-installed, by name.
// haveDB is false when the target has no dpkg database; a database file that
// cannot be read is an error, a corrupt stanza is skipped.
func (s *State) packages() (pkgs map[string]pkgdb.Package, haveDB bool, err error) {
	type db struct {
		m  map[string]pkgdb.Package
		ok bool
	}
	d, err := cached(s, "dpkg", func() (db, error) {
		inv, err := pkgdb.ReadDpkg(context.Background(), s.Root, pkgdb.Options{AllStates: true})
		if errors.Is(err, pkgdb.ErrNoDatabase) {
			return db{}, nil
		}
		if err != nil {
			return db{ok: true}, fmt.Errorf("baseline: %w", err)
		}
		for _, is := range inv.Issues {
			if is.Line == 0 && is.Record == 0 { // the file itself, not a stanza in it
				return db{ok: true}, fmt.Errorf("baseline: read %s", is)
			}
		}
		m := make(map[string]pkgdb.Package, len(inv.Packages))
		for _, p := range inv.Packages {
			if old, dup := m[p.Name]; !dup || !installed(old) { // one installed architecture is enough
				m[p.Name] = p
			}
		}
		return db{m, true}, nil
	})
	return d.m, d.ok, err
}

// installed reports whether a package is installed: dpkg's third status word
// is installed (or a trigger state of an installed package).
func installed(p pkgdb.Package) bool {
	switch p.Status {
	case "installed", "triggers-awaited", "triggers-pending", "half-configured":
		return true
	}
	return false
}

// installedAny returns the installed packages among names.
func (s *State) installedAny(names ...string) ([]string, bool, error) {
	m, ok, err := s.packages()
	if err != nil || !ok {
		return nil, ok, err
	}
	var out []string
	for _, n := range names {
		if p, found := m[n]; found && installed(p) {
			out = append(out, n+" "+p.Version)
		}
	}
	return out, true, nil
}

// gate decides whether a package-gated rule applies.
func (s *State) gate(pkgs, files []string) (bool, string) {
	if len(pkgs) > 0 {
		got, haveDB, err := s.installedAny(pkgs...)
		if err == nil && haveDB {
			if len(got) > 0 {
				return true, ""
			}
			return false, strings.Join(pkgs, " or ") + " is not installed"
		}
	}
	if len(files) == 0 {
		return true, ""
	}
	for _, f := range files {
		if s.exists(f) {
			return true, ""
		}
	}
	return false, "none of " + strings.Join(files, ", ") + " exists"
}

// ---- accounts --------------------------------------------------------------

func (s *State) passwd() ([]sysconf.Account, bool, error) {
	return s.accounts("etc/passwd", sysconf.ParsePasswd)
}

// accounts reads and parses a colon-separated account file once.
func (s *State) accounts(name string, parse func(string) []sysconf.Account) ([]sysconf.Account, bool, error) {
	type res struct {
		e  []sysconf.Account
		ok bool
	}
	r, err := cached(s, "colon:"+name, func() (res, error) {
		text, ok, err := s.readText(name)
		if err != nil || !ok {
			return res{ok: ok}, err
		}
		return res{parse(text), true}, nil
	})
	return r.e, r.ok, err
}

func (s *State) shadow() ([]sysconf.Account, bool, error) {
	return s.accounts("etc/shadow", sysconf.ParseShadow)
}

func (s *State) groups() ([]sysconf.Account, bool, error) {
	return s.accounts("etc/group", sysconf.ParseGroup)
}

// ---- key/value files ------------------------------------------------------

// loginDefs parses etc/login.defs: "KEY VALUE" lines, the last occurrence
// winning as shadow-utils' getdef does.
func (s *State) loginDefs() (map[string]sysconf.KV, bool, error) {
	return s.keyValues("etc/login.defs", sysconf.ParseLoginDefs)
}

// keyValues reads and parses a key-value file once.
func (s *State) keyValues(name string, parse func(file, text string) map[string]sysconf.KV) (map[string]sysconf.KV, bool, error) {
	type res struct {
		m  map[string]sysconf.KV
		ok bool
	}
	r, err := cached(s, "kv:"+name, func() (res, error) {
		text, ok, err := s.readText(name)
		if err != nil || !ok {
			return res{ok: ok}, err
		}
		return res{parse(name, text), true}, nil
	})
	return r.m, r.ok, err
}

// iniValue returns the effective value of key in section of a systemd-style
// configuration (journald.conf, coredump.conf, timesyncd.conf): the main file
// then drop-ins from usr/lib, run and etc sorted by name, the last assignment
// winning.
func (s *State) iniValue(main, section, key string) (sysconf.KV, bool, error) {
	files := []string{"usr/lib/systemd/" + main, "etc/systemd/" + main}
	base := strings.TrimSuffix(main, ".conf") + ".conf.d"
	byName := map[string]string{}
	for _, d := range []string{"usr/lib/systemd/" + base, "run/systemd/" + base, "etc/systemd/" + base} {
		fs, err := s.glob(d, ".conf")
		if err != nil {
			return sysconf.KV{}, false, err
		}
		for _, f := range fs {
			byName[path.Base(f)] = f // etc overrides run overrides usr/lib
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		files = append(files, byName[n])
	}
	var found sysconf.KV
	ok := false
	for _, f := range files {
		text, exists, err := s.readText(f)
		if err != nil {
			return sysconf.KV{}, false, err
		}
		if !exists {
			continue
		}
		if v, has := sysconf.INIValue(f, text, section, key); has {
			found, ok = v, true
		}
	}
	return found, ok, nil
}

// ---- fstab -------------------------------------------------------------------

func (s *State) fstab() ([]sysconf.Mount, bool, error) {
	type res struct {
		m  []sysconf.Mount
		ok bool
	}
	r, err := cached(s, "fstab", func() (res, error) {
		text, ok, err := s.readText("etc/fstab")
		if err != nil || !ok {
			return res{ok: ok}, err
		}
		out, err := sysconf.ParseFstab("etc/fstab", text)
		if err != nil {
			return res{ok: true}, err
		}
		return res{out, true}, nil
	})
	return r.m, r.ok, err
}

// mountFor finds what mounts dir at boot: an fstab entry, else an enabled
// systemd mount unit (tmp.mount), else systemd's built-in /dev/shm.
func (s *State) mountFor(dir string) (*sysconf.Mount, error) {
	ms, _, err := s.fstab()
	if err != nil {
		return nil, err
	}
	var found *sysconf.Mount
	for i := range ms {
		if path.Clean(ms[i].Dir) == dir {
			found = &ms[i] // the last entry wins, as mount order does
		}
	}
	if found != nil {
		return found, nil
	}
	unit := strings.ReplaceAll(strings.TrimPrefix(dir, "/"), "/", "-") + ".mount"
	if st, err := s.unit(unit); err == nil && st.Enabled && !st.Masked {
		text, _, err := s.readText(st.File)
		if err != nil {
			return nil, err
		}
		return sysconf.ParseMountUnit(st.File, dir, text), nil
	}
	if dir == "/dev/shm" {
		// systemd's mount_table (src/shared/mount-setup.c) mounts /dev/shm
		// with MS_NOSUID|MS_NODEV|MS_STRICTATIME.
		return &sysconf.Mount{Spec: "tmpfs", Dir: dir, Type: "tmpfs", Options: []string{"nosuid", "nodev", "strictatime", "mode=1777"},
			Source: "systemd's built-in /dev/shm mount (no fstab entry)"}, nil
	}
	return nil, nil
}

// ---- systemd units -----------------------------------------------------------

var unitDirs = []string{"etc/systemd/system", "run/systemd/system", "usr/local/lib/systemd/system", "usr/lib/systemd/system", "lib/systemd/system"}

type unitState struct {
	File    string // the unit file found, "" when none
	Masked  bool
	Enabled bool
	Via     []string // the symlinks that enable it
}

// wants indexes the .wants/.requires symlinks of etc and the vendor unit
// directories: unit name -> the links that pull it in.
func (s *State) wants() (map[string][]string, error) {
	return cached(s, "wants", func() (map[string][]string, error) {
		m := map[string][]string{}
		for _, d := range unitDirs {
			ents, err := s.Root.ReadDir(d)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("baseline: read directory %s: %w", d, err)
			}
			for _, e := range ents {
				n := e.Name()
				if !strings.HasSuffix(n, ".wants") && !strings.HasSuffix(n, ".requires") {
					continue
				}
				sub, err := s.Root.ReadDir(path.Join(d, n))
				if err != nil {
					continue
				}
				for _, l := range sub {
					link := path.Join(d, n, l.Name())
					m[l.Name()] = append(m[l.Name()], link)
					if tgt, err := s.Root.ReadLink(link); err == nil && path.Base(tgt) != l.Name() {
						m[path.Base(tgt)] = append(m[path.Base(tgt)], link)
					}
				}
			}
		}
		return m, nil
	})
}

// unit returns the state of a unit as the boot will see it.
func (s *State) unit(name string) (unitState, error) {
	var st unitState
	for _, d := range unitDirs[:2] {
		p := path.Join(d, name)
		if info, err := s.Root.Lstat(p); err == nil {
			if info.Mode()&fs.ModeSymlink != 0 {
				if t, err := s.Root.ReadLink(p); err == nil && t == "/dev/null" {
					st.Masked = true
					st.File = p
					return st, nil
				}
			}
			if info.Size() == 0 && info.Mode().IsRegular() {
				st.Masked = true
				st.File = p
				return st, nil
			}
		}
	}
	for _, d := range unitDirs {
		p := path.Join(d, name)
		if s.exists(p) {
			st.File = p
			break
		}
	}
	w, err := s.wants()
	if err != nil {
		return st, err
	}
	base := name
	if i := strings.Index(name, "@"); i >= 0 && !strings.Contains(name, "@.") {
		base = name[:i+1] + name[strings.LastIndex(name, "."):]
	}
	st.Via = append(st.Via, w[name]...)
	if base != name {
		st.Via = append(st.Via, w[base]...)
	}
	st.Enabled = len(st.Via) > 0
	return st, nil
}

// ---- kernel modules --------------------------------------------------------

var modprobeDirs = []string{"etc/modprobe.d", "run/modprobe.d", "usr/local/lib/modprobe.d", "usr/lib/modprobe.d", "lib/modprobe.d"}

// modprobe reads the modprobe.d configuration as kmod does: a file name in an
// earlier directory hides the same name in a later one; files are read in
// name order.
func (s *State) modprobe() ([]sysconf.ModprobeRule, error) {
	return cached(s, "modprobe", func() ([]sysconf.ModprobeRule, error) {
		byName, names, err := s.dropIns(modprobeDirs, ".conf")
		if err != nil {
			return nil, err
		}
		var out []sysconf.ModprobeRule
		for _, n := range names {
			f := byName[n]
			text, _, err := s.readText(f)
			if err != nil {
				return nil, err
			}
			out = append(out, sysconf.ParseModprobe(f, text)...)
		}
		return out, nil
	})
}

type kmods struct {
	loadable map[string]string // module -> kernel version that ships it
	builtin  map[string]string
	kernels  []string
}

// modules indexes the kernel modules of every installed kernel from
// modules.dep and modules.builtin.
func (s *State) modules() (kmods, error) {
	return cached(s, "kmods", func() (kmods, error) {
		k := kmods{loadable: map[string]string{}, builtin: map[string]string{}}
		ents, err := s.Root.ReadDir("lib/modules")
		if errors.Is(err, fs.ErrNotExist) {
			return k, nil
		}
		if err != nil {
			return k, fmt.Errorf("baseline: read directory lib/modules: %w", err)
		}
		for _, e := range ents {
			v := e.Name()
			dep, ok, err := s.readText(path.Join("lib/modules", v, "modules.dep"))
			if err != nil {
				return k, err
			}
			if !ok {
				continue
			}
			k.kernels = append(k.kernels, v)
			for _, l := range sysconf.Lines(dep) {
				p, _, _ := strings.Cut(l, ":")
				k.loadable[sysconf.ModuleFromPath(p)] = v
			}
			bi, _, err := s.readText(path.Join("lib/modules", v, "modules.builtin"))
			if err != nil {
				return k, err
			}
			for _, l := range sysconf.Lines(bi) {
				if l != "" {
					k.builtin[sysconf.ModuleFromPath(l)] = v
				}
			}
		}
		return k, nil
	})
}

// dropIns lists configuration drop-ins as systemd and kmod read them: a file
// name in an earlier directory hides the same name in a later one, and the
// files are applied in name order. It returns the chosen path per name and the
// names sorted.
func (s *State) dropIns(dirs []string, ext string) (map[string]string, []string, error) {
	lists := make([][]string, 0, len(dirs))
	for _, d := range dirs {
		files, err := s.glob(d, ext)
		if err != nil {
			return nil, nil, err
		}
		lists = append(lists, files)
	}
	byName, names := sysconf.DropIns(lists)
	return byName, names, nil
}
