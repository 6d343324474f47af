package rootfs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
)

// tree builds a small root with the symlink shapes a Debian root has.
func tree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	mk := func(p, content string) {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ln := func(target, p string) {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, full); err != nil {
			t.Fatal(err)
		}
	}
	mk("usr/lib/os-release", "ID=debian\n")
	mk("usr/bin/true", "bin")
	mk("usr/share/zoneinfo/UTC", "TZif")
	ln("../usr/lib/os-release", "etc/os-release")       // relative, as Debian ships it
	ln("usr/bin", "bin")                                // merged /usr
	ln("/usr/share/zoneinfo/UTC", "etc/localtime")      // absolute: must stay inside the root
	ln("/../../../../usr/lib/os-release", "etc/escape") // tries to climb out
	ln("loop2", "loop1")
	ln("loop1", "loop2")
	ln("/nonexistent", "dangling")
	return dir
}

func open(t *testing.T) *FS {
	base, ok := os.DirFS(tree(t)).(Base)
	if !ok {
		t.Fatal("os.DirFS does not implement rootfs.Base")
	}
	return New(base)
}

func TestResolve(t *testing.T) {
	f := open(t)
	for _, tc := range []struct {
		name, want string
	}{
		{"etc/os-release", "ID=debian\n"},
		{"etc/localtime", "TZif"},
		{"bin/true", "bin"},
		{"etc/escape", "ID=debian\n"},
	} {
		b, err := f.ReadFile(tc.name)
		if err != nil {
			t.Errorf("ReadFile(%s): %v", tc.name, err)
			continue
		}
		if string(b) != tc.want {
			t.Errorf("ReadFile(%s) = %q, want %q", tc.name, b, tc.want)
		}
	}
}

func TestErrors(t *testing.T) {
	f := open(t)
	if _, err := f.Open("loop1"); !errors.Is(err, ErrTooManyLinks) {
		t.Errorf("loop: got %v, want ErrTooManyLinks", err)
	}
	if _, err := f.Open("dangling"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("dangling: got %v, want ErrNotExist", err)
	}
	if _, err := f.Open("nope/x"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: got %v, want ErrNotExist", err)
	}
	if _, err := f.Open("/etc/os-release"); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("absolute name: got %v, want ErrInvalid", err)
	}
	if _, err := f.ReadFile("usr"); err == nil {
		t.Error("ReadFile of a directory succeeded")
	}
}

func TestLstatAndReadLink(t *testing.T) {
	f := open(t)
	info, err := f.Lstat("etc/os-release")
	if err != nil || info.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("Lstat(etc/os-release) = %v, %v; want a symlink", info, err)
	}
	target, err := f.ReadLink("etc/os-release")
	if err != nil || target != "../usr/lib/os-release" {
		t.Errorf("ReadLink = %q, %v", target, err)
	}
	info, err = f.Stat("bin")
	if err != nil || !info.IsDir() {
		t.Errorf("Stat(bin) = %v, %v; want a directory", info, err)
	}
	entries, err := f.ReadDir("bin")
	if err != nil || len(entries) != 1 || entries[0].Name() != "true" {
		t.Errorf("ReadDir(bin) = %v, %v", entries, err)
	}
}

func TestFSTest(t *testing.T) {
	// A tree without loops or dangling links passes io/fs's conformance test.
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "usr/lib"), 0o755)
	os.WriteFile(filepath.Join(dir, "usr/lib/os-release"), []byte("ID=x\n"), 0o644)
	os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	os.Symlink("/usr/lib/os-release", filepath.Join(dir, "etc/os-release"))
	f := New(os.DirFS(dir).(Base))
	if err := fstest.TestFS(f, "usr/lib/os-release", "etc/os-release"); err != nil {
		t.Error(err)
	}
}
