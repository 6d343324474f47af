package baseline

import (
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/vouch-dev/vouch/internal/check"
	"github.com/vouch-dev/vouch/internal/remediate"
	"github.com/vouch-dev/vouch/internal/sysconf"
)

// expand replaces glob patterns in files by their sorted matches.
func (s *State) expand(files []string) []string {
	var out []string
	for _, f := range files {
		if !strings.ContainsAny(f, "*?[") {
			out = append(out, f)
			continue
		}
		m, _ := fs.Glob(s.Root, f)
		sort.Strings(m)
		out = append(out, m...)
	}
	return out
}

func aptSigned() Control {
	return Control{
		Remedy: "Remove trusted=yes and AllowInsecureRepositories; give each source a signed-by keyring.",
		Audit: func(s *State) check.Result {
			files := s.expand([]string{"etc/apt/sources.list", "etc/apt/sources.list.d/*.list", "etc/apt/sources.list.d/*.sources", "etc/apt/apt.conf.d/*"})
			var bad []string
			sources := 0
			re := regexp.MustCompile(`(?i)(trusted\s*=\s*yes|trusted:\s*yes|AllowInsecureRepositories\s+"?(true|1|yes)|AllowUnauthenticated\s+"?(true|1|yes))`)
			for _, f := range files {
				text, ok, err := s.readText(f)
				if err != nil {
					return errorf("%v", err)
				}
				if !ok {
					continue
				}
				for i, l := range sysconf.Lines(text) {
					t := strings.TrimSpace(l)
					if t == "" || t[0] == '#' {
						continue
					}
					if strings.HasPrefix(t, "deb") || strings.HasPrefix(t, "URIs:") {
						sources++
					}
					if re.MatchString(t) {
						bad = append(bad, fmt.Sprintf("/%s:%d: %s", f, i+1, t))
					}
				}
			}
			if len(bad) > 0 {
				return fail("APT accepts unsigned packages: "+bad[0], bad...)
			}
			if sources == 0 {
				return pass("no APT sources are configured (nothing unsigned can be installed)")
			}
			return pass(fmt.Sprintf("%d APT sources, none marked trusted or insecure", sources))
		},
	}
}

func apparmorBoot() Control {
	c := cmdlineLacks("apparmor=0", "security=selinux", "security=smack", "security=tomoyo")
	inner := c.Audit
	c.Audit = func(s *State) check.Result {
		r := inner(s)
		if r.Status == "pass" {
			kc, _ := s.kernelConfig()
			if kc != nil && kc.Values["CONFIG_SECURITY_APPARMOR"] != "y" {
				return fail("the kernel has no AppArmor (CONFIG_SECURITY_APPARMOR is not y)", "/"+kc.File)
			}
			if kc != nil && !strings.Contains(kc.Values["CONFIG_LSM"], "apparmor") && kc.Values["CONFIG_DEFAULT_SECURITY_APPARMOR"] != "y" {
				if c, _ := s.kernelCmdline(); c == nil || !strings.Contains(strings.Join(c.Args, " "), "apparmor=1") {
					return fail("AppArmor is not in the kernel's default LSM list and not enabled on the command line", "/"+kc.File+": CONFIG_LSM="+kc.Values["CONFIG_LSM"])
				}
			}
			r.Message = "AppArmor is enabled by default and not disabled on the kernel command line"
		}
		return r
	}
	return c
}

func apparmorProfiles(s *State) check.Result {
	ents, err := s.Root.ReadDir("etc/apparmor.d")
	if err != nil {
		return fail("no /etc/apparmor.d directory")
	}
	n := 0
	for _, e := range ents {
		if !e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			n++
		}
	}
	if n == 0 {
		return fail("no AppArmor profiles in /etc/apparmor.d")
	}
	return pass(fmt.Sprintf("%d AppArmor profiles in /etc/apparmor.d", n))
}

var grubCfgs = []string{"boot/grub/grub.cfg", "boot/grub2/grub.cfg"}

