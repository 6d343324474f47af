package sysconf

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/vouch-dev/vouch/internal/testfixtures"
)

var update = flag.Bool("update", false, "rebuild the fuzz seed corpora from the Debian fixture root")

// seedMax bounds a seed cut from a large file (the kernel configuration,
// modules.dep): its first lines up to 16 KiB.
const seedMax = 16 << 10

// seed is one corpus file cut from a file of the fixture root, and what the
// parser must read from it. path may be a glob (one match is used), so no
// kernel version is named here.
type seed struct {
	target, name, path string
	check              func(text string) error
}

var seeds = []seed{
	{"FuzzSSHD", "sshd_config", "etc/ssh/sshd_config", func(text string) error {
		m := fstest.MapFS{"etc/ssh/sshd_config": {Data: []byte(text)}}
		c, err := ReadSSHD(m, readMap(m), "etc/ssh/sshd_config")
		if err != nil {
			return err
		}
		if c.IncludeAt != 0 || c.Global("UsePAM") == nil {
			return fmt.Errorf("IncludeAt %d, %d directives", c.IncludeAt, len(c.All))
		}
		if v, where := c.Effective("X11Forwarding"); v != "yes" || !strings.HasPrefix(where, "etc/ssh/sshd_config:") {
			return fmt.Errorf("X11Forwarding %q from %s", v, where)
		}
		return nil
	}},
	{"FuzzSysctl", "99-protect-links.conf", "usr/lib/sysctl.d/99-protect-links.conf", func(text string) error {
		for _, s := range ParseSysctl("f", text) {
			if s.Matches("fs.protected_symlinks") && s.Value == "1" {
				return nil
			}
		}
		return fmt.Errorf("no fs.protected_symlinks = 1")
	}},
	{"FuzzSysctl", "50-pid-max.conf", "usr/lib/sysctl.d/50-pid-max.conf", func(text string) error {
		if s := ParseSysctl("f", text); len(s) != 1 || s[0].Key != "kernel.pid_max" {
			return fmt.Errorf("settings %+v", s)
		}
		return nil
	}},
	{"FuzzSysctl", "sysctl.conf", "etc/sysctl.conf", func(text string) error {
		if s := ParseSysctl("f", text); len(s) != 0 {
			return fmt.Errorf("Debian's sysctl.conf is all comments, got %+v", s)
		}
		return nil
	}},
	{"FuzzLoginDefs", "login.defs", "etc/login.defs", func(text string) error {
		m := ParseLoginDefs("etc/login.defs", text)
		if m["PASS_MAX_DAYS"].Value != "99999" || m["UMASK"].Value != "022" || m["ENCRYPT_METHOD"].Value != "SHA512" {
			return fmt.Errorf("PASS_MAX_DAYS %+v UMASK %+v ENCRYPT_METHOD %+v", m["PASS_MAX_DAYS"], m["UMASK"], m["ENCRYPT_METHOD"])
		}
		return nil
	}},
	{"FuzzConfValue", "faillock.conf", "etc/security/faillock.conf", func(text string) error {
		if v, ok := ConfValue("f", text, "deny"); ok {
			return fmt.Errorf("deny is commented out in Debian's faillock.conf, got %+v", v)
		}
		return nil
	}},
	{"FuzzINI", "journald.conf", "etc/systemd/journald.conf", func(text string) error {
		if v, ok := INIValue("f", text, "Journal", "Storage"); ok {
			return fmt.Errorf("Storage is commented out in Debian's journald.conf, got %+v", v)
		}
		return nil
	}},
	{"FuzzINI", "dev-hugepages.mount", "usr/lib/systemd/system/dev-hugepages.mount", func(text string) error {
		if v, ok := INIValue("f", text, "Mount", "Type"); !ok || v.Value != "hugetlbfs" {
			return fmt.Errorf("[Mount] Type = %+v", v)
		}
		return nil
	}},
	{"FuzzFstab", "fstab", "etc/fstab", func(text string) error {
		ms, err := ParseFstab("etc/fstab", text)
		if err != nil {
			return err
		}
		if len(ms) != 2 || ms[0].Dir != "/" || ms[0].Type != "ext4" || ms[1].Dir != "/boot/efi" {
			return fmt.Errorf("mounts %+v", ms)
		}
		return nil
	}},
	{"FuzzFstab", "dev-hugepages.mount", "usr/lib/systemd/system/dev-hugepages.mount", func(text string) error {
		if m := ParseMountUnit("u", "/dev/hugepages", text); m.Spec != "hugetlbfs" || m.Type != "hugetlbfs" {
			return fmt.Errorf("mount %+v", m)
		}
		return nil
	}},
	{"FuzzModprobe", "fbdev-blacklist.conf", "usr/lib/modprobe.d/fbdev-blacklist.conf", func(text string) error {
		rs := ParseModprobe("f", text)
		if len(rs) < 10 || rs[0].Kind != "blacklist" {
			return fmt.Errorf("%d rules, first %+v", len(rs), rs)
		}
		return nil
	}},
	{"FuzzModprobe", "systemd.conf", "usr/lib/modprobe.d/systemd.conf", nil},
	{"FuzzModprobe", "modules.dep", "lib/modules/*/modules.dep", func(text string) error {
		for _, l := range Lines(text) {
			p, _, _ := strings.Cut(l, ":")
			if m := ModuleFromPath(p); m == "" || strings.ContainsAny(m, "-/.") {
				return fmt.Errorf("module %q from %q", m, l)
			}
		}
		return nil
	}},
	{"FuzzAccounts", "passwd", "etc/passwd", func(text string) error {
		es := ParsePasswd(text)
		if len(es) < 10 || es[0].Name != "root" || es[0].UID != 0 || !es[0].ValidNumbers {
			return fmt.Errorf("%d entries, first %+v", len(es), es[0])
		}
		return nil
	}},
	{"FuzzAccounts", "group", "etc/group", func(text string) error {
		if es := ParseGroup(text); len(es) < 10 || es[0].Name != "root" || es[0].GID != 0 {
			return fmt.Errorf("%d entries", len(es))
		}
		return nil
	}},
	{"FuzzAccounts", "shadow", "etc/shadow", func(text string) error {
		for _, e := range ParseShadow(text) {
			if e.Name == "root" && ShadowField(e, 2) == "99999" {
				return nil
			}
		}
		return fmt.Errorf("no root entry with a maximum age of 99999")
	}},
	{"FuzzKconfig", "config", "boot/config-*", func(text string) error {
		if m := ParseKconfig(text); len(m) < 100 {
			return fmt.Errorf("%d options", len(m))
		}
		return nil
	}},
	{"FuzzPAM", "common-auth", "etc/pam.d/common-auth", func(text string) error {
		for _, r := range ParsePAM("common-auth", text) {
			if r.Uses("auth", "pam_unix.so") && r.Control == "[success=1 default=ignore]" && strings.Join(r.Args, " ") == "nullok" {
				return nil
			}
		}
		return fmt.Errorf("no auth [success=1 default=ignore] pam_unix.so nullok in %+v", ParsePAM("common-auth", text))
	}},
	{"FuzzPAM", "common-password", "etc/pam.d/common-password", func(text string) error {
		rs := ParsePAM("common-password", text)
		if len(rs) == 0 || !rs[0].Uses("password", "pam_unix.so") || strings.Join(rs[0].Args, " ") != "obscure yescrypt" {
			return fmt.Errorf("rules %+v", rs)
		}
		return nil
	}},
	{"FuzzPAM", "sshd", "etc/pam.d/sshd", func(text string) error {
		var inc []string
		for _, r := range ParsePAM("sshd", text) {
			if r.Bad {
				return fmt.Errorf("bad line %d", r.Line)
			}
			if r.Include != "" {
				inc = append(inc, r.Include)
			}
		}
		if strings.Join(inc, " ") != "common-auth common-account common-session common-password" {
			return fmt.Errorf("includes %q", inc)
		}
		return nil
	}},
	{"FuzzPAM", "su", "etc/pam.d/su", func(text string) error {
		for _, r := range ParsePAM("su", text) {
			if r.Module == "pam_wheel.so" {
				return fmt.Errorf("pam_wheel is commented out in Debian's su stack, got line %d", r.Line)
			}
		}
		return nil
	}},
}

