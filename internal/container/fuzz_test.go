package container

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vouch-dev/vouch/internal/testfixtures"
)

var update = flag.Bool("update", false, "regenerate the fuzz seed corpora in testdata/fuzz from qemu-img images")

// The fuzz inputs are sparse files, so that real images (mostly zeros, with
// structures at offsets of a MiB and more) make seeds of a few KiB:
//
//	uint32 file size, then extents: uint32 offset, uint16 length, data
//
// all big-endian; bytes outside the extents are zero, later extents win.
const maxSparseSize = 64 << 20

type sparseFile struct {
	size    int64
	extents []sparseExtent
}

type sparseExtent struct {
	off  int64
	data []byte
}

func decodeSparse(b []byte) *sparseFile {
	s := &sparseFile{}
	if len(b) < 4 {
		return s
	}
	s.size = int64(binary.BigEndian.Uint32(b)) % (maxSparseSize + 1)
	for b = b[4:]; len(b) >= 6; {
		off, n := int64(binary.BigEndian.Uint32(b)), int(binary.BigEndian.Uint16(b[4:]))
		n = min(n, len(b)-6)
		s.extents = append(s.extents, sparseExtent{off, b[6 : 6+n]})
		b = b[6+n:]
	}
	return s
}

// encodeSparse encodes a file, leaving out runs of 32 or more zero bytes.
func encodeSparse(file []byte) []byte {
	out := binary.BigEndian.AppendUint32(nil, uint32(len(file)))
	for i := 0; i < len(file); {
		if file[i] == 0 {
			i++
			continue
		}
		j, zeros := i, 0
		for j < len(file) && j-i < 0xffff && zeros < 32 {
			if file[j] == 0 {
				zeros++
			} else {
				zeros = 0
			}
			j++
		}
		end := j - zeros
		out = binary.BigEndian.AppendUint32(out, uint32(i))
		out = binary.BigEndian.AppendUint16(out, uint16(end-i))
		out = append(out, file[i:end]...)
		i = j
	}
	return out
}

