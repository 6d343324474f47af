package gate

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"

	"github.com/vouch-dev/vouch/internal/authenticode"
	"github.com/vouch-dev/vouch/internal/secureboot"
)

// Limits that keep a hostile or corrupt package from exhausting memory or
// time. They are far above what real boot packages need: Debian's shim is
// 1 MiB, GRUB 4 MiB, a signed kernel 8 MiB; linux-image data.tar is ~400 MiB.
const (
	// MaxPE is the largest file read into memory to be identified as an
	// EFI binary; larger PE files are listed as skipped.
	MaxPE = 128 << 20
	// MaxPayload bounds the decompressed bytes of one package payload.
	MaxPayload = 16 << 30
	// maxEntries bounds the files of one payload.
	maxEntries = 1 << 20
	// maxControl bounds a control file (deb control, read whole).
	maxControl = 1 << 20
)

// Roles of the EFI binaries found in a package.
const (
	RoleShim   = "shim"
	RoleGRUB   = "grub"
	RoleKernel = "kernel"
	// MokManager (mmx64.efi) and fallback (fbx64.efi): shim's helpers,
	// installed beside it and loaded (and verified) by it. Their .sbat
	// names the "shim" component; they carry no vendor certificate.
	RoleMokManager = "mokmanager"
	RoleFallback   = "fallback"
)

// EFIFile is an EFI binary found in a package, identified by its content:
// shim is a PE image with shim's .vendor_cert or .sbatlevel section
// (secureboot.IsShim), GRUB one whose .sbat names the "grub" component, a
// kernel a PE image installed as boot/vmlinuz-* or boot/vmlinux-* (Debian's
// signed kernel carries no .sbat).
type EFIFile struct {
	// Path is the file's path inside the package, without a leading "./".
	Path string `json:"path"`
	Role string `json:"role"`
	// Signed reports that the image has at least one Authenticode
	// signature. Unsigned shim builds (Debian's shim-unsigned) are never
	// what the firmware boots and are not judged.
	Signed bool `json:"signed"`
	Size   int  `json:"size"`

	img *authenticode.Image
}

// Image returns the parsed binary.
func (f *EFIFile) Image() *authenticode.Image { return f.img }

// Package is a .deb or .rpm file and the EFI binaries it would install.
type Package struct {
	File    string     `json:"file"`
	Format  string     `json:"format"` // "deb" or "rpm"
	Name    string     `json:"name,omitempty"`
	Version string     `json:"version,omitempty"`
	EFI     []*EFIFile `json:"efi"`
	// Scanned is false when the payload was not read because the package's
	// file list names no EFI binary (see ReadDeb).
	Scanned bool `json:"scanned"`
	// Notes lists what was skipped and why.
	Notes []string `json:"notes,omitempty"`
	// KernelFiles reports that the file list names boot/ files (a kernel
	// package) that ReadOptions.Kernels=false did not look at.
	KernelFiles bool `json:"-"`
}

// ReadOptions choose how much of a package is read.
type ReadOptions struct {
	// Kernels also decompresses packages whose file list names files under
	// boot/ only (kernels: a Debian linux-image payload takes 20 s to
	// decompress), which only matters when a new shim is judged.
	Kernels bool
	// MaxPayload bounds the decompressed payload; 0 means the default
	// MaxPayload (16 GiB). The fuzzers set less so that a decompression
	// bomb costs them milliseconds rather than minutes.
	MaxPayload int64
}

func (o ReadOptions) maxPayload() int64 {
	if o.MaxPayload > 0 {
		return o.MaxPayload
	}
	return MaxPayload
}

// Shims returns the signed shims of the package.
func (p *Package) Shims() []*EFIFile { return p.role(RoleShim, true) }

// Helpers returns the signed MokManager and fallback binaries of the package.
func (p *Package) Helpers() []*EFIFile {
	return append(p.role(RoleMokManager, true), p.role(RoleFallback, true)...)
}

func (p *Package) role(r string, signedOnly bool) []*EFIFile {
	var out []*EFIFile
	for _, f := range p.EFI {
		if f.Role == r && (f.Signed || !signedOnly) {
			out = append(out, f)
		}
	}
	return out
}

// FormatError is a package file that cannot be read: not the format it
// claims, truncated or corrupt.
type FormatError struct {
	File   string
	Format string // "deb", "rpm"
	Reason string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("gate: %s: not a readable %s package: %s", e.File, e.Format, e.Reason)
}

// decompressor opens the payload compression named by an archive member
// suffix ("xz", "zst", "gz", "bz2", "lzma", "") or an rpm
// PAYLOADCOMPRESSOR ("xz", "zstd", "gzip", "bzip2", "lzma").
func decompressor(kind string, r io.Reader) (io.Reader, func(), error) {
	none := func() {}
	switch kind {
	case "", "none", "uncompressed":
		return r, none, nil
	case "gz", "gzip":
		z, err := gzip.NewReader(r)
		if err != nil {
			return nil, none, err
		}
		z.Multistream(true)
		return z, func() { z.Close() }, nil
	case "xz":
		z, err := xz.NewReader(r)
		if err != nil {
			return nil, none, err
		}
		return z, none, nil
	case "lzma":
		z, err := lzma.NewReader(r)
		if err != nil {
			return nil, none, err
		}
		return z, none, nil
	case "zst", "zstd":
		// One goroutine and a bounded window: the hook runs while apt or
		// dnf waits, and a hostile frame must not reserve gigabytes.
		z, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(512<<20), zstd.WithDecoderMaxWindow(256<<20))
		if err != nil {
			return nil, none, err
		}
		return z, z.Close, nil
	case "bz2", "bzip2":
		return bzip2.NewReader(r), none, nil
	}
	return nil, none, fmt.Errorf("unsupported compression %q", kind)
}

