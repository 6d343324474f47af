// Package container reads disk image container formats (raw, qcow2, VHD fixed
// and dynamic, VHDX) and exposes the virtual disk inside as an io.ReaderAt,
// offline and read-only: nothing is mounted and nothing is written.
//
// The format is detected from the content, never from the file name. Every
// offset, length and count read from an image is bounds-checked; a malformed or
// unsupported image is reported as a *FormatError. Only the metadata a read
// needs is read, and BytesRead tells how much of the file(s) that was.
//
// Specifications: QEMU's docs/interop/qcow2.txt, Microsoft's "Virtual Hard Disk
// Image Format Specification" (VHD) and [MS-VHDX].
package container

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
)

// Format is a container format name as printed to users.
type Format string

// The container formats this package reads.
const (
	FormatRaw        Format = "raw"
	FormatQCOW2      Format = "qcow2"
	FormatVHDFixed   Format = "vhd-fixed"
	FormatVHDDynamic Format = "vhd-dynamic"
	FormatVHDX       Format = "vhdx"
)

// Image is an opened disk image.
type Image interface {
	// ReadAt reads the virtual disk. Reads past Size return io.EOF;
	// unallocated areas read as zeros. It is safe for concurrent use.
	io.ReaderAt
	// Size is the virtual disk size in bytes.
	Size() int64
	// Format is the container format.
	Format() Format
	// BytesRead is how many bytes were read from the underlying file(s) so
	// far, metadata and backing files included.
	BytesRead() int64
	// Close releases the file(s).
	Close() error
}

// FormatError reports an image that is malformed or that this package does not
// read.
type FormatError struct {
	Path   string // the image file; empty when not known (Detect)
	Offset int64  // byte offset in the file where the problem is; -1 for the whole file
	Reason string
	// Unsupported is set when the input is a valid image that this package
	// does not read (VMDK, differencing VHD, encryption, ...).
	Unsupported bool
}

func (e *FormatError) Error() string {
	s := "container: "
	if e.Path != "" {
		s += e.Path + ": "
	}
	s += e.Reason
	if e.Offset >= 0 {
		s += fmt.Sprintf(" (offset 0x%x)", e.Offset)
	}
	return s
}

// maxBackingDepth bounds a chain of backing files.
const maxBackingDepth = 16

// Open opens the disk image at path. A qcow2 backing file is resolved relative
// to the directory of the image that names it.
func Open(path string) (Image, error) {
	return openFile(path, nil, "")
}

// openFile opens path. chain holds the images above it in a backing chain (top
// first); want is the format the referring image requires, or "".
func openFile(path string, chain []os.FileInfo, want Format) (Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("container: %w", err)
	}
	// Seek rather than Stat so that block devices report their size.
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("container: %s: %w", path, err)
	}
	src := &source{r: f, size: size, path: path, closer: f}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("container: %s: %w", path, err)
	}
	o := openOptions{want: want, backing: fileBackingOpener(path, append(chain[:len(chain):len(chain)], info))}
	img, err := openSource(src, o)
	if err != nil {
		f.Close()
		return nil, err
	}
	return img, nil
}

// openReader opens an image held by r (size bytes). Backing files are refused.
// It serves the fuzz tests.
func openReader(r io.ReaderAt, size int64, name string) (Image, error) {
	return openSource(&source{r: r, size: size, path: name}, openOptions{})
}

// openOptions says how to open an image.
type openOptions struct {
	want    Format        // required format, "" to detect
	backing backingOpener // nil: backing files are refused
}

// backingOpener opens the backing file named in an image's header; format is
// the format the header names, or "".
type backingOpener func(name string, format Format, nameOffset int64) (Image, error)

func openSource(src *source, o openOptions) (Image, error) {
	f, err := Detect(src, src.size)
	if err != nil {
		var fe *FormatError
		if errors.As(err, &fe) && fe.Path == "" {
			fe.Path = src.path
		}
		return nil, err
	}
	if o.want != "" && !sameFamily(f, o.want) {
		return nil, src.formatErr(-1, "backing file is %s but the referring image says it is %s", f, o.want)
	}
	switch f {
	case FormatQCOW2:
		return openQCOW2(src, o)
	case FormatVHDFixed, FormatVHDDynamic:
		return openVHD(src)
	case FormatVHDX:
		return openVHDX(src)
	}
	return &rawImage{src: src}, nil
}

// sameFamily reports whether detected format f satisfies required format want
// (a header names VHD without saying fixed or dynamic).
func sameFamily(f, want Format) bool {
	if want == FormatVHDDynamic || want == FormatVHDFixed {
		return f == FormatVHDDynamic || f == FormatVHDFixed
	}
	return f == want
}

