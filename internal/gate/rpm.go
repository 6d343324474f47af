package gate

import (
	"bufio"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"

	"github.com/vouch-dev/vouch/internal/pkgdb"
)

// The rpm format (rpm's doc/manual/format.md, lib/header.c, lib/rpmlead.c):
// a 96-byte lead (magic ed ab ee db), the signature header padded to 8
// bytes, the main header, then the payload: a cpio archive in the "newc"
// format (070701, or 070702 with checksums), compressed as the main header's
// PAYLOADCOMPRESSOR tag says (gzip when absent). A header is the magic
// 8e ad e8 01, four reserved bytes, the index entry count and the data size
// (big-endian uint32), the 16-byte index entries (tag, type, offset, count)
// and the data.
const (
	rpmLeadLen     = 96
	rpmLeadMagic   = "\xed\xab\xee\xdb"
	rpmHeaderMagic = "\x8e\xad\xe8\x01"
	// Bounds from rpm's lib/header.c hdrchkTags and HEADER_DATA_MAX.
	rpmMaxTags = 0xffff
	rpmMaxData = 256 << 20

	// Payload tags pkgdb does not name (the header parser is pkgdb's).
	rpmTagPayloadFmt        = 1124
	rpmTagPayloadCmp        = 1125
	rpmTagPayloadDigest     = 5092
	rpmTagPayloadDigestAlgo = 5093

	cpioHeaderLen = 110
)

// IsRPM reports whether b (the start of a file) is an rpm package.
func IsRPM(b []byte) bool { return peekMagic(b, rpmLeadMagic) }

