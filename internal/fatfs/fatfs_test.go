package fatfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/vouch-dev/vouch/internal/rootfs"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

func TestRealImages(t *testing.T) {
	testfixtures.Long(t, testfixtures.Peers)
	for _, spec := range imageSpecs {
		t.Run(spec.name, func(t *testing.T) {
			t.Parallel()
			img := buildImage(t, spec)
			fsys := openImage(t, img.path)

			if got, want := fsys.Type(), "FAT"+strconv.Itoa(spec.bits); got != want {
				t.Errorf("Type() = %q, want %q", got, want)
			}
			if got := fsys.Label(); got != spec.label {
				t.Errorf("Label() = %q, want %q", got, spec.label)
			}
			if got := fsys.Serial(); got != spec.serial {
				t.Errorf("Serial() = %08x, want %08x", got, spec.serial)
			}
			raw, err := os.Open(img.path)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			st, _ := raw.Stat()
			if !Probe(raw, st.Size()) {
				t.Error("Probe() = false on a real image")
			}

			t.Run("tree", func(t *testing.T) { checkTree(t, fsys, img) })
			t.Run("mdir", func(t *testing.T) { checkMdir(t, fsys, img) })
			t.Run("fstest", func(t *testing.T) {
				// fstest reads files a byte at a time through iotest.TestReader;
				// serve the image from memory so that is not a syscall per byte.
				data, err := os.ReadFile(img.path)
				if err != nil {
					t.Fatal(err)
				}
				mem, err := New(bytes.NewReader(data), int64(len(data)))
				if err != nil {
					t.Fatal(err)
				}
				var expected []string
				for name := range img.files {
					expected = append(expected, name)
				}
				slices.Sort(expected)
				if err := fstest.TestFS(mem, expected...); err != nil {
					t.Error(err)
				}
			})
			t.Run("case-insensitive", func(t *testing.T) { checkCaseInsensitive(t, fsys) })
			t.Run("names", func(t *testing.T) { checkNames(t, fsys, img) })
			t.Run("fragmented", func(t *testing.T) { checkFragmented(t, fsys, img) })
			t.Run("parallel-readat", func(t *testing.T) { checkParallelReadAt(t, fsys, img) })
		})
	}
}

// checkTree compares every path and every file's bytes with the source tree.
func checkTree(t *testing.T, fsys *FS, img *builtImage) {
	seenFiles := map[string]bool{}
	var seenDirs []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		// FAT has no owners: the metadata contract says root, the mode
		// Mode gives, and the modification time for every time.
		if m, err := rootfs.MetaOf(info); err != nil || m.UID != 0 || m.GID != 0 || m.Mode != info.Mode() ||
			m.Size != info.Size() || !m.ModTime.Equal(info.ModTime()) || !m.ChangeTime.Equal(m.ModTime) {
			t.Errorf("%s: metadata %+v, %v", p, m, err)
		}
		if d.IsDir() {
			seenDirs = append(seenDirs, p)
			if info.Mode() != fs.ModeDir|0o555 {
				t.Errorf("%s: mode %v, want dr-xr-xr-x", p, info.Mode())
			}
			return nil
		}
		if info.Mode() != 0o444 {
			t.Errorf("%s: mode %v, want -r--r--r--", p, info.Mode())
		}
		if info.ModTime().Year() < 2020 {
			t.Errorf("%s: mod time %v is not from the DOS timestamp", p, info.ModTime())
		}
		want, ok := img.files[p]
		if !ok {
			t.Errorf("unexpected file %s in image", p)
			return nil
		}
		seenFiles[p] = true
		got, err := fs.ReadFile(fsys, p)
		if err != nil {
			t.Errorf("ReadFile(%s): %v", p, err)
			return nil
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: content differs (%d bytes, want %d)", p, len(got), len(want))
		}
		if info.Size() != int64(len(want)) {
			t.Errorf("%s: size %d, want %d", p, info.Size(), len(want))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("WalkDir: %v", err)
	}
	for name := range img.files {
		if !seenFiles[name] {
			t.Errorf("file %s missing from image walk", name)
		}
	}
	slices.Sort(seenDirs)
	wantDirs := slices.Clone(img.dirs)
	slices.Sort(wantDirs)
	if !slices.Equal(seenDirs, wantDirs) {
		t.Errorf("directories = %q, want %q", seenDirs, wantDirs)
	}
}

