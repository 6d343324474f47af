package target

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/vouch-dev/vouch/internal/rootfs"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// ext4Tree writes a source tree that exercises the ext4 reader's paths: a
// directory large enough to be htree-indexed (after e2fsck -D), a sparse file
// whose many extents need an extent tree of depth 1, a file long enough for
// double indirect blocks at 1 KiB blocks, fast and slow symlinks, small files
// (inline data when the feature is on), an empty file, a FIFO and set-id bits.
func ext4Tree(t testing.TB) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"etc", "usr/lib", "usr/bin", "var/big", "deep/a/b/c/d/e/f"} {
		must(os.MkdirAll(filepath.Join(src, d), 0o755))
	}
	must(os.WriteFile(filepath.Join(src, "usr/lib/os-release"), []byte("ID=debian\nVERSION_ID=12\n"), 0o644))
	must(os.Symlink("../usr/lib/os-release", filepath.Join(src, "etc/os-release")))
	long := "/" + strings.Repeat("long-symlink-target/", 6) + "end"
	must(os.Symlink(long, filepath.Join(src, "etc/long-link")))
	for i := range 600 {
		name := fmt.Sprintf("entry-with-a-rather-long-name-to-fill-blocks-%04d", i)
		must(os.WriteFile(filepath.Join(src, "var/big", name), []byte(name), 0o644))
	}
	// Sparse: 40 one-block pieces of data separated by holes.
	f, err := os.Create(filepath.Join(src, "usr/lib/sparse.img"))
	must(err)
	for i := range 40 {
		_, err := f.WriteAt(bytes.Repeat([]byte{byte('A' + i%26)}, 4096), int64(i)*64<<10)
		must(err)
	}
	must(f.Truncate(41 * 64 << 10))
	must(f.Close())
	big := make([]byte, 700<<10)
	for i := range big {
		big[i] = byte(i * 7 / 13)
	}
	must(os.WriteFile(filepath.Join(src, "usr/bin/big"), big, 0o755))
	must(os.Chmod(filepath.Join(src, "usr/bin/big"), 0o4755))
	must(os.WriteFile(filepath.Join(src, "etc/tiny"), []byte("tiny\n"), 0o600))
	must(os.WriteFile(filepath.Join(src, "etc/small"), bytes.Repeat([]byte("0123456789"), 10), 0o644))
	must(os.WriteFile(filepath.Join(src, "etc/empty"), nil, 0o644))
	must(os.WriteFile(filepath.Join(src, "deep/a/b/c/d/e/f/leaf"), []byte("leaf"), 0o644))
	must(syscall.Mkfifo(filepath.Join(src, "etc/fifo"), 0o644))
	return src
}

