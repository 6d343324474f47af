package gate

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/vouch-dev/vouch/internal/gate/gatetest"
)

func TestAptArchives(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
		err      string
	}{
		{"version 1", "/var/cache/apt/archives/shim-signed_1.52_amd64.deb\n/var/cache/apt/archives/grub-efi-amd64-signed_1+2.12_amd64.deb\n\n",
			[]string{"/var/cache/apt/archives/shim-signed_1.52_amd64.deb", "/var/cache/apt/archives/grub-efi-amd64-signed_1+2.12_amd64.deb"}, ""},
		{"version 1, local file with a space", "/tmp/my debs/shim.deb\n", []string{"/tmp/my debs/shim.deb"}, ""},
		{"version 2", "VERSION 2\nAPT::Architecture=amd64\nDir=/\n\nshim-signed 1.51 < 1.52 /var/cache/apt/archives/shim-signed_1.52_amd64.deb\nmokutil - < 0.6 **CONFIGURE**\nold-pkg 1.0 > - **REMOVE**\n",
			[]string{"/var/cache/apt/archives/shim-signed_1.52_amd64.deb"}, ""},
		{"version 3", "VERSION 3\nAPT::Architecture=amd64\n\nshim-signed amd64 same 1.51 < 1.52 amd64 same /var/cache/apt/archives/shim-signed_1.52_amd64.deb\nmokutil amd64 none - < 0.6 amd64 none **CONFIGURE**\n",
			[]string{"/var/cache/apt/archives/shim-signed_1.52_amd64.deb"}, ""},
		{"empty", "", nil, ""},
		{"unknown version", "VERSION 9\n\n", nil, "protocol \"9\""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := AptArchives(strings.NewReader(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestParseDpkgArgs(t *testing.T) {
	tests := []struct {
		argv []string
		want DpkgArgs
	}{
		{[]string{"dpkg", "-i", "shim.deb"}, DpkgArgs{Install: true, Paths: []string{"shim.deb"}}},
		{[]string{"/usr/bin/dpkg", "--status-fd", "23", "--no-triggers", "--unpack", "--auto-deconfigure", "/var/cache/apt/archives/a.deb", "/var/cache/apt/archives/b.deb"},
			DpkgArgs{Install: true, Paths: []string{"/var/cache/apt/archives/a.deb", "/var/cache/apt/archives/b.deb"}}},
		{[]string{"dpkg", "--root=/srv/r", "--admindir", "/srv/r/var/lib/dpkg", "-iR", "debs/"}, DpkgArgs{Install: true, Recursive: true, Paths: []string{"debs/"}}},
		{[]string{"dpkg", "-D", "10", "--log", "/tmp/x.log", "--install", "--", "-odd.deb"}, DpkgArgs{Install: true, Paths: []string{"-odd.deb"}}},
		{[]string{"dpkg", "--configure", "-a"}, DpkgArgs{}},
		{[]string{"dpkg", "-r", "shim-signed"}, DpkgArgs{Paths: []string{"shim-signed"}}},
	}
	for _, tc := range tests {
		if got := ParseDpkgArgs(tc.argv); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %+v, want %+v", tc.argv, got, tc.want)
		}
	}
}

func TestHookConfigValidate(t *testing.T) {
	ok := HookConfig{Vouch: "/usr/bin/vouch", Args: []string{"--vars", "/var/lib/vouch/VARS.fd"}}
	if err := ok.Validate(); err != nil {
		t.Error(err)
	}
	for _, bad := range []HookConfig{
		{Vouch: "vouch"},
		{Vouch: "/usr/bin/vouch", Args: []string{"--vars", `/var/lib/"x".fd`}},
		{Vouch: "/usr/bin/vouch", Args: []string{"--vars", "/var/lib/it's.fd"}},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
	c := HookConfig{Vouch: "/opt/my tools/vouch"}
	if got := DpkgCfg(c); !strings.Contains(got, "pre-invoke='/opt/my tools/vouch' gate dpkg-hook\n") {
		t.Errorf("quoting: %s", got)
	}
}

// TestFindDpkg walks a procfs laid out in a directory: the hook's shell,
// dpkg with its command line and working directory, and apt above it.
func TestFindDpkg(t *testing.T) {
	dir := t.TempDir()
	proc := filepath.Join(dir, "proc")
	work := filepath.Join(dir, "work")
	deb := debWith(t, dir, "gzip", map[string][]byte{"usr/share/doc/tiny/README": []byte("hi")})
	gatetest.WriteFile(t, work, "shim.deb", readFile(t, deb))
	gatetest.WriteFile(t, work, "sub/dir/other.deb", readFile(t, deb))
	gatetest.WriteFile(t, work, "notes.txt", []byte("not a package"))
	gatetest.WriteFile(t, proc, "300/cmdline", []byte("/bin/sh\x00-c\x00/usr/bin/vouch gate dpkg-hook\x00"))
	gatetest.WriteFile(t, proc, "300/stat", []byte("300 (sh) S 200 300 300 0 -1"))
	gatetest.WriteFile(t, proc, "200/stat", []byte("200 (dpkg) S 100 200 200 0 -1"))
	gatetest.WriteFile(t, proc, "100/comm", []byte("apt-get\n"))
	if err := os.Symlink(work, filepath.Join(proc, "200", "cwd")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cmdline string
		files   []string
	}{
		{"dpkg\x00--log\x00notes.txt\x00-i\x00shim.deb\x00notes.txt\x00missing.deb\x00", []string{"shim.deb"}},
		{"/usr/bin/dpkg\x00-R\x00--install\x00sub\x00", []string{"sub/dir/other.deb"}},
		{"dpkg\x00--configure\x00-a\x00", nil},
	} {
		gatetest.WriteFile(t, proc, "200/cmdline", []byte(tc.cmdline))
		inv, err := FindDpkg(proc, 300)
		if err != nil {
			t.Fatal(err)
		}
		if inv.PID != 200 || !inv.ParentIsApt() {
			t.Errorf("pid %d parent %q", inv.PID, inv.Parent)
		}
		files, display := inv.Archives()
		if !reflect.DeepEqual(display, tc.files) || len(files) != len(tc.files) {
			t.Errorf("%q: files %q display %q, want %q", tc.cmdline, files, display, tc.files)
		}
	}
	if _, err := FindDpkg(filepath.Join(dir, "no-proc"), 300); err == nil || !strings.Contains(err.Error(), "is procfs mounted") {
		t.Errorf("no procfs: %v", err)
	}
}

func TestPlanHooks(t *testing.T) {
	root := t.TempDir()
	if _, err := PlanHooks(root, nil); err == nil {
		t.Error("empty root: no error")
	}
	gatetest.WriteFile(t, root, "etc/apt/apt.conf.d/70debconf", nil)
	plan, err := PlanHooks(root, nil)
	if err != nil || len(plan) != 1 || plan[0].Path != AptConfPath {
		t.Errorf("apt root: %+v %v", plan, err)
	}
	if _, err := PlanHooks(root, []string{"dnf"}); err == nil || !strings.Contains(err.Error(), "python3-dnf") {
		t.Errorf("dnf without python3-dnf: %v", err)
	}
	if _, err := PlanHooks(root, []string{"zypper"}); err == nil {
		t.Error("unknown kind: no error")
	}
}
