package baseline

import (
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/vouch-dev/vouch/internal/check"
	"github.com/vouch-dev/vouch/internal/remediate"
	"github.com/vouch-dev/vouch/internal/sysconf"
)

// ---- files ------------------------------------------------------------------

// fileMode audits that name's permission bits are at most max (no bit outside
// max is set) and, when owner/groups are given, its owner and group. A missing
// file is not applicable. The fix removes the extra bits and sets the owner.
func fileMode(name string, max fs.FileMode, owner string, groups ...string) Control {
	want := fmt.Sprintf("mode %04o or stricter", max)
	if owner != "" {
		want += ", owner " + owner
	}
	if len(groups) > 0 {
		want += ", group " + strings.Join(groups, " or ")
	}
	return Control{
		Remedy: fmt.Sprintf("chmod %04o and chown %s:%s /%s.", max, orDefault(owner, "root"), firstOr(groups, "root"), name),
		Audit: func(s *State) check.Result {
			return s.auditMode(name, max, owner, groups)
		},
		Fix: func(s *State, c *remediate.Changer) error {
			return fixMode(s, c, name, max, owner, groups)
		},
	}
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func firstOr(l []string, d string) string {
	if len(l) == 0 {
		return d
	}
	return l[0]
}

func (s *State) auditMode(name string, max fs.FileMode, owner string, groups []string) check.Result {
	info, err := s.Root.Stat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return na("/" + name + " does not exist")
	}
	if err != nil {
		return errorf("baseline: stat %s: %v", name, err)
	}
	perm := info.Mode().Perm() | info.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)
	mode := unixMode(info.Mode())
	ev := []string{fmt.Sprintf("/%s mode %04o", name, mode)}
	var bad []string
	if extra := perm.Perm() &^ max.Perm(); extra != 0 {
		bad = append(bad, fmt.Sprintf("mode %04o, want %04o or stricter", mode, unixMode(max)))
	}
	if owner != "" || len(groups) > 0 {
		uid, gid, err := fileOwner(info)
		if err != nil {
			return errorf("baseline: cannot read the owner of /%s: %v", name, err)
		}
		un, gn := s.userName(uid), s.groupName(gid)
		ev = append(ev, fmt.Sprintf("owner %s (%d), group %s (%d)", un, uid, gn, gid))
		if owner != "" && un != owner {
			bad = append(bad, "owner "+un+", want "+owner)
		}
		if len(groups) > 0 && !slices.Contains(groups, gn) {
			bad = append(bad, "group "+gn+", want "+strings.Join(groups, " or "))
		}
	}
	if len(bad) > 0 {
		return fail("/"+name+": "+strings.Join(bad, "; "), ev...)
	}
	return pass("/"+name+" "+strings.Join(ev[1:], ", ")+fmt.Sprintf(" mode %04o", mode), ev...)
}

// fileOwner is owner under a name that auditMode's owner parameter does not hide.
var fileOwner = owner

func unixMode(m fs.FileMode) uint32 {
	v := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		v |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		v |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		v |= 0o1000
	}
	return v
}

// userName maps a uid to its name in etc/passwd (the number when unknown).
func (s *State) userName(uid uint32) string {
	ents, _, _ := s.passwd()
	for _, e := range ents {
		if e.ValidNumbers && e.UID == int(uid) {
			return e.Name
		}
	}
	if uid == 0 {
		return "root"
	}
	return strconv.Itoa(int(uid))
}

func (s *State) groupName(gid uint32) string {
	ents, _, _ := s.groups()
	for _, e := range ents {
		if e.ValidNumbers && e.GID == int(gid) {
			return e.Name
		}
	}
	if gid == 0 {
		return "root"
	}
	return strconv.Itoa(int(gid))
}

func (s *State) uidOf(name string) (int, bool) {
	if name == "root" {
		return 0, true
	}
	ents, _, _ := s.passwd()
	for _, e := range ents {
		if e.Name == name && e.ValidNumbers {
			return e.UID, true
		}
	}
	return 0, false
}

