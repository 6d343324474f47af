package rootfs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

func TestMetaOf(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), []byte("hello"), 0o640)
	os.Symlink("/etc/f", filepath.Join(dir, "l"))
	fsys := New(Dir(dir))
	for name, want := range map[string]string{"f": "", "l": "/etc/f"} {
		info, err := fsys.Lstat(name)
		if err != nil {
			t.Fatal(err)
		}
		m, err := MetaOf(info)
		if err != nil || m.Link != want || m.Inode == 0 || m.Nlink != 1 || m.UID != uint32(os.Getuid()) || m.Mode != info.Mode() {
			t.Errorf("%s: %+v %v", name, m, err)
		}
	}
	// Directory entries, opened files and os.Stat results carry it too.
	ents, _ := fsys.ReadDir(".")
	for _, e := range ents {
		info, _ := e.Info()
		if _, err := MetaOf(info); err != nil {
			t.Errorf("entry %s: %v", e.Name(), err)
		}
	}
	f, _ := fsys.Open("f")
	info, _ := f.Stat()
	f.Close()
	if m, err := MetaOf(info); err != nil || m.Size != 5 {
		t.Errorf("opened: %+v %v", m, err)
	}
	// A FileInfo without metadata is an error naming the file.
	info, _ = (fstest.MapFS{"x": {Data: []byte("x")}}).Stat("x")
	if _, err := MetaOf(info); err == nil || !strings.Contains(err.Error(), "x:") {
		t.Errorf("no metadata: %v", err)
	}
}
