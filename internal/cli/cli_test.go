package cli

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/vouch-dev/vouch/internal/target"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// run runs the CLI and returns exit code, stdout and stderr.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func need(t testing.TB, cmds ...string) {
	t.Helper()
	for _, c := range cmds {
		if _, err := exec.LookPath(c); err != nil {
			t.Fatalf("%s not found: run make deps (it installs the Debian packages the tests need)", c)
		}
	}
}

func sh(t testing.TB, dir, script string) {
	t.Helper()
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
}

var (
	smallOnce sync.Once
	smallDir  string
)

// smallImage builds (once per test binary) a 64 MiB GPT image with a FAT16 ESP and
// an ext4 root made by mkfs.ext4 -d, plus its qcow2 and VHD conversions.
func smallImage(t *testing.T) string {
	t.Helper()
	need(t, "sgdisk", "mkfs.vfat", "mmd", "mcopy", "mkfs.ext4", "qemu-img")
	smallOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vouch-cli-test-")
		if err != nil {
			t.Fatal(err)
		}
		sh(t, dir, `
truncate -s 64M d.img
sgdisk -n1:1M:+32M -t1:EF00 -c1:ESP -n2:0:0 -t2:8304 -c2:root d.img >/dev/null
mkfs.vfat -F 16 -n ESP -C esp.img 32768 >/dev/null
mmd -i esp.img ::/EFI ::/EFI/BOOT ::/EFI/debian
echo shim > s; mcopy -i esp.img s ::/EFI/BOOT/BOOTX64.EFI; mcopy -i esp.img s ::/EFI/debian/shimx64.efi
mkdir -p r/etc r/usr/lib r/boot
printf 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n' > r/usr/lib/os-release
ln -s ../usr/lib/os-release r/etc/os-release
echo k > r/boot/vmlinuz-9.9.9-1-amd64; echo k > r/boot/vmlinuz-9.9.9-2-amd64
mkfs.ext4 -q -d r -U 11111111-2222-4333-8444-555555555555 root.img 30M
dd if=esp.img of=d.img bs=1M seek=1 conv=notrunc status=none
dd if=root.img of=d.img bs=1M seek=33 conv=notrunc status=none
qemu-img convert -O qcow2 d.img d.qcow2
qemu-img convert -O vpc -o subformat=dynamic,force_size=on d.img d.vhd
`)
		smallDir = dir
	})
	if smallDir == "" {
		t.Fatal("small image was not built")
	}
	return smallDir
}

func TestMain(m *testing.M) {
	// The test binary doubles as the vouch command for tests that need a
	// separate process (serve, to kill -9 it).
	if os.Getenv("VOUCH_TEST_RUN_CLI") == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	code := m.Run()
	if smallDir != "" {
		os.RemoveAll(smallDir)
	}
	os.Exit(code)
}

func TestVersion(t *testing.T) {
	code, out, _ := run(t, "version", "--format", "json")
	var v map[string]string
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v["version"] == "" {
		t.Errorf("version json: %d %q", code, out)
	}
	if code, out, _ := run(t, "version"); code != 0 || !strings.HasPrefix(out, "vouch ") {
		t.Errorf("version: %d %q", code, out)
	}
}

func TestInspectImages(t *testing.T) {
	testfixtures.Long(t, testfixtures.Peers) // smallImage: sgdisk, mkfs.*, mtools, qemu-img
	dir := smallImage(t)
	for _, name := range []string{"d.img", "d.qcow2", "d.vhd"} {
		t.Run(name, func(t *testing.T) {
			code, out, errs := run(t, "inspect", "--format", "json", filepath.Join(dir, name))
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			var inv target.Inventory
			if err := json.Unmarshal([]byte(out), &inv); err != nil {
				t.Fatal(err)
			}
			if inv.Table == nil || inv.Table.Kind != "gpt" || len(inv.Table.Partitions) != 2 {
				t.Fatalf("table %+v", inv.Table)
			}
			if inv.OS == nil || inv.OS.ID != "debian" || inv.OS.VersionID != "12" {
				t.Errorf("os %+v", inv.OS)
			}
			if strings.Join(inv.Kernels, ",") != "9.9.9-1-amd64,9.9.9-2-amd64" {
				t.Errorf("kernels %v", inv.Kernels)
			}
			if inv.ESP == nil || len(inv.ESP.Files) != 2 || inv.ESP.Files[0].Path != "EFI/BOOT/BOOTX64.EFI" || inv.ESP.Files[0].Size != 5 {
				t.Errorf("esp %+v", inv.ESP)
			}
			roles := map[string]int{}
			for _, f := range inv.Filesystems {
				roles[f.Role] = f.Partition
			}
			if roles["esp"] != 1 || roles["root"] != 2 {
				t.Errorf("roles %v", roles)
			}
			if inv.BytesRead <= 0 || inv.BytesRead > inv.VirtualSize/20 {
				t.Errorf("bytes read %d of %d", inv.BytesRead, inv.VirtualSize)
			}
		})
	}
}

