package cli

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/vouch-dev/vouch/internal/osrelease"
	"github.com/vouch-dev/vouch/internal/target"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

func inspectJSON(t *testing.T, path string) *target.Inventory {
	t.Helper()
	code, out, errs := run(t, "inspect", "--format", "json", path)
	if code != 0 {
		t.Fatalf("inspect %s: exit %d: %s", path, code, errs)
	}
	var inv target.Inventory
	if err := json.Unmarshal([]byte(out), &inv); err != nil {
		t.Fatal(err)
	}
	return &inv
}

func command(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return string(out)
}

// truthESP lists the files under EFI/ of the FAT file system at byte offset off
// of img, as mtools sees them.
func truthESP(t *testing.T, img string, off int64) []string {
	out := command(t, "mdir", "-/", "-b", "-i", img+"@@"+strconv.FormatInt(off, 10), "::/EFI")
	var files []string
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasSuffix(l, "/") {
			continue
		}
		files = append(files, strings.TrimPrefix(l, "::/"))
	}
	sort.Slice(files, func(i, j int) bool { return strings.ToLower(files[i]) < strings.ToLower(files[j]) })
	return files
}

func truthKernels(t *testing.T, rootfs string) []string {
	m, _ := filepath.Glob(filepath.Join(rootfs, "boot", "vmlinuz-*"))
	var out []string
	for _, p := range m {
		out = append(out, strings.TrimPrefix(filepath.Base(p), "vmlinuz-"))
	}
	sort.Strings(out)
	return out
}

func espPaths(inv *target.Inventory) []string {
	var out []string
	for _, f := range inv.ESP.Files {
		out = append(out, f.Path)
	}
	return out
}

