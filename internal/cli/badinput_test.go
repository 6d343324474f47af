package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// ownerTree writes a small Debian-like root whose owners the images set apart:
// alice has a uid above 65535 and owns her home and /etc/group; /srv/orphan
// belongs to a uid and gid that neither passwd nor group lists.
func ownerTree(t *testing.T) (string, map[string]testfixtures.Owner) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "root")
	files := map[string]string{
		"etc/os-release": "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
		"etc/passwd":     "root:x:0:0:root:/root:/bin/bash\nalice:x:70000:70000:Alice:/home/alice:/bin/bash\n",
		"etc/group":      "root:x:0:\nshadow:x:42:\nalice:x:70000:\n",
		"etc/shadow":     "root:*:19000:0:99999:7:::\nalice:!:19000:0:99999:7:::\n",
		"etc/gshadow":    "root:*::\nshadow:*::\nalice:!::\n",
		"srv/orphan":     "nobody known owns this\n",
	}
	for _, d := range []string{"etc", "root", "home/alice", "srv", "usr/bin", "usr/sbin", "usr/local/bin", "usr/local/sbin"} {
		if err := os.MkdirAll(filepath.Join(src, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for p, c := range files {
		mode := os.FileMode(0o644)
		if strings.Contains(p, "shadow") {
			mode = 0o640
		}
		if err := os.WriteFile(filepath.Join(src, p), []byte(c), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(filepath.Join(src, p), mode)
	}
	os.Chmod(filepath.Join(src, "root"), 0o700)
	os.Chmod(filepath.Join(src, "home/alice"), 0o750)
	root := testfixtures.Owner{}
	owners := map[string]testfixtures.Owner{
		".": root, "etc": root, "etc/os-release": root, "etc/passwd": root, "root": root, "home": root,
		"srv": root, "usr": root, "usr/bin": root, "usr/sbin": root, "usr/local": root,
		"usr/local/bin": root, "usr/local/sbin": root,
		"etc/shadow":  {UID: 0, GID: 42},
		"etc/gshadow": {UID: 0, GID: 42},
		"etc/group":   {UID: 70000, GID: 70000},
		"home/alice":  {UID: 70000, GID: 70000},
		"srv/orphan":  {UID: 4242, GID: 4242},
	}
	return src, owners
}

// wantOwners checks the owner rules' findings on a scan of ownerTree.
func wantOwners(t *testing.T, got map[string]scanFinding) {
	t.Helper()
	for id, want := range map[string]struct{ status, contains string }{
		"baseline.home-dirs":     {"pass", "2 interactive users' home directories are in order"},
		"baseline.perm-passwd":   {"pass", "owner root (0), group root (0)"},
		"baseline.perm-shadow":   {"pass", "owner root (0), group shadow (42)"},
		"baseline.perm-group":    {"fail", "owner alice, want root"},
		"baseline.root-path":     {"pass", ""},
		"baseline.unowned-files": {"fail", "1 files owned by a user or group that does not exist"},
	} {
		f := got[id+" "]
		if f.Status != want.status || !strings.Contains(f.Message, want.contains) {
			t.Errorf("%s: %s %q, want %s containing %q", id, f.Status, f.Message, want.status, want.contains)
		}
	}
	if ev := got["baseline.unowned-files "].Evidence; len(ev) != 1 || ev[0] != "/srv/orphan 4242:4242" {
		t.Errorf("unowned-files evidence %q", ev)
	}
	if ev := got["baseline.home-dirs "].Evidence; !slices.Contains(ev, "alice: /home/alice 0750") {
		t.Errorf("home-dirs evidence %q", ev)
	}
}

// TestOwnersOnImages: 32-bit uids (ext4 keeps the high 16 bits in osd2) and a
// uid with no passwd entry give the right owner findings on ext4, XFS v5 and
// XFS v4 (mkfs.xfs -m crc=0) images alike.
func TestOwnersOnImages(t *testing.T) {
	src, owners := ownerTree(t)
	for _, kind := range []string{"ext4", "xfs", "xfs-v4"} {
		t.Run(kind, func(t *testing.T) {
			wantOwners(t, scanJSON(t, testfixtures.Mkfs(t, kind, src, owners)))
		})
	}
}

// TestCorruptInodeTable: an ext4 image whose inode table entry for /etc/passwd
// is zeroed (a free inode, which the directory still names) or overwritten with
// 0xff is scanned to the end without a panic; the owner rules answer ERROR
// naming the file, never a pass. (Zeroing the whole table block would take
// /etc and the root with it: no root file system, which Open reports.)
func TestCorruptInodeTable(t *testing.T) {
	src, owners := ownerTree(t)
	img := testfixtures.Mkfs(t, "ext4", src, owners)
	out, err := exec.Command("debugfs", "-R", "imap /etc/passwd", img).CombinedOutput()
	if err != nil {
		t.Fatalf("debugfs imap: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`located at block (\d+), offset 0x([0-9a-f]+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("debugfs imap: %s", out)
	}
	out, err = exec.Command("dumpe2fs", "-h", img).CombinedOutput()
	if err != nil {
		t.Fatalf("dumpe2fs: %v\n%s", err, out)
	}
	bs := regexp.MustCompile(`(?m)^Block size:\s+(\d+)`).FindStringSubmatch(string(out))
	if bs == nil {
		t.Fatalf("dumpe2fs: no block size\n%s", out)
	}
	block, _ := strconv.ParseInt(m[1], 10, 64)
	off, _ := strconv.ParseInt(m[2], 16, 64)
	blockSize, _ := strconv.ParseInt(bs[1], 10, 64)
	orig, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	for name, corrupt := range map[string]func(b []byte){
		"zeroed inode": func(b []byte) { clear(b[block*blockSize+off : block*blockSize+off+256]) },
		"0xff inode": func(b []byte) {
			for i := range int64(256) {
				b[block*blockSize+off+i] = 0xff
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			b := append([]byte(nil), orig...)
			corrupt(b)
			p := filepath.Join(t.TempDir(), "corrupt.img")
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			got := scanJSON(t, p) // exit 0 with --fail-on none: the scan finished
			for _, id := range []string{"baseline.perm-passwd", "baseline.unowned-files"} {
				f := got[id+" "]
				if f.Status != "error" || !strings.Contains(f.Message, "etc/passwd") {
					t.Errorf("%s: %s %q, want an error naming /etc/passwd", id, f.Status, f.Message)
				}
			}
		})
	}
}
