package baseline

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"

	"github.com/vouch-dev/vouch/internal/finding"
	"github.com/vouch-dev/vouch/internal/remediate"
	"github.com/vouch-dev/vouch/internal/rootfs"
)

// denyFS is a root whose listed files cannot be opened (permission denied).
type denyFS struct {
	fstest.MapFS
	deny map[string]bool
}

func (d denyFS) Open(name string) (fs.File, error) {
	if d.deny[name] {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
	}
	return d.MapFS.Open(name)
}

func file(s string) *fstest.MapFile {
	return &fstest.MapFile{Data: []byte(s), Mode: 0o644, Sys: &syscall.Stat_t{}}
}

func link(target string) *fstest.MapFile {
	return &fstest.MapFile{Data: []byte(target), Mode: fs.ModeSymlink | 0o777}
}

func owned(s string, mode fs.FileMode, uid, gid uint32) *fstest.MapFile {
	return &fstest.MapFile{Data: []byte(s), Mode: mode, Sys: &syscall.Stat_t{Uid: uid, Gid: gid}}
}

const debianOS = "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"

// dpkg returns a status file with the named packages installed.
func dpkg(pkgs ...string) *fstest.MapFile {
	var b strings.Builder
	for _, p := range pkgs {
		status := "install ok installed"
		if n, st, ok := strings.Cut(p, "="); ok {
			p, status = n, st
		}
		b.WriteString("Package: " + p + "\nStatus: " + status + "\nVersion: 1.0\n\n")
	}
	return file(b.String())
}

func ruleByID(t *testing.T, id string) Rule {
	t.Helper()
	for _, r := range Rules() {
		if r.ID == id {
			return r
		}
	}
	t.Fatalf("no rule %s", id)
	return Rule{}
}

type primCase struct {
	name   string
	files  fstest.MapFS
	deny   []string
	live   bool
	rule   string
	want   finding.Status
	substr string // in the message or evidence
}

func runCases(t *testing.T, cases []primCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := fstest.MapFS{"etc/os-release": file(debianOS)}
			for k, v := range tc.files {
				m[k] = v
			}
			base := denyFS{MapFS: m, deny: map[string]bool{}}
			for _, d := range tc.deny {
				base.deny[d] = true
			}
			s := NewState(rootfs.New(base), tc.live)
			res := ruleByID(t, tc.rule).Evaluate(s)
			all := res.Message + "\n" + strings.Join(res.Evidence, "\n")
			if res.Status != tc.want {
				t.Fatalf("%s: status %s, want %s\n%s", tc.rule, res.Status, tc.want, all)
			}
			if tc.substr != "" && !strings.Contains(all, tc.substr) {
				t.Errorf("%s: %q not in\n%s", tc.rule, tc.substr, all)
			}
		})
	}
}