// TestFixtureImages: vouch's view of every fixture equals what the standard
// tools say of the same image.
func TestFixtureImages(t *testing.T) {
	testfixtures.Long(t, testfixtures.Fixtures, testfixtures.Peers)
	raw := testfixtures.Path(t, "debian.raw")
	rootfs := testfixtures.Path(t, "rootfs")
	need(t, "sgdisk", "mdir")
	b, err := os.ReadFile(filepath.Join(rootfs, "usr", "lib", "os-release"))
	if err != nil {
		t.Fatal(err)
	}
	wantOS := osrelease.Parse(b)
	wantKernels := truthKernels(t, rootfs)

	// Partitions of the raw image per sgdisk -p.
	row := regexp.MustCompile(`(?m)^\s+(\d+)\s+(\d+)\s+(\d+)\s+\S+ \S+\s+[0-9A-F]{4}\s+(.*)$`)
	rows := row.FindAllStringSubmatch(command(t, "sgdisk", "-p", raw), -1)
	if len(rows) != 2 {
		t.Fatalf("sgdisk sees %d partitions in debian.raw", len(rows))
	}
	espStart, _ := strconv.ParseInt(rows[0][2], 10, 64)
	wantESP := truthESP(t, raw, espStart*512)

	for _, name := range []string{"debian.raw", "debian.qcow2", "debian-v2.qcow2", "debian-compressed.qcow2",
		"debian-fixed.vhd", "debian-dynamic.vhd", "debian.vhdx"} {
		t.Run(name, func(t *testing.T) {
			inv := inspectJSON(t, testfixtures.Path(t, name))
			if inv.VirtualSize != 2<<30 {
				t.Errorf("virtual size %d", inv.VirtualSize)
			}
			if len(inv.Table.Partitions) != len(rows) {
				t.Fatalf("%d partitions, sgdisk says %d", len(inv.Table.Partitions), len(rows))
			}
			for i, r := range rows {
				p := inv.Table.Partitions[i]
				start, _ := strconv.ParseInt(r[2], 10, 64)
				end, _ := strconv.ParseInt(r[3], 10, 64)
				if p.Start != start*512 || p.Size != (end-start+1)*512 || p.Label != strings.TrimSpace(r[4]) {
					t.Errorf("partition %d: %+v, sgdisk %q", i+1, p, r[0])
				}
			}
			if got := strings.Join(espPaths(inv), "\n"); got != strings.Join(wantESP, "\n") {
				t.Errorf("ESP files:\n%s\nmdir says:\n%s", got, strings.Join(wantESP, "\n"))
			}
			if inv.OS == nil || inv.OS.ID != wantOS.ID || inv.OS.VersionID != wantOS.VersionID || inv.OS.PrettyName != wantOS.PrettyName {
				t.Errorf("os %+v, want %+v", inv.OS, wantOS)
			}
			if strings.Join(inv.Kernels, ",") != strings.Join(wantKernels, ",") || len(wantKernels) == 0 {
				t.Errorf("kernels %v, want %v", inv.Kernels, wantKernels)
			}
			t.Logf("%s: read %d bytes (%.3f%%)", name, inv.BytesRead, float64(inv.BytesRead)/float64(inv.VirtualSize)*100)
			if inv.BytesRead > inv.VirtualSize/100 {
				t.Errorf("read %d bytes, over 1%% of the image", inv.BytesRead)
			}
		})
	}

	t.Run("mbr", func(t *testing.T) {
		img := testfixtures.Path(t, "debian-mbr.raw")
		inv := inspectJSON(t, img)
		dump := command(t, "sfdisk", "--dump", img)
		re := regexp.MustCompile(`(?m)^\S+?(\d+) : start=\s*(\d+), size=\s*(\d+), type=(\w+)`)
		drows := re.FindAllStringSubmatch(dump, -1)
		if inv.Table.Kind != "mbr" || len(drows) != len(inv.Table.Partitions) {
			t.Fatalf("vouch %+v\nsfdisk:\n%s", inv.Table, dump)
		}
		for i, r := range drows {
			p := inv.Table.Partitions[i]
			idx, _ := strconv.Atoi(r[1])
			start, _ := strconv.ParseInt(r[2], 10, 64)
			if p.Index != idx || p.Start != start*512 {
				t.Errorf("partition %d: %+v, sfdisk %q", i, p, r[0])
			}
		}
		if inv.ESP == nil || inv.OS == nil || inv.OS.ID != wantOS.ID {
			t.Errorf("esp %+v os %+v", inv.ESP, inv.OS)
		}
		var espOff int64
		for _, p := range inv.Table.Partitions {
			if p.Type == "0xef" {
				espOff = p.Start
			}
		}
		if got, want := strings.Join(espPaths(inv), "\n"), strings.Join(truthESP(t, img, espOff), "\n"); got != want {
			t.Errorf("ESP files:\n%s\nmdir:\n%s", got, want)
		}
		logical := false
		for _, p := range inv.Table.Partitions {
			logical = logical || p.Logical
		}
		if !logical {
			t.Error("no logical partition found in the extended partition")
		}
	})

	t.Run("xfs", func(t *testing.T) {
		inv := inspectJSON(t, testfixtures.Path(t, "debian-xfs.raw"))
		rootType := ""
		for _, f := range inv.Filesystems {
			if f.Role == "root" {
				rootType = f.Type
			}
		}
		if rootType != "xfs" || inv.OS == nil || inv.OS.ID != wantOS.ID || inv.OS.Path != "etc/os-release" {
			t.Errorf("root %q os %+v", rootType, inv.OS)
		}
		if strings.Join(inv.Kernels, ",") != strings.Join(wantKernels, ",") {
			t.Errorf("kernels %v, want %v", inv.Kernels, wantKernels)
		}
	})

	t.Run("btrfs", func(t *testing.T) {
		img := testfixtures.Path(t, "btrfs.raw")
		code, out, errs := run(t, "inspect", img)
		if code != 2 || out != "" || !strings.Contains(errs, "btrfs, which vouch does not read yet") {
			t.Errorf("exit %d stdout %q stderr %q", code, out, errs)
		}
	})
}

// BenchmarkInspect measures inspect on the 2 GiB fixture in each container
// format and reports the bytes it read.
func BenchmarkInspect(b *testing.B) {
	testfixtures.NeedFixtures(b)
	for _, name := range []string{"debian.raw", "debian.qcow2", "debian-compressed.qcow2", "debian-dynamic.vhd", "debian.vhdx"} {
		b.Run(name, func(b *testing.B) {
			p := testfixtures.Path(b, name)
			var read int64
			for b.Loop() {
				code := Run(b.Context(), []string{"inspect", "--format", "json", p}, discard{}, discard{})
				if code != 0 {
					b.Fatalf("exit %d", code)
				}
			}
			inv := &target.Inventory{}
			var buf strings.Builder
			Run(b.Context(), []string{"inspect", "--format", "json", p}, &buf, discard{})
			json.Unmarshal([]byte(buf.String()), inv)
			read = inv.BytesRead
			b.ReportMetric(float64(read), "bytes-read")
			b.ReportMetric(float64(read)/float64(inv.VirtualSize)*100, "%image-read")
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