func (s *sparseFile) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= s.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), s.size-off))
	clear(p[:n])
	for _, e := range s.extents {
		lo, hi := max(e.off, off), min(e.off+int64(len(e.data)), off+int64(n))
		if lo < hi {
			copy(p[lo-off:hi-off], e.data[lo-e.off:hi-e.off])
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// patch overwrites the file at off.
func (s *sparseFile) patch(off int64, b []byte) {
	s.extents = append(s.extents, sparseExtent{off, bytes.Clone(b)})
}

// read returns n bytes at off, or nil when they are not all in the file.
func (s *sparseFile) read(off, n int64) []byte {
	if off < 0 || n <= 0 || off+n > s.size {
		return nil
	}
	b := make([]byte, n)
	s.ReadAt(b, off)
	return b
}

// fixChecksums recomputes the checksums a mutation breaks, so that the fuzzer
// gets past them: VHD footer and dynamic header, VHDX headers and region tables.
func (s *sparseFile) fixChecksums() {
	fixVHD := func(off, n int64, at int) {
		if b := s.read(off, n); b != nil {
			binary.BigEndian.PutUint32(b[at:], vhdChecksum(b, at))
			s.patch(off, b)
		}
	}
	if f := s.read(s.size-512, 512); f != nil && bytes.HasPrefix(f, []byte("conectix")) {
		fixVHD(s.size-512, 512, 64)
		if h := binary.BigEndian.Uint64(f[16:]); h < maxSparseSize {
			fixVHD(int64(h), 1024, 36)
		}
	}
	if f := s.read(0, 512); f != nil && bytes.HasPrefix(f, []byte("conectix")) {
		fixVHD(0, 512, 64)
	}
	table := crc32.MakeTable(crc32.Castagnoli)
	for _, r := range []struct{ off, n int64 }{
		{vhdxHeader1, vhdxHeaderSize}, {2 * vhdxHeader1, vhdxHeaderSize},
		{vhdxRegionTable1, vhdxRegionSize}, {vhdxRegionTable1 + vhdxRegionSize, vhdxRegionSize},
	} {
		if b := s.read(r.off, r.n); b != nil {
			clear(b[4:8])
			binary.LittleEndian.PutUint32(b[4:], crc32.Checksum(b, table))
			s.patch(r.off, b[:8])
		}
	}
}

// fuzzImage opens a sparse-encoded image and reads a few ranges of it: it may
// fail, with a *FormatError, but never panic or return short reads silently.
func fuzzImage(t *testing.T, data []byte, fix bool) {
	s := decodeSparse(data)
	if fix {
		s.fixChecksums()
	}
	img, err := openReader(s, s.size, "fuzz.img")
	if err != nil {
		var fe *FormatError
		if !errors.As(err, &fe) {
			t.Fatalf("Open: error %v (%T) is not a *FormatError", err, err)
		}
		if !strings.HasPrefix(err.Error(), "container: fuzz.img: ") {
			t.Fatalf("error %q does not name the file", err)
		}
		return
	}
	defer img.Close()
	size := img.Size()
	if size < 0 {
		t.Fatalf("Size = %d", size)
	}
	// Offsets: the start, the end, and a few taken from the input.
	offs := []int64{0, size - 4096, size / 2, size - 1}
	for i := 0; i+8 <= len(data) && len(offs) < 8; i += len(data)/4 + 1 {
		offs = append(offs, int64(binary.BigEndian.Uint64(data[i:])%uint64(size+1)))
	}
	p := make([]byte, 70000)
	for i, off := range offs {
		off = max(off, 0)
		n := []int{512, 4096, 70000, 8192}[i%4]
		got, err := img.ReadAt(p[:n], off)
		switch {
		case err == nil:
			if got != n {
				t.Fatalf("ReadAt(%d, %d) = %d, nil", n, off, got)
			}
		case errors.Is(err, io.EOF):
			if off+int64(got) != size {
				t.Fatalf("ReadAt(%d, %d) = %d, EOF before the end (%d)", n, off, got, size)
			}
		default:
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("ReadAt(%d, %d): error %v (%T) is not a *FormatError", n, off, err, err)
			}
		}
	}
	if img.BytesRead() < 0 {
		t.Fatalf("BytesRead = %d", img.BytesRead())
	}
}

func addSeeds(f *testing.F, magic string) {
	f.Add([]byte{}, false)
	f.Add(encodeSparse([]byte(magic)), false)
	f.Add(encodeSparse(append([]byte(magic), make([]byte, 600)...)), true)
}

func FuzzQCOW2(f *testing.F) {
	addSeeds(f, "QFI\xfb\x00\x00\x00\x03")
	f.Fuzz(fuzzImage)
}

func FuzzVHD(f *testing.F) {
	addSeeds(f, "conectix")
	f.Fuzz(fuzzImage)
}

func FuzzVHDX(f *testing.F) {
	addSeeds(f, "vhdxfile")
	f.Fuzz(fuzzImage)
}

// seedImages are the small real images the fuzz corpora start from: qemu-img
// creates them (size, options) and qemu-io writes a little data.
var seedImages = []struct {
	fuzzer, name, qemuFmt, size string
	opts                        []string
	io                          []string // qemu-io commands
}{
	{"FuzzQCOW2", "v3", "qcow2", "1M", nil, []string{"write -P 0x5a 0 512", "write -P 0xa5 300k 512"}},
	{"FuzzQCOW2", "v2", "qcow2", "1M", []string{"compat=0.10"}, []string{"write -P 0x5a 0 512", "write -P 0xa5 300k 512"}},
	{"FuzzQCOW2", "cluster-512", "qcow2", "256k", []string{"cluster_size=512"}, []string{"write -P 0x5a 1k 1k", "write -P 0xa5 200k 512"}},
	{"FuzzQCOW2", "zero-cluster", "qcow2", "1M", nil, []string{"write -P 0x5a 0 512", "write -z 512k 64k"}},
	{"FuzzQCOW2", "zlib", "qcow2", "1M", nil, []string{"write -c -P 0x5a 0 64k", "write -c -P 0x11 128k 64k"}},
	{"FuzzQCOW2", "zstd", "qcow2", "1M", []string{"compression_type=zstd"}, []string{"write -c -P 0x5a 0 64k"}},
	{"FuzzQCOW2", "zlib-cluster-4k", "qcow2", "1M", []string{"cluster_size=4096"}, []string{"write -c -P 0x5a 8k 4k"}},
	{"FuzzQCOW2", "backing", "qcow2", "1M", []string{"backing_file=base.qcow2", "backing_fmt=qcow2"}, nil},
	{"FuzzVHD", "dynamic", "vpc", "4M", nil, []string{"write -P 0x5a 0 512", "write -P 0xa5 3M 512"}},
	{"FuzzVHD", "dynamic-force-size", "vpc", "1M", []string{"force_size=on"}, []string{"write -P 0x5a 4k 512"}},
	{"FuzzVHD", "fixed", "vpc", "1M", []string{"subformat=fixed"}, []string{"write -P 0x5a 0 512"}},
	{"FuzzVHDX", "dynamic", "vhdx", "4M", nil, []string{"write -P 0x5a 0 512", "write -P 0xa5 3M 512"}},
	{"FuzzVHDX", "block-1M", "vhdx", "3M", []string{"block_size=1M"}, []string{"write -P 0x5a 1M 512", "write -z 2M 1M"}},
	{"FuzzVHDX", "fixed", "vhdx", "1M", []string{"subformat=fixed"}, []string{"write -P 0x5a 0 512"}},
}

// TestFuzzSeeds checks that the seed corpora open and read as images; with
// -update it first regenerates them from qemu-img images.
func TestFuzzSeeds(t *testing.T) {
	testfixtures.Long(t, testfixtures.Peers)
	dir := t.TempDir()
	for _, s := range seedImages {
		path := filepath.Join("testdata", "fuzz", s.fuzzer, "seed-"+s.name)
		if *update {
			img := filepath.Join(dir, s.fuzzer+"-"+s.name)
			args := []string{"create", "-f", s.qemuFmt}
			if len(s.opts) > 0 {
				args = append(args, "-o", strings.Join(s.opts, ","))
			}
			if strings.Contains(strings.Join(s.opts, ","), "backing_file") {
				args = append(args, "-u")
			}
			run(t, dir, "qemu-img", append(args, img, s.size)...)
			if len(s.io) > 0 {
				args = []string{"-f", s.qemuFmt}
				for _, c := range s.io {
					args = append(args, "-c", c)
				}
				run(t, dir, "qemu-io", append(args, img)...)
			}
			b, err := os.ReadFile(img)
			if err != nil {
				t.Fatal(err)
			}
			corpus := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nbool(false)\n", encodeSparse(b))
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(corpus), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		t.Run(s.fuzzer+"/"+s.name, func(t *testing.T) {
			data := readCorpusBytes(t, path)
			sf := decodeSparse(data)
			img, err := openReader(sf, sf.size, "seed")
			if s.name == "backing" {
				if err == nil || !strings.Contains(err.Error(), "cannot be opened from this source") {
					t.Fatalf("Open = %v, want the backing file refused", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			p := make([]byte, 512)
			if _, err := img.ReadAt(p, 0); err != nil {
				t.Fatal(err)
			}
			fuzzImage(t, data, false)
			fuzzImage(t, data, true)
		})
	}
}

// readCorpusBytes reads the []byte value of a "go test fuzz v1" file.
func readCorpusBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (regenerate with go test ./internal/container -run TestFuzzSeeds -update)", err)
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "[]byte(") {
		t.Fatalf("%s is not a go test fuzz v1 file", path)
	}
	s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return []byte(s)
}
