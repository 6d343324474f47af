package baseline

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// ---- dpkg ----------------------------------------------------------------

type pkgInfo struct {
	Name, Version, Status string
}

// packages reads var/lib/dpkg/status (and status.d/ of distroless images): a
// minimal reader of the stanzas' Package, Status and Version fields. haveDB is
// false when the target has no dpkg database.
func (s *State) packages() (pkgs map[string]pkgInfo, haveDB bool, err error) {
	type db struct {
		m  map[string]pkgInfo
		ok bool
	}
	d, err := cached(s, "dpkg", func() (db, error) {
		m := map[string]pkgInfo{}
		files := []string{"var/lib/dpkg/status"}
		extra, err := s.glob("var/lib/dpkg/status.d", "")
		if err != nil {
			return db{}, err
		}
		files = append(files, extra...)
		found := false
		for _, f := range files {
			text, ok, err := s.readText(f)
			if err != nil {
				return db{ok: true}, err
			}
			if !ok {
				continue
			}
			found = true
			parseDpkgStatus(text, m)
		}
		return db{m, found}, nil
	})
	return d.m, d.ok, err
}

func parseDpkgStatus(text string, into map[string]pkgInfo) {
	var cur pkgInfo
	flush := func() {
		if cur.Name != "" {
			if cur.Status == "" {
				cur.Status = "install ok installed" // status.d stanzas carry no Status
			}
			into[cur.Name] = cur
		}
		cur = pkgInfo{}
	}
	for _, l := range lines(text) {
		if l == "" {
			flush()
			continue
		}
		if l[0] == ' ' || l[0] == '\t' {
			continue
		}
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "Package":
			cur.Name = v
		case "Status":
			cur.Status = v
		case "Version":
			cur.Version = v
		}
	}
	flush()
}

