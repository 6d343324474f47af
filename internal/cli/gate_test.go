package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vouch-dev/vouch/internal/gate"
	"github.com/vouch-dev/vouch/internal/gate/gatetest"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// gateFiles writes the artefacts the gate CLI tests use.
type gateFiles struct {
	dir, shim2023, dual, grub, store2011, storeBoth, text string
}

func newGateFiles(t *testing.T) gateFiles {
	t.Helper()
	dir := t.TempDir()
	return gateFiles{
		dir:       dir,
		shim2023:  gatetest.WriteFile(t, dir, "new/shimx64.efi", gatetest.Shim2023Only(t)),
		dual:      gatetest.WriteFile(t, dir, "dual/shimx64.efi", gatetest.DualShim(t)),
		grub:      gatetest.WriteFile(t, dir, "new/grubx64.efi", gatetest.ReadDebFile(t, gatetest.GRUBDeb)),
		store2011: gatetest.WriteFile(t, dir, "VARS-2011.fd", gatetest.Store2011(t)),
		storeBoth: gatetest.WriteFile(t, dir, "VARS-both.fd", gatetest.StoreBoth(t)),
		text:      gatetest.WriteFile(t, dir, "notes.efi", []byte("not a PE image\n")),
	}
}

func TestGateShim(t *testing.T) {
	f := newGateFiles(t)
	tests := []struct {
		name   string
		args   []string
		code   int
		out    []string
		errOut string
	}{
		{"2023-only shim, 2011-only db", []string{"--vars", f.store2011, f.shim2023}, 1,
			[]string{"REFUSED — would not boot", "this firmware's db trusts only the Microsoft Windows Production PCA 2011 and the Microsoft Corporation UEFI CA 2011",
				"is signed only by the Microsoft UEFI CA 2023: installing it would leave the machine unbootable", "Update the firmware db first", "shim → GRUB"}, ""},
		{"--force", []string{"--force", "--vars", f.store2011, f.shim2023}, 0, []string{"REFUSED — would not boot"}, "WARNING: forced"},
		{"the same db after --db-add of the 2023 CA", []string{"--vars", f.store2011, "--db-add", "microsoft-uefi-ca-2023", "-o", "table", f.shim2023}, 0,
			[]string{"SAFE", "after the change", "--db-add microsoft-uefi-ca-2023"}, ""},
		{"a dbx update revoking nothing here", []string{"--vars", f.store2011, "--dbx-update", testfixtures.Data("secureboot", "dbx", "DBXUpdate-amd64.bin"), f.shim2023}, 1,
			[]string{"REFUSED — would not boot"}, ""},
		{"db holds both CAs", []string{"--vars", f.storeBoth, f.shim2023}, 0, []string{"SAFE", "it accepts " + f.grub}, ""},
		{"dual-signed on the 2011 profile", []string{"--firmware", "microsoft-2011", f.dual}, 0, []string{"SAFE"}, ""},
		{"what-if without firmware", []string{"--target", testfixtures.Path(t, "debian.raw"), f.shim2023}, 0,
			[]string{"ALLOWED — no firmware state", "is a disk image and no --vars", "microsoft-2011: would NOT boot"}, ""},
		{"not a PE", []string{"--firmware", "microsoft-2011", f.text}, 2, nil, f.text + ": not an EFI binary"},
		{"GRUB is not a shim", []string{"--firmware", "microsoft-2011", f.grub}, 2, nil, f.grub + ": not a shim"},
		{"missing file", []string{"--firmware", "microsoft-2011", filepath.Join(f.dir, "nope.efi")}, 2, nil, "no such file"},
		{"two firmware sources", []string{"--firmware", "microsoft-2011", "--vars", f.store2011, f.shim2023}, 2, nil, "give one of"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := run(t, append([]string{"gate", "shim"}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tc.code, out, errs)
			}
			for _, s := range tc.out {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
			if tc.errOut != "" && !strings.Contains(errs, tc.errOut) {
				t.Errorf("stderr lacks %q: %s", tc.errOut, errs)
			}
		})
	}
	code, out, _ := run(t, "gate", "shim", "--format", "json", "--vars", f.store2011, f.shim2023)
	var j struct {
		Firmware struct{ Source string }
		Verdict  gate.Verdict
	}
	if err := json.Unmarshal([]byte(out), &j); err != nil || code != 1 {
		t.Fatalf("json: exit %d %v\n%s", code, err, out)
	}
	if j.Verdict.Outcome != gate.Refused || j.Verdict.Boots || j.Firmware.Source != f.store2011 || len(j.Verdict.Checks) != 3 {
		t.Errorf("json verdict %+v", j)
	}
}

