package gate

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// The .deb format (deb(5)): an ar archive ("!<arch>\n", then members each
// behind a 60-byte header: name[16] mtime[12] uid[6] gid[6] mode[8] size[10]
// "`\n", data padded to an even offset) whose first member is debian-binary
// ("2.0\n"), then control.tar[.gz|.xz|.zst], then data.tar[.gz|.xz|.zst|.bz2|
// .lzma]. Members whose names start with "_" are extensions dpkg ignores.
// GNU ar ends names with "/"; dpkg-deb accepts both.
const (
	arMagic     = "!<arch>\n"
	arHeaderLen = 60
)

// IsDeb reports whether b (the start of a file) is a Debian binary package:
// an ar archive whose first member is debian-binary.
func IsDeb(b []byte) bool {
	return len(b) >= len(arMagic)+16 && peekMagic(b, arMagic) && strings.TrimRight(string(b[8:24]), " /") == "debian-binary"
}

// ReadDeb reads a .deb from r (file names it in errors) and returns the EFI
// binaries its data.tar would install. The payload is decompressed only when
// the package's md5sums lists a file that may be an EFI binary (mayHoldEFI)
// or when it has no md5sums; then every file starting with "MZ" is
// identified by content. Bad input is a *FormatError.
func ReadDeb(r io.Reader, file string, o ReadOptions) (*Package, error) {
	p := &Package{File: file, Format: "deb", EFI: []*EFIFile{}}
	bad := func(format string, args ...any) error {
		return &FormatError{File: file, Format: "deb", Reason: fmt.Sprintf(format, args...)}
	}
	br := bufio.NewReaderSize(r, 64<<10)
	magic := make([]byte, len(arMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != arMagic {
		return nil, bad("no ar archive signature (%q expected at offset 0)", strings.TrimSpace(arMagic))
	}
	var (
		off        int64 = int64(len(arMagic))
		n          int
		haveCtl    bool
		candidates = -1 // files the md5sums lists that may be EFI binaries; -1: no md5sums
	)
	for {
		hdr := make([]byte, arHeaderLen)
		k, err := io.ReadFull(br, hdr)
		if errors.Is(err, io.EOF) && k == 0 {
			break
		}
		if err != nil {
			return nil, bad("member header at offset %d is truncated", off)
		}
		if string(hdr[58:60]) != "`\n" {
			return nil, bad("member header at offset %d has no terminator", off)
		}
		name := strings.TrimRight(string(hdr[0:16]), " ")
		name = strings.TrimSuffix(name, "/")
		sizeField := strings.TrimRight(string(hdr[48:58]), " ")
		size, err := strconv.ParseInt(sizeField, 10, 64)
		if err != nil || size < 0 || sizeField == "" || strings.ContainsAny(sizeField, "+-") {
			return nil, bad("member %q at offset %d has an invalid size %q", name, off, sizeField)
		}
		off += arHeaderLen
		body := &countReader{r: io.LimitReader(br, size)}
		n++
		switch {
		case n == 1:
			if name != "debian-binary" {
				return nil, bad("first member is %q, not debian-binary", name)
			}
			b, _ := io.ReadAll(io.LimitReader(body, 64))
			if !strings.HasPrefix(string(b), "2.") {
				return nil, bad("debian-binary says %q, not format 2.x", strings.TrimSpace(string(b)))
			}
		case strings.HasPrefix(name, "_"):
		case name == "control.tar" || strings.HasPrefix(name, "control.tar."):
			if haveCtl {
				return nil, bad("second control member %q", name)
			}
			haveCtl = true
			c, err := readControl(body, strings.TrimPrefix(strings.TrimPrefix(name, "control.tar"), "."))
			if err != nil {
				return nil, bad("%s: %v", name, err)
			}
			p.Name, p.Version = c.name, c.version
			if c.md5sums {
				candidates = c.efi
				if o.Kernels {
					candidates += c.boot
				}
				p.KernelFiles = c.boot > 0 && !o.Kernels
			}
		case name == "data.tar" || strings.HasPrefix(name, "data.tar."):
			if !haveCtl {
				return nil, bad("%s comes before the control member", name)
			}
			if candidates == 0 {
				p.Notes = append(p.Notes, "md5sums lists no EFI binary or boot file: payload not examined")
				return p, nil
			}
			p.Scanned = true
			if err := readDataTar(body, strings.TrimPrefix(strings.TrimPrefix(name, "data.tar"), "."), p, o.maxPayload()); err != nil {
				return nil, bad("%s: %v", name, err)
			}
			return p, nil
		default:
			return nil, bad("unexpected member %q at offset %d", name, off-arHeaderLen)
		}
		// Skip the rest of the member and its padding byte.
		if _, err := io.Copy(io.Discard, body); err != nil {
			return nil, bad("member %q: %v", name, err)
		}
		if body.n != size {
			return nil, bad("member %q at offset %d is truncated (%d of %d bytes)", name, off-arHeaderLen, body.n, size)
		}
		off += size
		if size%2 == 1 {
			if _, err := br.ReadByte(); err != nil {
				return nil, bad("member %q: missing padding byte at offset %d", name, off)
			}
			off++
		}
	}
	if n == 0 {
		return nil, bad("empty ar archive")
	}
	return nil, bad("no data.tar member")
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n += int64(k)
	return k, err
}

type control struct {
	name, version string
	md5sums       bool
	efi, boot     int // md5sums lines naming .efi files, boot/ files
}

func readControl(r io.Reader, comp string) (*control, error) {
	dr, closeFn, err := decompressor(comp, r)
	if err != nil {
		return nil, err
	}
	defer closeFn()
	tr := tar.NewReader(newLimitedReader(dr, 64<<20, "control.tar"))
	c := &control{}
	found := false
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, noEOF(err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		switch strings.TrimPrefix(h.Name, "./") {
		case "control":
			b, err := io.ReadAll(io.LimitReader(tr, maxControl))
			if err != nil {
				return nil, fmt.Errorf("control: %w", noEOF(err))
			}
			found = true
			c.name, c.version = controlField(b, "Package"), controlField(b, "Version")
		case "md5sums":
			c.md5sums = true
			sc := bufio.NewScanner(tr)
			sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
			for sc.Scan() {
				// "<32 hex>  <path>"
				_, p, ok := strings.Cut(sc.Text(), "  ")
				switch {
				case ok && efiName(p):
					c.efi++
				case ok && bootName(p):
					c.boot++
				}
			}
			if err := sc.Err(); err != nil {
				return nil, fmt.Errorf("md5sums: %w", noEOF(err))
			}
		}
	}
	if !found {
		return nil, errors.New("no control file")
	}
	return c, nil
}

// controlField returns a field of a deb822 control paragraph.
func controlField(b []byte, key string) string {
	for _, line := range bytes.Split(b, []byte("\n")) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if ok && strings.EqualFold(string(k), key) {
			return strings.TrimSpace(string(v))
		}
	}
	return ""
}

func readDataTar(r io.Reader, comp string, p *Package, max int64) error {
	dr, closeFn, err := decompressor(comp, r)
	if err != nil {
		return err
	}
	defer closeFn()
	tr := tar.NewReader(newLimitedReader(dr, max, "data.tar"))
	c := &collector{pkg: p}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return noEOF(err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		if err := c.add(h.Name, h.Size, tr); err != nil {
			return err
		}
	}
}
