package target

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vouch-dev/vouch/internal/rootfs"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// metaTree writes a tree whose metadata the backends must all report alike:
// owners set apart later (a 32-bit uid, a group), set-id bits, a short and a
// long symlink (inline and in blocks, on ext4 and XFS), a directory large
// enough for XFS's node form, files with known modification times.
func metaTree(t testing.TB) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"etc", "usr/lib", "usr/bin", "home/alice", "srv/many"} {
		must(os.MkdirAll(filepath.Join(src, d), 0o755))
	}
	must(os.Chmod(filepath.Join(src, "home/alice"), 0o750))
	must(os.WriteFile(filepath.Join(src, "usr/lib/os-release"), []byte("ID=debian\nVERSION_ID=12\n"), 0o644))
	must(os.WriteFile(filepath.Join(src, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/bash\n"), 0o644))
	must(os.WriteFile(filepath.Join(src, "etc/shadow"), []byte("root:*:19000:0:99999:7:::\n"), 0o640))
	must(os.WriteFile(filepath.Join(src, "usr/bin/su"), []byte("\x7fELF"), 0o755))
	must(os.Chmod(filepath.Join(src, "usr/bin/su"), 0o4755))
	must(os.WriteFile(filepath.Join(src, "usr/bin/wall"), []byte("\x7fELF"), 0o755))
	must(os.Chmod(filepath.Join(src, "usr/bin/wall"), 0o2755))
	must(os.WriteFile(filepath.Join(src, "srv/orphan"), []byte("owned by nobody known"), 0o600))
	must(os.Symlink("../usr/lib/os-release", filepath.Join(src, "etc/os-release")))
	must(os.Symlink("/"+strings.Repeat("a-long-symlink-target/", 30)+"end", filepath.Join(src, "etc/long-link")))
	for i := range 1200 {
		must(os.WriteFile(filepath.Join(src, "srv/many", fmt.Sprintf("entry-%04d", i)), nil, 0o644))
	}
	when := time.Date(2023, 6, 1, 12, 34, 56, 789000000, time.UTC)
	for _, p := range []string{"etc/passwd", "etc/shadow", "usr/bin/su"} {
		must(os.Chtimes(filepath.Join(src, p), when, when))
	}
	return src
}

// metaOwners are the owners the images give some files, whatever the tree's
// owner is: above 65535 (ext4 keeps the high 16 bits apart), and far above.
var metaOwners = map[string]testfixtures.Owner{
	"home/alice": {UID: 70000, GID: 70001},
	"srv/orphan": {UID: 0x12345678, GID: 4242},
	"etc/shadow": {UID: 0, GID: 42},
}

// metaImage builds a file system of kind from src with metaOwners applied.
func metaImage(t testing.TB, src, kind string) []byte {
	t.Helper()
	img := testfixtures.Mkfs(t, kind, src, metaOwners)
	if kind == "ext4" {
		// mkfs.ext4 -d keeps whole seconds: put nanoseconds (the upper 30
		// bits of i_mtime_extra) on one file and the first epoch bit (seconds
		// + 2^32, past 2106) on another.
		for _, req := range []string{fmt.Sprintf("sif /usr/bin/su mtime_extra %d", 789000000<<2), "sif /etc/passwd mtime_extra 1"} {
			if out, err := exec.Command("debugfs", "-w", "-R", req, img).CombinedOutput(); err != nil {
				t.Fatalf("debugfs %s: %v\n%s", req, err, out)
			}
		}
	}
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMeta: every backend (the source directory through rootfs.Dir, ext4 with
// large inodes, ext2 with 128-byte inodes, XFS v5 and v4) reports the same
// mode, owner (32-bit uids included), size, symlink target, and distinct inode
// numbers for every file of one tree; ext4's times carry nanoseconds and the
// epoch bits of the large inode, ext2's small inodes whole seconds (mkfs.xfs
// -p sets its own times).
func TestMeta(t *testing.T) {
	src := metaTree(t)
	dirRoot := rootfs.New(rootfs.Dir(src))
	var paths []string
	err := fs.WalkDir(dirRoot, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !strings.HasPrefix(p, "srv/many/") || strings.HasSuffix(p, "0") {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(paths)
	want := map[string]rootfs.Meta{}
	for _, p := range paths {
		info, err := dirRoot.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		m, err := rootfs.MetaOf(info)
		if err != nil {
			t.Fatalf("directory backend: %v", err)
		}
		st, _ := os.Lstat(filepath.Join(src, p))
		sys := st.Sys().(*syscall.Stat_t)
		if m.UID != sys.Uid || m.GID != sys.Gid || m.Inode != sys.Ino || m.Size != sys.Size || m.Mode != st.Mode() {
			t.Errorf("directory backend %s: %+v, stat(2) says %+v", p, m, sys)
		}
		if o, ok := metaOwners[p]; ok {
			m.UID, m.GID = o.UID, o.GID
		}
		want[p] = *m
	}
	if want["etc/long-link"].Link == "" || want["etc/os-release"].Link != "../usr/lib/os-release" {
		t.Fatalf("directory backend symlinks: %+v %+v", want["etc/long-link"], want["etc/os-release"])
	}
	for _, kind := range []string{"ext4", "ext2-128", "xfs", "xfs-v4"} {
		t.Run(kind, func(t *testing.T) {
			fsType := "ext4"
			if strings.HasPrefix(kind, "xfs") {
				fsType = "xfs"
			}
			root, err := openKind(fsType, metaImage(t, src, kind))
			if err != nil {
				t.Fatal(err)
			}
			inodes := map[uint64]string{}
			for _, p := range paths {
				info, err := root.Lstat(p)
				if err != nil {
					t.Errorf("%s: %v", p, err)
					continue
				}
				m, err := rootfs.MetaOf(info)
				if err != nil {
					t.Fatalf("%s: %v", p, err)
				}
				w := want[p]
				if m.Mode != w.Mode || m.UID != w.UID || m.GID != w.GID || m.Link != w.Link || (!m.Mode.IsDir() && m.Size != w.Size) {
					t.Errorf("%s:\n got mode %v uid %d gid %d size %d link %q\nwant mode %v uid %d gid %d size %d link %q",
						p, m.Mode, m.UID, m.GID, m.Size, m.Link, w.Mode, w.UID, w.GID, w.Size, w.Link)
				}
				if prev, dup := inodes[m.Inode]; dup || m.Inode == 0 {
					t.Errorf("%s: inode %d (also %q)", p, m.Inode, prev)
				}
				inodes[m.Inode] = p
				if m.Nlink == 0 {
					t.Errorf("%s: link count 0", p)
				}
				switch {
				case !m.Mode.IsRegular():
					// mkfs changes directories (lost+found) and sets symlinks' times.
				case kind == "ext4":
					exp := time.Unix(w.ModTime.Unix(), 0)
					switch p {
					case "usr/bin/su":
						exp = w.ModTime
					case "etc/passwd":
						exp = time.Unix(w.ModTime.Unix()+1<<32, 0)
					}
					if !m.ModTime.Equal(exp) {
						t.Errorf("%s: mtime %v, want %v", p, m.ModTime, exp)
					}
				case kind == "ext2-128":
					if m.ModTime.Unix() != w.ModTime.Unix() {
						t.Errorf("%s: mtime %v, want %v (to the second)", p, m.ModTime, w.ModTime)
					}
				default:
					if m.ModTime.Year() < 2020 || m.ChangeTime.IsZero() || m.AccessTime.IsZero() {
						t.Errorf("%s: times %v %v %v", p, m.ModTime, m.ChangeTime, m.AccessTime)
					}
				}
			}
			// A file opened and stat'ed, and a directory entry's Info, say the same.
			f, err := root.Open("srv/orphan")
			if err != nil {
				t.Fatal(err)
			}
			info, _ := f.Stat()
			f.Close()
			if m, err := rootfs.MetaOf(info); err != nil || m.UID != 0x12345678 {
				t.Errorf("opened srv/orphan: %+v %v", m, err)
			}
			ents, err := root.ReadDir("home")
			if err != nil || len(ents) != 1 {
				t.Fatalf("home: %v %v", ents, err)
			}
			info, err = ents[0].Info()
			if m, merr := rootfs.MetaOf(info); err != nil || merr != nil || m.UID != 70000 || m.GID != 70001 {
				t.Errorf("home/alice entry: %+v %v %v", m, err, merr)
			}
			if n, err := root.ReadDir("srv/many"); err != nil || len(n) != 1200 {
				t.Errorf("srv/many: %d entries, %v", len(n), err)
			}
		})
	}
}
