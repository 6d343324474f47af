package fatfs

import (
	"bytes"
	"flag"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vouch-dev/vouch/internal/testfixtures"
)

var update = flag.Bool("update", false, "rewrite the FuzzFAT seed corpus from images built with mkfs.vfat and mtools")

// fuzzVolume is the size the fuzzer's second pass pretends the partition has,
// reading zeros past the end of the input: seeds are truncated real images, and a
// FAT32 volume needs far more bytes than a seed should hold.
const fuzzVolume = 64 << 20

// seedMax bounds a seed: the first 64 KiB of a small image hold the boot sector,
// the FATs, the root directory and the first clusters.
const seedMax = 64 << 10

// seedSpecs are the tiny real images the seed corpus is cut from.
var seedSpecs = []imageSpec{
	{name: "fat12", bits: 12, kib: 1024, mkfs: []string{"-s", "1", "-r", "32"}, label: "SEED12", serial: 0x12121212, scale: 1, minimal: true},
	{name: "fat16", bits: 16, kib: 4096, mkfs: []string{"-s", "1", "-r", "32", "-f", "1"}, label: "SEED16", serial: 0x16161616, scale: 1, minimal: true},
	{name: "fat32", bits: 32, kib: 33 << 10, mkfs: []string{"-S", "512", "-s", "1", "-f", "1"}, label: "SEED32", serial: 0x32323232, scale: 1, minimal: true},
}

func seedPath(name string) string {
	return filepath.Join("testdata", "fuzz", "FuzzFAT", name)
}

// TestFuzzSeeds checks that the seed corpus is present and opens; with -update it
// rebuilds the corpus from real images.
func TestFuzzSeeds(t *testing.T) {
	testfixtures.Long(t, testfixtures.Peers)
	for _, spec := range seedSpecs {
		t.Run(spec.name, func(t *testing.T) {
			if *update {
				img := buildImage(t, spec)
				data, err := os.ReadFile(img.path)
				if err != nil {
					t.Fatal(err)
				}
				data = bytes.TrimRight(data[:min(len(data), seedMax)], "\x00")
				if err := os.MkdirAll(filepath.Dir(seedPath(spec.name)), 0o755); err != nil {
					t.Fatal(err)
				}
				corpus := "go test fuzz v1\n[]byte(" + strconv.Quote(string(data)) + ")\n"
				if err := os.WriteFile(seedPath(spec.name), []byte(corpus), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			data := readSeed(t, seedPath(spec.name))
			fsys, err := New(&zeroPadded{data}, fuzzVolume)
			if err != nil {
				t.Fatalf("seed %s does not open: %v", spec.name, err)
			}
			if fsys.Type() != "FAT"+strconv.Itoa(spec.bits) || fsys.Label() != spec.label {
				t.Errorf("seed %s: %s %q, want FAT%d %q", spec.name, fsys.Type(), fsys.Label(), spec.bits, spec.label)
			}
			if spec.bits != 32 { // the FAT32 seed stops before its root directory
				if _, err := fsys.Stat("efi/boot/bootx64.efi"); err != nil {
					t.Errorf("seed %s: %v", spec.name, err)
				}
			}
		})
	}
}

// readSeed decodes a one-value []byte corpus file.
func readSeed(t *testing.T, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (rebuild the corpus with go test ./internal/fatfs -run TestFuzzSeeds -update)", err)
	}
	body, ok := strings.CutPrefix(string(raw), "go test fuzz v1\n[]byte(")
	body, ok2 := strings.CutSuffix(strings.TrimSpace(body), ")")
	if !ok || !ok2 {
		t.Fatalf("%s: not a []byte corpus file", path)
	}
	s, err := strconv.Unquote(body)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return []byte(s)
}

// zeroPadded reads its bytes followed by zeros.
type zeroPadded struct{ b []byte }

func (z *zeroPadded) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= fuzzVolume {
		return 0, io.EOF
	}
	n := 0
	if off < int64(len(z.b)) {
		n = copy(p, z.b[off:])
	}
	m := int(min(int64(len(p)), fuzzVolume-off))
	clear(p[n:m])
	if m < len(p) {
		return m, io.EOF
	}
	return m, nil
}

func FuzzFAT(f *testing.F) {
	f.Add(newTiny().bytes())
	m := newTiny()
	off := m.lfn(m.root(0), "A Long Name.txt", "ALONGN~1TXT", sum11("ALONGN~1TXT"))
	m.file(off, "ALONGN~1TXT", bytes.Repeat([]byte("x"), 1500), 2, 3, 4)
	m.entry(m.root(4), "DIR", attrDirectory, 5, 0)
	m.setFAT(5, 0xFFF)
	m.file(m.cluster(5), "INNER   TXT", []byte("inner"), 6)
	f.Add(m.bytes())
	f.Add(newTiny32())

	f.Fuzz(func(t *testing.T, data []byte) {
		if fsys, err := New(bytes.NewReader(data), int64(len(data))); err == nil {
			exercise(fsys, true)
		}
		if fsys, err := New(&zeroPadded{data}, fuzzVolume); err == nil {
			exercise(fsys, false)
		}
		Probe(bytes.NewReader(data), int64(len(data)))
	})
}

// exercise walks fsys and reads what it finds, ignoring errors, within bounds on
// the entries visited, the depth and the bytes read per file.
func exercise(fsys *FS, readFile bool) {
	_, _, _ = fsys.Type(), fsys.Label(), fsys.Serial()
	visited := 0
	buf := make([]byte, 64)
	_ = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if visited++; visited > 500 {
			return fs.SkipAll
		}
		if err != nil {
			return nil
		}
		if d.IsDir() && strings.Count(p, "/") >= 16 {
			return fs.SkipDir
		}
		_, _ = fsys.Stat(strings.ToUpper(p))
		f, err := fsys.Open(p)
		if err != nil {
			return nil
		}
		defer f.Close()
		if _, err := f.Stat(); err != nil {
			return nil
		}
		if d.IsDir() {
			if rd, ok := f.(fs.ReadDirFile); ok {
				for {
					if ents, err := rd.ReadDir(3); err != nil || len(ents) == 0 {
						break
					}
				}
			}
			return nil
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(f, 256<<10))
		if s, ok := f.(io.Seeker); ok {
			_, _ = s.Seek(-10, io.SeekEnd)
			_, _ = f.Read(buf)
		}
		if ra, ok := f.(io.ReaderAt); ok {
			_, _ = ra.ReadAt(buf, 5000)
		}
		if readFile {
			_, _ = fsys.ReadFile(p)
		}
		return nil
	})
}