// checkMdir compares our walk with mtools' recursive bare listing.
func checkMdir(t *testing.T, fsys *FS, img *builtImage) {
	out := run(t, "mdir", "-/", "-b", "-i", img.path, "::")
	var want []string
	for line := range strings.Lines(out) {
		if line = strings.TrimRight(line, "\r\n"); line != "" {
			want = append(want, line)
		}
	}
	var got []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == "." {
			return err
		}
		if d.IsDir() {
			p += "/"
		}
		got = append(got, "::/"+p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(want)
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Errorf("walk differs from mdir -/ -b:\n got %d entries %q\nwant %d entries %q", len(got), head(got), len(want), head(want))
	}
}

func head(s []string) []string { return s[:min(len(s), 20)] }

func checkCaseInsensitive(t *testing.T, fsys *FS) {
	for _, name := range []string{"efi/boot/bootx64.efi", "EFI/BOOT/BOOTX64.EFI", "Efi/Boot/BootX64.Efi", "README.TXT", "this is a long name.TXT", "THISIS~1.TXT"} {
		f, err := fsys.Open(name)
		if err != nil {
			t.Errorf("Open(%q): %v", name, err)
			continue
		}
		st, err := f.Stat()
		f.Close()
		if err != nil {
			t.Errorf("Stat(%q): %v", name, err)
		}
		if n := st.Name(); !strings.EqualFold(n, path.Base(name)) && !strings.HasPrefix(name, "THISIS") {
			t.Errorf("Open(%q).Stat().Name() = %q", name, n)
		}
	}
	// The stored case is what Stat reports, whatever case the lookup used.
	st, err := fsys.Stat("efi/boot/bootx64.efi")
	if err != nil {
		t.Fatal(err)
	}
	if st.Name() != "BOOTX64.EFI" {
		t.Errorf("Stat(efi/boot/bootx64.efi).Name() = %q, want BOOTX64.EFI", st.Name())
	}
	if _, err := fsys.Open("efi/boot/missing.efi"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(missing) = %v, want fs.ErrNotExist", err)
	}
	if _, err := fsys.Open("/EFI"); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("Open(/EFI) = %v, want fs.ErrInvalid", err)
	}
	if _, err := fsys.Open("readme.txt/x"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(readme.txt/x) = %v, want fs.ErrNotExist", err)
	}
}

// checkNames checks the names stored in the root: the long mixed-case name, the
// lower-case 8.3 name (no long name entry, only the NT case flags) and an
// upper-case 8.3 directory.
func checkNames(t *testing.T, fsys *FS, img *builtImage) {
	ents, err := fsys.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	for _, want := range []string{"EFI", "This Is A Long Name.txt", "readme.txt", "empty.dat", "many"} {
		if !slices.Contains(names, want) {
			t.Errorf("root directory lacks %q: %q", want, names)
		}
	}
	list, err := fsys.readDir(dirRef{root: true})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range list.entries {
		if e.name != "readme.txt" {
			continue
		}
		found = true
		// mtools stores it as README.TXT with both lower-case flags and no long
		// name entry before it.
		raw := make([]byte, 64)
		if _, err := fsys.r.ReadAt(raw, e.off-32); err != nil {
			t.Fatal(err)
		}
		if string(raw[32:43]) != "README  TXT" || raw[44] != ntLowerBase|ntLowerExt {
			t.Errorf("readme.txt entry is %q with NT flags 0x%02x, want README  TXT with 0x18", raw[32:43], raw[44])
		}
		if raw[11]&attrLongMask == attrLongName {
			t.Error("readme.txt has a long name entry; the test wants a lower-case 8.3 name")
		}
	}
	if !found {
		t.Error("readme.txt not in the root directory")
	}
	many, err := fsys.ReadDir("many")
	if err != nil {
		t.Fatal(err)
	}
	if len(many) != 300 {
		t.Errorf("many/ has %d entries, want 300", len(many))
	}
	e, err := fsys.Stat("many")
	if err != nil {
		t.Fatal(err)
	}
	// 300 entries with long names take well over one cluster.
	ch := fsys.newChain(e.(*entry).cluster)
	if err := ch.extend(1 << 20); err != nil {
		t.Fatal(err)
	}
	if len(ch.clusters) < 2 {
		t.Errorf("many/ spans %d cluster, want several", len(ch.clusters))
	}
}