// limitedReader fails once more than n bytes were read, so a payload that
// decompresses without end is an error rather than an endless scan.
type limitedReader struct {
	r      io.Reader
	n, max int64
	what   string
}

func newLimitedReader(r io.Reader, max int64, what string) *limitedReader {
	return &limitedReader{r: r, n: max, max: max, what: what}
}

var errTooLarge = errors.New("payload too large")

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, fmt.Errorf("%s decompresses to more than %d MiB: %w", l.what, l.max>>20, errTooLarge)
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// collector classifies the files of a payload as they stream by.
type collector struct {
	pkg     *Package
	entries int
}

// add looks at one regular file of size bytes whose content r yields. Only
// files that start with "MZ" are read whole.
func (c *collector) add(name string, size int64, r io.Reader) error {
	c.entries++
	if c.entries > maxEntries {
		return fmt.Errorf("more than %d files in the payload", maxEntries)
	}
	name = strings.TrimPrefix(path.Clean("/"+strings.TrimPrefix(name, ".")), "/")
	if size < 2 {
		return nil
	}
	br := bufio.NewReaderSize(r, 64)
	head, err := br.Peek(2)
	if err != nil {
		return fmt.Errorf("%s: %w", name, noEOF(err))
	}
	if head[0] != 'M' || head[1] != 'Z' {
		return nil
	}
	if size > MaxPE {
		c.pkg.Notes = append(c.pkg.Notes, fmt.Sprintf("%s: PE file of %d MiB not examined (limit %d MiB)", name, size>>20, MaxPE>>20))
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(br, size))
	if err != nil {
		return fmt.Errorf("%s: %w", name, noEOF(err))
	}
	if int64(len(b)) != size {
		return fmt.Errorf("%s: %w (%d of %d bytes)", name, io.ErrUnexpectedEOF, len(b), size)
	}
	img, err := authenticode.Parse(b)
	if err != nil {
		base := strings.ToLower(path.Base(name))
		if efiName(name) && (strings.HasPrefix(base, "shim") || strings.HasPrefix(base, "boot")) {
			// A shim (or removable-path loader) that starts like a PE
			// image but does not parse would be installed as a boot
			// loader that cannot start: bad input, not "nothing to
			// judge". Only the name can say what it was meant to be.
			return fmt.Errorf("%s: corrupt EFI binary: %w", name, err)
		}
		if efiName(name) {
			c.pkg.Notes = append(c.pkg.Notes, fmt.Sprintf("%s: not a readable PE image (%v)", name, err))
		}
		return nil // an MZ file that is not a PE image (a DOS stub, data)
	}
	f := &EFIFile{Path: name, Size: len(b), img: img, Signed: len(img.Signatures()) > 0 || img.CertTableErr() != nil}
	switch {
	case secureboot.IsShim(img):
		f.Role = RoleShim
	case sbatHas(img, "grub"):
		f.Role = RoleGRUB
	case isKernelPath(name):
		f.Role = RoleKernel
	case sbatHas(img, "shim") && strings.HasPrefix(strings.ToLower(path.Base(name)), "mm"):
		f.Role = RoleMokManager
	case sbatHas(img, "shim") && strings.HasPrefix(strings.ToLower(path.Base(name)), "fb"):
		f.Role = RoleFallback
	default:
		return nil
	}
	c.pkg.EFI = append(c.pkg.EFI, f)
	return nil
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func sbatHas(img *authenticode.Image, component string) bool {
	b, ok := img.SectionData(".sbat")
	if !ok {
		return false
	}
	entries, err := secureboot.ParseSBAT(b)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if e.Component == component {
			return true
		}
	}
	return false
}

func isKernelPath(p string) bool {
	dir, base := path.Split(p)
	return dir == "boot/" && (strings.HasPrefix(base, "vmlinuz-") || strings.HasPrefix(base, "vmlinux-"))
}

// efiName and bootName are the pre-filter on a package's file list (a
// .deb's md5sums, an rpm's BASENAMES and DIRNAMES): only a package listing a
// file whose name contains ".efi" (shim, GRUB, fallback: shimx64.efi,
// shimx64.efi.signed, shimx64.efi.signed.latest, ESP files) — or, when
// kernels are wanted, a file under boot/ — has its payload decompressed and
// its files identified by content. Without it every upgrade would
// decompress every package.
func efiName(name string) bool {
	return strings.Contains(strings.ToLower(path.Base(name)), ".efi")
}

func bootName(name string) bool {
	name = strings.TrimPrefix(path.Clean("/"+strings.TrimPrefix(name, ".")), "/")
	return strings.HasPrefix(name, "boot/")
}

// peekMagic reports whether b starts with magic.
func peekMagic(b []byte, magic string) bool { return bytes.HasPrefix(b, []byte(magic)) }

// ReadPackageFile reads a package file; want is "deb", "rpm" or "" (either,
// by content). A file of another kind is a *FormatError.
func ReadPackageFile(file, want string, o ReadOptions) (*Package, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	head := make([]byte, 24)
	k, _ := io.ReadFull(f, head)
	head = head[:k]
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	switch {
	case IsDeb(head) && want != "rpm":
		return ReadDeb(f, file, o)
	case IsRPM(head) && want != "deb":
		return ReadRPM(f, file, o)
	case want == "deb":
		return nil, &FormatError{File: file, Format: "deb", Reason: "not a Debian package (no ar archive starting with debian-binary)"}
	case want == "rpm":
		return nil, &FormatError{File: file, Format: "rpm", Reason: "not an rpm package (no lead signature ed ab ee db)"}
	}
	return nil, &FormatError{File: file, Format: "deb or rpm", Reason: "neither a Debian package nor an rpm package"}
}