// installed reports whether a package is installed: dpkg's third status word
// is installed (or a trigger state of an installed package).
func (p pkgInfo) installed() bool {
	f := strings.Fields(p.Status)
	if len(f) != 3 {
		return false
	}
	switch f[2] {
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
		if p, found := m[n]; found && p.installed() {
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

type passwdEnt struct {
	Name, Pass   string
	UID, GID     int
	Home, Shell  string
	Line         int
	Legacy, Bad  bool // '+'/'-' NIS entries; malformed lines
	Raw          string
	ValidNumbers bool
}

func (s *State) passwd() ([]passwdEnt, bool, error) {
	return s.colonFile("etc/passwd", 7, func(f []string, e *passwdEnt) {
		e.Pass, e.Home, e.Shell = f[1], f[5], f[6]
		u, err1 := strconv.Atoi(f[2])
		g, err2 := strconv.Atoi(f[3])
		e.UID, e.GID, e.ValidNumbers = u, g, err1 == nil && err2 == nil
	})
}

func (s *State) colonFile(name string, nfields int, fill func([]string, *passwdEnt)) ([]passwdEnt, bool, error) {
	type res struct {
		e  []passwdEnt
		ok bool
	}
	r, err := cached(s, "colon:"+name, func() (res, error) {
		text, ok, err := s.readText(name)
		if err != nil || !ok {
			return res{ok: ok}, err
		}
		var out []passwdEnt
		for i, l := range lines(text) {
			if strings.TrimSpace(l) == "" {
				continue
			}
			e := passwdEnt{Line: i + 1, Raw: l}
			f := strings.Split(l, ":")
			e.Name = f[0]
			if strings.HasPrefix(l, "+") || strings.HasPrefix(l, "-") {
				e.Legacy = true
			}
			if len(f) < nfields {
				e.Bad = true
				out = append(out, e)
				continue
			}
			fill(f, &e)
			out = append(out, e)
		}
		return res{out, true}, nil
	})
	return r.e, r.ok, err
}

// shadow entries reuse passwdEnt: Pass is the hash field; the aging fields go
// into Home (last change) and Shell (the rest, colon-joined) unparsed, and are
// read with shadowField.
func (s *State) shadow() ([]passwdEnt, bool, error) {
	return s.colonFile("etc/shadow", 2, func(f []string, e *passwdEnt) {
		e.Pass = f[1]
		e.Shell = strings.Join(f[2:], ":")
	})
}

// shadowField returns aging field i of a shadow entry (0 = last change, 1 =
// min, 2 = max, 3 = warn, 4 = inactive, 5 = expire).
func shadowField(e passwdEnt, i int) string {
	f := strings.Split(e.Shell, ":")
	if i < len(f) {
		return f[i]
	}
	return ""
}

func (s *State) groups() ([]passwdEnt, bool, error) {
	return s.colonFile("etc/group", 4, func(f []string, e *passwdEnt) {
		e.Pass = f[1]
		g, err := strconv.Atoi(f[2])
		e.GID, e.ValidNumbers = g, err == nil
		e.Shell = f[3] // members
	})
}

// ---- key/value files ------------------------------------------------------

type kv struct {
	Value, File string
	Line        int
}

// loginDefs parses etc/login.defs: "KEY VALUE" lines, the last occurrence
// winning as shadow-utils' getdef does.
func (s *State) loginDefs() (map[string]kv, bool, error) {
	return s.keyValues("etc/login.defs", func(l string) (string, string, bool) {
		f := strings.Fields(l)
		if len(f) < 2 {
			return "", "", false
		}
		return f[0], strings.Trim(f[1], `"`), true
	})
}

func (s *State) keyValues(name string, split func(string) (string, string, bool)) (map[string]kv, bool, error) {
	type res struct {
		m  map[string]kv
		ok bool
	}
	r, err := cached(s, "kv:"+name, func() (res, error) {
		text, ok, err := s.readText(name)
		if err != nil || !ok {
			return res{ok: ok}, err
		}
		m := map[string]kv{}
		for i, l := range lines(text) {
			t := strings.TrimSpace(l)
			if t == "" || t[0] == '#' {
				continue
			}
			if k, v, ok := split(t); ok {
				m[k] = kv{v, name, i + 1}
			}
		}
		return res{m, true}, nil
	})
	return r.m, r.ok, err
}

// iniValue returns the effective value of key in section of a systemd-style
// configuration (journald.conf, coredump.conf, timesyncd.conf): the main file
// then drop-ins from usr/lib, run and etc sorted by name, the last assignment
// winning.
func (s *State) iniValue(main, section, key string) (kv, bool, error) {
	files := []string{"usr/lib/systemd/" + main, "etc/systemd/" + main}
	base := strings.TrimSuffix(main, ".conf") + ".conf.d"
	byName := map[string]string{}
	for _, d := range []string{"usr/lib/systemd/" + base, "run/systemd/" + base, "etc/systemd/" + base} {
		fs, err := s.glob(d, ".conf")
		if err != nil {
			return kv{}, false, err
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
	var found kv
	ok := false
	for _, f := range files {
		text, exists, err := s.readText(f)
		if err != nil {
			return kv{}, false, err
		}
		if !exists {
			continue
		}
		cur := ""
		for i, l := range lines(text) {
			t := strings.TrimSpace(l)
			if t == "" || t[0] == '#' || t[0] == ';' {
				continue
			}
			if t[0] == '[' {
				cur = strings.Trim(t, "[]")
				continue
			}
			k, v, has := strings.Cut(t, "=")
			if has && cur == section && strings.TrimSpace(k) == key {
				found, ok = kv{strings.TrimSpace(v), f, i + 1}, true
			}
		}
	}
	return found, ok, nil
}

// ---- fstab -------------------------------------------------------------------

type mount struct {
	Spec, Dir, Type string
	Options         []string
	Source          string // "etc/fstab:3" or a unit file
}

func (s *State) fstab() ([]mount, bool, error) {
	type res struct {
		m  []mount
		ok bool
	}
	r, err := cached(s, "fstab", func() (res, error) {
		text, ok, err := s.readText("etc/fstab")
		if err != nil || !ok {
			return res{ok: ok}, err
		}
		var out []mount
		for i, l := range lines(text) {
			f := strings.Fields(l)
			if len(f) == 0 || strings.HasPrefix(f[0], "#") {
				continue
			}
			if len(f) < 3 {
				return res{ok: true}, &ConfigError{Path: "etc/fstab", Reason: fmt.Sprintf("line %d: %d fields, want at least 3", i+1, len(f))}
			}
			m := mount{Spec: f[0], Dir: unescapeFstab(f[1]), Type: f[2], Source: fmt.Sprintf("etc/fstab:%d", i+1)}
			if len(f) > 3 {
				m.Options = strings.Split(f[3], ",")
			}
			out = append(out, m)
		}
		return res{out, true}, nil
	})
	return r.m, r.ok, err
}

func unescapeFstab(s string) string {
	return strings.ReplaceAll(s, `\040`, " ")
}

// mountFor finds what mounts dir at boot: an fstab entry, else an enabled
// systemd mount unit (tmp.mount), else systemd's built-in /dev/shm.
func (s *State) mountFor(dir string) (*mount, error) {
	ms, _, err := s.fstab()
	if err != nil {
		return nil, err
	}
	var found *mount
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
		m := &mount{Dir: dir, Source: st.File}
		text, _, err := s.readText(st.File)
		if err != nil {
			return nil, err
		}
		for _, l := range lines(text) {
			k, v, ok := strings.Cut(strings.TrimSpace(l), "=")
			switch {
			case !ok:
			case k == "What":
				m.Spec = v
			case k == "Type":
				m.Type = v
			case k == "Options":
				m.Options = strings.Split(v, ",")
			}
		}
		return m, nil
	}
	if dir == "/dev/shm" {
		// systemd's mount_table (src/shared/mount-setup.c) mounts /dev/shm
		// with MS_NOSUID|MS_NODEV|MS_STRICTATIME.
		return &mount{Spec: "tmpfs", Dir: dir, Type: "tmpfs", Options: []string{"nosuid", "nodev", "strictatime", "mode=1777"},
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

type modprobeRule struct {
	Kind, Module, Arg, Where string
}

var modprobeDirs = []string{"etc/modprobe.d", "run/modprobe.d", "usr/local/lib/modprobe.d", "usr/lib/modprobe.d", "lib/modprobe.d"}

// modprobe reads the modprobe.d configuration as kmod does: a file name in an
// earlier directory hides the same name in a later one; files are read in
// name order.
func (s *State) modprobe() ([]modprobeRule, error) {
	return cached(s, "modprobe", func() ([]modprobeRule, error) {
		byName, names, err := s.dropIns(modprobeDirs, ".conf")
		if err != nil {
			return nil, err
		}
		var out []modprobeRule
		for _, n := range names {
			f := byName[n]
			text, _, err := s.readText(f)
			if err != nil {
				return nil, err
			}
			for i, l := range lines(text) {
				fl := strings.Fields(l)
				if len(fl) < 2 || strings.HasPrefix(fl[0], "#") {
					continue
				}
				r := modprobeRule{Kind: fl[0], Module: modName(fl[1]), Where: fmt.Sprintf("%s:%d", f, i+1)}
				if len(fl) > 2 {
					r.Arg = strings.Join(fl[2:], " ")
				}
				out = append(out, r)
			}
		}
		return out, nil
	})
}

func modName(s string) string { return strings.ReplaceAll(s, "-", "_") }

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
			for _, l := range lines(dep) {
				p, _, _ := strings.Cut(l, ":")
				k.loadable[moduleFromPath(p)] = v
			}
			bi, _, err := s.readText(path.Join("lib/modules", v, "modules.builtin"))
			if err != nil {
				return k, err
			}
			for _, l := range lines(bi) {
				if l != "" {
					k.builtin[moduleFromPath(l)] = v
				}
			}
		}
		return k, nil
	})
}

func moduleFromPath(p string) string {
	b := path.Base(strings.TrimSpace(p))
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return modName(b)
}

// dropIns lists configuration drop-ins as systemd and kmod read them: a file
// name in an earlier directory hides the same name in a later one, and the
// files are applied in name order. It returns the chosen path per name and the
// names sorted.
func (s *State) dropIns(dirs []string, ext string) (map[string]string, []string, error) {
	byName := map[string]string{}
	for _, d := range dirs {
		files, err := s.glob(d, ext)
		if err != nil {
			return nil, nil, err
		}
		for _, f := range files {
			if _, seen := byName[path.Base(f)]; !seen {
				byName[path.Base(f)] = f
			}
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return byName, names, nil
}
