package sysconf

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"
)

func TestSSHDErrors(t *testing.T) {
	deep := fstest.MapFS{"etc/ssh/sshd_config": {Data: []byte("Include d0.conf\n")}}
	for i := 0; i < SSHDMaxInclude+1; i++ {
		deep["etc/ssh/d"+string(rune('a'+i))+".conf"] = &fstest.MapFile{Data: []byte("Include d" + string(rune('a'+i+1)) + ".conf\n")}
	}
	deep["etc/ssh/d0.conf"] = &fstest.MapFile{Data: []byte("Include da.conf\n")}
	for _, tc := range []struct {
		name string
		m    fstest.MapFS
		want string
	}{
		{"loop", fstest.MapFS{"etc/ssh/sshd_config": {Data: []byte("Include a.conf\n")}, "etc/ssh/a.conf": {Data: []byte("Include b.conf\n")},
			"etc/ssh/b.conf": {Data: []byte("Include a.conf\n")}}, "Include loop: etc/ssh/sshd_config -> etc/ssh/a.conf -> etc/ssh/b.conf -> etc/ssh/a.conf"},
		{"depth", deep, "Include nested deeper than 16"},
		{"pattern", fstest.MapFS{"etc/ssh/sshd_config": {Data: []byte("\nInclude [\n")}}, `line 2: bad Include pattern "etc/ssh/["`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadSSHD(tc.m, readMap(tc.m), "etc/ssh/sshd_config")
			var e *Error
			if !errors.As(err, &e) || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "sysconf: etc/ssh/") {
				t.Fatalf("error %v, want a *sysconf.Error with %q", err, tc.want)
			}
		})
	}
}

func TestSSHDEffective(t *testing.T) {
	m := fstest.MapFS{
		"etc/ssh/sshd_config":             {Data: []byte("Include /etc/ssh/sshd_config.d/*.conf\nPermitRootLogin yes\nMACs -hmac-sha1*,umac-64*\nMatch User x\n  MaxAuthTries 1\n")},
		"etc/ssh/sshd_config.d/10-a.conf": {Data: []byte("permitrootlogin=\"no\"\n")},
	}
	c, err := ReadSSHD(m, readMap(m), "etc/ssh/sshd_config")
	if err != nil {
		t.Fatal(err)
	}
	if v, where := c.Effective("PermitRootLogin"); v != "no" || where != "etc/ssh/sshd_config.d/10-a.conf:1" {
		t.Errorf("PermitRootLogin %q from %s", v, where)
	}
	if v, where := c.Effective("MaxAuthTries"); v != "6" || !strings.HasPrefix(where, "sshd default") {
		t.Errorf("a Match block's MaxAuthTries leaked: %q from %s", v, where)
	}
	if v, _ := c.Effective("MACs"); strings.Contains(v, "hmac-sha1") || strings.Contains(v, "umac-64") || !strings.Contains(v, "hmac-sha2-256") {
		t.Errorf("MACs %q", v)
	}
	if c.IncludeAt != 0 {
		t.Errorf("IncludeAt %d", c.IncludeAt)
	}
}

func TestDropInsAndSysctl(t *testing.T) {
	byName, names := DropIns([][]string{{"etc/sysctl.d/50-x.conf"}, {"usr/lib/sysctl.d/50-x.conf", "usr/lib/sysctl.d/10-y.conf"}})
	if strings.Join(names, " ") != "10-y.conf 50-x.conf" || byName["50-x.conf"] != "etc/sysctl.d/50-x.conf" {
		t.Errorf("DropIns: %v %v", names, byName)
	}
	s := ParseSysctl("f.conf", "# c\n; c\nno equals\n-net/ipv4/conf/eth0.1/rp_filter = 1\nnet.ipv4.conf.*.accept_redirects=0\n")
	if len(s) != 2 || s[0].Key != "net.ipv4.conf.eth0.1.rp_filter" || s[0].Where != "f.conf:4" || !s[1].Pattern || !s[1].Matches("net.ipv4.conf.all.accept_redirects") {
		t.Errorf("settings %+v", s)
	}
}

func TestFstabAndGrubErrors(t *testing.T) {
	_, err := ParseFstab("etc/fstab", "UUID=1 / ext4\n/dev/x /y\n")
	var e *Error
	if !errors.As(err, &e) || e.Reason != "line 2: 2 fields, want at least 3" {
		t.Errorf("fstab: %v", err)
	}
	var g GrubDefaults
	text := "GRUB_CMDLINE_LINUX=\"x\"\n" + strings.Repeat("GRUB_CMDLINE_LINUX=\"$GRUB_CMDLINE_LINUX ${GRUB_CMDLINE_LINUX}\"\n", 40)
	if err := g.Parse("etc/default/grub", text); !errors.As(err, &e) || !strings.Contains(err.Error(), "expands to more than 64 KiB") {
		t.Errorf("grub growth: %v", err)
	}
	g = GrubDefaults{}
	if err := g.Parse("etc/default/grub", "GRUB_CMDLINE_LINUX_DEFAULT='quiet'\nGRUB_CMDLINE_LINUX=\"console=ttyS0\"\n"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(g.Cmdline(), " "); got != "ro console=ttyS0 quiet" {
		t.Errorf("cmdline %q", got)
	}
	c := Cmdline{Args: []string{"slab-nomerge", "init_on_alloc=0", "init-on-alloc=1"}}
	if v, ok := c.Param("slab_nomerge"); !ok || v != "" {
		t.Errorf("bare flag: %q %v", v, ok)
	}
	if v, _ := c.Param("init_on_alloc"); v != "1" {
		t.Errorf("last value wins: %q", v)
	}
}

func TestPAM(t *testing.T) {
	rs := ParsePAM("p", "auth [success=2 \\\n  default=ignore] /lib/security/pam_unix.so nullok # c\n-session optional pam_systemd.so\n@include common-auth\naccount required\n")
	if len(rs) != 4 {
		t.Fatalf("rules %+v", rs)
	}
	if r := rs[0]; !r.Uses("auth", "pam_unix.so") || r.Control != "[success=2 default=ignore]" || strings.Join(r.Args, " ") != "nullok" || r.Line != 1 {
		t.Errorf("continued line %+v", r)
	}
	if r := rs[1]; !r.Optional || r.Type != "session" || r.Line != 3 {
		t.Errorf("optional %+v", r)
	}
	if rs[2].Include != "common-auth" || !rs[3].Bad {
		t.Errorf("include and bad line %+v %+v", rs[2], rs[3])
	}
	r := ParsePAM("p", "password requisite pam_pwhistory.so remember=24 enforce_for_root rememberx=1\n")[0]
	for _, c := range []struct {
		name, value string
		ok          bool
	}{{"remember", "24", true}, {"enforce_for_root", "", true}, {"use_authtok", "", false}, {"remembe", "", false}} {
		if v, ok := r.Arg(c.name); v != c.value || ok != c.ok {
			t.Errorf("Arg(%q) = %q %v, want %q %v", c.name, v, ok, c.value, c.ok)
		}
	}
}