func grubPassword() Control {
	return Control{
		Remedy: "Set a superuser with grub-mkpasswd-pbkdf2 in /etc/grub.d/40_custom (set superusers=...; password_pbkdf2 ...) and run update-grub.",
		Audit: func(s *State) check.Result {
			files := append([]string{}, grubCfgs...)
			files = append(files, "boot/grub/user.cfg", "boot/grub2/user.cfg")
			found := false
			var su, pw string
			for _, f := range files {
				text, ok, err := s.readText(f)
				if err != nil {
					return errorf("%v", err)
				}
				if !ok {
					continue
				}
				found = true
				for i, l := range sysconf.Lines(text) {
					t := strings.TrimSpace(l)
					if strings.HasPrefix(t, "set superusers=") {
						su = fmt.Sprintf("/%s:%d", f, i+1)
					}
					if strings.HasPrefix(t, "password_pbkdf2 ") || strings.HasPrefix(t, "GRUB2_PASSWORD=") {
						pw = fmt.Sprintf("/%s:%d", f, i+1)
					}
				}
			}
			if !found {
				return na("no GRUB configuration (boot/grub/grub.cfg) in the root")
			}
			if su != "" && pw != "" {
				return pass("GRUB has a superuser with a password", su, pw)
			}
			return fail("GRUB has no superuser password (set superusers and password_pbkdf2)")
		},
	}
}

func grubPerms() Control {
	return Control{
		Remedy: "chmod 0600 and chown root:root /boot/grub/grub.cfg.",
		Audit: func(s *State) check.Result {
			for _, f := range grubCfgs {
				if s.exists(f) {
					return s.auditMode(f, 0o600, "root", []string{"root"})
				}
			}
			return na("no GRUB configuration (boot/grub/grub.cfg) in the root")
		},
		Fix: func(s *State, c *remediate.Changer) error {
			for _, f := range grubCfgs {
				if s.exists(f) {
					return fixMode(s, c, f, 0o600, "root", []string{"root"})
				}
			}
			return nil
		},
	}
}

const vouchLimitsFile = "etc/security/limits.d/60-vouch.conf"

func coreLimits() Control {
	return Control{
		Remedy: "Add `* hard core 0` to /" + vouchLimitsFile + ".",
		Audit: func(s *State) check.Result {
			files := s.expand([]string{"etc/security/limits.conf", "etc/security/limits.d/*.conf"})
			re := regexp.MustCompile(`^\s*\*\s+hard\s+core\s+0\s*$`)
			for _, f := range files {
				text, _, err := s.readText(f)
				if err != nil {
					return errorf("%v", err)
				}
				for i, l := range sysconf.Lines(text) {
					if re.MatchString(l) {
						return pass("hard core limit is 0 for all users", fmt.Sprintf("/%s:%d", f, i+1))
					}
				}
			}
			return fail("no `* hard core 0` in /etc/security/limits.conf or limits.d")
		},
		Fix: func(s *State, c *remediate.Changer) error {
			return c.AppendLines(vouchLimitsFile, "# Set by vouch baseline remediate: no core dumps.", "*\thard\tcore\t0")
		},
	}
}