func TestSysctl(t *testing.T) {
	runCases(t, []primCase{
		{name: "etc hides usr/lib of the same name", rule: "baseline.net-ipv4-forward", want: finding.Pass, substr: "etc/sysctl.d/50-x.conf:1",
			files: fstest.MapFS{"usr/lib/sysctl.d/50-x.conf": file("net.ipv4.ip_forward = 1\n"), "etc/sysctl.d/50-x.conf": file("net.ipv4.ip_forward = 0\n")}},
		{name: "a later file name wins across directories", rule: "baseline.net-ipv4-forward", want: finding.Fail, substr: "usr/lib/sysctl.d/90-y.conf",
			files: fstest.MapFS{"etc/sysctl.d/10-x.conf": file("net.ipv4.ip_forward=0\n"), "usr/lib/sysctl.d/90-y.conf": file("net/ipv4/ip_forward = 1\n")}},
		{name: "sysctl.conf is read last", rule: "baseline.net-ipv4-forward", want: finding.Fail, substr: "etc/sysctl.conf:2",
			files: fstest.MapFS{"etc/sysctl.d/99-z.conf": file("net.ipv4.ip_forward=0\n"), "etc/sysctl.conf": file("# x\nnet.ipv4.ip_forward=1\n")}},
		{name: "99-sysctl.conf link places sysctl.conf by its name", rule: "baseline.net-ipv4-forward", want: finding.Pass,
			files: fstest.MapFS{"etc/sysctl.d/99-sysctl.conf": link("../sysctl.conf"), "etc/sysctl.conf": file("net.ipv4.ip_forward=1\n"), "etc/sysctl.d/99-zz.conf": file("net.ipv4.ip_forward=0\n")}},
		{name: "glob key", rule: "baseline.net-rp-filter-all", want: finding.Pass,
			files: fstest.MapFS{"etc/sysctl.d/50-rp.conf": file("net.ipv4.conf.*.rp_filter = 1\n")}},
		{name: "unset uses the kernel default and says so", rule: "baseline.aslr", want: finding.Pass, substr: "kernel default"},
		{name: "unset default from kernel config", rule: "hardening.sysctl-kernel-dmesg-restrict", want: finding.Pass, substr: "CONFIG_SECURITY_DMESG_RESTRICT",
			files: fstest.MapFS{"boot/config-9.9.9-1-amd64": file("CONFIG_SECURITY_DMESG_RESTRICT=y\n")}},
		{name: "binary garbage is an error", rule: "baseline.aslr", want: finding.Error, substr: "binary",
			files: fstest.MapFS{"etc/sysctl.d/10-bad.conf": file("\x00\x01\x7fELF\xff\xfe")}},
		{name: "unreadable file is an error", rule: "baseline.aslr", want: finding.Error, substr: "permission",
			files: fstest.MapFS{"etc/sysctl.d/10-secret.conf": file("kernel.randomize_va_space = 2\n")}, deny: []string{"etc/sysctl.d/10-secret.conf"}},
		{name: "live reads /proc/sys", rule: "baseline.aslr", want: finding.Fail, live: true, substr: "/proc/sys/kernel/randomize_va_space (running kernel)",
			files: fstest.MapFS{"proc/sys/kernel/randomize_va_space": file("1\n"), "etc/sysctl.d/1.conf": file("kernel.randomize_va_space=2\n")}},
	})
}

func TestSSHD(t *testing.T) {
	pkgs := dpkg("openssh-server")
	runCases(t, []primCase{
		{name: "include first value wins", rule: "baseline.sshd-permit-root-login", want: finding.Pass, substr: "etc/ssh/sshd_config.d/10-a.conf:1",
			files: fstest.MapFS{"var/lib/dpkg/status": pkgs,
				"etc/ssh/sshd_config":             file("Include /etc/ssh/sshd_config.d/*.conf\nPermitRootLogin yes\n"),
				"etc/ssh/sshd_config.d/10-a.conf": file("PermitRootLogin no\n"),
				"etc/ssh/sshd_config.d/20-b.conf": file("PermitRootLogin yes\n")}},
		{name: "match blocks are not global", rule: "baseline.sshd-permit-root-login", want: finding.Fail, substr: "prohibit-password",
			files: fstest.MapFS{"var/lib/dpkg/status": pkgs, "etc/ssh/sshd_config": file("Match User admin\n  PermitRootLogin no\n")}},
		{name: "keyword=value and case", rule: "baseline.sshd-max-auth-tries", want: finding.Pass,
			files: fstest.MapFS{"var/lib/dpkg/status": pkgs, "etc/ssh/sshd_config": file("maxauthtries=3\n")}},
		{name: "list modifier", rule: "baseline.sshd-macs", want: finding.Fail, substr: "hmac-md5",
			files: fstest.MapFS{"var/lib/dpkg/status": pkgs, "etc/ssh/sshd_config": file("MACs +hmac-md5\n")}},
		{name: "include loop is an error", rule: "baseline.sshd-permit-root-login", want: finding.Error, substr: "Include loop",
			files: fstest.MapFS{"var/lib/dpkg/status": pkgs, "etc/ssh/sshd_config": file("Include a.conf\n"), "etc/ssh/a.conf": file("Include b.conf\n"), "etc/ssh/b.conf": file("Include a.conf\n")}},
		{name: "binary garbage is an error", rule: "baseline.sshd-permit-root-login", want: finding.Error, substr: "binary",
			files: fstest.MapFS{"var/lib/dpkg/status": pkgs, "etc/ssh/sshd_config": file("\x00\x00\xff garbage")}},
		{name: "not installed is not applicable", rule: "baseline.sshd-permit-root-login", want: finding.NotApplicable, substr: "openssh-server",
			files: fstest.MapFS{"var/lib/dpkg/status": dpkg("bash"), "etc/ssh/sshd_config": file("PermitRootLogin yes\n")}},
	})
}

