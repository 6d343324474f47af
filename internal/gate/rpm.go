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

	rpmTagName       = 1000
	rpmTagVersion    = 1001
	rpmTagRelease    = 1002
	rpmTagDirIndexes = 1116
	rpmTagBasenames  = 1117
	rpmTagDirnames   = 1118
	rpmTagPayloadFmt = 1124
	rpmTagPayloadCmp = 1125

	rpmTagPayloadDigest     = 5092
	rpmTagPayloadDigestAlgo = 5093

	rpmTypeInt32 = 4

	rpmTypeString      = 6
	rpmTypeStringArray = 8
	rpmTypeI18NString  = 9

	cpioHeaderLen = 110
)

// IsRPM reports whether b (the start of a file) is an rpm package.
func IsRPM(b []byte) bool { return peekMagic(b, rpmLeadMagic) }

// rpmHeader is a parsed header structure.
type rpmHeader struct {
	entries map[uint32]rpmEntry
	data    []byte
}

type rpmEntry struct{ typ, off, count uint32 }

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
	p.Name, _ = h2.str(rpmTagName)
	v, _ := h2.str(rpmTagVersion)
	rel, _ := h2.str(rpmTagRelease)
	if v != "" && rel != "" {
		v += "-" + rel
	}
	p.Version = v
	format, ok := h2.str(rpmTagPayloadFmt)
	if ok && format != "cpio" {
		return nil, bad("payload format %q is not supported (want cpio)", format)
	}
	comp, haveComp := h2.str(rpmTagPayloadCmp)
	if base, ok := h2.strs(rpmTagBasenames); ok {
		dirs, _ := h2.strs(rpmTagDirnames)
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
	if d, ok := h2.strs(rpmTagPayloadDigest); ok && len(d) > 0 {
		algo := uint32(8) // PGPHASHALGO_SHA256, rpm's default
		if a, ok := h2.int32(rpmTagPayloadDigestAlgo); ok {
			algo = a
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

// readRPMHeader reads one header structure at offset off and returns it and
// its length.
func readRPMHeader(r io.Reader, off int64) (*rpmHeader, int64, error) {
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
	idx := make([]byte, int(nindex)*16)
	if _, err := io.ReadFull(r, idx); err != nil {
		return nil, 0, fmt.Errorf("index truncated at offset %d", off+16)
	}
	// Grow with what is there rather than trusting hsize for the
	// allocation: a corrupt size must not cost 256 MiB.
	data, err := io.ReadAll(io.LimitReader(r, int64(hsize)))
	if err != nil || len(data) != int(hsize) {
		return nil, 0, fmt.Errorf("data (%d bytes) truncated at offset %d", hsize, off+16+int64(len(idx)))
	}
	h := &rpmHeader{entries: map[uint32]rpmEntry{}, data: data}
	for i := 0; i < int(nindex); i++ {
		e := idx[i*16:]
		tag := be.Uint32(e)
		en := rpmEntry{typ: be.Uint32(e[4:]), off: be.Uint32(e[8:]), count: be.Uint32(e[12:])}
		if en.off > hsize {
			return nil, 0, fmt.Errorf("tag %d data offset %d is past the %d-byte data", tag, en.off, hsize)
		}
		h.entries[tag] = en
	}
	return h, 16 + int64(len(idx)) + int64(hsize), nil
}

// str returns a STRING (or the first I18NSTRING) tag.
func (h *rpmHeader) str(tag uint32) (string, bool) {
	e, ok := h.entries[tag]
	if !ok || (e.typ != rpmTypeString && e.typ != rpmTypeI18NString && e.typ != rpmTypeStringArray) {
		return "", false
	}
	s, _, ok := cstring(h.data, int(e.off))
	return s, ok
}

// int32 returns the first value of an INT32 tag.
func (h *rpmHeader) int32(tag uint32) (uint32, bool) {
	e, ok := h.entries[tag]
	if !ok || e.typ != rpmTypeInt32 || e.count == 0 || int(e.off)+4 > len(h.data) {
		return 0, false
	}
	return binary.BigEndian.Uint32(h.data[e.off:]), true
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

// strs returns a STRING_ARRAY tag.
func (h *rpmHeader) strs(tag uint32) ([]string, bool) {
	e, ok := h.entries[tag]
	if !ok || e.typ != rpmTypeStringArray || e.count > uint32(len(h.data)) {
		return nil, false
	}
	out := make([]string, 0, e.count)
	at := int(e.off)
	for i := uint32(0); i < e.count; i++ {
		s, next, ok := cstring(h.data, at)
		if !ok {
			return nil, false
		}
		out = append(out, s)
		at = next
	}
	return out, true
}

func cstring(b []byte, at int) (string, int, bool) {
	if at < 0 || at >= len(b) {
		return "", 0, false
	}
	end := at
	for end < len(b) && b[end] != 0 {
		end++
	}
	if end == len(b) {
		return "", 0, false
	}
	return string(b[at:end]), end + 1, true
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