// checkFragmented checks that big.bin really is fragmented and that our chain
// equals mtools' view of it.
func checkFragmented(t *testing.T, fsys *FS, img *builtImage) {
	out := run(t, "mshowfat", "-i", img.path, "::big.bin")
	var want []uint32
	for _, m := range regexp.MustCompile(`<(\d+)-(\d+)>`).FindAllStringSubmatch(out, -1) {
		a, _ := strconv.Atoi(m[1])
		b, _ := strconv.Atoi(m[2])
		for c := a; c <= b; c++ {
			want = append(want, uint32(c))
		}
	}
	if len(want) == 0 {
		t.Fatalf("cannot parse mshowfat output %q", out)
	}
	e, err := fsys.Stat("big.bin")
	if err != nil {
		t.Fatal(err)
	}
	ch := fsys.newChain(e.(*entry).cluster)
	if err := ch.extend(1 << 20); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ch.clusters, want) {
		t.Errorf("chain of big.bin = %v, mshowfat says %v", ch.clusters, want)
	}
	runs := 1
	for i := 1; i < len(ch.clusters); i++ {
		if ch.clusters[i] != ch.clusters[i-1]+1 {
			runs++
		}
	}
	if runs < 3 {
		t.Errorf("big.bin has %d runs of clusters, want a fragmented file (%s)", runs, strings.TrimSpace(out))
	}
}

// checkParallelReadAt reads one file from several goroutines through one handle.
func checkParallelReadAt(t *testing.T, fsys *FS, img *builtImage) {
	const name = "EFI/debian/grubx64.efi"
	want := img.files[name]
	f, err := fsys.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ra := f.(io.ReaderAt)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			buf := make([]byte, 4097)
			for off := int64(g * 1000); off < int64(len(want)); off += 50_000 {
				n, err := ra.ReadAt(buf, off)
				if err != nil && !errors.Is(err, io.EOF) {
					t.Errorf("ReadAt(%d): %v", off, err)
					return
				}
				if !bytes.Equal(buf[:n], want[off:off+int64(n)]) {
					t.Errorf("ReadAt(%d): wrong data", off)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestProbeRejects(t *testing.T) {
	zero := make([]byte, 4096)
	if Probe(bytes.NewReader(zero), int64(len(zero))) {
		t.Error("Probe(zeros) = true")
	}
	if Probe(bytes.NewReader(zero[:100]), 100) {
		t.Error("Probe(100 bytes) = true")
	}
	mbr := make([]byte, 512)
	mbr[510], mbr[511] = 0x55, 0xAA
	if Probe(bytes.NewReader(mbr), 512) {
		t.Error("Probe(empty MBR) = true")
	}
}

func TestCP437Table(t *testing.T) {
	for i, r := range cp437 {
		if r == 0 {
			t.Errorf("cp437[0x%02x] is unset", i+0x80)
		}
	}
	if got := decodeOEM([]byte{'A', 0x82, 0xE1}); got != "Aéß" {
		t.Errorf("decodeOEM = %q", got)
	}
}

// BenchmarkRead1MiB reads a 1 MiB file from a FAT16 image, through the file
// system's page cache (file) and from memory (memory, the package's own cost).
func BenchmarkRead1MiB(b *testing.B) {
	testfixtures.Long(b, testfixtures.Peers)
	needTools(b)
	dir := b.TempDir()
	imgPath := dir + "/bench.img"
	data := bytes.Repeat([]byte("vouch-fatfs-bench"), (1<<20)/17+1)[:1<<20]
	src := dir + "/big.bin"
	if err := os.WriteFile(src, data, 0o644); err != nil {
		b.Fatal(err)
	}
	run(b, "mkfs.vfat", "-C", "-F", "16", imgPath, "16384")
	run(b, "mcopy", "-i", imgPath, src, "::")
	raw, err := os.ReadFile(imgPath)
	if err != nil {
		b.Fatal(err)
	}
	mem, err := New(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		fsys *FS
	}{{"file", openImage(b, imgPath)}, {"memory", mem}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				got, err := bc.fsys.ReadFile("BIG.BIN")
				if err != nil {
					b.Fatal(err)
				}
				if len(got) != len(data) {
					b.Fatalf("read %d bytes", len(got))
				}
			}
		})
	}
}