// mkfsVariant builds an ext2/3/4 image of src with mke2fs options and indexes
// its directories with e2fsck -D.
func mkfsVariant(t testing.TB, src, size string, args ...string) []byte {
	t.Helper()
	img := filepath.Join(t.TempDir(), "fs.img")
	cmd := exec.Command("mke2fs", append(append([]string{"-q", "-F", "-d", src}, args...), img, size)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s (install e2fsprogs)", cmd.Args, err, out)
	}
	// e2fsck -D exits 1 when it changed (indexed) something.
	if out, err := exec.Command("e2fsck", "-fyD", img).CombinedOutput(); err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() > 1 {
			t.Fatalf("e2fsck -fyD: %v\n%s", err, out)
		}
	}
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// treeSummary describes every path under root: type, permission bits, size,
// symlink target and a digest of the content, one line each, sorted.
func treeSummary(t testing.TB, fsys fs.FS, readLink func(string) (string, error), lstat func(string) (fs.FileInfo, error)) []string {
	t.Helper()
	var out []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := lstat(p)
		if err != nil {
			return err
		}
		if d.Type() != info.Mode().Type() {
			return fmt.Errorf("%s: entry type %v, inode type %v", p, d.Type(), info.Mode().Type())
		}
		line := fmt.Sprintf("%s %v", p, info.Mode())
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := readLink(p)
			if err != nil {
				return err
			}
			line += " -> " + target
		case info.Mode().IsRegular():
			f, err := fsys.Open(p)
			if err != nil {
				return err
			}
			h := sha256.New()
			n, err := io.CopyBuffer(h, struct{ io.Reader }{f}, make([]byte, 3000)) // odd size: reads straddle blocks
			f.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			line += fmt.Sprintf(" %d %d %x", info.Size(), n, h.Sum(nil)[:8])
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func dirSummary(t testing.TB, dir string) []string {
	fsys := os.DirFS(dir)
	return treeSummary(t, fsys, func(p string) (string, error) { return os.Readlink(filepath.Join(dir, p)) },
		func(p string) (fs.FileInfo, error) { return os.Lstat(filepath.Join(dir, p)) })
}

func imageSummary(t testing.TB, root *rootfs.FS) []string {
	// Lstat and Open of the base: rootfs would follow the symlinks.
	return treeSummary(t, root, root.ReadLink, root.Lstat)
}

// TestExt4Variants reads the same tree from file systems made with the layouts
// vouch meets: ext2 and ext3 (block maps), ext4 with and without 64-bit
// descriptors, 1 KiB and 64 KiB blocks, 128-byte inodes, META_BG, inline data.
func TestExt4Variants(t *testing.T) {
	testfixtures.Long(t, testfixtures.Peers)
	src := ext4Tree(t)
	want := dirSummary(t, src)
	for _, v := range []struct {
		name string
		size string
		args []string
	}{
		{"ext4", "16M", []string{"-t", "ext4", "-b", "4096"}},
		{"ext4-1k", "8M", []string{"-t", "ext4", "-b", "1024"}},
		{"ext4-1k-blockmap", "8M", []string{"-t", "ext4", "-b", "1024", "-O", "^extent,^flex_bg,^64bit"}},
		{"ext4-32bit-128inode", "16M", []string{"-t", "ext4", "-b", "4096", "-O", "^64bit", "-I", "128"}},
		{"ext4-64k", "256M", []string{"-t", "ext4", "-b", "65536"}},
		{"ext4-metabg", "16M", []string{"-t", "ext4", "-b", "4096", "-O", "meta_bg,^resize_inode"}},
		{"ext4-inline", "16M", []string{"-t", "ext4", "-b", "4096", "-O", "inline_data"}},
		{"ext4-nofiletype", "16M", []string{"-t", "ext4", "-b", "4096", "-O", "^filetype"}},
		{"ext3", "8M", []string{"-t", "ext3"}},
		{"ext2", "8M", []string{"-t", "ext2", "-b", "1024"}},
	} {
		t.Run(v.name, func(t *testing.T) {
			img := mkfsVariant(t, src, v.size, v.args...)
			checkLayout(t, img, v.name)
			root, err := openKind("ext4", img)
			if err != nil {
				t.Fatal(err)
			}
			got := imageSummary(t, root)
			// lost+found exists only in the image.
			got = slicesDelete(got, func(s string) bool { return strings.HasPrefix(s, "lost+found ") })
			want := want
			if v.name == "ext4-inline" {
				// mke2fs 1.47.0 -d with inline_data records a wrong size for
				// a sparse file (debugfs "stat" shows the same wrong size),
				// so the image is not a faithful copy there.
				drop := func(s string) bool { return strings.HasPrefix(s, "usr/lib/sparse.img ") }
				got, want = slicesDelete(got, drop), slicesDelete(want, drop)
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("image and source tree differ:\n%s", diffLines(want, got))
			}
		})
	}
}

// checkLayout makes sure a variant holds the structures it is meant to test.
func checkLayout(t *testing.T, img []byte, variant string) {
	t.Helper()
	e, err := newExt4FS(io.NewSectionReader(bytes.NewReader(img), 0, int64(len(img))))
	if err != nil {
		t.Fatal(err)
	}
	flags := func(p string) uint32 {
		in, err := e.lookup(p)
		if err != nil {
			t.Fatal(err)
		}
		return in.flags
	}
	const indexFl = 0x1000 // EXT4_INDEX_FL: an htree directory
	// With 64 KiB blocks, var/big fits one block and sparse.img's pieces
	// fill whole consecutive blocks: that variant tests the block size.
	if variant != "ext4-64k" && flags("var/big")&indexFl == 0 {
		t.Errorf("%s: var/big is not htree-indexed", variant)
	}
	switch variant {
	case "ext4-inline":
		if flags("etc/tiny")&ext4InlineDataFl == 0 || flags("etc/small")&ext4InlineDataFl == 0 || flags("deep/a")&ext4InlineDataFl == 0 {
			t.Errorf("%s: small files and directories are not inline", variant)
		}
	case "ext4", "ext4-1k":
		in, _ := e.lookup("usr/lib/sparse.img")
		if in.flags&ext4ExtentsFl == 0 || binary.LittleEndian.Uint16(in.block[6:]) == 0 {
			t.Errorf("%s: sparse.img has no extent tree below the inode (depth 0)", variant)
		}
	case "ext4-1k-blockmap", "ext2", "ext3":
		if flags("usr/bin/big")&ext4ExtentsFl != 0 {
			t.Errorf("%s: usr/bin/big uses extents", variant)
		}
	}
}

func slicesDelete(s []string, del func(string) bool) []string {
	var out []string
	for _, x := range s {
		if !del(x) {
			out = append(out, x)
		}
	}
	return out
}

func diffLines(want, got []string) string {
	w := map[string]bool{}
	for _, x := range want {
		w[x] = true
	}
	g := map[string]bool{}
	for _, x := range got {
		g[x] = true
	}
	var b strings.Builder
	for _, x := range want {
		if !g[x] {
			fmt.Fprintf(&b, "  only in source: %s\n", x)
		}
	}
	for _, x := range got {
		if !w[x] {
			fmt.Fprintf(&b, "  only in image:  %s\n", x)
		}
	}
	return b.String()
}

// TestExt4Fixture reads the whole Debian root file system of the fixture
// (root.ext4, made by mkfs.ext4 -d from rootfs/) and compares every path,
// type, mode, size, symlink target and content with the directory, reading
// from several goroutines at once as the integrity check does.
func TestExt4Fixture(t *testing.T) {
	testfixtures.NeedFixtures(t)
	img := testfixtures.Path(t, "root.ext4")
	dir := testfixtures.Path(t, "rootfs")
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, _ := f.Stat()
	root, err := openLinuxFS("ext4", io.NewSectionReader(f, 0, info.Size()))
	if err != nil {
		t.Fatal(err)
	}
	// Concurrent readers first: each walks a part of the tree.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for _, top := range []string{"usr/lib", "usr/share", "usr/bin", "etc"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- fs.WalkDir(root, top, func(p string, d fs.DirEntry, err error) error {
				if err != nil || !d.Type().IsRegular() {
					return err
				}
				a, err := root.ReadFile(p)
				if err != nil {
					return err
				}
				b, err := os.ReadFile(filepath.Join(dir, p))
				if err != nil {
					return err
				}
				if !bytes.Equal(a, b) {
					return fmt.Errorf("%s: content differs", p)
				}
				return nil
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	got := imageSummary(t, root)
	got = slicesDelete(got, func(s string) bool { return strings.HasPrefix(s, "lost+found ") })
	want := dirSummary(t, dir)
	if len(want) < 10000 {
		t.Fatalf("only %d paths in the fixture", len(want))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("root.ext4 and rootfs/ differ:\n%s", diffLines(want, got))
	}
}

// smallExt4 builds a 128 KiB ext4 image (1 KiB blocks, no journal) holding an
// htree directory, a symlink, a multi-block file and, with inline_data, inline
// files and directories: small enough for the fuzzer to mutate all of it.
func smallExt4(t testing.TB, features string) []byte {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	os.MkdirAll(filepath.Join(src, "etc"), 0o755)
	os.MkdirAll(filepath.Join(src, "d/e"), 0o755)
	os.WriteFile(filepath.Join(src, "etc/os-release"), []byte("ID=debian\n"), 0o644)
	os.WriteFile(filepath.Join(src, "d/e/numbers"), bytes.Repeat([]byte("1234567\n"), 800), 0o644)
	os.Symlink("../etc/os-release", filepath.Join(src, "d/link"))
	for i := range 40 {
		os.WriteFile(filepath.Join(src, fmt.Sprintf("d/file-with-a-long-name-%02d", i)), []byte{byte(i)}, 0o644)
	}
	return mkfsVariant(t, src, "128K", "-t", "ext4", "-b", "1024", "-N", "64", "-O", features)
}

// FuzzExt4Image corrupts small ext4 images (superblock, descriptors, inode
// tables, extent trees, directory blocks, inline data) and reads every file of
// what it gets: any error is fine, a panic, a hang or a huge allocation is not.
// The fuzzer's input is a patch (where, what) over one of three real images,
// so that inputs stay small (a whole 128 KiB image as the input makes the
// fuzzer spend its time minimising) while every byte can be reached.
func FuzzExt4Image(f *testing.F) {
	testfixtures.Long(f, testfixtures.Peers)
	var seeds [][]byte
	for _, features := range smallExt4Features {
		seeds = append(seeds, smallExt4(f, features))
	}
	f.Add(uint8(0), uint32(1024), []byte{0xff, 0xff})               // superblock inode count
	f.Add(uint8(1), uint32(0x2000), bytes.Repeat([]byte{0x41}, 64)) // group descriptors
	f.Add(uint8(2), uint32(0x8000), []byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, which uint8, off uint32, patch []byte) {
		seed := seeds[int(which)%len(seeds)]
		img := append([]byte(nil), seed...)
		copy(img[int(off)%len(img):], patch)
		root, err := openKind("ext4", img)
		if err != nil {
			return
		}
		fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if d.Type()&fs.ModeSymlink != 0 {
				root.ReadLink(p)
			}
			if !d.IsDir() {
				root.ReadFile(p)
				root.Lstat(p)
			}
			return nil
		})
	})
}