// ReadRPM reads an .rpm from r (file names it in errors) and returns the
// EFI binaries its payload would install. As for a .deb, the payload is
// decompressed only when the header's file list names a file that may be an
// EFI binary (or the header has no file list). Bad input is a *FormatError.
func ReadRPM(r io.Reader, file string, o ReadOptions) (*Package, error) {
	p := &Package{File: file, Format: "rpm", EFI: []*EFIFile{}}
	bad := func(format string, args ...any) error {
		return &FormatError{File: file, Format: "rpm", Reason: fmt.Sprintf(format, args...)}
	}
	br := bufio.NewReaderSize(r, 64<<10)
	lead := make([]byte, rpmLeadLen)
	k, err := io.ReadFull(br, lead)
	switch {
	case k < 4 || !IsRPM(lead):
		return nil, bad("no rpm lead signature (ed ab ee db expected at offset 0)")
	case err != nil:
		return nil, bad("lead truncated: %d of %d bytes", k, rpmLeadLen)
	}
	off := int64(rpmLeadLen)
	_, n, err := readRPMHeader(br, off)
	if err != nil {
		return nil, bad("signature header: %v", err)
	}
	off += n
	if pad := (8 - n%8) % 8; pad > 0 {
		if _, err := io.CopyN(io.Discard, br, pad); err != nil {
			return nil, bad("signature header padding at offset %d is truncated", off)
		}
		off += pad
	}
	h2, _, err := readRPMHeader(br, off)
	if err != nil {
		return nil, bad("main header: %v", err)
	}
	p.Name = h2.String(pkgdb.TagName)
	v := h2.String(pkgdb.TagVersion)
	rel := h2.String(pkgdb.TagRelease)
	if v != "" && rel != "" {
		v += "-" + rel
	}
	p.Version = v
	format, ok := h2.String(rpmTagPayloadFmt), h2.Has(rpmTagPayloadFmt)
	if ok && format != "cpio" {
		return nil, bad("payload format %q is not supported (want cpio)", format)
	}
	comp, haveComp := h2.String(rpmTagPayloadCmp), h2.Has(rpmTagPayloadCmp)
	if base := h2.Strings(pkgdb.TagBasenames); base != nil {
		dirs := h2.Strings(pkgdb.TagDirnames)
		efi, boot := 0, 0
		for _, b := range base {
			if efiName(b) {
				efi++
			}
		}
		for _, d := range dirs {
			if bootName(d) {
				boot++
			}
		}
		p.KernelFiles = boot > 0 && !o.Kernels && efi == 0
		if efi == 0 && (boot == 0 || !o.Kernels) {
			p.Notes = append(p.Notes, "the header's file list names no EFI binary or boot file: payload not examined")
			return p, nil
		}
	}
	p.Scanned = true
	// rpm 4.14 and later record the digest of the compressed payload
	// (PAYLOADDIGEST, algorithm PAYLOADDIGESTALGO): check it, since
	// gzip and zstd frames may carry no checksum of their own.
	var (
		h    hash.Hash
		want string
		src  io.Reader = br
	)
	if d := h2.Strings(rpmTagPayloadDigest); len(d) > 0 {
		algo := uint32(8) // PGPHASHALGO_SHA256, rpm's default
		if a := h2.Ints(rpmTagPayloadDigestAlgo); len(a) > 0 {
			algo = uint32(a[0])
		}
		if newHash, ok := pgpHash[algo]; ok {
			h, want = newHash(), strings.ToLower(d[0])
			src = io.TeeReader(br, h)
		}
	}
	if !haveComp {
		// rpmbuild writes no PAYLOADCOMPRESSOR for an uncompressed
		// payload (w0.ufdio); rpm itself sniffs the magic then.
		comp = sniffCompression(br)
	}
	dr, closeFn, err := decompressor(comp, src)
	if err != nil {
		return nil, bad("payload: %v", err)
	}
	defer closeFn()
	if err := readCpio(newLimitedReader(dr, o.maxPayload(), "payload"), p); err != nil {
		return nil, bad("payload (%s cpio): %v", comp, err)
	}
	if h != nil {
		if _, err := io.Copy(h, br); err != nil {
			return nil, bad("payload: %v", err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != want {
			return nil, bad("payload digest mismatch: the header records %s, the payload hashes to %s (corrupt or truncated download)", short(want), short(got))
		}
	}
	return p, nil
}

// readRPMHeader reads one header structure at offset off from the stream
// (the magic and reserved bytes, then the blob pkgdb.ParseHeader parses:
// counts, index and data) and returns it and its length.
func readRPMHeader(r io.Reader, off int64) (*pkgdb.Header, int64, error) {
	pre := make([]byte, 16)
	if _, err := io.ReadFull(r, pre); err != nil {
		return nil, 0, fmt.Errorf("truncated at offset %d", off)
	}
	if string(pre[:4]) != rpmHeaderMagic {
		return nil, 0, fmt.Errorf("no header magic (8e ad e8 01) at offset %d", off)
	}
	be := binary.BigEndian
	nindex, hsize := be.Uint32(pre[8:]), be.Uint32(pre[12:])
	if nindex == 0 || nindex > rpmMaxTags {
		return nil, 0, fmt.Errorf("%d index entries at offset %d (1 to %d allowed)", nindex, off, rpmMaxTags)
	}
	if hsize > rpmMaxData {
		return nil, 0, fmt.Errorf("data size %d at offset %d exceeds %d MiB", hsize, off, rpmMaxData>>20)
	}
	// Grow with what is there rather than trusting the sizes for the
	// allocation: a corrupt size must not cost 256 MiB.
	want := int64(nindex)*16 + int64(hsize)
	rest, err := io.ReadAll(io.LimitReader(r, want))
	if err != nil || int64(len(rest)) != want {
		return nil, 0, fmt.Errorf("index and data (%d bytes) truncated at offset %d", want, off+16)
	}
	h, err := pkgdb.ParseHeader(append(pre[8:16:16], rest...))
	if err != nil {
		return nil, 0, fmt.Errorf("at offset %d: %w", off, err)
	}
	return h, 16 + want, nil
}

// pgpHash maps rpm's PGPHASHALGO numbers (RFC 4880 §9.4) to hashes.
var pgpHash = map[uint32]func() hash.Hash{
	2: sha1.New, 8: sha256.New, 9: sha512.New384, 10: sha512.New, 11: sha256.New224,
}

func short(s string) string {
	if len(s) > 16 {
		return s[:16] + "…"
	}
	return s
}

// readCpio walks a newc cpio archive (cpio(5): a 110-byte ASCII header of
// the magic and 13 eight-digit hex fields, the NUL-terminated name padded to
// 4 bytes, the data padded to 4 bytes; "TRAILER!!!" ends it).
func readCpio(r io.Reader, p *Package) error {
	br := bufio.NewReaderSize(r, 64<<10)
	c := &collector{pkg: p}
	var off int64
	hdr := make([]byte, cpioHeaderLen)
	for {
		if _, err := io.ReadFull(br, hdr); err != nil {
			return fmt.Errorf("cpio header at offset %d: %w", off, noEOF(err))
		}
		magic := string(hdr[:6])
		switch magic {
		case "070701", "070702":
		case "07070X":
			return errors.New("stripped cpio (07070X, packages with files over 4 GiB) is not supported")
		default:
			return fmt.Errorf("no cpio newc magic at offset %d (found %q)", off, magic)
		}
		field := func(i int) (int64, error) {
			s := string(hdr[6+8*i : 14+8*i])
			v, err := strconv.ParseUint(s, 16, 32)
			if err != nil {
				return 0, fmt.Errorf("cpio header at offset %d: field %d %q is not hex", off, i, s)
			}
			return int64(v), nil
		}
		mode, err := field(1)
		if err != nil {
			return err
		}
		size, err := field(6)
		if err != nil {
			return err
		}
		namesize, err := field(11)
		if err != nil {
			return err
		}
		if namesize < 1 || namesize > 4096 {
			return fmt.Errorf("cpio header at offset %d: name size %d", off, namesize)
		}
		nameBuf := make([]byte, namesize+pad4(cpioHeaderLen+namesize))
		if _, err := io.ReadFull(br, nameBuf); err != nil {
			return fmt.Errorf("cpio name at offset %d: %w", off+cpioHeaderLen, noEOF(err))
		}
		name := string(nameBuf[:namesize-1])
		if nameBuf[namesize-1] != 0 {
			return fmt.Errorf("cpio name at offset %d is not NUL-terminated", off+cpioHeaderLen)
		}
		off += cpioHeaderLen + int64(len(nameBuf))
		if name == "TRAILER!!!" {
			return nil
		}
		body := &countReader{r: io.LimitReader(br, size)}
		if mode&0o170000 == 0o100000 {
			if err := c.add(name, size, body); err != nil {
				return err
			}
		}
		if _, err := io.Copy(io.Discard, body); err != nil {
			return fmt.Errorf("%s: %w", name, noEOF(err))
		}
		if body.n != size {
			return fmt.Errorf("%s: data truncated (%d of %d bytes)", name, body.n, size)
		}
		if padN := pad4(size); padN > 0 {
			if _, err := io.CopyN(io.Discard, br, padN); err != nil {
				return fmt.Errorf("%s: padding truncated: %w", name, noEOF(err))
			}
		}
		off += size + pad4(size)
	}
}

// sniffCompression names the compression of the stream br is at by its
// magic: what rpm's rpmFileIsCompressed recognises.
func sniffCompression(br *bufio.Reader) string {
	b, _ := br.Peek(6)
	switch {
	case peekMagic(b, "\x1f\x8b"):
		return "gzip"
	case peekMagic(b, "\xfd7zXZ\x00"):
		return "xz"
	case peekMagic(b, "\x28\xb5\x2f\xfd"):
		return "zstd"
	case peekMagic(b, "BZh"):
		return "bzip2"
	case peekMagic(b, "\x5d\x00\x00"):
		return "lzma"
	}
	return "none"
}

func pad4(n int64) int64 { return (4 - n%4) % 4 }
