package sysconf

import (
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
)

// Every fuzz target runs its parser on arbitrary bytes and checks what the
// result must satisfy whatever the input: no panic, positions inside the
// text, keys in their canonical form. The seed corpora in testdata/fuzz are
// the Debian fixture root's own files (TestFuzzSeeds -update recuts them).

func lineCount(b []byte) int { return strings.Count(string(b), "\n") + 1 }

// readMap is a ReadFunc over a MapFS.
func readMap(m fstest.MapFS) ReadFunc {
	return func(name string) (string, bool, error) {
		f, ok := m[name]
		if !ok {
			return "", false, nil
		}
		return string(f.Data), true, nil
	}
}

func FuzzSSHD(f *testing.F) {
	f.Add([]byte("Include /etc/ssh/sshd_config.d/*.conf\nPermitRootLogin yes\n"), []byte("PermitRootLogin no\nMatch User x\n  PasswordAuthentication yes\n"))
	f.Add([]byte("Include a.conf\n"), []byte("Include /etc/ssh/sshd_config\n"))
	f.Add([]byte("MACs -hmac-*,umac-64*\nCiphers ^aes128-cbc\nKexAlgorithms +x\n"), []byte("\"quoted arg\" = x"))
	f.Fuzz(func(t *testing.T, main, inc []byte) {
		m := fstest.MapFS{
			"etc/ssh/sshd_config":             {Data: main},
			"etc/ssh/sshd_config.d/a.conf":    {Data: inc},
			"etc/ssh/a.conf":                  {Data: inc},
			"etc/ssh/sshd_config.d/dir/x.txt": {Data: inc},
		}
		c, err := ReadSSHD(m, readMap(m), "etc/ssh/sshd_config")
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		for i, d := range c.All {
			if d.Order != i || d.Key == "" || d.Key != strings.ToLower(d.Key) || d.Line < 1 {
				t.Fatalf("directive %d: %+v", i, d)
			}
		}
		if c.IncludeAt > len(c.All) {
			t.Fatalf("IncludeAt %d past %d directives", c.IncludeAt, len(c.All))
		}
		for _, k := range []string{"ciphers", "macs", "kexalgorithms", "permitrootlogin", "maxstartups"} {
			v, where := c.Effective(k)
			if d := c.Global(k); d != nil && d.Match {
				t.Fatalf("Global(%s) returned a Match directive", k)
			}
			if where == "" {
				t.Fatalf("Effective(%s) = %q from nowhere", k, v)
			}
		}
	})
}

func FuzzSysctl(f *testing.F) {
	f.Add([]byte("net.ipv4.ip_forward = 0\n-net.ipv4.conf.*.rp_filter=1\nkernel/randomize_va_space=2\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n := lineCount(b)
		for _, s := range ParseSysctl("f.conf", string(b)) {
			if s.Line < 1 || s.Line > n || s.Where != fmt.Sprintf("f.conf:%d", s.Line) {
				t.Fatalf("setting %+v", s)
			}
			if s.Pattern != strings.ContainsAny(s.Key, "*?[") {
				t.Fatalf("pattern flag of %q", s.Key)
			}
			if !s.Pattern && !s.Matches(s.Key) {
				t.Fatalf("%q does not match itself", s.Key)
			}
			s.Matches("net.ipv4.ip_forward")
		}
	})
}

func FuzzLoginDefs(f *testing.F) {
	f.Add([]byte("PASS_MAX_DAYS 99999\nPASS_MAX_DAYS\t365\nUMASK \"022\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n := lineCount(b)
		for k, v := range ParseLoginDefs("etc/login.defs", string(b)) {
			if k == "" || strings.ContainsAny(k, " \t") || v.Line < 1 || v.Line > n {
				t.Fatalf("%q = %+v", k, v)
			}
		}
		for k, v := range ParseAssignments("etc/default/useradd", string(b)) {
			if v.Line < 1 || v.Line > n || k != strings.TrimSpace(k) {
				t.Fatalf("%q = %+v", k, v)
			}
		}
	})
}

func FuzzConfValue(f *testing.F) {
	f.Add([]byte("deny = 3\nunlock_time 900\n# even_deny_root\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, key := range []string{"deny", "unlock_time", "minlen"} {
			if v, ok := ConfValue("f", string(b), key); ok && (v.Line < 1 || v.Line > lineCount(b) || v.Value != strings.TrimSpace(v.Value)) {
				t.Fatalf("%s = %+v", key, v)
			}
		}
	})
}

func FuzzINI(f *testing.F) {
	f.Add([]byte("[Journal]\nStorage=persistent\n;Compress=yes\n[Other]\nStorage=none\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, key := range []string{"Storage", "ForwardToSyslog", "NTP"} {
			if v, ok := INIValue("f", string(b), "Journal", key); ok && (v.Line < 1 || v.Line > lineCount(b)) {
				t.Fatalf("%s = %+v", key, v)
			}
		}
	})
}