// bannerClean fails when a banner shows the OS name or getty escapes for the
// OS and kernel; the fix writes a plain legal notice.
func bannerClean(name, text string) Control {
	return Control{
		Remedy: "Replace /" + name + " with a legal notice that names no OS or version.",
		Audit: func(s *State) check.Result {
			b, ok, err := s.readText(name)
			if err != nil {
				return errorf("%v", err)
			}
			if !ok {
				return na("/" + name + " does not exist")
			}
			var os string
			if o := s.OS(); o != nil && len(o.ids) > 0 {
				os = o.ids[0]
			}
			re := regexp.MustCompile(`(\\[mrsv])`)
			if m := re.FindString(b); m != "" {
				return fail(fmt.Sprintf("/%s shows system information (%s)", name, m), strings.TrimSpace(firstLine(b)))
			}
			if os != "" && os != "linux" && strings.Contains(strings.ToLower(b), os) {
				return fail(fmt.Sprintf("/%s names the OS (%s)", name, os), strings.TrimSpace(firstLine(b)))
			}
			return pass("/" + name + " reveals no OS information")
		},
		Fix: func(s *State, c *remediate.Changer) error {
			return c.Write(name, []byte(text+"\n"), 0o644)
		},
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func nxEnabled() Control {
	return Control{
		Remedy: "NX cannot be turned on by configuration: use a 64-bit (or PAE) kernel on a CPU with NX and remove noexec=off from the command line.",
		Audit: func(s *State) check.Result {
			if s.Live {
				text, ok, err := s.readText("proc/cpuinfo")
				if err != nil {
					return errorf("%v", err)
				}
				if ok {
					for _, l := range sysconf.Lines(text) {
						if strings.HasPrefix(l, "flags") {
							if strings.Contains(" "+l+" ", " nx ") {
								return pass("the CPU has NX and the running kernel uses it", "/proc/cpuinfo flags: nx")
							}
							return fail("the running kernel does not show the nx CPU flag", "/proc/cpuinfo")
						}
					}
				}
			}
			c, err := s.kernelCmdline()
			if err != nil {
				return errorf("%v", err)
			}
			if c != nil {
				if v, ok := c.Param("noexec"); ok && v == "off" {
					return fail("kernel command line has noexec=off", "source: "+c.Source)
				}
			}
			kc, err := s.kernelConfig()
			if err != nil {
				return errorf("%v", err)
			}
			if kc == nil {
				return na("no kernel configuration (boot/config-*); NX support cannot be shown offline")
			}
			for _, k := range []string{"CONFIG_X86_64", "CONFIG_X86_PAE", "CONFIG_ARM64"} {
				if kc.Values[k] == "y" {
					return pass("the kernel supports NX ("+k+"=y) and it is not disabled on the command line (offline: from the boot configuration)", "/"+kc.File+": "+k+"=y")
				}
			}
			return fail("the kernel is neither 64-bit nor PAE: no NX page protection", "/"+kc.File)
		},
	}
}

func mtaLocal() Control {
	return Control{
		Remedy: "Set inet_interfaces = loopback-only (postfix) or dc_local_interfaces='127.0.0.1 ; ::1' (exim4).",
		Audit: func(s *State) check.Result {
			got, haveDB, err := s.installedAny("postfix", "exim4-daemon-light", "exim4-daemon-heavy", "sendmail-bin")
			if err != nil {
				return errorf("%v", err)
			}
			if haveDB && len(got) == 0 {
				return na("no mail transfer agent is installed")
			}
			if text, ok, err := s.readText("etc/postfix/main.cf"); err != nil {
				return errorf("%v", err)
			} else if ok {
				v := "all"
				for _, l := range sysconf.Lines(text) {
					if k, val, ok := strings.Cut(l, "="); ok && strings.TrimSpace(k) == "inet_interfaces" {
						v = strings.TrimSpace(val)
					}
				}
				if v == "loopback-only" || v == "localhost" || v == "127.0.0.1" {
					return pass("postfix inet_interfaces = " + v)
				}
				return fail("postfix inet_interfaces = "+v+", want loopback-only", "/etc/postfix/main.cf")
			}
			if text, ok, err := s.readText("etc/exim4/update-exim4.conf.conf"); err != nil {
				return errorf("%v", err)
			} else if ok {
				for _, l := range sysconf.Lines(text) {
					if strings.HasPrefix(l, "dc_local_interfaces=") {
						v := strings.Trim(strings.TrimPrefix(l, "dc_local_interfaces="), `'"`)
						for _, a := range strings.Split(v, ";") {
							a = strings.TrimSpace(a)
							if a != "127.0.0.1" && a != "::1" && a != "" {
								return fail("exim4 listens on "+a, "/etc/exim4/update-exim4.conf.conf")
							}
						}
						return pass("exim4 listens on loopback only: " + v)
					}
				}
				return fail("exim4 dc_local_interfaces is not set (listens on all interfaces)")
			}
			return na("no postfix or exim4 configuration")
		},
	}
}

func timeSyncSingle() Control {
	return Control{
		Remedy: "Enable exactly one of systemd-timesyncd or chrony (apt-get install chrony removes timesyncd).",
		Audit: func(s *State) check.Result {
			var on []string
			for _, u := range []string{"systemd-timesyncd.service", "chrony.service", "ntp.service", "ntpsec.service", "openntpd.service"} {
				st, err := s.unit(u)
				if err != nil {
					return errorf("%v", err)
				}
				if st.Enabled && !st.Masked {
					on = append(on, u)
				}
			}
			switch len(on) {
			case 0:
				return fail("no time synchronisation daemon is enabled (systemd-timesyncd, chrony, ntp)")
			case 1:
				return pass(on[0]+" keeps the time", on...)
			}
			return fail("several time daemons are enabled: "+strings.Join(on, ", "), on...)
		},
	}
}

func chronyServers() Control {
	return contentMatches([]string{"etc/chrony/chrony.conf", "etc/chrony/sources.d/*.sources", "etc/chrony/conf.d/*.conf", "etc/chrony.conf"},
		`^\s*(server|pool|sourcedir)\s+\S+`, "names a server, pool or sourcedir", fail("no chrony configuration"))
}

// restrictedAllow passes when allow exists (0640 or stricter, root) or, in its
// absence, deny does not exist (then only root may use the tool).
func restrictedAllow(allow, deny string) Control {
	return Control{
		Remedy: "Create /" + allow + " (0640 root:root) listing the allowed users; remove /" + deny + ".",
		Audit: func(s *State) check.Result {
			if s.exists(allow) {
				r := s.auditMode(allow, 0o640, "root", []string{"root", "crontab", "daemon"})
				if r.Status == "pass" {
					r.Message = "/" + allow + " restricts use: " + r.Message
				}
				return r
			}
			if s.exists(deny) {
				return fail("/"+allow+" does not exist and /"+deny+" does: every user not listed may schedule jobs", "/"+deny)
			}
			return pass("neither /" + allow + " nor /" + deny + " exists: only root may schedule jobs")
		},
	}
}

func sshdAccessLimited(s *State) check.Result {
	conf, err := s.sshd()
	if err != nil {
		return errorf("%v", err)
	}
	if conf == nil {
		return na("no " + sshdConfig)
	}
	for _, k := range []string{"allowusers", "allowgroups", "denyusers", "denygroups"} {
		if d := conf.Global(k); d != nil {
			return pass(fmt.Sprintf("%s %s", d.Key, strings.Join(d.Args, " ")), fmt.Sprintf("%s:%d", d.File, d.Line))
		}
	}
	return fail("no AllowUsers, AllowGroups, DenyUsers or DenyGroups: every account may try to log in")
}

// ---- whole-tree scans --------------------------------------------------------------------------

// skipTree are virtual or volatile trees never walked.
var skipTree = map[string]bool{"proc": true, "sys": true, "dev": true, "run": true, remediate.BackupRoot: true}

type treeEntry struct {
	Path     string
	Mode     fs.FileMode
	UID, GID uint32
	// OwnerErr says why UID and GID are unknown: the entry's inode or its
	// directory could not be read.
	OwnerErr error
}

// tree walks the whole root once: every entry's mode and owner.
func (s *State) tree() ([]treeEntry, error) {
	return cached(s, "tree", func() ([]treeEntry, error) {
		var out []treeEntry
		err := fs.WalkDir(s.Root, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if p == "." {
					return err
				}
				// An unreadable directory or inode: what is below it is
				// unknown, which the owner audit reports.
				out = append(out, treeEntry{Path: p, OwnerErr: err})
				return nil
			}
			if d.IsDir() && skipTree[p] {
				return fs.SkipDir
			}
			if p == "." {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				out = append(out, treeEntry{Path: p, OwnerErr: err})
				return nil
			}
			e := treeEntry{Path: p, Mode: info.Mode()}
			e.UID, e.GID, e.OwnerErr = owner(info)
			out = append(out, e)
			return nil
		})
		return out, err
	})
}

