package atomicfile_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/vouch-dev/vouch/internal/atomicfile"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a", "b", "file")
	if err := atomicfile.Write(p, []byte("one"), atomicfile.Options{}); err == nil {
		t.Fatal("missing folder without MkdirAll accepted")
	}
	if err := atomicfile.Write(p, []byte("one"), atomicfile.Options{MkdirAll: true, Mode: 0o600, Owner: &atomicfile.Owner{UID: os.Getuid(), GID: os.Getgid()}}); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.Write(p, []byte("two"), atomicfile.Options{Mode: 0o640}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	info, _ := os.Stat(p)
	if err != nil || string(b) != "two" || info.Mode().Perm() != 0o640 {
		t.Errorf("content %q mode %v err %v", b, info.Mode(), err)
	}
	// Mode 0 is kept, not replaced by a default (a shadow file of mode 0000
	// rewritten by remediate stays unreadable).
	if err := atomicfile.Write(p, []byte("three"), atomicfile.Options{}); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(p); err != nil || info.Mode().Perm() != 0 {
		t.Errorf("mode 0 written as %v (%v)", info.Mode(), err)
	}
	// A write that fails (the path is a folder) leaves no temporary file.
	if err := atomicfile.Write(filepath.Join(dir, "a"), []byte("x"), atomicfile.Options{}); err == nil {
		t.Error("replacing a folder succeeded")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("left behind: %v", entries)
	}
}
