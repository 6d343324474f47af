package baseline

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/vouch-dev/vouch/internal/check"
	"github.com/vouch-dev/vouch/internal/remediate"
	"github.com/vouch-dev/vouch/internal/sysconf"
)

// ---- 5.4 and 7.2: accounts ------------------------------------------------------------------------

func accountRules() []Rule {
	return []Rule{
		{ID: "baseline.pass-max-days", Title: "Passwords expire within 365 days", Severity: low, References: cis("5.4.1.1"),
			Rationale: "Expiry bounds how long a stolen password stays useful.", Control: loginDef("PASS_MAX_DAYS", "<=", "365")},
		{ID: "baseline.pass-min-days", Title: "Passwords can be changed at most once a day", Severity: low, References: cis("5.4.1.2"),
			Rationale: "A minimum age stops users cycling through the history to reuse a password.", Control: loginDef("PASS_MIN_DAYS", ">=", "1")},
		{ID: "baseline.pass-warn-age", Title: "Users are warned 7 days before their password expires", Severity: info, References: cis("5.4.1.3"),
			Rationale: "A warning gives users time to choose a new password.", Control: loginDef("PASS_WARN_AGE", ">=", "7")},
		{ID: "baseline.encrypt-method", Title: "New password hashes use yescrypt or SHA-512", Severity: medium, References: cis("5.4.1.4"),
			Rationale: "chpasswd and newusers hash with ENCRYPT_METHOD; MD5 and DES are cracked quickly.", Control: loginDef("ENCRYPT_METHOD", "in", "YESCRYPT|SHA512")},
		{ID: "baseline.inactive-lock", Title: "Accounts lock 45 days or less after their password expires", Severity: low, References: cis("5.4.1.5"),
			Rationale: "Unused accounts with expired passwords should not stay usable forever.", Control: inactiveDays()},
		{ID: "baseline.password-change-past", Title: "No password was last changed in the future", Severity: low, References: cis("5.4.1.6"),
			Rationale: "A change date in the future defeats password aging.", Control: custom("Fix the date with chage -d.", lastChangePast)},
		{ID: "baseline.uid0-only-root", Title: "Only root has UID 0", Severity: high, References: cis("5.4.2.1"),
			Rationale: "Every UID 0 account is root, without root's name in the logs.", Control: custom("Remove or renumber the extra UID 0 accounts.", uid0Only)},
		{ID: "baseline.root-gid0", Title: "root's primary group is GID 0", Severity: low, References: cis("5.4.2.2"),
			Rationale: "Files root creates must belong to the root group.", Control: custom("usermod -g 0 root.", rootGID)},
		{ID: "baseline.gid0-only-root", Title: "Only the root group has GID 0", Severity: medium, References: cis("5.4.2.3"),
			Rationale: "A second GID 0 group shares root's group permissions.", Control: custom("Remove or renumber the extra GID 0 groups.", gid0Only)},
		{ID: "baseline.root-access-controlled", Title: "root has a password or is locked, never an empty one", Severity: high, References: cis("5.4.2.4"),
			Rationale: "An empty root password field lets anyone become root.", Control: custom("passwd -l root, or set a password.", rootAccess)},
		{ID: "baseline.root-path", Title: "root's PATH holds no empty, relative or writable directories", Severity: medium, References: cis("5.4.2.5"),
			Rationale: "A writable or relative directory in root's PATH lets users plant commands root will run.", Control: custom("Fix ENV_SUPATH in /etc/login.defs and root's shell start-up files.", rootPath)},
		{ID: "baseline.root-umask", Title: "root's umask is 027 or stricter", Severity: low, References: cis("5.4.2.6"),
			Rationale: "Files root creates should not be readable by everyone.", Control: rootUmask()},
		{ID: "baseline.system-accounts-nologin", Title: "System accounts have no login shell", Severity: medium, References: cis("5.4.2.7"),
			Rationale: "Service accounts never log in; a shell makes them a target.", Control: custom("usermod -s /usr/sbin/nologin for each listed account.", systemNologin)},
		{ID: "baseline.nologin-accounts-locked", Title: "Accounts without a login shell are locked", Severity: low, References: cis("5.4.2.8"),
			Rationale: "An account that cannot log in needs no usable password.", Control: custom("usermod -L for each listed account.", nologinLocked)},
		{ID: "baseline.nologin-not-in-shells", Title: "nologin is not listed in /etc/shells", Severity: low, References: cis("5.4.3.1"),
			Rationale: "Programs treat shells listed in /etc/shells as valid login shells.", Control: contentLacks([]string{"etc/shells"}, `/nologin\s*$`, "nologin listed")},
		{ID: "baseline.shell-timeout", Title: "Interactive shells time out after 15 minutes or less", Severity: low, References: cis("5.4.3.2"),
			Rationale: "An unattended root shell is an open door.", Control: shellTimeout()},
		{ID: "baseline.default-umask", Title: "The default umask is 027 or stricter", Severity: low, References: cis("5.4.3.3"),
			Rationale: "A permissive umask makes new files readable by everyone.", Control: loginDefUmask()},
		{ID: "baseline.shadowed-passwords", Title: "Every account's password is in /etc/shadow", Severity: high, References: cis("7.2.1"),
			Rationale: "/etc/passwd is world-readable; hashes there can be cracked by anyone.", Control: custom("pwconv.", shadowed)},
		{ID: "baseline.no-empty-passwords", Title: "No account has an empty password field", Severity: high, References: cis("7.2.2"),
			Rationale: "An empty password field means no password.", Control: custom("passwd -l each listed account.", noEmptyPasswords)},
		{ID: "baseline.passwd-groups-exist", Title: "Every group in /etc/passwd exists in /etc/group", Severity: low, References: cis("7.2.3"),
			Rationale: "A missing group is taken over by the next group created with that ID.", Control: custom("Create the group or change the account's group.", groupsExist)},
		{ID: "baseline.shadow-group-empty", Title: "The shadow group has no members", Severity: medium, References: cis("7.2.4"),
			Rationale: "Members of shadow can read every password hash.", Control: custom("Remove the members of group shadow.", shadowGroupEmpty)},
		{ID: "baseline.unique-uids", Title: "UIDs are unique", Severity: medium, References: cis("7.2.5"),
			Rationale: "Two accounts with one UID are one account with two passwords.", Control: custom("Renumber the duplicates.", uniq("passwd", "uid"))},
		{ID: "baseline.unique-gids", Title: "GIDs are unique", Severity: low, References: cis("7.2.6"),
			Rationale: "Two groups with one GID share their files.", Control: custom("Renumber the duplicates.", uniq("group", "gid"))},
		{ID: "baseline.unique-user-names", Title: "User names are unique", Severity: medium, References: cis("7.2.7"),
			Rationale: "A duplicate name logs in as whichever entry comes first.", Control: custom("Rename the duplicates.", uniq("passwd", "name"))},
		{ID: "baseline.unique-group-names", Title: "Group names are unique", Severity: low, References: cis("7.2.8"),
			Rationale: "A duplicate group name is ambiguous in permissions.", Control: custom("Rename the duplicates.", uniq("group", "name"))},
		{ID: "baseline.home-dirs", Title: "Interactive users' home directories exist and are theirs", Severity: low, References: cis("7.2.9"),
			Rationale: "A missing or foreign home directory lets another user control a login's start-up files.", Control: custom("Create each home directory, owned by its user, mode 0750.", homeDirs)},
		{ID: "baseline.dot-files", Title: "Users' dot files are not group- or world-writable; no .rhosts, .netrc, .forward", Severity: medium, References: cis("7.2.10"),
			Rationale: "Writable start-up files run other users' commands; .rhosts and .netrc hold credentials.", Control: custom("chmod go-w the dot files; remove .rhosts, .netrc and .forward.", dotFiles)},
		{ID: "baseline.no-legacy-plus-passwd", Title: "/etc/passwd has no legacy '+' entries", Severity: medium, References: []string{"CIS Debian 10 v1.0.0 6.2.2"},
			Rationale: "'+' entries import NIS accounts, possibly without passwords.", Control: custom("Remove the '+' lines.", noPlus("etc/passwd"))},
		{ID: "baseline.no-legacy-plus-shadow", Title: "/etc/shadow has no legacy '+' entries", Severity: medium, References: []string{"CIS Debian 10 v1.0.0 6.2.3"},
			Rationale: "'+' entries import NIS accounts, possibly without passwords.", Control: custom("Remove the '+' lines.", noPlus("etc/shadow"))},
		{ID: "baseline.no-legacy-plus-group", Title: "/etc/group has no legacy '+' entries", Severity: medium, References: []string{"CIS Debian 10 v1.0.0 6.2.5"},
			Rationale: "'+' entries import NIS groups.", Control: custom("Remove the '+' lines.", noPlus("etc/group"))},
	}
}