// Detect identifies the container format of r (size bytes) from its content.
// Formats that are recognised but not read (VMDK, VDI, QED, qcow version 1,
// differencing VHD, compressed files) and an empty file are a *FormatError.
func Detect(r io.ReaderAt, size int64) (Format, error) {
	if size <= 0 {
		return "", &FormatError{Offset: -1, Reason: "file is empty"}
	}
	head := make([]byte, min(size, 512))
	if err := readFullAt(r, head, 0); err != nil {
		return "", fmt.Errorf("container: read first sector: %w", err)
	}
	unsupported := func(what string) (Format, error) {
		return "", &FormatError{Offset: -1, Reason: what + " images are not supported yet", Unsupported: true}
	}
	switch {
	case bytes.HasPrefix(head, []byte("QFI\xfb")):
		if len(head) >= 8 && binary.BigEndian.Uint32(head[4:]) == 1 {
			return unsupported("qcow (version 1)")
		}
		return FormatQCOW2, nil
	case bytes.HasPrefix(head, []byte("vhdxfile")):
		return FormatVHDX, nil
	case bytes.HasPrefix(head, []byte("KDMV")), bytes.HasPrefix(head, []byte("COWD")),
		bytes.HasPrefix(head, []byte("# Disk DescriptorFile")):
		return unsupported("VMDK")
	case len(head) >= 68 && binary.LittleEndian.Uint32(head[64:]) == 0xbeda107f:
		return unsupported("VDI")
	case bytes.HasPrefix(head, []byte("QED\x00")):
		return unsupported("QED")
	}
	footer, _, err := findVHDFooter(r, size, head)
	if err != nil {
		return "", err
	}
	if footer != nil {
		switch t := binary.BigEndian.Uint32(footer[60:]); t {
		case vhdTypeFixed:
			return FormatVHDFixed, nil
		case vhdTypeDynamic:
			return FormatVHDDynamic, nil
		case vhdTypeDifferencing:
			return "", &FormatError{Offset: -1, Reason: "differencing VHD is not supported yet", Unsupported: true}
		default:
			return "", &FormatError{Offset: -1, Reason: fmt.Sprintf("unknown VHD disk type %d", t)}
		}
	}
	for _, c := range []struct{ magic, name string }{
		{"\x1f\x8b", "gzip"}, {"\xfd7zXZ\x00", "xz"}, {"\x28\xb5\x2f\xfd", "zstd"}, {"BZh", "bzip2"},
	} {
		if bytes.HasPrefix(head, []byte(c.magic)) {
			return "", &FormatError{Offset: -1, Reason: c.name + "-compressed file: decompress it first", Unsupported: true}
		}
	}
	return FormatRaw, nil
}

// readFullAt reads len(p) bytes at off; io.EOF before that is io.ErrUnexpectedEOF.
func readFullAt(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// source is an image file: it counts the bytes read and bounds-checks ranges.
type source struct {
	r      io.ReaderAt
	size   int64
	path   string
	closer io.Closer
	n      atomic.Int64
}

func (s *source) ReadAt(p []byte, off int64) (int, error) {
	n, err := s.r.ReadAt(p, off)
	s.n.Add(int64(n))
	return n, err
}

func (s *source) formatErr(off int64, format string, args ...any) *FormatError {
	return &FormatError{Path: s.path, Offset: off, Reason: fmt.Sprintf(format, args...)}
}

func (s *source) unsupported(off int64, format string, args ...any) *FormatError {
	e := s.formatErr(off, format, args...)
	e.Unsupported = true
	return e
}

// inFile reports whether n bytes at off lie within the file.
func (s *source) inFile(off, n int64) bool {
	return off >= 0 && n >= 0 && off <= s.size && n <= s.size-off
}

// readAt reads exactly len(p) bytes at off. A range outside the file is a
// *FormatError saying what was being read.
func (s *source) readAt(p []byte, off int64, what string) error {
	if !s.inFile(off, int64(len(p))) {
		return s.formatErr(off, "%s extends past end of file", what)
	}
	if err := readFullAt(s, p, off); err != nil {
		return fmt.Errorf("container: %s: read %s at offset 0x%x: %w", s.path, what, off, err)
	}
	return nil
}

// readData reads len(p) bytes of image data at off. The range must start
// inside the file; bytes past its end read as zeros, as QEMU reads them.
func (s *source) readData(p []byte, off int64, what string) error {
	if off < 0 || off >= s.size {
		return s.formatErr(off, "%s lies past end of file", what)
	}
	n := min(int64(len(p)), s.size-off)
	if err := s.readAt(p[:n], off, what); err != nil {
		return err
	}
	clear(p[n:])
	return nil
}

func (s *source) close() error {
	if s.closer == nil {
		return nil
	}
	c := s.closer
	s.closer = nil
	return c.Close()
}

// readVirtual implements ReadAt for a virtual disk of size bytes: it trims the
// read at the end of the disk and lets fill read the rest.
func readVirtual(p []byte, off, size int64, fill func(p []byte, off int64) error) (int, error) {
	if off < 0 {
		return 0, errors.New("container: negative offset")
	}
	if off >= size {
		return 0, io.EOF
	}
	var eof error
	if int64(len(p)) > size-off {
		p = p[:size-off]
		eof = io.EOF
	}
	if len(p) == 0 {
		return 0, eof
	}
	if err := fill(p, off); err != nil {
		return 0, err
	}
	return len(p), eof
}

// rawImage is a file that is the virtual disk.
type rawImage struct{ src *source }

func (r *rawImage) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("container: negative offset")
	}
	return r.src.ReadAt(p, off)
}

func (r *rawImage) Size() int64      { return r.src.size }
func (r *rawImage) Format() Format   { return FormatRaw }
func (r *rawImage) BytesRead() int64 { return r.src.n.Load() }
func (r *rawImage) Close() error     { return r.src.close() }