func TestGatePackages(t *testing.T) {
	f := newGateFiles(t)
	deb := gatetest.ShimSignedDeb(t, f.dir, gatetest.Shim2023Only(t), "1.52+vouch1", "xz")
	rpm := gatetest.ShimRPM(t, f.dir, gatetest.Shim2023Only(t), "w19.zstdio")
	plain := gatetest.PlainDeb(t, f.dir, "docs", map[string][]byte{"usr/share/doc/docs/README": []byte("hi")}, true)
	half := gatetest.WriteFile(t, f.dir, "half.deb", readAll(t, deb)[:100000])
	tests := []struct {
		args   []string
		code   int
		out    []string
		errOut string
	}{
		{[]string{"deb", "--vars", f.store2011, deb}, 1, []string{"(shim-signed 1.52+vouch1)", "usr/lib/shim/shimx64.efi.signed from shim-signed 1.52+vouch1: REFUSED", "unbootable"}, ""},
		{[]string{"deb", "--vars", f.storeBoth, deb, plain}, 0, []string{"SAFE", "docs 1.0): holds no shim: nothing to judge"}, ""},
		{[]string{"deb", plain}, 0, []string{"holds no shim"}, ""},
		{[]string{"deb", "--firmware", "microsoft-2011", rpm}, 2, nil, rpm + ": not a readable deb package: not a Debian package"},
		{[]string{"deb", "--firmware", "microsoft-2011", half}, 2, nil, half + ": not a readable deb package"},
		{[]string{"rpm", "--firmware", "microsoft-2011", rpm}, 1, []string{"(shim-x64 16.1-1)", "boot/efi/EFI/fedora/shimx64.efi from shim-x64 16.1-1: REFUSED"}, ""},
		{[]string{"rpm", "--firmware", "microsoft-2023", rpm}, 0, []string{"SAFE"}, ""},
		{[]string{"rpm", "--firmware", "microsoft-2011", deb}, 2, nil, "not an rpm package"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args[:1], " ")+" "+filepath.Base(tc.args[len(tc.args)-1]), func(t *testing.T) {
			code, out, errs := run(t, append([]string{"gate"}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tc.code, out, errs)
			}
			for _, s := range tc.out {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
			if tc.errOut != "" && !strings.Contains(errs, tc.errOut) {
				t.Errorf("stderr lacks %q: %s", tc.errOut, errs)
			}
		})
	}
}