func inactiveDays() Control {
	return Control{
		Remedy: "Set INACTIVE=45 in /etc/default/useradd (useradd -D -f 45).",
		Audit: func(s *State) check.Result {
			m, ok, err := s.keyValues("etc/default/useradd", sysconf.ParseAssignments)
			if err != nil {
				return errorf("%v", err)
			}
			v := sysconf.KV{Value: "-1", File: "useradd default"}
			if ok {
				if x, set := m["INACTIVE"]; set {
					v = x
				}
			}
			n, err := strconv.Atoi(v.Value)
			ev := fmt.Sprintf("INACTIVE=%s (%s)", v.Value, v.File)
			if err == nil && n >= 0 && n <= 45 {
				return pass(ev, ev)
			}
			return fail(fmt.Sprintf("INACTIVE is %s, want 0 to 45 days", v.Value), ev)
		},
		Fix: func(s *State, c *remediate.Changer) error {
			return c.SetKeyLine("etc/default/useradd", "INACTIVE=45", `^\s*INACTIVE\s*=`)
		},
	}
}

func lastChangePast(s *State) check.Result {
	sh, ok, err := s.shadow()
	if err != nil {
		return errorf("%v", err)
	}
	if !ok {
		return na("no /etc/shadow")
	}
	today := int(time.Now().Unix() / 86400)
	var bad []string
	for _, e := range sh {
		if n, err := strconv.Atoi(sysconf.ShadowField(e, 0)); err == nil && n > today {
			bad = append(bad, fmt.Sprintf("%s: last change day %d is after today (%d)", e.Name, n, today))
		}
	}
	if len(bad) > 0 {
		return fail(strings.Join(bad, "; "), bad...)
	}
	return pass("no password change date lies in the future")
}