func walkRoot(s *State, under string, f func(p string, mode uint32, uid, gid uint32), regularOnly bool) error {
	t, err := s.tree()
	if err != nil {
		return err
	}
	for _, e := range t {
		if !strings.HasPrefix(e.Path, under+"/") {
			continue
		}
		if regularOnly && !e.Mode.IsRegular() {
			continue
		}
		f(e.Path, unixMode(e.Mode), e.UID, e.GID)
	}
	return nil
}

func worldWritable(s *State) check.Result {
	t, err := s.tree()
	if err != nil {
		return errorf("%v", err)
	}
	var bad []string
	for _, e := range t {
		if e.Mode&fs.ModeSymlink != 0 || e.Mode.Perm()&0o002 == 0 {
			continue
		}
		if e.Mode.IsDir() && e.Mode&fs.ModeSticky != 0 {
			continue
		}
		if e.Mode.IsRegular() || e.Mode.IsDir() {
			bad = append(bad, fmt.Sprintf("/%s %04o", e.Path, unixMode(e.Mode)))
		}
	}
	if len(bad) > 0 {
		return fail(fmt.Sprintf("%d world-writable files or non-sticky directories", len(bad)), bad...)
	}
	return pass(fmt.Sprintf("no world-writable file among %d entries", len(t)))
}