func TestGateInstallHook(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"etc/apt/apt.conf.d", "etc/dpkg/dpkg.cfg.d", "usr/lib/python3.9/site-packages/dnf-plugins", "var/lib/vouch", "usr/bin"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	gatetest.WriteFile(t, root, "var/lib/vouch/VARS.fd", gatetest.Store2011(t))
	gatetest.WriteFile(t, root, "usr/bin/vouch", []byte("#!/bin/sh\n"))
	code, out, errs := run(t, "gate", "install-hook", "--root", root, "--vouch", "/usr/bin/vouch", "--vars", "/var/lib/vouch/VARS.fd")
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, out, errs)
	}
	want := map[string]string{
		"etc/apt/apt.conf.d/05vouch-gate":                           `DPkg::Pre-Install-Pkgs { "/usr/bin/vouch gate apt-hook --vars /var/lib/vouch/VARS.fd"; };`,
		"etc/dpkg/dpkg.cfg.d/vouch-gate":                            "pre-invoke=/usr/bin/vouch gate dpkg-hook --vars /var/lib/vouch/VARS.fd",
		"etc/dnf/plugins/vouch_gate.conf":                           "enabled=1",
		"usr/lib/python3.9/site-packages/dnf-plugins/vouch_gate.py": "VOUCH = ['/usr/bin/vouch', 'gate', 'rpm', '--hook', '--vars', '/var/lib/vouch/VARS.fd']",
	}
	for p, s := range want {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil || !strings.Contains(string(b), s) {
			t.Errorf("%s: %v: lacks %q:\n%s", p, err, s, b)
		}
	}
	if py, err := exec.LookPath("python3"); err == nil {
		gatetest.Run(t, root, py, "-m", "py_compile", filepath.Join(root, "usr/lib/python3.9/site-packages/dnf-plugins/vouch_gate.py"))
	}
	// A firmware file missing from the root would make every install fail.
	if code, _, errs := run(t, "gate", "install-hook", "--root", root, "--vouch", "/usr/bin/vouch", "--vars", "/var/lib/vouch/missing.fd"); code != 2 || !strings.Contains(errs, "no such file under") {
		t.Errorf("missing vars: exit %d %s", code, errs)
	}
	if code, _, errs := run(t, "gate", "install-hook", "--root", root, "--vars", "/var/lib/vouch/VARS.fd"); code != 2 || !strings.Contains(errs, "is not inside --root") {
		t.Errorf("vouch outside root: exit %d %s", code, errs)
	}
	if code, out, _ := run(t, "gate", "install-hook", "--root", root, "--remove"); code != 0 || strings.Count(out, "removed ") != 4 {
		t.Errorf("remove: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/apt/apt.conf.d/05vouch-gate")); err == nil {
		t.Error("apt hook still there after --remove")
	}
}

func readAll(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sha(t *testing.T, p string) string {
	t.Helper()
	s := sha256.Sum256(readAll(t, p))
	return hex.EncodeToString(s[:])
}

// chroot runs a command inside root, with a small fixed environment.
func chroot(t *testing.T, root string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command("chroot", append([]string{root}, args...)...)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C.UTF-8", "HOME=/root"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		}
		t.Fatalf("chroot %v: %v\n%s", args, err, out)
	}
	return 0, string(out)
}

// systemState is what must not change when the gate refuses: dpkg's
// database and the installed shim.
func systemState(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range []string{"var/lib/dpkg/status", "usr/lib/shim/shimx64.efi.signed", "var/lib/dpkg/info/shim-signed:amd64.md5sums", "var/lib/dpkg/info/shim-signed.md5sums"} {
		if _, err := os.Stat(filepath.Join(root, p)); err == nil {
			out[p] = sha(t, filepath.Join(root, p))
		}
	}
	if len(out) < 3 {
		t.Fatalf("the root lacks dpkg's status or the installed shim: %v", out)
	}
	return out
}

func sameState(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	for p, s := range before {
		if after[p] != s {
			t.Errorf("%s: %s changed (%s → %s)", what, p, s[:12], after[p])
		}
	}
}