func uid0Only(s *State) check.Result {
	pw, ok, err := s.passwd()
	if err != nil {
		return errorf("%v", err)
	}
	if !ok {
		return na("no /etc/passwd")
	}
	var bad []string
	for _, e := range pw {
		if e.ValidNumbers && e.UID == 0 && e.Name != "root" {
			bad = append(bad, fmt.Sprintf("/etc/passwd:%d: %s", e.Line, e.Name))
		}
	}
	if len(bad) > 0 {
		return fail("accounts other than root with UID 0: "+strings.Join(bad, ", "), bad...)
	}
	return pass("only root has UID 0")
}

func rootGID(s *State) check.Result {
	pw, ok, err := s.passwd()
	if err != nil {
		return errorf("%v", err)
	}
	if !ok {
		return na("no /etc/passwd")
	}
	for _, e := range pw {
		if e.Name == "root" {
			if e.GID == 0 {
				return pass("root's primary group is 0")
			}
			return fail(fmt.Sprintf("root's primary group is %d, want 0", e.GID))
		}
	}
	return fail("no root account in /etc/passwd")
}

func gid0Only(s *State) check.Result {
	gr, ok, err := s.groups()
	if err != nil {
		return errorf("%v", err)
	}
	if !ok {
		return na("no /etc/group")
	}
	var bad []string
	for _, e := range gr {
		if e.ValidNumbers && e.GID == 0 && e.Name != "root" {
			bad = append(bad, e.Name)
		}
	}
	if len(bad) > 0 {
		return fail("groups other than root with GID 0: "+strings.Join(bad, ", "), bad...)
	}
	return pass("only the root group has GID 0")
}

