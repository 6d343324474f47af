package testfixtures

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
)

// Owner is a uid and a gid.
type Owner struct{ UID, GID uint32 }

// Mkfs builds a file system image of kind from the directory src and returns
// its path (in a temporary directory of t), without mounting anything:
//
//	ext4      mkfs.ext4 -d, 256-byte inodes
//	ext2-128  mkfs.ext4 -t ext2 -d, 128-byte inodes (no extra time fields)
//	xfs       mkfs.xfs -p with a protofile written from src (v5, CRCs)
//	xfs-v4    the same with -m crc=0 (v4 superblock, v2 inodes)
//
// owners gives paths (relative to src) the owner the image records, whatever
// owns them in src: debugfs sif (which writes ext4's high 16 bits too) or the
// protofile. For XFS, src must hold no names with whitespace and no sticky
// bits (a protofile cannot carry them). The tools come from e2fsprogs and
// xfsprogs (scripts/deps.sh).
func Mkfs(t testing.TB, kind, src string, owners map[string]Owner) string {
	t.Helper()
	Long(t, Peers) // mkfs.ext4, mkfs.xfs, debugfs
	dir := t.TempDir()
	img := filepath.Join(dir, "fs.img")
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s (make deps installs e2fsprogs and xfsprogs)", name, args, err, out)
		}
	}
	switch kind {
	case "ext4", "ext2-128":
		args := []string{"-q", "-t", "ext4", "-I", "256", "-d", src, img, "16M"}
		if kind == "ext2-128" {
			args = []string{"-q", "-t", "ext2", "-I", "128", "-d", src, img, "16M"}
		}
		run("mkfs.ext4", args...)
		paths := make([]string, 0, len(owners))
		for p := range owners {
			paths = append(paths, p)
		}
		sort.Strings(paths)
		for _, p := range paths {
			o := owners[p]
			run("debugfs", "-w", "-R", fmt.Sprintf("sif /%s uid %d", p, o.UID), img)
			run("debugfs", "-w", "-R", fmt.Sprintf("sif /%s gid %d", p, o.GID), img)
		}
	case "xfs", "xfs-v4":
		proto := filepath.Join(dir, "proto")
		if err := os.WriteFile(proto, []byte(protofile(t, src, owners)), 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(img)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(300 << 20); err != nil { // mkfs.xfs's minimum
			t.Fatal(err)
		}
		f.Close()
		args := []string{"-q", "-p", proto, img}
		if kind == "xfs-v4" {
			args = append([]string{"-m", "crc=0"}, args...)
		}
		run("mkfs.xfs", args...)
	default:
		t.Fatalf("testfixtures.Mkfs: unknown kind %q", kind)
	}
	return img
}

// protofile writes an mkfs.xfs protofile (xfs_mkfs(8), "-p") for src.
func protofile(t testing.TB, src string, owners map[string]Owner) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("/dev/null\n0 0\n")
	line := func(rel string, info fs.FileInfo, name string, depth int) {
		st := info.Sys().(*syscall.Stat_t)
		uid, gid := st.Uid, st.Gid
		if o, ok := owners[rel]; ok {
			uid, gid = o.UID, o.GID
		}
		m := info.Mode()
		typ, extra := "-", " "+filepath.Join(src, rel)
		switch {
		case m.IsDir():
			typ, extra = "d", ""
		case m&fs.ModeSymlink != 0:
			target, err := os.Readlink(filepath.Join(src, rel))
			if err != nil {
				t.Fatal(err)
			}
			typ, extra = "l", " "+target
		case !m.IsRegular():
			t.Fatalf("testfixtures.Mkfs: %s: only directories, files and symlinks go into a protofile here", rel)
		}
		u, g := "-", "-"
		if m&fs.ModeSetuid != 0 {
			u = "u"
		}
		if m&fs.ModeSetgid != 0 {
			g = "g"
		}
		fmt.Fprintf(&b, "%s%s%s%s%s%03o %d %d%s\n", strings.Repeat(" ", depth), name, typ, u, g, m.Perm(), uid, gid, extra)
	}
	var walk func(rel string, depth int)
	walk = func(rel string, depth int) {
		ents, err := os.ReadDir(filepath.Join(src, rel))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			p := filepath.Join(rel, e.Name())
			info, err := os.Lstat(filepath.Join(src, p))
			if err != nil {
				t.Fatal(err)
			}
			if strings.ContainsAny(e.Name(), " \t\n") || strings.HasPrefix(e.Name(), ":") || e.Name() == "$" {
				t.Fatalf("testfixtures.Mkfs: %s cannot be written in a protofile", p)
			}
			line(p, info, e.Name()+" ", depth)
			if info.IsDir() {
				walk(p, depth+1)
				fmt.Fprintf(&b, "%s$\n", strings.Repeat(" ", depth+1))
			}
		}
	}
	info, err := os.Lstat(src)
	if err != nil {
		t.Fatal(err)
	}
	line(".", info, "", 0)
	walk(".", 1)
	b.WriteString("$\n")
	return b.String()
}