func FuzzFstab(f *testing.F) {
	f.Add([]byte("UUID=1 / ext4 defaults 0 1\ntmpfs /tmp tmpfs nodev,nosuid 0 0\n/dev/x /a\\040b xfs\n"))
	f.Add([]byte("[Mount]\nWhat=tmpfs\nWhere=/tmp\nType=tmpfs\nOptions=mode=1777,strictatime\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := ParseFstab("etc/fstab", string(b))
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
		}
		for _, m := range ms {
			if m.Spec == "" || m.Type == "" || !strings.HasPrefix(m.Source, "etc/fstab:") {
				t.Fatalf("mount %+v", m)
			}
		}
		if m := ParseMountUnit("tmp.mount", "/tmp", string(b)); m.Dir != "/tmp" || m.Source != "tmp.mount" {
			t.Fatalf("unit mount %+v", m)
		}
	})
}

func FuzzModprobe(f *testing.F) {
	f.Add([]byte("install cramfs /bin/false\nblacklist usb-storage\noptions x y=1 z\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, r := range ParseModprobe("x.conf", string(b)) {
			if r.Kind == "" || strings.HasPrefix(r.Kind, "#") || r.Module == "" || strings.Contains(r.Module, "-") {
				t.Fatalf("rule %+v", r)
			}
		}
		for _, l := range Lines(string(b)) {
			if m := ModuleFromPath(l); strings.Contains(m, "-") || strings.Contains(m, "/") && m != "/" {
				t.Fatalf("module %q from %q", m, l)
			}
		}
	})
}

func FuzzAccounts(f *testing.F) {
	f.Add([]byte("root:x:0:0:root:/root:/bin/bash\n+::::::\nbad\n"))
	f.Add([]byte("root:*:19000:0:99999:7:::\nbob::1::::::\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n := lineCount(b)
		for _, parse := range []func(string) []Account{ParsePasswd, ParseShadow, ParseGroup} {
			for _, e := range parse(string(b)) {
				if e.Line < 1 || e.Line > n || strings.Contains(e.Name, ":") {
					t.Fatalf("entry %+v", e)
				}
				for i := 0; i < 6; i++ {
					ShadowField(e, i)
				}
			}
		}
	})
}

func FuzzKconfig(f *testing.F) {
	f.Add([]byte("# CONFIG_X is not set\nCONFIG_RANDOMIZE_BASE=y\nCONFIG_DEFAULT_MMAP_MIN_ADDR=65536\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for k, v := range ParseKconfig(string(b)) {
			if !strings.HasPrefix(k, "CONFIG_") || strings.Contains(v, "\n") {
				t.Fatalf("%q = %q", k, v)
			}
		}
	})
}

func FuzzGrub(f *testing.F) {
	f.Add([]byte("GRUB_CMDLINE_LINUX=\"$GRUB_CMDLINE_LINUX console=ttyS0\"\nGRUB_CMDLINE_LINUX_DEFAULT='quiet'\n"))
	f.Add([]byte("menuentry 'Debian' {\n\tlinux /boot/vmlinuz root=UUID=x ro quiet\n}\noptions root=x ro\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var g GrubDefaults
		for i := 0; i < 3; i++ { // files read in turn grow self-references
			if err := g.Parse("etc/default/grub", string(b)); err != nil {
				if _, ok := err.(*Error); !ok {
					t.Fatalf("error of type %T: %v", err, err)
				}
				break
			}
		}
		for _, v := range g.vals {
			if len(v) > maxGrubValue {
				t.Fatalf("value of %d bytes", len(v))
			}
		}
		args := g.Cmdline()
		if len(args) == 0 || args[0] != "ro" {
			t.Fatalf("cmdline %q", args)
		}
		if a, line, ok := GrubLinuxArgs(string(b)); ok {
			if line < 1 || line > lineCount(b) {
				t.Fatalf("line %d", line)
			}
			c := Cmdline{Args: a}
			c.Param("console")
		}
		if a, ok := LoaderOptions(string(b)); ok {
			c := Cmdline{Args: a}
			c.Param("mitigations")
		}
	})
}

func FuzzPAM(f *testing.F) {
	f.Add([]byte("auth\t[success=1 default=ignore]\tpam_unix.so nullok\nauth requisite pam_deny.so\n@include common-account\n-session optional pam_systemd.so\n"))
	f.Add([]byte("password [success=1 \\\n default=ignore] pam_unix.so obscure [x=\\] y] yescrypt # comment\nbad line\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n := lineCount(b)
		for _, r := range ParsePAM("common-auth", string(b)) {
			if r.Line < 1 || r.Line > n || r.File != "common-auth" {
				t.Fatalf("rule %+v", r)
			}
			if r.Bad || r.Include != "" {
				if r.Control != "" || r.Module != "" || len(r.Args) > 0 {
					t.Fatalf("rule %+v", r)
				}
				continue
			}
			if r.Type == "" && !r.Optional {
				t.Fatalf("rule %+v", r)
			}
			for _, a := range append([]string{r.Control, r.Module}, r.Args...) {
				if a == "" || strings.Contains(a, "#") {
					t.Fatalf("field %q in %+v", a, r)
				}
			}
			r.Uses("auth", "pam_unix.so")
		}
	})
}