func TestInspectDirAndLive(t *testing.T) {
	testfixtures.Long(t, testfixtures.Peers) // smallImage: sgdisk, mkfs.*, mtools, qemu-img
	dir := smallImage(t)
	code, out, errs := run(t, "inspect", "--format", "json", filepath.Join(dir, "r"))
	if code != 0 || !strings.Contains(out, `"kind": "directory"`) || !strings.Contains(out, `"id": "debian"`) {
		t.Errorf("dir: %d %s %s", code, out, errs)
	}
	// This machine is a container without UEFI: the live path must say so cleanly.
	code, out, errs = run(t, "inspect", "--live")
	if code != 0 {
		t.Fatalf("live: exit %d: %s", code, errs)
	}
	if _, err := os.Stat("/sys/firmware/efi"); err != nil && !strings.Contains(out, "no UEFI here") {
		t.Errorf("live output lacks the no-UEFI notice:\n%s", out)
	}
}

func TestScan(t *testing.T) {
	testfixtures.Long(t, testfixtures.Peers) // smallImage: sgdisk, mkfs.*, mtools, qemu-img
	dir := smallImage(t)
	img := filepath.Join(dir, "d.qcow2")
	for _, format := range []string{"table", "json", "sarif", "junit"} {
		code, out, errs := run(t, "scan", "--fail-on", "none", "--format", format, img)
		if code != 0 || out == "" {
			t.Errorf("scan %s: exit %d, %s", format, code, errs)
		}
	}
	code, out, _ := run(t, "scan", "--format", "json", "--suite", "cloud-image", "--fail-on", "none", img)
	if code != 0 || !strings.Contains(out, "cloud-image.root-fs-type") || strings.Contains(out, "secureboot.esp-present") {
		t.Errorf("suite filter: %d\n%s", code, out)
	}
	// The exit code follows --fail-on: 1 exactly when a failing or erroring
	// finding is at or above the threshold.
	for _, threshold := range []string{"info", "medium", "critical"} {
		code, out, errs := run(t, "scan", "--format", "json", "--fail-on", threshold, filepath.Join(dir, "r"))
		var r struct {
			Findings []struct{ Status, Severity string }
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("%v: %s", err, errs)
		}
		order := map[string]int{"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
		want := 0
		for _, f := range r.Findings {
			if (f.Status == "fail" || f.Status == "error") && order[f.Severity] >= order[threshold] {
				want = 1
			}
		}
		if code != want {
			t.Errorf("--fail-on %s: exit %d, want %d", threshold, code, want)
		}
	}
	for _, args := range [][]string{
		{"scan", "--suite", "nope", img},
		{"scan", "--fail-on", "severe", img},
		{"scan", "--format", "pdf", img},
		{"inspect", "--format", "xml", img},
		{"inspect"},
		{"inspect", "a", "b"},
		{"frobnicate"},
		{"inspect", "--nope", img},
	} {
		code, out, errs := run(t, args...)
		if code != 2 || out != "" || !strings.HasPrefix(errs, "vouch: ") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
	}
}

// TestBadInput: every malformed target gives exit 2, one line naming the file and
// the problem on stderr, and nothing on stdout.
func TestBadInput(t *testing.T) {
	testfixtures.Long(t, testfixtures.Peers) // smallImage: sgdisk, mkfs.*, mtools, qemu-img
	dir := smallImage(t)
	tmp := t.TempDir()
	src := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(tmp, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	raw := src("d.img")
	cases := map[string]string{}
	// A truncated image: the ESP and root lie past the end.
	cases["truncated.img"] = write("truncated.img", raw[:2<<20])
	// Both GPT headers corrupt.
	bad := append([]byte(nil), raw...)
	copy(bad[512:], "XXXXXXXX")
	copy(bad[len(bad)-512:], "XXXXXXXX")
	cases["corrupt-gpt.img"] = write("corrupt-gpt.img", bad)
	// qcow2 whose first L1 entry points past the end of the file.
	q := src("d.qcow2")
	l1 := binary.BigEndian.Uint64(q[40:48])
	binary.BigEndian.PutUint64(q[l1:], 0x8000000000000000|uint64(len(q))*4)
	cases["l2-past-eof.qcow2"] = write("l2-past-eof.qcow2", q)
	// VHD with a bad footer checksum.
	v := src("d.vhd")
	v[len(v)-512+64] ^= 0xff
	cases["bad-footer.vhd"] = write("bad-footer.vhd", v)
	// ext4 superblock with an impossible block size (s_log_block_size = 200).
	e := append([]byte(nil), raw...)
	binary.LittleEndian.PutUint32(e[33<<20+1024+24:], 200)
	cases["bad-ext4.img"] = write("bad-ext4.img", e)
	// Not a disk image at all.
	cases["notes.txt"] = write("notes.txt", []byte("hello, this is not a disk image\n"))
	cases["empty.img"] = write("empty.img", nil)
	// A directory that is not a root file system.
	os.MkdirAll(filepath.Join(tmp, "notroot", "var"), 0o755)
	cases["notroot"] = filepath.Join(tmp, "notroot")
	cases["missing.img"] = filepath.Join(tmp, "missing.img")
	for name, p := range cases {
		t.Run(name, func(t *testing.T) {
			for _, cmd := range []string{"inspect", "scan"} {
				code, out, errs := run(t, cmd, "--format", "json", p)
				t.Logf("%s: %s", cmd, strings.TrimSpace(errs))
				lines := strings.Split(strings.TrimSpace(errs), "\n")
				if code != 2 || out != "" || len(lines) != 1 || !strings.Contains(errs, p) {
					t.Errorf("%s: exit %d, stdout %q, stderr %q", cmd, code, out, errs)
				}
			}
		})
	}
}