// TestGateAptChroot is the real thing: a Debian 12 root with shim-signed
// installed and the hooks written by install-hook; apt-get install (and
// dpkg -i) of a shim-signed whose shim is signed only by the Microsoft UEFI
// CA 2023 is refused while the firmware db trusts only the 2011 CA, with
// dpkg's database and the installed shim byte-identical, and installs once
// db holds the 2023 CA. Needs root (CI runs as root).
func TestGateAptChroot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test runs apt-get and dpkg in a chroot and needs root (CI runs as root)")
	}
	gatetest.Need(t, "chroot", "coreutils")
	gatetest.Need(t, "unshare", "util-linux")
	gatetest.Need(t, "dpkg-deb", "dpkg")
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	gatetest.Run(t, dir, "cp", "-a", filepath.Join(testfixtures.Dir(), "rootfs"), root)

	// vouch, static, inside the root.
	build := exec.Command("go", "build", "-o", filepath.Join(root, "usr/local/bin/vouch"), "./cmd/vouch")
	build.Dir = testfixtures.Repo()
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	gatetest.WriteFile(t, root, "var/lib/vouch/VARS.fd", gatetest.Store2011(t))
	install := exec.Command(filepath.Join(root, "usr/local/bin/vouch"), "gate", "install-hook", "--root", root, "--vars", "/var/lib/vouch/VARS.fd")
	if out, err := install.CombinedOutput(); err != nil || !strings.Contains(string(out), "05vouch-gate (apt)") || !strings.Contains(string(out), "vouch-gate (dpkg)") {
		t.Fatalf("install-hook: %v\n%s", err, out)
	}

	shim2023 := gatetest.Shim2023Only(t)
	ver1 := "1.51~1+deb12u1+16.1-2~deb12u1+vouch1"
	deb := gatetest.ShimSignedDeb(t, dir, shim2023, ver1, "xz")
	gatetest.Run(t, dir, "cp", deb, filepath.Join(root, "tmp", "shim-signed-new.deb"))
	aptGet := []string{"apt-get", "install", "-y", "-o", "APT::Sandbox::User=root", "-o", "Dpkg::Use-Pty=0", "/tmp/shim-signed-new.deb"}

	before := systemState(t, root)
	code, out := chroot(t, root, aptGet...)
	if code == 0 || !strings.Contains(out, "REFUSED — would not boot") || !strings.Contains(out, "signed only by the Microsoft UEFI CA 2023: installing it would leave the machine unbootable") {
		t.Fatalf("apt-get with a 2011-only db: exit %d, want a refusal\n%s", code, out)
	}
	t.Logf("apt-get, 2011-only db:\n%s", out)
	for _, want := range []string{"shim → GRUB", "usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed", "shim → kernel (SHIM_LOCK)", "boot/vmlinuz-",
		"E: Sub-process /usr/local/bin/vouch gate apt-hook --vars /var/lib/vouch/VARS.fd returned an error code (1)"} {
		if !strings.Contains(out, want) {
			t.Errorf("apt-get output lacks %q", want)
		}
	}
	// A shim-signed whose shim is cut short is bad input: exit 2 from the
	// hook, apt stops, nothing changes.
	gatetest.Run(t, dir, "cp", gatetest.ShimSignedDeb(t, dir, shim2023[:4096], ver1+"cut", "xz"), filepath.Join(root, "tmp", "shim-signed-cut.deb"))
	code, out = chroot(t, root, append(aptGet[:len(aptGet)-1:len(aptGet)-1], "/tmp/shim-signed-cut.deb")...)
	if code == 0 || !strings.Contains(out, "/tmp/shim-signed-cut.deb: not a readable deb package: data.tar.xz: usr/lib/shim/shimx64.efi.signed: corrupt EFI binary") ||
		!strings.Contains(out, "returned an error code (2)") {
		t.Errorf("apt-get of a package with a corrupt shim: exit %d\n%s", code, out)
	}
	sameState(t, "apt-get of a corrupt shim", before, systemState(t, root))

	// Without a firmware state and without efivarfs (a chroot has no
	// /sys) nothing can refuse the shim: the gate says so and allows it.
	if code, out := chroot(t, root, "/usr/local/bin/vouch", "gate", "deb", "/tmp/shim-signed-new.deb"); code != 0 || !strings.Contains(out, "no UEFI here") || !strings.Contains(out, "ALLOWED — no firmware state") {
		t.Errorf("gate deb without firmware in the chroot: exit %d\n%s", code, out)
	}
	sameState(t, "apt-get refused", before, systemState(t, root))

	// The same with dpkg -i by hand: the dpkg pre-invoke hook reads dpkg's
	// command line from /proc, mounted in a private mount namespace that
	// disappears with the command.
	unshareDpkg := func() (int, string) {
		cmd := exec.Command("unshare", "--mount", "--propagation", "private", "--fork", "--", "chroot", root, "/bin/sh", "-c",
			"mount -t proc proc /proc && cd /tmp && exec dpkg -i shim-signed-new.deb")
		cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C.UTF-8"}
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	code, out = unshareDpkg()
	if code == 0 || !strings.Contains(out, "REFUSED — would not boot") {
		t.Fatalf("dpkg -i with a 2011-only db: exit %d, want a refusal\n%s", code, out)
	}
	t.Logf("dpkg -i, 2011-only db:\n%s", out)
	sameState(t, "dpkg -i refused", before, systemState(t, root))
	if _, err := os.Stat(filepath.Join(root, "proc", "self")); err == nil {
		t.Fatal("/proc is still mounted in the root after the namespace ended")
	}

	// db gains the Microsoft UEFI CA 2023: apt installs.
	gatetest.WriteFile(t, root, "var/lib/vouch/VARS.fd", gatetest.StoreBoth(t))
	code, out = chroot(t, root, aptGet...)
	if code != 0 || !strings.Contains(out, "SAFE") {
		t.Fatalf("apt-get with both CAs in db: exit %d\n%s", code, out)
	}
	if got := sha(t, filepath.Join(root, "usr/lib/shim/shimx64.efi.signed")); got != sha(t, gatetest.WriteFile(t, dir, "expect.efi", shim2023)) {
		t.Error("the installed shim is not the new one")
	}
	if code, out := chroot(t, root, "dpkg-query", "-W", "-f", "${Version}", "shim-signed"); code != 0 || out != ver1 {
		t.Errorf("installed version %q (exit %d), want %s", out, code, ver1)
	}

	// And dpkg -i of a newer 2023-only build is allowed too.
	ver2 := "1.51~1+deb12u1+16.1-2~deb12u1+vouch2"
	gatetest.Run(t, dir, "cp", gatetest.ShimSignedDeb(t, dir, shim2023, ver2, "zstd"), filepath.Join(root, "tmp", "shim-signed-new.deb"))
	if code, out := unshareDpkg(); code != 0 || !strings.Contains(out, "SAFE") {
		t.Fatalf("dpkg -i with both CAs in db: exit %d\n%s", code, out)
	}
	if code, out := chroot(t, root, "dpkg-query", "-W", "-f", "${Version}", "shim-signed"); code != 0 || out != ver2 {
		t.Errorf("installed version %q (exit %d), want %s", out, code, ver2)
	}
}