func TestModulesPackagesUnits(t *testing.T) {
	dep := file("kernel/fs/cramfs/cramfs.ko: \nkernel/drivers/usb/storage/usb-storage.ko: kernel/x.ko\n")
	runCases(t, []primCase{
		{name: "shipped and allowed", rule: "baseline.module-cramfs-disabled", want: finding.Fail, substr: "install cramfs /bin/false",
			files: fstest.MapFS{"lib/modules/6.1.0/modules.dep": dep}},
		{name: "install false and blacklist", rule: "baseline.module-usb-storage-disabled", want: finding.Pass,
			files: fstest.MapFS{"lib/modules/6.1.0/modules.dep": dep, "etc/modprobe.d/x.conf": file("install usb_storage /bin/true\nblacklist usb-storage\n")}},
		{name: "blacklist alone is not enough", rule: "baseline.module-cramfs-disabled", want: finding.Fail,
			files: fstest.MapFS{"lib/modules/6.1.0/modules.dep": dep, "etc/modprobe.d/x.conf": file("blacklist cramfs\n")}},
		{name: "etc hides usr/lib of the same name", rule: "baseline.module-cramfs-disabled", want: finding.Fail,
			files: fstest.MapFS{"lib/modules/6.1.0/modules.dep": dep, "usr/lib/modprobe.d/x.conf": file("install cramfs /bin/false\nblacklist cramfs\n"), "etc/modprobe.d/x.conf": file("# emptied\n")}},
		{name: "not shipped", rule: "baseline.module-hfs-disabled", want: finding.Pass, substr: "not shipped",
			files: fstest.MapFS{"lib/modules/6.1.0/modules.dep": dep}},
		{name: "built in", rule: "baseline.module-cramfs-disabled", want: finding.Fail, substr: "built into",
			files: fstest.MapFS{"lib/modules/6.1.0/modules.dep": file(""), "lib/modules/6.1.0/modules.builtin": file("kernel/fs/cramfs/cramfs.ko\n")}},
		{name: "package installed", rule: "baseline.pkg-telnet-client-absent", want: finding.Fail, substr: "telnet 1.0",
			files: fstest.MapFS{"var/lib/dpkg/status": dpkg("bash", "telnet")}},
		{name: "removed package keeps config", rule: "baseline.pkg-telnet-client-absent", want: finding.Pass,
			files: fstest.MapFS{"var/lib/dpkg/status": dpkg("telnet=deinstall ok config-files")}},
		{name: "no dpkg database", rule: "baseline.pkg-telnet-client-absent", want: finding.NotApplicable},
		{name: "distroless status.d", rule: "baseline.pkg-telnet-client-absent", want: finding.Fail, substr: "telnet 2",
			files: fstest.MapFS{"var/lib/dpkg/status.d/telnet": file("Package: telnet\nVersion: 2\nArchitecture: amd64\n")}},
		{name: "one architecture installed", rule: "baseline.pkg-telnet-client-absent", want: finding.Fail, substr: "telnet 1",
			files: fstest.MapFS{"var/lib/dpkg/status": file("Package: telnet\nArchitecture: amd64\nStatus: install ok installed\nVersion: 1\n\n" +
				"Package: telnet\nArchitecture: i386\nStatus: deinstall ok config-files\nVersion: 1\n\n")}},
		{name: "unit enabled by a wants link", rule: "baseline.chrony-enabled", want: finding.Pass,
			files: fstest.MapFS{"var/lib/dpkg/status": dpkg("chrony"), "usr/lib/systemd/system/chrony.service": file("[Unit]\n"),
				"etc/systemd/system/multi-user.target.wants/chrony.service": link("/lib/systemd/system/chrony.service")}},
		{name: "masked unit", rule: "baseline.firewall-enabled", want: finding.Fail, substr: "masked",
			files: fstest.MapFS{"usr/lib/systemd/system/nftables.service": file("[Unit]\n"), "etc/systemd/system/nftables.service": link("/dev/null"),
				"etc/systemd/system/multi-user.target.wants/nftables.service": link("/lib/systemd/system/nftables.service")}},
	})
}