// smallExt4Features are the layouts of the fuzzer's images: extents, inline
// data, and ext2/3-style block maps.
var smallExt4Features = []string{"^has_journal,^resize_inode", "^has_journal,^resize_inode,inline_data", "^has_journal,^resize_inode,^extent,^64bit,^flex_bg"}

// TestSmallExt4 makes sure the fuzzer's seeds are readable images.
func TestSmallExt4(t *testing.T) {
	testfixtures.Long(t, testfixtures.Peers)
	for _, features := range smallExt4Features {
		root, err := openKind("ext4", smallExt4(t, features))
		if err != nil {
			t.Fatalf("%s: %v", features, err)
		}
		b, err := root.ReadFile("d/e/numbers")
		if err != nil || len(b) != 6400 {
			t.Errorf("%s: numbers: %d bytes, %v", features, len(b), err)
		}
		entries, err := root.ReadDir("d")
		if err != nil || len(entries) != 42 {
			t.Errorf("%s: d has %d entries, %v", features, len(entries), err)
		}
		if b, err := root.ReadFile("d/link"); err != nil || string(b) != "ID=debian\n" {
			t.Errorf("%s: d/link: %q %v", features, b, err)
		}
	}
}

// TestExt4Corrupt: the defences against a corrupt file system hold with the
// ext4 reader: a directory linked below itself is a cycle error, not an
// endless walk; a file claiming more bytes than its file system is not read; a
// directory entry naming a nonexistent inode is an error for that path only.
func TestExt4Corrupt(t *testing.T) {
	testfixtures.Long(t, testfixtures.Peers)
	img := filepath.Join(t.TempDir(), "fs.img")
	if err := os.WriteFile(img, smallExt4(t, smallExt4Features[0]), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, req := range []string{
		"ln d d/e/loop",                           // d/e/loop is d again
		"sif etc/os-release size 0x7fffffffff",    // 512 GiB in a 128 KiB file system
		"ln d/file-with-a-long-name-00 etc/ghost", // made to point past the inode count below
	} {
		if out, err := exec.Command("debugfs", "-w", "-R", req, img).CombinedOutput(); err != nil {
			t.Fatalf("debugfs %s: %v\n%s (install e2fsprogs)", req, err, out)
		}
	}
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	// debugfs will not link a nonexistent inode: patch the entry's inode field
	// (4 bytes, 8 before the name in struct ext4_dir_entry_2).
	i := bytes.Index(b, []byte("ghost"))
	if i < 8 {
		t.Fatal("no directory entry named ghost in the image")
	}
	binary.LittleEndian.PutUint32(b[i-8:], 9999999)
	root, err := openKind("ext4", b)
	if err != nil {
		t.Fatal(err)
	}
	var errs []string
	paths := 0
	fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		paths++
		if err != nil {
			errs = append(errs, err.Error())
			return nil
		}
		if _, err := root.Lstat(p); err != nil {
			errs = append(errs, err.Error())
		}
		if d.Type().IsRegular() {
			if _, err := root.ReadFile(p); err != nil {
				errs = append(errs, err.Error())
			}
		}
		return nil
	})
	all := strings.Join(errs, "\n")
	for _, want := range []string{"directory cycle", "claims 549755813887 bytes", "etc/ghost", "inode 9999999 does not exist"} {
		if !strings.Contains(all, want) {
			t.Errorf("no error with %q among:\n%s", want, all)
		}
	}
	if paths > 100 {
		t.Errorf("walked %d paths: the cycle was followed", paths)
	}
	// The rest is still read.
	if b, err := root.ReadFile("d/e/numbers"); err != nil || len(b) != 6400 {
		t.Errorf("d/e/numbers: %d bytes, %v", len(b), err)
	}
}
