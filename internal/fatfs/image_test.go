package fatfs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Helpers that build real FAT images with dosfstools and mtools.

// tools maps each external command the tests run to its apt package.
var tools = map[string]string{
	"mkfs.vfat": "dosfstools",
	"mcopy":     "mtools",
	"mmd":       "mtools",
	"mdel":      "mtools",
	"mdir":      "mtools",
	"mshowfat":  "mtools",
}

func needTools(tb testing.TB) {
	tb.Helper()
	for tool, pkg := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			tb.Fatalf("%s not found: install the apt package %s", tool, pkg)
		}
	}
}

// run runs an external command and returns its standard output.
func run(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1", "MTOOLS_NO_VFAT=0", "TZ=UTC")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// imageSpec describes a real file system to build.
type imageSpec struct {
	name    string
	bits    int
	kib     int      // image size in KiB
	mkfs    []string // extra mkfs.vfat arguments
	label   string
	serial  uint32
	scale   int  // file size multiplier, to fit small images
	minimal bool // only a small tree (for fuzz seeds)
}

var imageSpecs = []imageSpec{
	{name: "fat12", bits: 12, kib: 2048, label: "VOUCH12", serial: 0x12AB34CD, scale: 1},
	{name: "fat16", bits: 16, kib: 64 << 10, label: "VOUCH ESP16", serial: 0x0016CAFE, scale: 8},
	{name: "fat32", bits: 32, kib: 64 << 10, mkfs: []string{"-S", "512"}, label: "VOUCH32", serial: 0xDEADBEEF, scale: 8},
}

// builtImage is a real image and the tree it was made from.
type builtImage struct {
	path  string
	src   string            // source directory; holds exactly what the image holds
	files map[string][]byte // slash path -> content
	dirs  []string
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// buildImage makes the image described by spec in a temporary directory: an
// ESP-like tree, long and lower-case names, an empty file, a directory of 300
// entries, five nested directories and a file fragmented around deleted ones.
func buildImage(tb testing.TB, spec imageSpec) *builtImage {
	tb.Helper()
	needTools(tb)
	dir := tb.TempDir()
	img := &builtImage{path: filepath.Join(dir, spec.name+".img"), src: filepath.Join(dir, "src"), files: map[string][]byte{}}
	rng := rand.New(rand.NewPCG(uint64(spec.bits), 7))
	put := func(name string, data []byte) {
		p := filepath.Join(img.src, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			tb.Fatal(err)
		}
		img.files[name] = data
	}
	mkdir := func(name string) {
		if err := os.MkdirAll(filepath.Join(img.src, filepath.FromSlash(name)), 0o755); err != nil {
			tb.Fatal(err)
		}
		img.dirs = append(img.dirs, name)
	}
	k := spec.scale

	args := append([]string{"-C", "-F", fmt.Sprint(spec.bits), "-n", spec.label, "-i", fmt.Sprintf("%08x", spec.serial)}, spec.mkfs...)
	run(tb, "mkfs.vfat", append(args, img.path, fmt.Sprint(spec.kib))...)
	mimg := []string{"-i", img.path}

	// ESP tree.
	for _, d := range []string{"EFI", "EFI/BOOT", "EFI/debian"} {
		mkdir(d)
	}
	if spec.minimal {
		put("EFI/BOOT/BOOTX64.EFI", randBytes(rng, 1500))
		put("This Is A Long Name.txt", []byte("long name\n"))
		put("readme.txt", []byte("lower-case 8.3 name\n"))
		put("empty.dat", nil)
		mkdir("a")
		mkdir("a/b")
		put("a/b/deep.txt", []byte("deep\n"))
		run(tb, "mcopy", append(append([]string{"-s", "-Q"}, mimg...), sourceArgs(tb, img.src)...)...)
		return img
	}
	put("EFI/BOOT/BOOTX64.EFI", randBytes(rng, 60_000*k))
	put("EFI/debian/shimx64.efi", randBytes(rng, 150_000*k))
	put("EFI/debian/grubx64.efi", randBytes(rng, 250_000*k))
	put("EFI/debian/BOOTX64.CSV", []byte("s\x00h\x00i\x00m\x00x\x006\x004\x00.\x00e\x00f\x00i\x00,\x00d\x00e\x00b\x00i\x00a\x00n\x00\n\x00"))

	// Fragmentation: fill the start of the data area, punch holes, then write a
	// larger file that must use them.
	fragDir := filepath.Join(dir, "frag")
	if err := os.MkdirAll(fragDir, 0o755); err != nil {
		tb.Fatal(err)
	}
	var fragFiles []string
	for i := 1; i <= 6; i++ {
		name := fmt.Sprintf("frag%d.bin", i)
		data := randBytes(rng, 9_000*k)
		if err := os.WriteFile(filepath.Join(fragDir, name), data, 0o644); err != nil {
			tb.Fatal(err)
		}
		fragFiles = append(fragFiles, filepath.Join(fragDir, name))
		if i%2 == 1 {
			put(name, data)
		}
	}
	run(tb, "mcopy", append(append([]string{"-Q"}, mimg...), append(fragFiles, "::")...)...)
	run(tb, "mdel", append(mimg, "::frag2.bin", "::frag4.bin", "::frag6.bin")...)
	if spec.bits == 32 {
		resetNextFree(tb, img.path)
	}
	put("big.bin", randBytes(rng, 40_000*k))

	put("This Is A Long Name.txt", []byte("a long, mixed-case name\n"))
	put("readme.txt", []byte("lower-case 8.3 name\n"))
	put("MiXeD.TxT", []byte("mixed case needs a long name\n"))
	put("empty.dat", nil)
	mkdir("many")
	for i := range 300 {
		put(fmt.Sprintf("many/File-%03d.txt", i), fmt.Appendf(nil, "file %d\n", i))
	}
	for _, d := range []string{"l1", "l1/l2", "l1/l2/l3", "l1/l2/l3/l4", "l1/l2/l3/l4/l5"} {
		mkdir(d)
	}
	put("l1/l2/l3/l4/l5/deepest file.txt", []byte("five levels down\n"))

	// big.bin first, so that it lands in the holes.
	run(tb, "mcopy", append(append([]string{"-Q"}, mimg...), filepath.Join(img.src, "big.bin"), "::")...)
	var rest []string
	for _, a := range sourceArgs(tb, img.src) {
		if filepath.Base(a) != "big.bin" && !strings.HasPrefix(filepath.Base(a), "frag") && a != "::" {
			rest = append(rest, a)
		}
	}
	run(tb, "mcopy", append(append([]string{"-s", "-Q"}, mimg...), append(rest, "::")...)...)
	return img
}

// resetNextFree sets the FAT32 FSInfo next-free hint to "unknown", so that
// mtools allocates from the start of the FAT and fills the holes just made.
func resetNextFree(tb testing.TB, path string) {
	tb.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var bs [512]byte
	if _, err := f.ReadAt(bs[:], 0); err != nil {
		tb.Fatal(err)
	}
	fsinfo := int64(binary.LittleEndian.Uint16(bs[48:])) * 512
	if _, err := f.WriteAt([]byte{0xFF, 0xFF, 0xFF, 0xFF}, fsinfo+492); err != nil {
		tb.Fatal(err)
	}
}

// sourceArgs lists the top-level entries of dir followed by "::", for mcopy -s.
func sourceArgs(tb testing.TB, dir string) []string {
	tb.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, filepath.Join(dir, e.Name()))
	}
	return append(out, "::")
}

// openImage opens a built image file with New.
func openImage(tb testing.TB, path string) *FS {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		tb.Fatal(err)
	}
	fsys, err := New(f, st.Size())
	if err != nil {
		tb.Fatalf("New(%s): %v", path, err)
	}
	return fsys
}