func rootAccess(s *State) check.Result {
	sh, ok, err := s.shadow()
	if err != nil {
		return errorf("%v", err)
	}
	if !ok {
		return na("no /etc/shadow")
	}
	for _, e := range sh {
		if e.Name != "root" {
			continue
		}
		switch {
		case e.Pass == "":
			return fail("root's password field is empty: anyone can log in as root")
		case strings.HasPrefix(e.Pass, "!") || strings.HasPrefix(e.Pass, "*"):
			return pass("root is locked (" + e.Pass[:1] + ")")
		}
		return pass("root has a password hash")
	}
	return fail("no root entry in /etc/shadow")
}

func rootPath(s *State) check.Result {
	defs, _, err := s.loginDefs()
	if err != nil {
		return errorf("%v", err)
	}
	p := "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	src := "default"
	if v, ok := defs["ENV_SUPATH"]; ok {
		p, src = v.Value, fmt.Sprintf("/%s:%d ENV_SUPATH", v.File, v.Line)
	}
	p = strings.TrimPrefix(p, "PATH=")
	var bad []string
	for _, d := range strings.Split(p, ":") {
		switch {
		case d == "" || d == ".":
			bad = append(bad, "empty or '.' entry")
			continue
		case !strings.HasPrefix(d, "/"):
			bad = append(bad, d+" is relative")
			continue
		}
		info, err := s.Root.Stat(strings.TrimPrefix(d, "/"))
		if err != nil {
			continue // a missing directory cannot be planted into without creating it as root
		}
		if info.Mode().Perm()&0o022 != 0 {
			bad = append(bad, fmt.Sprintf("%s is group or world writable (%04o)", d, info.Mode().Perm()))
		}
		uid, _, err := owner(info)
		if err != nil {
			return errorf("baseline: cannot read the owner of %s: %v", d, err)
		}
		if uid != 0 {
			bad = append(bad, fmt.Sprintf("%s is owned by uid %d", d, uid))
		}
	}
	ev := []string{"root PATH " + p + " (" + src + ")"}
	if len(bad) > 0 {
		return fail(strings.Join(bad, "; "), ev...)
	}
	return pass("root's PATH is sane: "+p, ev...)
}

var umaskRe = regexp.MustCompile(`^\s*umask\s+(0?[0-7]{3})\b`)

func umaskStrict(v string) bool {
	n, err := strconv.ParseUint(v, 8, 32)
	return err == nil && n&0o027 == 0o027
}

func rootUmask() Control {
	return Control{
		Remedy: "Add `umask 027` to /root/.bash_profile and /root/.bashrc.",
		Audit: func(s *State) check.Result {
			var last, where string
			for _, f := range []string{"root/.profile", "root/.bash_profile", "root/.bashrc"} {
				text, _, err := s.readText(f)
				if err != nil {
					return errorf("%v", err)
				}
				for i, l := range sysconf.Lines(text) {
					if m := umaskRe.FindStringSubmatch(l); m != nil {
						last, where = m[1], fmt.Sprintf("/%s:%d", f, i+1)
					}
				}
			}
			if last == "" {
				return loginDefUmask().Audit(s)
			}
			if umaskStrict(last) {
				return pass("root's umask is "+last, where)
			}
			return fail("root's umask is "+last+", want 027 or stricter", where)
		},
	}
}