func TestMountsLoginDefsModes(t *testing.T) {
	fstab := file("UUID=1 / ext4 defaults 0 1\ntmpfs /tmp tmpfs defaults,nodev,nosuid 0 0\n")
	runCases(t, []primCase{
		{name: "option present", rule: "baseline.fs-tmp-nodev", want: finding.Pass, files: fstest.MapFS{"etc/fstab": fstab}},
		{name: "option missing", rule: "baseline.fs-tmp-noexec", want: finding.Fail, substr: "etc/fstab:2", files: fstest.MapFS{"etc/fstab": fstab}},
		{name: "no separate mount", rule: "baseline.fs-home-nodev", want: finding.NotApplicable, files: fstest.MapFS{"etc/fstab": fstab}},
		{name: "separate missing", rule: "baseline.fs-home-separate", want: finding.Fail, files: fstest.MapFS{"etc/fstab": fstab}},
		{name: "dev/shm systemd default", rule: "baseline.fs-dev-shm-nosuid", want: finding.Pass, substr: "systemd", files: fstest.MapFS{"etc/fstab": fstab}},
		{name: "fstab garbage", rule: "baseline.fs-tmp-nodev", want: finding.Error, files: fstest.MapFS{"etc/fstab": file("\x00\x00")}},
		{name: "login.defs last wins", rule: "baseline.pass-max-days", want: finding.Pass, substr: "login.defs:2",
			files: fstest.MapFS{"etc/login.defs": file("PASS_MAX_DAYS 99999\nPASS_MAX_DAYS\t365\n")}},
		{name: "login.defs unset", rule: "baseline.pass-min-days", want: finding.Fail, files: fstest.MapFS{"etc/login.defs": file("# nothing\n")}},
		{name: "mode too open", rule: "baseline.perm-shadow", want: finding.Fail, substr: "mode 0644",
			files: fstest.MapFS{"etc/shadow": owned("root:*:1::::::\n", 0o644, 0, 42), "etc/group": file("root:x:0:\nshadow:x:42:\n")}},
		{name: "mode and group ok", rule: "baseline.perm-shadow", want: finding.Pass,
			files: fstest.MapFS{"etc/shadow": owned("root:*:1::::::\n", 0o640, 0, 42), "etc/group": file("root:x:0:\nshadow:x:42:\n")}},
		{name: "wrong owner", rule: "baseline.perm-passwd", want: finding.Fail, substr: "owner 1000",
			files: fstest.MapFS{"etc/passwd": owned("root:x:0:0::/root:/bin/bash\n", 0o644, 1000, 0)}},
		{name: "empty password", rule: "baseline.no-empty-passwords", want: finding.Fail, substr: "bob",
			files: fstest.MapFS{"etc/shadow": file("root:*:1::::::\nbob::1::::::\n")}},
		{name: "uid 0 twice", rule: "baseline.uid0-only-root", want: finding.Fail, substr: "toor",
			files: fstest.MapFS{"etc/passwd": file("root:x:0:0::/root:/bin/bash\ntoor:x:0:0::/root:/bin/sh\n")}},
		{name: "legacy plus", rule: "baseline.no-legacy-plus-passwd", want: finding.Fail,
			files: fstest.MapFS{"etc/passwd": file("root:x:0:0::/root:/bin/bash\n+::::::\n")}},
		{name: "cloud: password hash", rule: "cloud-image.no-passwords", want: finding.Fail, substr: "alice",
			files: fstest.MapFS{"etc/shadow": file("root:!:1::::::\nalice:$y$j9T$abc:1::::::\n")}},
		{name: "cloud: machine-id baked", rule: "cloud-image.no-machine-id", want: finding.Fail,
			files: fstest.MapFS{"etc/machine-id": file("0123456789abcdef0123456789abcdef\n")}},
		{name: "cloud: machine-id uninitialized", rule: "cloud-image.no-machine-id", want: finding.Pass,
			files: fstest.MapFS{"etc/machine-id": file("uninitialized\n")}},
	})
}

