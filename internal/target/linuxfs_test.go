package target

import (
	"bytes"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/vouch-dev/vouch/internal/rootfs"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// mkfsImage builds a small file system of the given type holding a root-like
// tree (with a relative and an absolute symlink) and returns its bytes.
func mkfsImage(t testing.TB, kind string) []byte {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	for _, d := range []string{"etc", "usr/lib", "boot", "usr/share/zoneinfo"} {
		os.MkdirAll(filepath.Join(src, d), 0o755)
	}
	os.WriteFile(filepath.Join(src, "usr/lib/os-release"), []byte("ID=debian\nVERSION_ID=12\n"), 0o644)
	os.WriteFile(filepath.Join(src, "usr/share/zoneinfo/UTC"), []byte("TZif2"), 0o644)
	os.WriteFile(filepath.Join(src, "boot/vmlinuz-9.9.9-1-amd64"), bytes.Repeat([]byte("k"), 5000), 0o644)
	os.Symlink("../usr/lib/os-release", filepath.Join(src, "etc/os-release"))
	os.Symlink("/usr/share/zoneinfo/UTC", filepath.Join(src, "etc/localtime"))
	img := filepath.Join(dir, "fs.img")
	var cmd *exec.Cmd
	switch kind {
	case "ext4":
		cmd = exec.Command("mkfs.ext4", "-q", "-d", src, img, "2M")
	case "xfs":
		proto := filepath.Join(dir, "proto")
		os.WriteFile(proto, []byte(xfsProto(src)), 0o644)
		f, _ := os.Create(img)
		f.Truncate(300 << 20)
		f.Close()
		cmd = exec.Command("mkfs.xfs", "-q", "-p", proto, img)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s (install e2fsprogs and xfsprogs)", cmd.Args, err, out)
	}
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// xfsProto writes an mkfs.xfs protofile for the fixed tree of mkfsImage.
func xfsProto(src string) string {
	return `/dev/null
0 0
d--755 0 0
etc d--755 0 0
os-release l--777 0 0 ../usr/lib/os-release
localtime l--777 0 0 /usr/share/zoneinfo/UTC
$
usr d--755 0 0
lib d--755 0 0
os-release ---644 0 0 ` + filepath.Join(src, "usr/lib/os-release") + `
$
share d--755 0 0
zoneinfo d--755 0 0
UTC ---644 0 0 ` + filepath.Join(src, "usr/share/zoneinfo/UTC") + `
$
$
$
boot d--755 0 0
vmlinuz-9.9.9-1-amd64 ---644 0 0 ` + filepath.Join(src, "boot/vmlinuz-9.9.9-1-amd64") + `
$
$
`
}

func openKind(kind string, b []byte) (*rootfs.FS, error) {
	sec := io.NewSectionReader(bytes.NewReader(b), 0, int64(len(b)))
	return openLinuxFS(kind, sec)
}

func TestLinuxFS(t *testing.T) {
	testfixtures.Long(t, testfixtures.Peers)
	for _, kind := range []string{"ext4", "xfs"} {
		t.Run(kind, func(t *testing.T) {
			root, err := openKind(kind, mkfsImage(t, kind))
			if err != nil {
				t.Fatal(err)
			}
			for name, want := range map[string]string{
				"etc/os-release": "ID=debian\nVERSION_ID=12\n",
				"etc/localtime":  "TZif2",
			} {
				b, err := root.ReadFile(name)
				if err != nil || string(b) != want {
					t.Errorf("%s: %q, %v", name, b, err)
				}
			}
			b, err := root.ReadFile("boot/vmlinuz-9.9.9-1-amd64")
			if err != nil || len(b) != 5000 {
				t.Errorf("kernel: %d bytes, %v", len(b), err)
			}
			if !isRoot(root) {
				t.Error("not recognised as a root")
			}
			var paths []string
			err = fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				paths = append(paths, p)
				return nil
			})
			if err != nil || len(paths) < 9 {
				t.Errorf("walk: %v %v", paths, err)
			}
			if target, err := root.ReadLink("etc/localtime"); err != nil || target != "/usr/share/zoneinfo/UTC" {
				t.Errorf("readlink: %q %v", target, err)
			}
		})
	}
}

// FuzzExt4 feeds corrupted ext4 metadata through the adapter: any error is fine,
// a panic or a hang is not. Found and fixed this way (with the ext4 library
// vouch used before its own reader): a directory entry pointing at an ancestor
// (endless walk), an inode claiming hundreds of MiB in a 2 MiB file system, a
// reader making no progress. It mutates the first 16 KiB (superblock, group
// descriptors, bitmaps, the first inode table blocks) of a 2 MiB image;
// FuzzExt4Image mutates whole small images.
func FuzzExt4(f *testing.F) {
	testfixtures.Long(f, testfixtures.Peers)
	seed := mkfsImage(f, "ext4")
	f.Add(seed[:16<<10])
	f.Fuzz(func(t *testing.T, b []byte) {
		// Keep the image's size: lay the fuzzed prefix over the real image.
		img := append([]byte(nil), seed...)
		copy(img, b[:min(len(b), 16<<10)])
		root, err := openKind("ext4", img)
		if err != nil {
			return
		}
		fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				root.ReadFile(p)
			}
			return nil
		})
	})
}