func corpusPath(target, name string) string { return filepath.Join("testdata", "fuzz", target, name) }

// cut returns the first lines of b up to seedMax bytes.
func cut(b []byte) []byte {
	if len(b) <= seedMax {
		return b
	}
	b = b[:seedMax]
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i+1]
	}
	return b
}

// TestFuzzSeeds checks that the seed corpora cut from the fixture root are
// present and parse to what the real files say; with -update it cuts them
// again from the fixture root.
func TestFuzzSeeds(t *testing.T) {
	for _, sd := range seeds {
		t.Run(sd.target+"/"+sd.name, func(t *testing.T) {
			p := corpusPath(sd.target, sd.name)
			if *update {
				matches, _ := filepath.Glob(filepath.Join(testfixtures.Path(t, "rootfs"), sd.path))
				if len(matches) == 0 {
					t.Fatalf("no %s in the fixture root", sd.path)
				}
				b, err := os.ReadFile(matches[len(matches)-1])
				if err != nil {
					t.Fatal(err)
				}
				corpus := "go test fuzz v1\n[]byte(" + strconv.Quote(string(cut(b))) + ")\n"
				if sd.target == "FuzzSSHD" { // main file and included file
					corpus += "[]byte(\"\")\n"
				}
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(corpus), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			raw, err := os.ReadFile(p)
			if err != nil {
				t.Fatalf("%v (rebuild the corpora with go test ./internal/sysconf -run TestFuzzSeeds -update)", err)
			}
			lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
			if len(lines) < 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "[]byte(") {
				t.Fatalf("%s: not a corpus file", p)
			}
			text, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			if sd.check != nil {
				if err := sd.check(text); err != nil {
					t.Errorf("%s: %v", sd.path, err)
				}
			}
		})
	}
}