func TestELFBadInput(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	runCases(t, []primCase{
		{name: "truncated ELF is an error for the ELF rules", rule: "hardening.elf-nx", want: finding.Error, substr: "usr/bin/broken",
			files: fstest.MapFS{"usr/bin/broken": file(string(b[:200]))}},
		{name: "header only", rule: "hardening.elf-canary", want: finding.Error, substr: "truncated",
			files: fstest.MapFS{"usr/bin/stub": file(string(b[:10]))}},
		{name: "not ELF is ignored", rule: "hardening.elf-nx", want: finding.NotApplicable,
			files: fstest.MapFS{"usr/bin/script": file("#!/bin/sh\necho hi\n")}},
		{name: "a truncated ELF does not hide real ones", rule: "hardening.elf-nx", want: finding.Pass,
			files: fstest.MapFS{"usr/bin/real": file(string(b))}},
	})
	// One unreadable rule leaves the others: the scan of a root holding a
	// truncated ELF and garbage sshd_config still gives ASLR a pass.
	s := NewState(rootfs.New(fstest.MapFS{"etc/os-release": file(debianOS), "usr/bin/broken": file(string(b[:200])),
		"var/lib/dpkg/status": dpkg("openssh-server"), "etc/ssh/sshd_config": file("\x00\x01")}), false)
	if r := ruleByID(t, "baseline.aslr").Evaluate(s); r.Status != finding.Pass {
		t.Errorf("aslr: %s %s", r.Status, r.Message)
	}
}

func TestRules(t *testing.T) {
	rules := Rules()
	seen := map[string]bool{}
	count := map[string]int{}
	for _, r := range rules {
		if seen[r.ID] {
			t.Errorf("duplicate rule %s", r.ID)
		}
		seen[r.ID] = true
		count[r.Suite()]++
		if r.Title == "" || r.Rationale == "" || r.Audit == nil {
			t.Errorf("%s: lacks title, rationale or audit", r.ID)
		}
		switch r.Suite() {
		case SuiteBaseline, SuiteHardening, SuiteCloudImage:
		default:
			t.Errorf("%s: unknown suite", r.ID)
		}
		if r.Remedy == "" {
			t.Errorf("%s: no remedy text", r.ID)
		}
	}
	if count[SuiteBaseline] < 170 {
		t.Errorf("baseline has %d rules, want at least 170", count[SuiteBaseline])
	}
	if len(Checks()) != len(rules) {
		t.Errorf("Checks() has %d, Rules() %d", len(Checks()), len(rules))
	}
	t.Logf("rules: %v", count)
}

