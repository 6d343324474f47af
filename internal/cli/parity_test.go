package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// scanFinding is one finding of `vouch scan --format json`, every field that
// a user reads.
type scanFinding struct {
	ID          string   `json:"id"`
	Suite       string   `json:"suite"`
	Subject     string   `json:"subject"`
	Severity    string   `json:"severity"`
	Status      string   `json:"status"`
	Message     string   `json:"message"`
	Evidence    []string `json:"evidence"`
	Remediation string   `json:"remediation"`
}

func (f scanFinding) key() string { return f.ID + " " + f.Subject }

// scanJSON runs `vouch scan --fail-on none --format json TARGET` through the
// CLI, as a user would, and returns its findings by id and subject.
func scanJSON(t *testing.T, target string) map[string]scanFinding {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), []string{"scan", "--fail-on", "none", "--format", "json", target}, &out, &errb)
	if code != 0 {
		t.Fatalf("vouch scan %s: exit %d\n%s", target, code, errb.String())
	}
	var rep struct {
		Findings []scanFinding `json:"findings"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("vouch scan %s: %v", target, err)
	}
	// A check can report one subject twice (sbat-current reports a binary
	// once for each boot path that reaches it): the n-th is "key #n".
	m := map[string]scanFinding{}
	for _, f := range rep.Findings {
		k := f.key()
		for n := 2; ; n++ {
			if _, dup := m[k]; !dup {
				break
			}
			k = fmt.Sprintf("%s #%d", f.key(), n)
		}
		m[k] = f
	}
	return m
}

// imageOnly are the checks whose answer for a disk image rests on what is
// outside its root file system, so a scan of the root tree as a directory
// cannot give it. Each is excepted from the directory comparison only: the
// images are compared with each other on every finding.
var imageOnly = map[string]string{
	// The fixtures' ESP is partition 1 of each image; the root tree's
	// boot/efi is an empty mount point (build-fixtures.sh builds esp.img apart).
	"secureboot.esp-present":        "the ESP is a partition of the image, not part of the root tree",
	"secureboot.sbat-current":       "reads the boot binaries on the ESP",
	"secureboot.shim-ca-transition": "reads shim on the ESP",
	"secureboot.boot-path-allowed":  "names what it lacks: the ESP too for the directory",
	"secureboot.dbx-revoked":        "names what it lacks: the ESP too for the directory",
	"secureboot.shim-2023-ready":    "names what it lacks: the ESP too for the directory",
	"cloud-image.no-swap-partition": "reads the partition table",
	"cloud-image.root-fs-type":      "reads the root partition's file system type",
	// The kernel command line comes from the ESP's EFI/debian/grub.cfg on an
	// image, from etc/default/grub in the root tree: the evidence names the
	// source, and console=ttyS0 is only in the grub.cfg.
	"cloud-image.serial-console": "the kernel command line is read from the image's ESP",
	"baseline.apparmor-boot":     "the kernel command line is read from the image's ESP",
	"hardening.cmdline-*":        "the kernel command line is read from the image's ESP",
}

// The root file systems' UUIDs in scripts/build-fixtures.sh (ROOT_UUID, XFS_UUID).
const (
	ext4UUID = "6a1f5c3e-2b7d-4e0a-9c1b-5d3e7f9a0b21"
	xfsUUID  = "7b2e6d4f-3c8e-4f1b-8d2c-6e4f8a0b1c32"
)

func isImageOnly(id string) bool {
	for k := range imageOnly {
		if id == k || strings.HasSuffix(k, "*") && strings.HasPrefix(id, strings.TrimSuffix(k, "*")) {
			return true
		}
	}
	return false
}

// treeRules are the rules that walk the whole root and count its entries.
var treeRules = map[string]bool{"baseline.unowned-files": true, "baseline.world-writable-files": true}

var entriesRe = regexp.MustCompile(`\b(\d+) entries\b`)

// adjustCounts rewrites "N entries" in the whole-tree rules' messages by delta:
// the number of entries the image holds beyond (or short of) the directory.
func adjustCounts(f scanFinding, delta int) scanFinding {
	if !treeRules[f.ID] {
		return f
	}
	f.Message = entriesRe.ReplaceAllStringFunc(f.Message, func(s string) string {
		n, _ := strconv.Atoi(entriesRe.FindStringSubmatch(s)[1])
		return fmt.Sprintf("%d entries", n-delta)
	})
	return f
}

// diffFindings lists how got differs from want, finding by finding.
func diffFindings(want, got map[string]scanFinding, skip func(id string) bool) []string {
	var out []string
	for k, w := range want {
		if skip(w.ID) {
			continue
		}
		g, ok := got[k]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s: missing (want %s %q)", k, w.Status, w.Message))
		case !equalFinding(w, g):
			out = append(out, fmt.Sprintf("%s:\n\twant %s %q %q\n\tgot  %s %q %q", k, w.Status, w.Message, w.Evidence, g.Status, g.Message, g.Evidence))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok && !skip(g.ID) {
			out = append(out, fmt.Sprintf("%s: unexpected %s %q", k, g.Status, g.Message))
		}
	}
	slices.Sort(out)
	return out
}

func equalFinding(a, b scanFinding) bool {
	return a.Suite == b.Suite && a.Severity == b.Severity && a.Status == b.Status && a.Message == b.Message &&
		slices.Equal(a.Evidence, b.Evidence) && a.Remediation == b.Remediation
}

// TestScanParity: the fixtures' one Debian root file system, scanned as the
// directory it was built from (rootfs/), as a raw GPT image with an ext4 root
// (debian.raw), as qcow2 and VHDX conversions of it, and as an XFS image
// (debian-xfs.raw), gives the same findings for every suite. The images agree
// with each other on every finding, the XFS one but for the root file system
// type; the directory agrees with them but for imageOnly, and for the entry
// counts of the whole-tree rules, adjusted by what the file systems add or
// could not carry (checked here, not assumed):
//   - mkfs.ext4 makes lost+found, which the directory does not have;
//   - a protofile cannot carry a name starting with ':' (mkfs.xfs -p reads it
//     as a comment), so debian-xfs.raw lacks what its protofile.log lists.
//
// Hard links become copies in the XFS image; no rule reads link counts.
// This is the test that would have caught ext4 images losing their owners.
func TestScanParity(t *testing.T) {
	testfixtures.Long(t, testfixtures.Fixtures)
	dir := testfixtures.Path(t, "rootfs")
	images := []string{"debian.raw", "debian.qcow2", "debian.vhdx", "debian-xfs.raw"}
	paths := map[string]string{}
	for _, img := range images {
		paths[img] = testfixtures.Path(t, img)
	}
	// What the images hold beyond the directory.
	if _, err := os.Lstat(filepath.Join(dir, "lost+found")); err == nil {
		t.Fatal("rootfs/ has a lost+found: the ext4 count adjustment below is wrong")
	}
	log, err := os.ReadFile(filepath.Join(testfixtures.Dir(), "debian-xfs.raw.protofile.log"))
	if err != nil {
		t.Fatal(err)
	}
	xfsMissing := 0
	for _, l := range strings.Split(string(log), "\n") {
		rel, ok := strings.CutPrefix(l, "xfs-protofile: skipped ")
		if !ok {
			continue
		}
		rel = rel[:strings.LastIndex(rel, ": ")]
		if _, err := os.Lstat(filepath.Join(dir, rel)); err != nil {
			t.Fatalf("protofile.log names %s, which rootfs/ does not hold: %v", rel, err)
		}
		if !strings.HasPrefix(filepath.Base(rel), ":") {
			t.Fatalf("protofile.log skipped %s for a reason this test does not know: %s", rel, l)
		}
		xfsMissing++
	}
	delta := map[string]int{"debian.raw": 1, "debian.qcow2": 1, "debian.vhdx": 1, "debian-xfs.raw": -xfsMissing}

	want := scanJSON(t, dir)
	got := map[string]map[string]scanFinding{}
	for _, img := range images {
		got[img] = scanJSON(t, paths[img])
	}
	for _, img := range images {
		t.Run(img, func(t *testing.T) {
			// Nothing errs on an image that does not err on the directory.
			for k, f := range got[img] {
				if f.Status == "error" && want[k].Status != "error" {
					t.Errorf("%s: error on the image only: %s", k, f.Message)
				}
			}
			adjusted := map[string]scanFinding{}
			for k, f := range got[img] {
				adjusted[k] = adjustCounts(f, delta[img])
			}
			for _, d := range diffFindings(want, adjusted, isImageOnly) {
				t.Errorf("directory vs %s: %s", img, d)
			}
			if img == "debian.raw" {
				return
			}
			// Against the raw image: identical, but XFS names its root type,
			// and the kernel command line its root's UUID (build-fixtures.sh
			// gives the XFS root its own, XFS_UUID).
			other := got[img]
			if img == "debian-xfs.raw" {
				other = map[string]scanFinding{}
				for k, f := range got[img] {
					f.Evidence = slices.Clone(f.Evidence)
					for i, e := range f.Evidence {
						f.Evidence[i] = strings.ReplaceAll(e, "root=UUID="+xfsUUID, "root=UUID="+ext4UUID)
					}
					other[k] = f
				}
			}
			for _, d := range diffFindings(got["debian.raw"], other, func(id string) bool {
				return img == "debian-xfs.raw" && id == "cloud-image.root-fs-type"
			}) {
				if img == "debian-xfs.raw" && treeRules[strings.Fields(d)[0]] {
					continue // the entry counts, compared with the directory above
				}
				t.Errorf("debian.raw vs %s: %s", img, d)
			}
		})
	}
	if f := got["debian-xfs.raw"]["cloud-image.root-fs-type "]; f.Status != "pass" || !strings.Contains(f.Message, "xfs") {
		t.Errorf("XFS root type: %+v", f)
	}
	// The image-only findings are really answered on the images.
	for _, id := range []string{"secureboot.esp-present", "cloud-image.no-swap-partition", "cloud-image.root-fs-type"} {
		for _, img := range images {
			if f := got[img][id+" "]; f.Status != "pass" {
				t.Errorf("%s %s: %s %q", img, id, f.Status, f.Message)
			}
		}
	}
}
