package container

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// needTool fails the test when a command is missing; every tool used here comes
// from Debian's qemu-utils package.
func needTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s not found: install the qemu-utils package (apt-get install qemu-utils)", name)
	}
}

// run runs a command and fails the test on error.
func run(t testing.TB, dir, name string, args ...string) []byte {
	t.Helper()
	needTool(t, name)
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// qemuSize is the virtual size qemu-img reports for path opened as format.
func qemuSize(t testing.TB, path, format string) int64 {
	t.Helper()
	out := run(t, "", "qemu-img", "info", "-f", format, "--output=json", path)
	var info struct {
		VirtualSize int64 `json:"virtual-size"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("qemu-img info %s: %v", path, err)
	}
	return info.VirtualSize
}

// sourceSize is the size of the raw disk the conversion tests start from: not
// a multiple of the cluster, block or CHS sizes, so that the last ones are
// partial.
const sourceSize = 6<<20 + 1536

// makeSource writes a raw disk with pseudo-random and compressible data at a
// few offsets and holes between them, and returns its path and content.
func makeSource(t testing.TB, dir string, size int) (string, []byte) {
	t.Helper()
	b := make([]byte, size)
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(off, n int) {
		for i := off; i < off+n && i < size; i++ {
			b[i] = byte(rng.Uint32())
		}
	}
	text := func(off, n int) {
		for i := off; i < off+n && i < size; i++ {
			b[i] = "vouch inspects disk images "[i%27]
		}
	}
	random(0, 64<<10)               // the partition table area
	random(1<<20+511, 200<<10)      // unaligned
	random(2<<20-1000, 3000)        // across a 2 MiB VHD block boundary
	text(3<<20, 1<<20)              // compresses well
	random(4<<20+7, 300<<10)        // unaligned again
	random(size-(100<<10), 100<<10) // up to the end
	path := filepath.Join(dir, "source.raw")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, b
}

// checkImage compares every byte of img with want (zeros past its end), in
// chunks of an odd size and at random offsets, and checks reads at the end.
func checkImage(t *testing.T, img Image, want []byte) {
	t.Helper()
	size := img.Size()
	if int64(len(want)) < size {
		want = append(want, make([]byte, size-int64(len(want)))...)
	}
	buf := make([]byte, 100003)
	for off := int64(0); off < size; off += int64(len(buf)) {
		n, err := img.ReadAt(buf, off)
		if err != nil && !(errors.Is(err, io.EOF) && off+int64(n) == size) {
			t.Fatalf("ReadAt(%d, 0x%x) = %d, %v", len(buf), off, n, err)
		}
		if !bytes.Equal(buf[:n], want[off:off+int64(n)]) {
			t.Fatalf("data differs in the %d bytes at 0x%x", n, off)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		off := rng.Int64N(size)
		n := min(rng.Int64N(300<<10)+1, size-off)
		p := make([]byte, n)
		if _, err := img.ReadAt(p, off); err != nil && !errors.Is(err, io.EOF) {
			t.Fatalf("ReadAt(%d, 0x%x): %v", n, off, err)
		}
		if !bytes.Equal(p, want[off:off+n]) {
			t.Fatalf("data differs in the %d bytes at 0x%x", n, off)
		}
	}
	if n, err := img.ReadAt(buf[:10], size); n != 0 || !errors.Is(err, io.EOF) {
		t.Errorf("ReadAt at Size = %d, %v; want 0, io.EOF", n, err)
	}
	if n, err := img.ReadAt(buf[:10], size-4); n != 4 || !errors.Is(err, io.EOF) {
		t.Errorf("ReadAt across Size = %d, %v; want 4, io.EOF", n, err)
	}
	if _, err := img.ReadAt(buf[:10], -1); err == nil {
		t.Error("ReadAt at a negative offset succeeded")
	}
	if img.BytesRead() <= 0 {
		t.Errorf("BytesRead = %d after reading", img.BytesRead())
	}
}

func TestConvertedImages(t *testing.T) {
	testfixtures.Long(t, testfixtures.Peers)
	dir := t.TempDir()
	src, want := makeSource(t, dir, sourceSize)
	tests := []struct {
		name    string
		convert []string // qemu-img convert options, nil for the raw source itself
		qemuFmt string   // qemu-img's name of the format
		format  Format
	}{
		{"raw", nil, "raw", FormatRaw},
		{"qcow2-v3", []string{"-O", "qcow2"}, "qcow2", FormatQCOW2},
		{"qcow2-v2", []string{"-O", "qcow2", "-o", "compat=0.10"}, "qcow2", FormatQCOW2},
		{"qcow2-cluster-512", []string{"-O", "qcow2", "-o", "cluster_size=512"}, "qcow2", FormatQCOW2},
		{"qcow2-cluster-2M", []string{"-O", "qcow2", "-o", "cluster_size=2M"}, "qcow2", FormatQCOW2},
		{"qcow2-zlib", []string{"-O", "qcow2", "-c"}, "qcow2", FormatQCOW2},
		{"qcow2-v2-zlib", []string{"-O", "qcow2", "-c", "-o", "compat=0.10"}, "qcow2", FormatQCOW2},
		{"qcow2-zlib-cluster-4k", []string{"-O", "qcow2", "-c", "-o", "cluster_size=4096"}, "qcow2", FormatQCOW2},
		{"qcow2-zlib-cluster-2M", []string{"-O", "qcow2", "-c", "-o", "cluster_size=2M"}, "qcow2", FormatQCOW2},
		{"qcow2-zstd", []string{"-O", "qcow2", "-c", "-o", "compression_type=zstd"}, "qcow2", FormatQCOW2},
		{"qcow2-zstd-cluster-512", []string{"-O", "qcow2", "-c", "-o", "compression_type=zstd,cluster_size=512"}, "qcow2", FormatQCOW2},
		{"vhd-fixed", []string{"-O", "vpc", "-o", "subformat=fixed"}, "vpc", FormatVHDFixed},
		{"vhd-dynamic", []string{"-O", "vpc", "-o", "subformat=dynamic"}, "vpc", FormatVHDDynamic},
		{"vhd-dynamic-force-size", []string{"-O", "vpc", "-o", "subformat=dynamic,force_size=on"}, "vpc", FormatVHDDynamic},
		{"vhd-fixed-force-size", []string{"-O", "vpc", "-o", "subformat=fixed,force_size=on"}, "vpc", FormatVHDFixed},
		{"vhdx", []string{"-O", "vhdx"}, "vhdx", FormatVHDX},
		{"vhdx-fixed", []string{"-O", "vhdx", "-o", "subformat=fixed"}, "vhdx", FormatVHDX},
		{"vhdx-block-1M", []string{"-O", "vhdx", "-o", "block_size=1M"}, "vhdx", FormatVHDX},
		{"vhdx-block-zero-off", []string{"-O", "vhdx", "-o", "block_state_zero=off,subformat=fixed"}, "vhdx", FormatVHDX},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := src
			if tt.convert != nil {
				path = filepath.Join(dir, tt.name+".img")
				args := append([]string{"convert", "-f", "raw"}, tt.convert...)
				run(t, dir, "qemu-img", append(args, src, path)...)
			}
			img, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			if img.Format() != tt.format {
				t.Errorf("Format = %q, want %q", img.Format(), tt.format)
			}
			if want := qemuSize(t, path, tt.qemuFmt); img.Size() != want {
				t.Fatalf("Size = %d, qemu-img says %d", img.Size(), want)
			}
			checkImage(t, img, want)
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			st, _ := f.Stat()
			if got, err := Detect(f, st.Size()); err != nil || got != tt.format {
				t.Errorf("Detect = %q, %v; want %q", got, err, tt.format)
			}
		})
	}
}

// TestBackingChains reads qcow2 images whose unallocated clusters come from a
// backing file of another format, written to with qemu-io.
func TestBackingChains(t *testing.T) {
	testfixtures.Long(t, testfixtures.Peers)
	dir := t.TempDir()
	src, base := makeSource(t, dir, sourceSize)
	patch := func(b []byte, off int, n int, v byte) {
		for i := off; i < off+n; i++ {
			b[i] = v
		}
	}
	qimg := func(args ...string) { run(t, dir, "qemu-img", args...) }
	qio := func(img string, cmds ...string) {
		args := []string{"-f", "qcow2"}
		for _, c := range cmds {
			args = append(args, "-c", c)
		}
		run(t, dir, "qemu-io", append(args, img)...)
	}

	t.Run("qcow2-on-qcow2", func(t *testing.T) {
		qimg("convert", "-f", "raw", "-O", "qcow2", src, "base.qcow2")
		qimg("create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "top.qcow2")
		// A data write and a zero write over data of the base (v3 zero clusters).
		qio("top.qcow2", "write -P 0x5a 1M 64k", "write -z 3M 64k", "write -P 0x11 6M 1k")
		want := bytes.Clone(base)
		patch(want, 1<<20, 64<<10, 0x5a)
		patch(want, 3<<20, 64<<10, 0)
		patch(want, 6<<20, 1<<10, 0x11)
		top := filepath.Join(dir, "top.qcow2")
		img := openChecked(t, top, want)
		st, _ := os.Stat(top)
		if img.BytesRead() <= st.Size() {
			t.Errorf("BytesRead = %d, not more than the top file (%d bytes): the backing file is not counted", img.BytesRead(), st.Size())
		}
	})
	t.Run("qcow2-on-smaller-vhdx", func(t *testing.T) {
		qimg("convert", "-f", "raw", "-O", "vhdx", src, "base.vhdx")
		qimg("create", "-f", "qcow2", "-b", "base.vhdx", "-F", "vhdx", "big.qcow2", "8M")
		qio("big.qcow2", "write -P 0xa5 7M 4k")
		want := append(bytes.Clone(base), make([]byte, 8<<20-len(base))...)
		patch(want, 7<<20, 4<<10, 0xa5)
		openChecked(t, filepath.Join(dir, "big.qcow2"), want)
	})
	t.Run("three-levels-on-raw", func(t *testing.T) {
		qimg("create", "-f", "qcow2", "-b", "source.raw", "-F", "raw", "mid.qcow2")
		qio("mid.qcow2", "write -P 0x01 0 4k")
		qimg("create", "-f", "qcow2", "-o", "compat=0.10", "-b", "mid.qcow2", "-F", "qcow2", "leaf.qcow2")
		qio("leaf.qcow2", "write -P 0x02 2k 4k")
		want := bytes.Clone(base)
		patch(want, 0, 4<<10, 0x01)
		patch(want, 2<<10, 4<<10, 0x02)
		// Open by a relative path from another directory: the backing names
		// are relative to the images, not to the working directory.
		sub := filepath.Join(dir, "sub")
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Chdir(sub)
		openChecked(t, filepath.Join("..", "leaf.qcow2"), want)
	})
}

func openChecked(t *testing.T, path string, want []byte) Image {
	t.Helper()
	img, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { img.Close() })
	if q := qemuSize(t, path, "qcow2"); img.Size() != q {
		t.Fatalf("Size = %d, qemu-img says %d", img.Size(), q)
	}
	checkImage(t, img, want)
	return img
}

// TestReadsLittle opens 2 GiB images with a little data and reads the start
// of the disk, as an inspection does: it must read well under 1% of the disk.
func TestReadsLittle(t *testing.T) {
	testfixtures.Long(t, testfixtures.Peers)
	dir := t.TempDir()
	run(t, dir, "qemu-img", "create", "-f", "raw", "big.raw", "2G")
	run(t, dir, "qemu-io", "-f", "raw", "-c", "write -P 0x33 0 1M", "-c", "write -P 0x44 1G 1M", "big.raw")
	for _, c := range []struct{ name, qemuFmt string }{
		{"qcow2", "qcow2"}, {"vhd", "vpc"}, {"vhdx", "vhdx"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, "big."+c.name)
			run(t, dir, "qemu-img", "convert", "-f", "raw", "-O", c.qemuFmt, "big.raw", path)
			start := time.Now()
			img, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			p := make([]byte, 64<<10)
			for _, off := range []int64{0, 1 << 20, 1 << 30, img.Size() - int64(len(p))} {
				if _, err := img.ReadAt(p, off); err != nil {
					t.Fatal(err)
				}
			}
			t.Logf("open and 4 reads: %d bytes read in %v", img.BytesRead(), time.Since(start))
			if !bytes.Equal(p[:1], []byte{0}) {
				t.Errorf("end of disk reads %x, want zeros", p[:1])
			}
			if n := img.BytesRead(); n > img.Size()/100 {
				t.Errorf("BytesRead = %d, more than 1%% of the %d-byte disk", n, img.Size())
			}
		})
	}
}

// TestConcurrentReads reads one image from several goroutines (run with -race).
func TestConcurrentReads(t *testing.T) {
	testfixtures.Long(t, testfixtures.Peers)
	dir := t.TempDir()
	src, want := makeSource(t, dir, sourceSize)
	for _, f := range []string{"qcow2", "vpc", "vhdx"} {
		path := filepath.Join(dir, "c."+f)
		run(t, dir, "qemu-img", "convert", "-f", "raw", "-O", f, "-o", map[string]string{
			"qcow2": "cluster_size=4096", "vpc": "subformat=dynamic", "vhdx": "block_size=1M"}[f], src, path)
		img, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := make([]byte, 70000)
				for off := int64(g * 1000); off+int64(len(p)) <= int64(len(want)); off += 4 * int64(len(p)) {
					if _, err := img.ReadAt(p, off); err != nil {
						errs <- err
						return
					}
					if !bytes.Equal(p, want[off:off+int64(len(p))]) {
						errs <- fmt.Errorf("%s: data differs at 0x%x", f, off)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		img.Close()
	}
}

// BenchmarkReadAt reads a 64 MiB qcow2 image, every cluster allocated, with
// sequential 64 KiB reads.
func BenchmarkReadAt(b *testing.B) {
	testfixtures.Long(b, testfixtures.Peers)
	dir := b.TempDir()
	data := make([]byte, 64<<20)
	rng := rand.New(rand.NewPCG(7, 8))
	for i := 0; i < len(data); i += 8 {
		binary.LittleEndian.PutUint64(data[i:], rng.Uint64())
	}
	src := filepath.Join(dir, "bench.raw")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(dir, "bench.qcow2")
	run(b, dir, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", src, path)
	img, err := Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer img.Close()
	p := make([]byte, 64<<10)
	b.SetBytes(img.Size())
	b.ResetTimer()
	for b.Loop() {
		for off := int64(0); off < img.Size(); off += int64(len(p)) {
			if _, err := img.ReadAt(p, off); err != nil && !errors.Is(err, io.EOF) {
				b.Fatal(err)
			}
		}
	}
}

// TestVHDFooterVariants reads VHDs whose footer is where older or damaged
// files have it: 511 bytes long at the end (old Virtual PC), or only the copy
// at the start of a dynamic disk whose trailing footer was cut off.
func TestVHDFooterVariants(t *testing.T) {
	testfixtures.Long(t, testfixtures.Peers)
	dir := t.TempDir()
	src, want := makeSource(t, dir, sourceSize)
	convert := func(sub string) []byte {
		out := filepath.Join(dir, sub+".vhd")
		run(t, dir, "qemu-img", "convert", "-f", "raw", "-O", "vpc", "-o", "subformat="+sub, src, out)
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	fixed, dynamic := convert("fixed"), convert("dynamic")
	for _, c := range []struct {
		name   string
		file   []byte
		format Format
	}{
		{"fixed-511-byte-footer", fixed[:len(fixed)-1], FormatVHDFixed},
		{"dynamic-511-byte-footer", dynamic[:len(dynamic)-1], FormatVHDDynamic},
		{"dynamic-without-trailing-footer", dynamic[:len(dynamic)-512], FormatVHDDynamic},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, c.name)
			if err := os.WriteFile(path, c.file, 0o644); err != nil {
				t.Fatal(err)
			}
			img, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			if img.Format() != c.format {
				t.Errorf("Format = %q, want %q", img.Format(), c.format)
			}
			checkImage(t, img, want)
		})
	}
}

func TestSparseCodec(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	b := make([]byte, 300000)
	for range 50 {
		off := rng.IntN(len(b) - 70000)
		for i := range rng.IntN(70000) {
			b[off+i] = byte(rng.IntN(3)) // many zeros, short and long runs
		}
	}
	s := decodeSparse(encodeSparse(b))
	got := make([]byte, len(b)+10)
	n, err := s.ReadAt(got, 0)
	if n != len(b) || !errors.Is(err, io.EOF) || !bytes.Equal(got[:n], b) {
		t.Fatalf("round trip: n = %d, err = %v, equal = %v", n, err, bytes.Equal(got[:n], b))
	}
}
