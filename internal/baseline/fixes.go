package baseline

import (
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strings"

	"github.com/vouch-dev/vouch/internal/remediate"
	"github.com/vouch-dev/vouch/internal/sysconf"
)

// The fixes below decide what to change from what the audits read; the
// remediate engine plans, shows and writes the changes.

// fixMode removes the bits outside max and sets owner and group.
func fixMode(s *State, c *remediate.Changer, name string, max fs.FileMode, owner string, groups []string) error {
	p, err := c.Stat(name)
	if err != nil {
		return err
	}
	if !p.Exists {
		return nil
	}
	special := p.Mode & (fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	want := (p.Mode.Perm() & max.Perm()) | special&max
	if err := c.Chmod(name, want); err != nil {
		return err
	}
	uid, gid := p.UID, p.GID
	if owner != "" && s.userName(uint32(uid)) != owner {
		u, ok := s.uidOf(owner)
		if !ok {
			return fmt.Errorf("baseline: no user %s in /etc/passwd", owner)
		}
		uid = u
	}
	if len(groups) > 0 && !contains(groups, s.groupName(uint32(gid))) {
		g, ok := s.gidOf(groups[0])
		if !ok {
			return fmt.Errorf("baseline: no group %s in /etc/group", groups[0])
		}
		gid = g
	}
	return c.Chown(name, uid, gid)
}

// setSysctl sets key = value where it wins at boot.
func setSysctl(s *State, c *remediate.Changer, key, value string) error {
	settings, err := s.sysctlConfig()
	if err != nil {
		return err
	}
	var last *sysconf.SysctlSetting
	for i := range settings {
		if settings[i].Matches(key) {
			last = &settings[i]
		}
	}
	file := vouchSysctlFile
	if last != nil && last.File != vouchSysctlFile && appliesAfter(last.File, path.Base(vouchSysctlFile)) {
		// A later file would override ours: change the value where it is set.
		file = last.File
		if !strings.HasPrefix(file, "etc/") {
			// A vendor file: override it with a copy of the same name in
			// etc/sysctl.d (sysctl.d(5)), never edit the package's file.
			content, _, err := c.Read(file)
			if err != nil {
				return err
			}
			file = "etc/sysctl.d/" + path.Base(last.File)
			if _, exists, err := c.Read(file); err != nil {
				return err
			} else if !exists {
				hdr := "# Copy of /" + last.File + " made by vouch baseline remediate to override it.\n"
				if err := c.Write(file, append([]byte(hdr), content...), 0o644); err != nil {
					return err
				}
			}
		}
		rx := `^\s*-?` + regexp.QuoteMeta(last.Key) + `\s*=`
		if !last.Pattern {
			rx = `^\s*-?` + strings.ReplaceAll(regexp.QuoteMeta(last.Key), `\.`, `[./]`) + `\s*=`
		}
		return c.SetKeyLine(file, last.Key+" = "+value, rx)
	}
	_, exists, err := c.Read(file)
	if err != nil {
		return err
	}
	if !exists {
		hdr := []byte("# Kernel parameters set by vouch baseline remediate.\n")
		if err := c.Write(file, hdr, 0o644); err != nil {
			return err
		}
	}
	return c.SetKeyLine(file, key+" = "+value, `^\s*-?`+strings.ReplaceAll(regexp.QuoteMeta(key), `\.`, `[./]`)+`\s*=`)
}

// appliesAfter reports whether a sysctl file is applied after a drop-in named
// base: a later name, or etc/sysctl.conf (read last).
func appliesAfter(file, base string) bool {
	if file == "etc/sysctl.conf" {
		return true
	}
	return path.Base(file) > base
}

// setSSHD sets an sshd option so that it is the value sshd keeps (the first
// one it reads).
func setSSHD(s *State, c *remediate.Changer, key, value string) error {
	conf, err := s.sshd()
	if err != nil {
		return err
	}
	if conf == nil {
		return fmt.Errorf("baseline: no %s", sshdConfig)
	}
	line := key + " " + value
	d := conf.Global(key)
	ours := path.Base(vouchSSHDFile)
	if conf.IncludeAt >= 0 {
		readAfterOurs := d == nil ||
			(strings.HasPrefix(d.File, "etc/ssh/sshd_config.d/") && path.Base(d.File) > ours) ||
			(d.File == sshdConfig && d.Order >= conf.IncludeAt)
		if d != nil && d.File == vouchSSHDFile {
			readAfterOurs = true
		}
		if readAfterOurs {
			_, exists, err := c.Read(vouchSSHDFile)
			if err != nil {
				return err
			}
			if !exists {
				hdr := []byte("# sshd options set by vouch baseline remediate; read before the rest of sshd_config.\n")
				if err := c.Write(vouchSSHDFile, hdr, 0o600); err != nil {
					return err
				}
			}
			return c.SetKeyLine(vouchSSHDFile, line, `(?i)^\s*`+regexp.QuoteMeta(key)+`(\s|=)`)
		}
	}
	if d != nil {
		return replaceFirstDirective(c, d.File, key, line)
	}
	// No Include of sshd_config.d: insert before the first Match block.
	old, _, err := c.Read(sshdConfig)
	if err != nil {
		return err
	}
	ls := sysconf.Lines(string(old))
	at := len(ls)
	for i, l := range ls {
		if k, _ := sysconf.SplitSSHD(l); k == "match" {
			at = i
			break
		}
	}
	ls = append(ls[:at], append([]string{line}, ls[at:]...)...)
	return c.Write(sshdConfig, []byte(strings.Join(ls, "\n")+"\n"), 0o600)
}

func replaceFirstDirective(c *remediate.Changer, rel, key, line string) error {
	old, _, err := c.Read(rel)
	if err != nil {
		return err
	}
	ls := sysconf.Lines(string(old))
	for i, l := range ls {
		k, _ := sysconf.SplitSSHD(l)
		if k == "match" {
			break
		}
		if k == strings.ToLower(key) {
			ls[i] = line
			return c.Write(rel, []byte(strings.Join(ls, "\n")+"\n"), 0o600)
		}
	}
	return fmt.Errorf("baseline: %s: no global %s line to change", rel, key)
}

// addMountOption adds opt to the fstab entry of dir (or writes one for
// systemd's built-in /dev/shm mount).
func addMountOption(s *State, c *remediate.Changer, dir, opt string) error {
	m, err := s.mountFor(dir)
	if err != nil {
		return err
	}
	if m == nil {
		return fmt.Errorf("baseline: %s is not a separate file system", dir)
	}
	if !strings.HasPrefix(m.Source, "etc/fstab:") {
		if dir == "/dev/shm" && m.Type == "tmpfs" && strings.HasPrefix(m.Source, "systemd") {
			return c.AppendLines("etc/fstab", "", "tmpfs\t/dev/shm\ttmpfs\tdefaults,nodev,nosuid,noexec\t0\t0")
		}
		return fmt.Errorf("baseline: %s is mounted by %s; add Options= in a drop-in for it", dir, m.Source)
	}
	old, _, err := c.Read("etc/fstab")
	if err != nil {
		return err
	}
	ls := sysconf.Lines(string(old))
	changed := false
	for i, l := range ls {
		f := strings.Fields(l)
		if len(f) < 3 || strings.HasPrefix(f[0], "#") || path.Clean(sysconf.UnescapeFstab(f[1])) != dir {
			continue
		}
		if len(f) < 4 {
			f = append(f, "defaults")
		}
		opts := strings.Split(f[3], ",")
		if contains(opts, opt) {
			continue
		}
		f[3] = strings.Join(append(opts, opt), ",")
		ls[i] = strings.Join(f, "\t")
		changed = true
	}
	if !changed {
		return nil
	}
	return c.Write("etc/fstab", []byte(strings.Join(ls, "\n")+"\n"), 0o644)
}