func (s *State) gidOf(name string) (int, bool) {
	if name == "root" {
		return 0, true
	}
	ents, _, _ := s.groups()
	for _, e := range ents {
		if e.Name == name && e.ValidNumbers {
			return e.GID, true
		}
	}
	return 0, false
}

// globMode applies fileMode to every file matching a glob (host keys).
func globMode(pattern string, max fs.FileMode, owner string, groups ...string) Control {
	return Control{
		Remedy: fmt.Sprintf("chmod %04o and chown %s /%s.", max, orDefault(owner, "root"), pattern),
		Audit: func(s *State) check.Result {
			files, err := fs.Glob(s.Root, pattern)
			if err != nil {
				return errorf("baseline: glob %s: %v", pattern, err)
			}
			if len(files) == 0 {
				return na("no file matches /" + pattern)
			}
			var bad, ev []string
			for _, f := range s.expand(files) {
				r := s.auditMode(f, max, owner, groups)
				if r.Status == "error" {
					return r
				}
				if r.Status == "fail" {
					bad = append(bad, r.Message)
				}
				ev = append(ev, r.Evidence...)
			}
			if len(bad) > 0 {
				return fail(strings.Join(bad, "; "), ev...)
			}
			return pass(fmt.Sprintf("%d files matching /%s have mode %04o or stricter", len(files), pattern, max), ev...)
		},
		Fix: func(s *State, c *remediate.Changer) error {
			files, err := fs.Glob(s.Root, pattern)
			if err != nil {
				return err
			}
			for _, f := range s.expand(files) {
				if err := fixMode(s, c, f, max, owner, groups); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

// fileAbsent passes when none of the globs matches a file.
func fileAbsent(remedy string, patterns ...string) Control {
	return Control{
		Remedy: remedy,
		Audit: func(s *State) check.Result {
			var found []string
			for _, p := range patterns {
				m, err := fs.Glob(s.Root, p)
				if err != nil {
					return errorf("baseline: glob %s: %v", p, err)
				}
				for _, f := range m {
					found = append(found, "/"+f)
				}
			}
			if len(found) > 0 {
				return fail(fmt.Sprintf("%d present: %s", len(found), strings.Join(found, ", ")), found...)
			}
			return pass("none of /" + strings.Join(patterns, ", /") + " exists")
		},
	}
}

// content audits that the files' text matches (or lacks) a regular
// expression, line by line. files are tried in order; missing ones skipped;
// none existing is missingStatus.
func contentMatches(files []string, re string, want string, missing check.Result) Control {
	rx := regexp.MustCompile(re)
	return Control{
		Remedy: "Edit /" + strings.Join(files, " or /") + " so that a line " + want + ".",
		Audit: func(s *State) check.Result {
			var hit, where string
			seen, err := s.matchLines(files, rx, func(f string, n int, l string) bool {
				hit, where = fmt.Sprintf("/%s:%d: %s", f, n, l), fmt.Sprintf("/%s:%d", f, n)
				return false
			})
			if err != nil {
				return errorf("%v", err)
			}
			if hit != "" {
				return pass(hit, where)
			}
			if !seen {
				return missing
			}
			return fail("no line in /"+strings.Join(files, ", /")+" "+want, "pattern: "+re)
		},
	}
}

func contentLacks(files []string, re string, what string) Control {
	rx := regexp.MustCompile(re)
	return Control{
		Remedy: "Remove the " + what + " from /" + strings.Join(files, " and /") + ".",
		Audit: func(s *State) check.Result {
			var hits []string
			seen, err := s.matchLines(files, rx, func(f string, n int, l string) bool {
				hits = append(hits, fmt.Sprintf("/%s:%d: %s", f, n, l))
				return true
			})
			if err != nil {
				return errorf("%v", err)
			}
			if !seen {
				return na("none of /" + strings.Join(files, ", /") + " exists")
			}
			if len(hits) > 0 {
				return fail(fmt.Sprintf("%s: %s", what, hits[0]), hits...)
			}
			return pass("no " + what + " in /" + strings.Join(files, ", /"))
		},
	}
}

// ---- packages and units ---------------------------------------------------------

func packageAbsent(names ...string) Control {
	return Control{
		Remedy: "Remove it: apt-get purge " + strings.Join(names, " ") + " (vouch does not run the package manager).",
		Audit: func(s *State) check.Result {
			got, haveDB, err := s.installedAny(names...)
			if err != nil {
				return errorf("%v", err)
			}
			if !haveDB {
				return na("no dpkg database (var/lib/dpkg/status); package rules read dpkg")
			}
			if len(got) > 0 {
				return fail("installed: "+strings.Join(got, ", ")+"; want none of "+strings.Join(names, ", "), got...)
			}
			return pass("none of " + strings.Join(names, ", ") + " is installed")
		},
	}
}

func packageInstalled(names ...string) Control {
	return Control{
		Remedy: "Install it: apt-get install " + names[0] + ".",
		Audit: func(s *State) check.Result {
			got, haveDB, err := s.installedAny(names...)
			if err != nil {
				return errorf("%v", err)
			}
			if !haveDB {
				return na("no dpkg database (var/lib/dpkg/status); package rules read dpkg")
			}
			if len(got) == 0 {
				return fail("none of " + strings.Join(names, ", ") + " is installed")
			}
			return pass("installed: "+strings.Join(got, ", "), got...)
		},
	}
}

// unitEnabled passes when any of the units is enabled (and not masked).
func unitEnabled(units ...string) Control {
	return Control{
		Remedy: "Enable it: systemctl enable " + units[0] + ".",
		Audit: func(s *State) check.Result {
			var ev []string
			for _, u := range units {
				st, err := s.unit(u)
				if err != nil {
					return errorf("%v", err)
				}
				if st.Masked {
					ev = append(ev, u+" is masked ("+st.File+")")
					continue
				}
				if st.Enabled {
					return pass(u+" is enabled", st.Via...)
				}
				if st.File == "" {
					ev = append(ev, u+": no unit file")
				} else {
					ev = append(ev, u+" is not enabled ("+st.File+")")
				}
			}
			return fail("not enabled: "+strings.Join(ev, "; "), ev...)
		},
	}
}

// unitNotEnabled passes when none of the units is enabled (absent, disabled or
// masked).
func unitNotEnabled(units ...string) Control {
	return Control{
		Remedy: "Disable it: systemctl disable --now " + strings.Join(units, " ") + " (or mask it).",
		Audit: func(s *State) check.Result {
			var on []string
			for _, u := range units {
				st, err := s.unit(u)
				if err != nil {
					return errorf("%v", err)
				}
				if st.Enabled && !st.Masked {
					on = append(on, u+" enabled by "+strings.Join(st.Via, ", "))
				}
			}
			if len(on) > 0 {
				return fail(strings.Join(on, "; "), on...)
			}
			return pass("none of " + strings.Join(units, ", ") + " is enabled")
		},
	}
}

// ---- mounts ----------------------------------------------------------------------

func mountSeparate(dir string) Control {
	return Control{
		Remedy: fmt.Sprintf("Put %s on its own file system (a partition, LV or tmpfs in /etc/fstab); vouch does not repartition.", dir),
		Audit: func(s *State) check.Result {
			m, err := s.mountFor(dir)
			if err != nil {
				return errorf("%v", err)
			}
			if m == nil {
				return fail(dir+" is not a separate file system (no /etc/fstab entry or mount unit)", "boot configuration: etc/fstab")
			}
			return pass(fmt.Sprintf("%s is mounted from %s (%s)", dir, orDefault(m.Spec, "?"), m.Source), m.Source)
		},
	}
}

func mountOption(dir, opt string) Control {
	return Control{
		Remedy: fmt.Sprintf("Add %s to the options of %s in /etc/fstab and remount it.", opt, dir),
		Audit: func(s *State) check.Result {
			m, err := s.mountFor(dir)
			if err != nil {
				return errorf("%v", err)
			}
			if m == nil {
				return na(dir + " is not a separate file system, so it has no mount options of its own")
			}
			ev := []string{fmt.Sprintf("%s: %s %s %s %s", m.Source, m.Spec, m.Dir, m.Type, strings.Join(m.Options, ","))}
			if slices.Contains(m.Options, opt) {
				return pass(dir+" is mounted "+opt, ev...)
			}
			return fail(fmt.Sprintf("%s is mounted without %s (options %s)", dir, opt, strings.Join(m.Options, ",")), ev...)
		},
		Fix: func(s *State, c *remediate.Changer) error { return addMountOption(s, c, dir, opt) },
	}
}

// ---- login.defs ----------------------------------------------------------------------

func loginDef(key, op, want string) Control {
	return Control{
		Remedy: fmt.Sprintf("Set %s %s in /etc/login.defs.", key, strings.Split(want, "|")[0]),
		Audit: func(s *State) check.Result {
			m, ok, err := s.loginDefs()
			if err != nil {
				return errorf("%v", err)
			}
			if !ok {
				return na("no /etc/login.defs")
			}
			v, set := m[key]
			if !set {
				return fail(fmt.Sprintf("%s is not set in /etc/login.defs; want %s %s", key, op, want))
			}
			ev := fmt.Sprintf("/%s:%d: %s %s", v.File, v.Line, key, v.Value)
			if op == "in" {
				if sysctlCompare(strings.ToUpper(v.Value), "in", want) {
					return pass(key+" "+v.Value, ev)
				}
			} else if sysctlCompare(v.Value, op, want) {
				return pass(key+" "+v.Value, ev)
			}
			return fail(fmt.Sprintf("%s is %s, want %s %s", key, v.Value, op, want), ev)
		},
		Fix: func(s *State, c *remediate.Changer) error {
			return c.SetKeyLine("etc/login.defs", key+"\t"+strings.Split(want, "|")[0], `^\s*`+regexp.QuoteMeta(key)+`\s`)
		},
	}
}

// custom wraps an audit function with a remedy text and no fix.
func custom(remedy string, a Audit) Control { return Control{Audit: a, Remedy: remedy} }

// gated returns c with a package gate.
func gated(c Control, pkgs ...string) Control {
	c.Gate = pkgs
	return c
}

// ---- journald and other systemd ini settings -----------------------------------------------

func iniSetting(main, section, key, def string, ok func(string) bool, want, fixValue string) Control {
	dropin := "etc/systemd/" + strings.TrimSuffix(main, ".conf") + ".conf.d/60-vouch.conf"
	c := Control{
		Remedy: fmt.Sprintf("Set %s=%s in [%s] of /%s.", key, fixValue, section, dropin),
		Audit: func(s *State) check.Result {
			v, set, err := s.iniValue(main, section, key)
			if err != nil {
				return errorf("%v", err)
			}
			val, src := v.Value, fmt.Sprintf("/%s:%d", v.File, v.Line)
			if !set {
				val, src = def, "built-in default (not set in "+main+" or its drop-ins)"
			}
			ev := []string{fmt.Sprintf("%s=%s", key, val), "source: " + src}
			if ok(val) {
				return pass(fmt.Sprintf("%s %s=%s", main, key, val), ev...)
			}
			return fail(fmt.Sprintf("%s %s=%s, want %s", main, key, val, want), ev...)
		},
	}
	if fixValue != "" {
		c.Fix = func(s *State, ch *remediate.Changer) error {
			return ch.SetINI(dropin, section, key, fixValue)
		}
	}
	return c
}

func eq(want ...string) func(string) bool {
	return func(v string) bool {
		for _, w := range want {
			if strings.EqualFold(v, w) {
				return true
			}
		}
		return false
	}
}

// matchLines calls hit for every non-comment line of files matching rx, with
// the file, its 1-based line number and the trimmed line, until hit returns
// false. seen reports whether any of the files exists.
func (s *State) matchLines(files []string, rx *regexp.Regexp, hit func(f string, n int, l string) bool) (seen bool, err error) {
	for _, f := range s.expand(files) {
		text, ok, err := s.readText(f)
		if err != nil {
			return seen, err
		}
		if !ok {
			continue
		}
		seen = true
		for i, l := range sysconf.Lines(text) {
			if strings.HasPrefix(strings.TrimSpace(l), "#") || !rx.MatchString(l) {
				continue
			}
			if !hit(f, i+1, strings.TrimSpace(l)) {
				return seen, nil
			}
		}
	}
	return seen, nil
}