func unowned(s *State) check.Result {
	t, err := s.tree()
	if err != nil {
		return errorf("%v", err)
	}
	pw, _, _ := s.passwd()
	gr, _, _ := s.groups()
	users, groups := map[uint32]bool{}, map[uint32]bool{}
	for _, e := range pw {
		users[uint32(e.UID)] = true
	}
	for _, e := range gr {
		groups[uint32(e.GID)] = true
	}
	var bad, unknown []string
	for _, e := range t {
		if e.OwnerErr != nil {
			unknown = append(unknown, fmt.Sprintf("/%s: %v", e.Path, e.OwnerErr))
			continue
		}
		if !users[e.UID] || !groups[e.GID] {
			bad = append(bad, fmt.Sprintf("/%s %d:%d", e.Path, e.UID, e.GID))
		}
	}
	if len(unknown) > 0 {
		return errorf("baseline: cannot read the owner of %d entries: %s", len(unknown), strings.Join(unknown[:min(len(unknown), 5)], "; "))
	}
	if len(bad) > 0 {
		return fail(fmt.Sprintf("%d files owned by a user or group that does not exist", len(bad)), bad...)
	}
	return pass(fmt.Sprintf("all %d entries have an existing owner and group", len(t)))
}

// knownSUID are the set-user-ID and set-group-ID programs Debian 12 and the
// common cloud images ship.
var knownSUID = map[string]bool{
	"usr/bin/chfn": true, "usr/bin/chsh": true, "usr/bin/gpasswd": true, "usr/bin/mount": true, "usr/bin/newgrp": true,
	"usr/bin/passwd": true, "usr/bin/su": true, "usr/bin/umount": true, "usr/bin/sudo": true, "usr/bin/chage": true,
	"usr/bin/expiry": true, "usr/bin/crontab": true, "usr/bin/ssh-agent": true, "usr/sbin/unix_chkpwd": true,
	"usr/lib/openssh/ssh-keysign": true, "usr/lib/dbus-1.0/dbus-daemon-launch-helper": true, "usr/bin/fusermount": true,
	"usr/bin/fusermount3": true, "usr/lib/polkit-1/polkit-agent-helper-1": true, "usr/bin/pkexec": true, "usr/bin/wall": true,
	"usr/bin/write.ul": true, "usr/bin/bsd-write": true, "usr/bin/at": true, "usr/sbin/pppd": true, "usr/bin/dotlockfile": true,
	"usr/bin/ntfs-3g": true, "usr/lib/x86_64-linux-gnu/utempter/utempter": true, "usr/sbin/postdrop": true, "usr/sbin/postqueue": true,
	"usr/bin/ping": true, "usr/bin/traceroute6.iputils": true, "usr/bin/mlocate": true, "usr/bin/plocate": true,
}

func suidKnown(s *State) check.Result {
	t, err := s.tree()
	if err != nil {
		return errorf("%v", err)
	}
	var unknown, all []string
	for _, e := range t {
		if !e.Mode.IsRegular() || e.Mode&(fs.ModeSetuid|fs.ModeSetgid) == 0 {
			continue
		}
		p := e.Path
		for _, pre := range []string{"bin/", "sbin/", "lib/"} {
			if strings.HasPrefix(p, pre) {
				p = "usr/" + p
			}
		}
		all = append(all, fmt.Sprintf("/%s %04o", e.Path, unixMode(e.Mode)))
		if !knownSUID[p] && !knownSUID[path.Clean(p)] {
			unknown = append(unknown, fmt.Sprintf("/%s %04o", e.Path, unixMode(e.Mode)))
		}
	}
	if len(unknown) > 0 {
		return fail(fmt.Sprintf("%d set-user-ID/set-group-ID programs are not among the distribution's usual ones", len(unknown)), append(unknown, all...)...)
	}
	return pass(fmt.Sprintf("%d set-user-ID/set-group-ID programs, all usual", len(all)), all...)
}