func loginDefUmask() Control {
	return Control{
		Remedy: "Set UMASK 027 in /etc/login.defs.",
		Audit: func(s *State) check.Result {
			defs, ok, err := s.loginDefs()
			if err != nil {
				return errorf("%v", err)
			}
			if !ok {
				return na("no /etc/login.defs")
			}
			v, set := defs["UMASK"]
			if !set {
				return fail("UMASK is not set in /etc/login.defs (pam_umask default 022); want 027 or stricter")
			}
			ev := fmt.Sprintf("/%s:%d UMASK %s", v.File, v.Line, v.Value)
			if umaskStrict(v.Value) {
				return pass("UMASK "+v.Value, ev)
			}
			return fail("UMASK is "+v.Value+", want 027 or stricter", ev)
		},
		Fix: func(s *State, c *remediate.Changer) error {
			return c.SetKeyLine("etc/login.defs", "UMASK\t\t027", `^\s*UMASK\s`)
		},
	}
}

func shellTimeout() Control {
	files := []string{"etc/profile", "etc/bash.bashrc", "etc/profile.d/*.sh"}
	return Control{
		Remedy: "Add `readonly TMOUT=900; export TMOUT` to /etc/profile.d/60-vouch-tmout.sh.",
		Audit: func(s *State) check.Result {
			re := regexp.MustCompile(`^\s*(readonly\s+|export\s+|typeset\s+-xr\s+|declare\s+-[a-z]*r[a-z]*\s+)?TMOUT=(\d+)`)
			for _, f := range s.expand(files) {
				text, _, err := s.readText(f)
				if err != nil {
					return errorf("%v", err)
				}
				for i, l := range sysconf.Lines(text) {
					if m := re.FindStringSubmatch(l); m != nil {
						n, _ := strconv.Atoi(m[2])
						ev := fmt.Sprintf("/%s:%d: %s", f, i+1, strings.TrimSpace(l))
						if n > 0 && n <= 900 {
							return pass(fmt.Sprintf("TMOUT=%d", n), ev)
						}
						return fail(fmt.Sprintf("TMOUT=%d, want 1 to 900", n), ev)
					}
				}
			}
			return fail("TMOUT is not set in /etc/profile, /etc/bash.bashrc or /etc/profile.d; want 900 or less")
		},
		Fix: func(s *State, c *remediate.Changer) error {
			return c.Write("etc/profile.d/60-vouch-tmout.sh", []byte("# Set by vouch baseline remediate: idle shells end after 15 minutes.\nreadonly TMOUT=900\nexport TMOUT\n"), 0o644)
		},
	}
}