// TestFileSemantics checks the io/fs error behaviour that fstest does not.
func TestFileSemantics(t *testing.T) {
	m := newTiny()
	m.entry(m.root(0), "DIR", attrDirectory, 2, 0)
	m.setFAT(2, 0xFFF)
	for i := range 5 {
		m.file(m.cluster(2)+32*i, fmt.Sprintf("F%d      TXT", i), []byte("data"), uint32(3+i))
	}
	m.file(m.root(1), "FILE    TXT", []byte("hello, world"), 10)
	fsys, err := New(bytes.NewReader(m.bytes()), int64(len(m.bytes())))
	if err != nil {
		t.Fatal(err)
	}

	d, err := fsys.Open("dir")
	if err != nil {
		t.Fatal(err)
	}
	rd := d.(fs.ReadDirFile)
	var names []string
	for {
		ents, err := rd.ReadDir(2)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil || len(ents) == 0 || len(ents) > 2 {
			t.Fatalf("ReadDir(2) = %d entries, %v", len(ents), err)
		}
		for _, e := range ents {
			names = append(names, e.Name())
		}
	}
	if want := []string{"F0.TXT", "F1.TXT", "F2.TXT", "F3.TXT", "F4.TXT"}; !slices.Equal(names, want) {
		t.Errorf("ReadDir(2) pages = %q, want %q", names, want)
	}
	if ents, err := rd.ReadDir(-1); err != nil || len(ents) != 0 {
		t.Errorf("ReadDir(-1) at end = %d, %v; want 0, nil", len(ents), err)
	}
	if _, err := d.Read(make([]byte, 1)); !errors.Is(err, errIsDir) {
		t.Errorf("Read(dir) = %v, want errIsDir", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := rd.ReadDir(-1); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("ReadDir after Close = %v, want fs.ErrClosed", err)
	}

	f, err := fsys.Open("FILE.TXT")
	if err != nil {
		t.Fatal(err)
	}
	s := f.(io.ReadSeeker)
	if pos, err := s.Seek(-5, io.SeekEnd); err != nil || pos != 7 {
		t.Fatalf("Seek(-5, end) = %d, %v", pos, err)
	}
	if b, err := io.ReadAll(f); err != nil || string(b) != "world" {
		t.Errorf("read after Seek = %q, %v", b, err)
	}
	if _, err := s.Seek(-1, io.SeekStart); err == nil {
		t.Error("Seek(-1) succeeded")
	}
	if _, err := f.(fs.ReadDirFile).ReadDir(-1); !errors.Is(err, errNotDir) {
		t.Errorf("ReadDir(file) = %v, want errNotDir", err)
	}
	f.Close()
	if _, err := f.Read(make([]byte, 1)); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("Read after Close = %v, want fs.ErrClosed", err)
	}
	if _, err := fsys.ReadFile("dir"); !errors.Is(err, errIsDir) {
		t.Errorf("ReadFile(dir) = %v, want errIsDir", err)
	}
	if _, err := fsys.ReadDir("file.txt"); !errors.Is(err, errNotDir) {
		t.Errorf("ReadDir(file) = %v, want errNotDir", err)
	}
	st, err := fsys.Stat("dir/f3.txt")
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2025, 6, 15, 12, 34, 56, 0, time.UTC); !st.ModTime().Equal(want) {
		t.Errorf("ModTime = %v, want %v", st.ModTime(), want)
	}
	root, err := fsys.Stat(".")
	if err != nil || !root.IsDir() || root.Mode() != fs.ModeDir|0o555 {
		t.Errorf("Stat(.) = %v, %v", root, err)
	}
}