// TestRemediateSmall runs the fixes on a tiny root: sysctl, sshd with an
// earlier drop-in, a vendor sysctl file, a mode; then checks backups and that
// a second run changes nothing.
func TestRemediateSmall(t *testing.T) {
	root := t.TempDir()
	write := func(p, s string, mode os.FileMode) {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(s), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(full, mode); err != nil {
			t.Fatal(err)
		}
	}
	write("etc/os-release", debianOS, 0o644)
	write("var/lib/dpkg/status", "Package: openssh-server\nStatus: install ok installed\nVersion: 1\n\n", 0o644)
	write("etc/ssh/sshd_config", "Include /etc/ssh/sshd_config.d/*.conf\nX11Forwarding yes\n", 0o644)
	write("etc/ssh/sshd_config.d/50-cloud.conf", "PasswordAuthentication yes\n", 0o600)
	write("usr/lib/sysctl.d/99-vendor.conf", "fs.protected_fifos = 1\n", 0o644)
	write("etc/passwd", "root:x:0:0:root:/root:/bin/bash\n", 0o666)
	write("etc/group", "root:x:0:\n", 0o644)
	ids := []string{"baseline.aslr", "baseline.net-ipv4-forward", "baseline.sshd-password-authentication", "baseline.sshd-x11-forwarding",
		"hardening.sysctl-fs-protected-fifos", "baseline.perm-passwd", "baseline.net-rp-filter-all"}
	var rules []Rule
	for _, id := range ids {
		rules = append(rules, ruleByID(t, id))
	}
	var out bytes.Buffer
	dry, err := Remediate(context.Background(), root, rules, true, &out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, vouchSysctlFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("dry run wrote %s", vouchSysctlFile)
	}
	out.Reset()
	sum, err := Remediate(context.Background(), root, rules, false, &out)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Fixed != dry.Fixed || sum.Fixed != 5 || sum.Errors != 0 {
		t.Fatalf("fixed %d (dry run %d), errors %d, want 5\n%s", sum.Fixed, dry.Fixed, sum.Errors, out.String())
	}
	for _, want := range []string{"+++ b/etc/ssh/sshd_config.d/50-cloud.conf", "-PasswordAuthentication yes", "+PasswordAuthentication no",
		"+++ b/etc/ssh/sshd_config.d/60-vouch.conf", "+X11Forwarding no", "+++ b/etc/sysctl.d/99-vendor.conf", "chmod 0644 /etc/passwd   (was 0666)",
		"+net.ipv4.conf.all.rp_filter = 1"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if b, _ := os.ReadFile(filepath.Join(root, "usr/lib/sysctl.d/99-vendor.conf")); string(b) != "fs.protected_fifos = 1\n" {
		t.Errorf("the vendor file was edited: %q", b)
	}
	if fi, _ := os.Stat(filepath.Join(root, "etc/ssh/sshd_config.d/50-cloud.conf")); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode not preserved: %v", fi.Mode())
	}
	bak, err := os.ReadFile(filepath.Join(sum.BackupDir, "etc/ssh/sshd_config.d/50-cloud.conf"))
	if err != nil || string(bak) != "PasswordAuthentication yes\n" {
		t.Errorf("backup: %q %v", bak, err)
	}
	man, _ := os.ReadFile(filepath.Join(sum.BackupDir, "MANIFEST"))
	for _, want := range []string{"created\t/" + vouchSysctlFile, "chmod\t/etc/passwd\tmode=0666"} {
		if !strings.Contains(string(man), want) {
			t.Errorf("MANIFEST lacks %q:\n%s", want, man)
		}
	}
	out.Reset()
	again, err := Remediate(context.Background(), root, rules, false, &out)
	if err != nil {
		t.Fatal(err)
	}
	if again.Fixed != 0 || again.Changes != 0 || again.AlreadyPassing != len(rules) {
		t.Errorf("second run: %+v\n%s", again, out.String())
	}
	// A disk image is refused.
	img := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(img, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Remediate(context.Background(), img, rules, false, &out); !errors.Is(err, remediate.ErrImage) {
		t.Errorf("image: %v, want ErrImage", err)
	}
}

func TestCmdlineSources(t *testing.T) {
	esp := fstest.MapFS{
		"EFI/BOOT/grub.cfg":   file("linux /vmlinuz root=UUID=x ro quiet\n"),
		"EFI/debian/grub.cfg": file("menuentry 'Debian' {\n\tlinux /boot/vmlinuz-6.1 root=UUID=x ro console=tty0 console=ttyS0,115200\n}\n"),
	}
	root := fstest.MapFS{"etc/os-release": file(debianOS), "etc/default/grub": file("GRUB_CMDLINE_LINUX=\"quiet\"\n")}
	s := NewState(rootfs.New(root), false)
	if r := ruleByID(t, "cloud-image.serial-console").Evaluate(s); r.Status != finding.Fail || !strings.Contains(strings.Join(r.Evidence, " "), "etc/default/grub") {
		t.Errorf("from etc/default/grub: %s %s %v", r.Status, r.Message, r.Evidence)
	}
	s = NewState(rootfs.New(root), false)
	s.ESP, s.ESPPath = esp, "partition 1"
	if r := ruleByID(t, "cloud-image.serial-console").Evaluate(s); r.Status != finding.Pass || !strings.Contains(strings.Join(r.Evidence, " "), "EFI/debian/grub.cfg:2") {
		t.Errorf("from the ESP: %s %s %v", r.Status, r.Message, r.Evidence)
	}
	root["boot/grub/grub.cfg"] = file("menuentry x {\n linux /vmlinuz ro mitigations=off\n}\n")
	s = NewState(rootfs.New(root), false)
	s.ESP = esp
	if r := ruleByID(t, "hardening.cmdline-no-mitigations-off").Evaluate(s); r.Status != finding.Fail {
		t.Errorf("boot/grub/grub.cfg comes first: %s %s", r.Status, r.Message)
	}
	root["etc/default/grub"] = file("GRUB_CMDLINE_LINUX=\"$GRUB_CMDLINE_LINUX $GRUB_CMDLINE_LINUX x\"\n" + strings.Repeat("GRUB_CMDLINE_LINUX=\"$GRUB_CMDLINE_LINUX $GRUB_CMDLINE_LINUX\"\n", 40))
	delete(root, "boot/grub/grub.cfg")
	if r := ruleByID(t, "cloud-image.serial-console").Evaluate(NewState(rootfs.New(root), false)); r.Status != finding.Error {
		t.Errorf("self-referencing growth: %s %s", r.Status, r.Message)
	}
}

// TestPAM: the PAM rules read stacks with sysconf.ParsePAM: continued lines,
// trailing comments, arguments in any order, whole argument names.
func TestPAM(t *testing.T) {
	auth := func(text string) fstest.MapFS { return fstest.MapFS{"etc/pam.d/common-auth": file(text)} }
	password := func(text string) fstest.MapFS { return fstest.MapFS{"etc/pam.d/common-password": file(text)} }
	su := func(text string) fstest.MapFS { return fstest.MapFS{"etc/pam.d/su": file(text)} }
	runCases(t, []primCase{
		{name: "unix in auth", rule: "baseline.pam-unix-enabled", want: finding.Pass, substr: "common-auth:2",
			files: auth("# pam_unix.so\nauth [success=1 default=ignore] pam_unix.so\n")},
		{name: "unix only in a comment", rule: "baseline.pam-unix-enabled", want: finding.Fail,
			files: auth("auth required pam_deny.so # not pam_unix.so\n")},
		{name: "no common stacks", rule: "baseline.pam-unix-enabled", want: finding.Fail, substr: "not configured the Debian way"},
		{name: "continued line", rule: "baseline.pam-faillock-enabled", want: finding.Pass, substr: "common-auth:1",
			files: auth("auth \\\n  required pam_faillock.so preauth\n")},
		{name: "nullok", rule: "baseline.pam-unix-nullok", want: finding.Fail, substr: "common-auth:1",
			files: auth("auth required pam_unix.so nullok\n")},
		{name: "nullok_secure is another argument", rule: "baseline.pam-unix-nullok", want: finding.Pass,
			files: auth("auth required pam_unix.so nullok_secure\n")},
		{name: "nullok in a comment", rule: "baseline.pam-unix-nullok", want: finding.Pass,
			files: auth("auth required pam_unix.so # nullok\n")},
		{name: "hash yescrypt", rule: "baseline.pam-unix-hash", want: finding.Pass,
			files: password("password [success=1 default=ignore] pam_unix.so obscure yescrypt\n")},
		{name: "hash md5", rule: "baseline.pam-unix-hash", want: finding.Fail, substr: "sha512 or yescrypt",
			files: password("password [success=1 default=ignore] pam_unix.so obscure md5\n")},
		{name: "remember 24", rule: "baseline.pwhistory-remember", want: finding.Pass,
			files: password("password requisite pam_pwhistory.so enforce_for_root remember=24\n")},
		{name: "remember 5", rule: "baseline.pwhistory-remember", want: finding.Fail,
			files: password("password requisite pam_pwhistory.so remember=5\n")},
		{name: "unix remember", rule: "baseline.pam-unix-remember", want: finding.Fail, substr: "remember=",
			files: password("password required pam_unix.so remember=5\n")},
		{name: "wheel, arguments in any order", rule: "baseline.su-restricted", want: finding.Pass,
			files: su("auth required pam_wheel.so group=sugroup use_uid\n")},
		{name: "wheel without a group", rule: "baseline.su-restricted", want: finding.Fail,
			files: su("auth required pam_wheel.so use_uid\n")},
		{name: "wheel sufficient", rule: "baseline.su-restricted", want: finding.Fail,
			files: su("auth sufficient pam_wheel.so use_uid group=sugroup\n")},
		{name: "no su stack", rule: "baseline.su-restricted", want: finding.NotApplicable},
	})
}