// interactive returns the accounts with a login shell.
func (s *State) interactive() ([]sysconf.Account, error) {
	pw, _, err := s.passwd()
	if err != nil {
		return nil, err
	}
	var out []sysconf.Account
	for _, e := range pw {
		if e.Legacy || e.Bad || !validShell(e.Shell) {
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

func validShell(sh string) bool {
	return sh != "" && !strings.HasSuffix(sh, "/nologin") && !strings.HasSuffix(sh, "/false") && sh != "/bin/sync"
}

func (s *State) uidMin() int {
	defs, _, _ := s.loginDefs()
	if v, ok := defs["UID_MIN"]; ok {
		if n, err := strconv.Atoi(v.Value); err == nil {
			return n
		}
	}
	return 1000
}

func systemNologin(s *State) check.Result {
	pw, ok, err := s.passwd()
	if err != nil {
		return errorf("%v", err)
	}
	if !ok {
		return na("no /etc/passwd")
	}
	min := s.uidMin()
	var bad []string
	for _, e := range pw {
		if e.Legacy || e.Bad || !e.ValidNumbers {
			continue
		}
		switch e.Name {
		case "root", "sync", "shutdown", "halt":
			continue
		}
		if (e.UID < min || e.UID == 65534) && validShell(e.Shell) {
			bad = append(bad, fmt.Sprintf("%s (uid %d) has shell %s", e.Name, e.UID, e.Shell))
		}
	}
	if len(bad) > 0 {
		return fail(fmt.Sprintf("%d system accounts have a login shell", len(bad)), bad...)
	}
	return pass("no system account has a login shell")
}

func nologinLocked(s *State) check.Result {
	pw, ok, err := s.passwd()
	if err != nil {
		return errorf("%v", err)
	}
	sh, sok, err := s.shadow()
	if err != nil {
		return errorf("%v", err)
	}
	if !ok || !sok {
		return na("no /etc/passwd or /etc/shadow")
	}
	hash := map[string]string{}
	for _, e := range sh {
		hash[e.Name] = e.Pass
	}
	var bad []string
	for _, e := range pw {
		if e.Legacy || e.Bad || validShell(e.Shell) || e.Name == "root" {
			continue
		}
		h, ok := hash[e.Name]
		if ok && !strings.HasPrefix(h, "!") && !strings.HasPrefix(h, "*") {
			bad = append(bad, e.Name)
		}
	}
	if len(bad) > 0 {
		return fail("accounts without a login shell that are not locked: "+strings.Join(bad, ", "), bad...)
	}
	return pass("every account without a login shell is locked")
}

func homeDirs(s *State) check.Result {
	users, err := s.interactive()
	if err != nil {
		return errorf("%v", err)
	}
	var bad, ev []string
	for _, u := range users {
		if u.Home == "" || u.Home == "/" {
			continue
		}
		info, err := s.Root.Stat(strings.TrimPrefix(u.Home, "/"))
		if err != nil {
			bad = append(bad, u.Name+": "+u.Home+" does not exist")
			continue
		}
		ev = append(ev, fmt.Sprintf("%s: %s %04o", u.Name, u.Home, info.Mode().Perm()))
		uid, _, err := owner(info)
		if err != nil {
			return errorf("baseline: cannot read the owner of %s: %v", u.Home, err)
		}
		if int(uid) != u.UID {
			bad = append(bad, fmt.Sprintf("%s: %s is owned by uid %d", u.Name, u.Home, uid))
		}
		if info.Mode().Perm()&0o027 != 0 {
			bad = append(bad, fmt.Sprintf("%s: %s has mode %04o, want 0750 or stricter", u.Name, u.Home, info.Mode().Perm()))
		}
	}
	if len(bad) > 0 {
		return fail(strings.Join(bad, "; "), append(bad, ev...)...)
	}
	return pass(fmt.Sprintf("%d interactive users' home directories are in order", len(users)), ev...)
}

func dotFiles(s *State) check.Result {
	users, err := s.interactive()
	if err != nil {
		return errorf("%v", err)
	}
	var bad []string
	for _, u := range users {
		home := strings.TrimPrefix(u.Home, "/")
		if home == "" {
			continue
		}
		ents, err := s.Root.ReadDir(home)
		if err != nil {
			continue
		}
		for _, e := range ents {
			n := e.Name()
			if !strings.HasPrefix(n, ".") {
				continue
			}
			switch n {
			case ".rhosts", ".netrc", ".forward", ".shosts":
				bad = append(bad, "/"+home+"/"+n+" exists")
				continue
			}
			info, err := e.Info()
			if err != nil || !info.Mode().IsRegular() {
				continue
			}
			if info.Mode().Perm()&0o022 != 0 {
				bad = append(bad, fmt.Sprintf("/%s/%s is group or world writable (%04o)", home, n, info.Mode().Perm()))
			}
		}
	}
	if len(bad) > 0 {
		return fail(strings.Join(bad, "; "), bad...)
	}
	return pass(fmt.Sprintf("dot files of %d interactive users are in order", len(users)))
}

func noPlus(file string) Audit {
	return func(s *State) check.Result {
		var ents []sysconf.Account
		var ok bool
		var err error
		switch file {
		case "etc/passwd":
			ents, ok, err = s.passwd()
		case "etc/shadow":
			ents, ok, err = s.shadow()
		default:
			ents, ok, err = s.groups()
		}
		if err != nil {
			return errorf("%v", err)
		}
		if !ok {
			return na("no /" + file)
		}
		var bad []string
		for _, e := range ents {
			if strings.HasPrefix(e.Raw, "+") {
				bad = append(bad, fmt.Sprintf("/%s:%d: %s", file, e.Line, e.Raw))
			}
		}
		if len(bad) > 0 {
			return fail("legacy NIS entries: "+strings.Join(bad, "; "), bad...)
		}
		return pass("no '+' entries in /" + file)
	}
}