// TestGateDnfPlugin runs dnf 4 for real (Debian's dnf package) with the
// plugin install-hook writes: dnf --installroot of a shim-x64 rpm whose shim
// is signed only by the Microsoft UEFI CA 2023 is refused under a firmware
// that trusts only the 2011 CA, nothing is installed, and it installs under
// one that trusts the 2023 CA. dnf loads plugins from the host, so the test
// points pluginpath and pluginconfpath at the files written into the root,
// and vouch lives at the same absolute path inside and outside the root.
func TestGateDnfPlugin(t *testing.T) {
	dnf := gatetest.Need(t, "dnf", "dnf")
	gatetest.Need(t, "rpm", "rpm")
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	plugins := filepath.Join(root, "usr/lib/python3/dist-packages/dnf-plugins")
	if err := os.MkdirAll(plugins, 0o755); err != nil {
		t.Fatal(err)
	}
	vouch := filepath.Join(dir, "bin", "vouch")
	build := exec.Command("go", "build", "-o", vouch, "./cmd/vouch")
	build.Dir = testfixtures.Repo()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	gatetest.WriteFile(t, root, vouch, readAll(t, vouch))
	rpmFile := gatetest.ShimRPM(t, dir, gatetest.Shim2023Only(t), "w19.zstdio")
	dnfInstall := func(profile string) (int, string) {
		t.Helper()
		out, err := exec.Command(vouch, "gate", "install-hook", "--root", root, "--kind", "dnf", "--vouch", vouch, "--firmware", profile).CombinedOutput()
		if err != nil {
			t.Fatalf("install-hook: %v\n%s", err, out)
		}
		cmd := exec.Command(dnf, "-y", "--installroot="+root, "--releasever=1", "--disablerepo=*", "--setopt=reposdir="+filepath.Join(dir, "no-repos"),
			"--setopt=pluginpath="+plugins, "--setopt=pluginconfpath="+filepath.Join(root, "etc/dnf/plugins"), "--setopt=cachedir="+filepath.Join(dir, "cache"),
			"install", rpmFile)
		b, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(b)
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, string(b)
	}
	code, out := dnfInstall("microsoft-2011")
	t.Logf("dnf, 2011-only firmware:\n%s", out)
	if code == 0 || !strings.Contains(out, "REFUSED — would not boot") || !strings.Contains(out, "vouch gate refused this transaction") {
		t.Fatalf("dnf with a 2011-only firmware: exit %d, want a refusal\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(root, "boot/efi/EFI/fedora/shimx64.efi")); err == nil {
		t.Fatal("the refused shim was installed")
	}
	if out, err := exec.Command("rpm", "--root", root, "-q", "shim-x64").CombinedOutput(); err == nil {
		t.Fatalf("rpm database lists shim-x64 after the refusal: %s", out)
	}
	code, out = dnfInstall("microsoft-2023")
	if code != 0 || !strings.Contains(out, "SAFE") {
		t.Fatalf("dnf with a 2023 firmware: exit %d\n%s", code, out)
	}
	if out, err := exec.Command("rpm", "--root", root, "-q", "shim-x64").CombinedOutput(); err != nil || !strings.Contains(string(out), "shim-x64-16.1-1") {
		t.Fatalf("rpm -q after install: %v %s", err, out)
	}
}

// runStdin is run with stdin (apt's hook protocol) fed from a file.
func runStdin(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	f := gatetest.WriteFile(t, t.TempDir(), "stdin", []byte(stdin))
	in, err := os.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	old := os.Stdin
	os.Stdin = in
	defer func() { os.Stdin = old }()
	return run(t, args...)
}

func TestGateAptHook(t *testing.T) {
	f := newGateFiles(t)
	deb := gatetest.ShimSignedDeb(t, f.dir, gatetest.Shim2023Only(t), "1.52+vouch1", "xz")
	plain := gatetest.PlainDeb(t, f.dir, "docs", map[string][]byte{"usr/share/doc/docs/README": []byte("hi")}, true)
	// Packages without a shim pass silently.
	if code, out, errs := runStdin(t, plain+"\n", "gate", "apt-hook", "--vars", f.store2011); code != 0 || out != "" || errs != "" {
		t.Errorf("no shim: exit %d %q %q", code, out, errs)
	}
	v2 := "VERSION 2\nAPT::Architecture=amd64\n\nshim-signed 1.51 < 1.52+vouch1 " + deb + "\ndocs - < 1.0 " + plain + "\n"
	code, out, errs := runStdin(t, v2, "gate", "apt-hook", "--vars", f.store2011)
	if code != 1 || !strings.Contains(out, "REFUSED — would not boot") || strings.Contains(out, "docs 1.0") || !strings.Contains(errs, "VOUCH_GATE_FORCE=1") {
		t.Errorf("refusal: exit %d\n%s%s", code, out, errs)
	}
	t.Setenv("VOUCH_GATE_FORCE", "1")
	if code, _, errs := runStdin(t, deb+"\n", "gate", "apt-hook", "--vars", f.store2011); code != 0 || !strings.Contains(errs, "WARNING: forced") {
		t.Errorf("forced: exit %d %s", code, errs)
	}
	if code, _, errs := runStdin(t, f.text+"\n", "gate", "apt-hook", "--vars", f.store2011); code != 2 || !strings.Contains(errs, f.text+": not a readable deb package") {
		t.Errorf("not a deb: exit %d %s", code, errs)
	}
}
