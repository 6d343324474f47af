package baseline

import (
	"os"
	"testing"
	"testing/fstest"

	"github.com/vouch-dev/vouch/internal/finding"
	"github.com/vouch-dev/vouch/internal/rootfs"
)

func fuzzState(files map[string][]byte) *State {
	m := fstest.MapFS{"etc/os-release": file(debianOS), "var/lib/dpkg/status": dpkg("openssh-server", "chrony", "auditd")}
	for k, v := range files {
		m[k] = &fstest.MapFile{Data: v, Mode: 0o644}
	}
	return NewState(rootfs.New(m), false)
}

// fuzzRules indexes the rules once: building them compiles their regular
// expressions, which would dominate each fuzz iteration.
var fuzzRules = func() map[string]Rule {
	m := map[string]Rule{}
	for _, r := range Rules() {
		m[r.ID] = r
	}
	return m
}()

func mustValid(t *testing.T, id string, s *State) {
	t.Helper()
	rule, ok := fuzzRules[id]
	if !ok {
		t.Fatalf("no rule %s", id)
	}
	r := rule.Evaluate(s)
	switch r.Status {
	case finding.Pass, finding.Fail, finding.NotApplicable, finding.Error:
	default:
		t.Fatalf("%s: status %q", id, r.Status)
	}
	if r.Message == "" {
		t.Fatalf("%s: empty message", id)
	}
}

// FuzzSSHDConfig feeds arbitrary bytes as sshd_config and an included file.
func FuzzSSHDConfig(f *testing.F) {
	f.Add([]byte("Include /etc/ssh/sshd_config.d/*.conf\nKbdInteractiveAuthentication no\nUsePAM yes\nX11Forwarding yes\nPrintMotd no\nAcceptEnv LANG LC_*\nSubsystem\tsftp\t/usr/lib/openssh/sftp-server\n"),
		[]byte("PermitRootLogin no\nMatch User x\n  PasswordAuthentication yes\n"))
	f.Add([]byte("Include a.conf\n"), []byte("Include /etc/ssh/sshd_config\n"))
	f.Add([]byte("MACs -hmac-*,umac-64*\nCiphers ^aes128-cbc\nMaxStartups 10:30:60\nLoginGraceTime 1m30s\n"), []byte("\"quoted arg\" = x"))
	f.Fuzz(func(t *testing.T, main, inc []byte) {
		s := fuzzState(map[string][]byte{"etc/ssh/sshd_config": main, "etc/ssh/sshd_config.d/a.conf": inc, "etc/ssh/a.conf": inc})
		for _, id := range []string{"baseline.sshd-permit-root-login", "baseline.sshd-macs", "baseline.sshd-max-startups", "baseline.sshd-login-grace-time", "baseline.sshd-access-limited"} {
			mustValid(t, id, s)
		}
	})
}

// FuzzConfigs feeds arbitrary bytes as the line-oriented files the rules
// parse: sysctl.d, fstab, dpkg status, login.defs, passwd/shadow/group,
// modprobe.d, modules.dep, journald.conf, kernel config and GRUB defaults.
func FuzzConfigs(f *testing.F) {
	f.Add([]byte("net.ipv4.ip_forward = 0\n-net.ipv4.conf.*.rp_filter=1\nkernel/randomize_va_space=2\n"))
	f.Add([]byte("UUID=1 / ext4 defaults 0 1\ntmpfs /tmp tmpfs nodev,nosuid 0 0\n"))
	f.Add([]byte("Package: telnet\nStatus: install ok installed\nVersion: 1\n\n"))
	f.Add([]byte("root:x:0:0:root:/root:/bin/bash\n+::::::\nbad\n"))
	f.Add([]byte("install cramfs /bin/false\nblacklist cramfs\n"))
	f.Add([]byte("[Journal]\nStorage=persistent\n"))
	f.Add([]byte("# CONFIG_X is not set\nCONFIG_RANDOMIZE_BASE=y\nCONFIG_DEFAULT_MMAP_MIN_ADDR=65536\n"))
	f.Add([]byte("GRUB_CMDLINE_LINUX=\"$GRUB_CMDLINE_LINUX console=ttyS0\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := fuzzState(map[string][]byte{
			"etc/sysctl.d/50-f.conf": b, "etc/fstab": b, "var/lib/dpkg/status.d/f": b, "etc/login.defs": b,
			"etc/passwd": b, "etc/shadow": b, "etc/group": b, "etc/modprobe.d/f.conf": b,
			"lib/modules/6.1.0/modules.dep": b, "etc/systemd/journald.conf": b, "boot/config-6.1.0": b,
			"etc/default/grub": b, "etc/audit/rules.d/f.rules": b, "etc/security/pwquality.conf": b,
		})
		for _, id := range []string{"baseline.net-ipv4-forward", "baseline.net-rp-filter-all", "baseline.fs-tmp-nodev", "baseline.pkg-telnet-client-absent",
			"baseline.pass-max-days", "baseline.uid0-only-root", "baseline.no-empty-passwords", "baseline.unique-uids", "baseline.module-cramfs-disabled",
			"baseline.journald-storage", "hardening.kconfig-randomize-base", "hardening.kconfig-mmap-min-addr", "cloud-image.serial-console",
			"baseline.audit-rule-identity", "baseline.pwquality-minlen", "baseline.home-dirs", "cloud-image.dhcp-networking"} {
			mustValid(t, id, s)
		}
	})
}

// FuzzELF feeds arbitrary bytes as a binary in usr/bin.
func FuzzELF(f *testing.F) {
	if exe, err := os.Executable(); err == nil {
		if b, err := os.ReadFile(exe); err == nil {
			f.Add(b[:min(len(b), 8192)])
		}
	}
	f.Add([]byte("\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x03\x00\x3e\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s := fuzzState(map[string][]byte{"usr/bin/x": b, "usr/lib/x86_64-linux-gnu/libc.so.6": b})
		for _, id := range []string{"hardening.elf-pie", "hardening.elf-nx", "hardening.elf-fortify", "hardening.elf-cet-ibt", "cloud-image.64-bit"} {
			mustValid(t, id, s)
		}
	})
}
