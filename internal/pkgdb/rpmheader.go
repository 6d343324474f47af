package pkgdb

import (
	"bytes"
	"crypto"
	"encoding/binary"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// rpm header tags (rpm lib/rpmtag.h).
const (
	TagHeaderImage      = 61
	TagHeaderSignatures = 62
	TagHeaderImmutable  = 63
	TagI18NTable        = 100
	TagSigMD5           = 261
	TagPubKeys          = 266
	TagDSAHeader        = 267
	TagRSAHeader        = 268
	TagSHA1Header       = 269
	TagSHA256Header     = 273
	TagName             = 1000
	TagVersion          = 1001
	TagRelease          = 1002
	TagEpoch            = 1003
	TagSummary          = 1004
	TagDescription      = 1005
	TagVendor           = 1011
	TagLicense          = 1014
	TagArch             = 1022
	TagOldFilenames     = 1027
	TagFileSizes        = 1028
	TagFileModes        = 1030
	TagFileDigests      = 1035
	TagFileLinkTos      = 1036
	TagFileFlags        = 1037
	TagFileStates       = 1029
	TagSourceRPM        = 1044
	TagDirIndexes       = 1116
	TagBasenames        = 1117
	TagDirnames         = 1118
	TagFileDigestAlgo   = 5011
)

// rpm data types.
const (
	rpmNull        = 0
	rpmChar        = 1
	rpmInt8        = 2
	rpmInt16       = 3
	rpmInt32       = 4
	rpmInt64       = 5
	rpmString      = 6
	rpmBin         = 7
	rpmStringArray = 8
	rpmI18NString  = 9
)

// rpm file flags.
const (
	rpmFileConfig = 1 << 0
	rpmFileGhost  = 1 << 6
)

// headerMagic starts a header in a package file; signatures over a header cover
// it, then the region's index and data.
var headerMagic = []byte{0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0}

const (
	maxHeaderEntries = 1 << 16
	maxHeaderData    = 256 << 20
)

// HeaderError is a malformed rpm header.
type HeaderError struct{ Reason string }

func (e *HeaderError) Error() string { return "pkgdb: rpm header: " + e.Reason }

type headerEntry struct {
	tag, typ uint32
	count    uint32
	data     []byte // exactly the entry's bytes
}

// Header is a parsed rpm header blob as the rpm database stores it: the index
// and data, without the 8-byte magic a package file puts before it.
type Header struct {
	entries map[uint32]headerEntry
	// Immutable is the signed part: the header magic, the region's index
	// length and data length, its index entries and its data — the bytes rpm
	// hashes to verify RSAHEADER/DSAHEADER and SHA256HEADER. Nil when the header
	// has no immutable region (rpm v3 headers).
	Immutable []byte
}

// ParseHeader parses an rpm header blob (il, dl, index, data). Every offset and
// count is checked against the blob.
func ParseHeader(b []byte) (*Header, error) {
	if len(b) < 8 {
		return nil, &HeaderError{"shorter than its 8-byte preamble"}
	}
	il := binary.BigEndian.Uint32(b[0:4])
	dl := binary.BigEndian.Uint32(b[4:8])
	if il == 0 || il > maxHeaderEntries {
		return nil, &HeaderError{fmt.Sprintf("index has %d entries", il)}
	}
	if dl > maxHeaderData {
		return nil, &HeaderError{fmt.Sprintf("data length %d too large", dl)}
	}
	dataStart := 8 + 16*int(il)
	if dataStart+int(dl) > len(b) {
		return nil, &HeaderError{fmt.Sprintf("index of %d entries and %d data bytes extend past the %d-byte blob", il, dl, len(b))}
	}
	index := b[8:dataStart]
	data := b[dataStart : dataStart+int(dl)]
	h := &Header{entries: make(map[uint32]headerEntry, il)}
	for i := 0; i < int(il); i++ {
		e := index[16*i : 16*i+16]
		tag := binary.BigEndian.Uint32(e[0:4])
		typ := binary.BigEndian.Uint32(e[4:8])
		off := binary.BigEndian.Uint32(e[8:12])
		cnt := binary.BigEndian.Uint32(e[12:16])
		if i == 0 && (tag == TagHeaderImmutable || tag == TagHeaderImage || tag == TagHeaderSignatures) {
			imm, err := region(b, index, data, il, typ, off, cnt)
			if err != nil {
				return nil, err
			}
			h.Immutable = imm
			continue
		}
		if typ > rpmI18NString || typ == rpmNull {
			return nil, &HeaderError{fmt.Sprintf("tag %d has unknown type %d", tag, typ)}
		}
		if uint64(off) >= uint64(len(data)) {
			return nil, &HeaderError{fmt.Sprintf("tag %d data offset %d outside the %d data bytes", tag, off, len(data))}
		}
		n, err := dataLen(data[off:], typ, cnt)
		if err != nil {
			return nil, &HeaderError{fmt.Sprintf("tag %d: %v", tag, err)}
		}
		// A later entry for the same tag (the "dribble" after the region)
		// overrides, as rpm's headerImport does.
		h.entries[tag] = headerEntry{tag: tag, typ: typ, count: cnt, data: data[off : off+uint32(n)]}
	}
	return h, nil
}

// region checks the immutable region tag and returns the signed bytes.
func region(b, index, data []byte, il, typ, off, cnt uint32) ([]byte, error) {
	if typ != rpmBin || cnt != 16 {
		return nil, &HeaderError{"region tag is not 16 bytes of binary"}
	}
	if uint64(off)+16 > uint64(len(data)) {
		return nil, &HeaderError{fmt.Sprintf("region trailer at %d outside the %d data bytes", off, len(data))}
	}
	trailer := data[off : off+16]
	tOff := int32(binary.BigEndian.Uint32(trailer[8:12]))
	if tOff >= 0 || -tOff%16 != 0 {
		return nil, &HeaderError{fmt.Sprintf("region trailer offset %d is invalid", tOff)}
	}
	ril := uint32(-tOff / 16)
	rdl := off + 16
	if ril == 0 || ril > il {
		return nil, &HeaderError{fmt.Sprintf("region claims %d of %d index entries", ril, il)}
	}
	out := make([]byte, 0, 16+16*int(ril)+int(rdl))
	out = append(out, headerMagic...)
	out = binary.BigEndian.AppendUint32(out, ril)
	out = binary.BigEndian.AppendUint32(out, rdl)
	out = append(out, index[:16*ril]...)
	out = append(out, data[:rdl]...)
	_ = b
	return out, nil
}

// dataLen is the byte length of an entry of type typ with cnt elements at the
// start of d, as rpm's dataLength computes it.
func dataLen(d []byte, typ, cnt uint32) (int, error) {
	if cnt == 0 || cnt > maxHeaderData {
		return 0, fmt.Errorf("count %d", cnt)
	}
	var size uint64
	switch typ {
	case rpmChar, rpmInt8, rpmBin:
		size = 1
	case rpmInt16:
		size = 2
	case rpmInt32:
		size = 4
	case rpmInt64:
		size = 8
	case rpmString:
		if cnt != 1 {
			return 0, fmt.Errorf("string with count %d", cnt)
		}
		fallthrough
	case rpmStringArray, rpmI18NString:
		n := 0
		for i := uint32(0); i < cnt; i++ {
			j := bytes.IndexByte(d[n:], 0)
			if j < 0 {
				return 0, fmt.Errorf("unterminated string")
			}
			n += j + 1
		}
		return n, nil
	}
	total := size * uint64(cnt)
	if total > uint64(len(d)) {
		return 0, fmt.Errorf("%d elements of %d bytes extend past the data", cnt, size)
	}
	return int(total), nil
}

// Has reports whether the header carries tag.
func (h *Header) Has(tag uint32) bool { _, ok := h.entries[tag]; return ok }

// String returns a string tag (the first element of an array or i18n string).
func (h *Header) String(tag uint32) string {
	e, ok := h.entries[tag]
	if !ok {
		return ""
	}
	switch e.typ {
	case rpmString, rpmStringArray, rpmI18NString:
		s, _, _ := bytes.Cut(e.data, []byte{0})
		return string(s)
	}
	return ""
}

// Strings returns a string-array tag.
func (h *Header) Strings(tag uint32) []string {
	e, ok := h.entries[tag]
	if !ok || (e.typ != rpmStringArray && e.typ != rpmString && e.typ != rpmI18NString) {
		return nil
	}
	parts := strings.Split(strings.TrimSuffix(string(e.data), "\x00"), "\x00")
	if uint32(len(parts)) > e.count {
		parts = parts[:e.count]
	}
	return parts
}

// Ints returns an integer tag of any width as int64s.
func (h *Header) Ints(tag uint32) []int64 {
	e, ok := h.entries[tag]
	if !ok {
		return nil
	}
	var out []int64
	switch e.typ {
	case rpmInt8, rpmChar:
		for _, c := range e.data {
			out = append(out, int64(c))
		}
	case rpmInt16:
		for i := 0; i+2 <= len(e.data); i += 2 {
			out = append(out, int64(binary.BigEndian.Uint16(e.data[i:])))
		}
	case rpmInt32:
		for i := 0; i+4 <= len(e.data); i += 4 {
			out = append(out, int64(binary.BigEndian.Uint32(e.data[i:])))
		}
	case rpmInt64:
		for i := 0; i+8 <= len(e.data); i += 8 {
			out = append(out, int64(binary.BigEndian.Uint64(e.data[i:])))
		}
	}
	return out
}

// Bytes returns a binary tag.
func (h *Header) Bytes(tag uint32) []byte {
	e, ok := h.entries[tag]
	if !ok || e.typ != rpmBin {
		return nil
	}
	return e.data
}

// rpmDigestAlgos maps rpm's PGPHASHALGO values to hashes.
var rpmDigestAlgos = map[int64]crypto.Hash{
	1: crypto.MD5, 2: crypto.SHA1, 8: crypto.SHA256, 9: crypto.SHA384, 10: crypto.SHA512, 11: crypto.SHA224,
}

// PackageFromHeader builds a Package from an rpm header.
func PackageFromHeader(h *Header, origin string) (Package, error) {
	p := Package{
		Name:         h.String(TagName),
		Architecture: h.String(TagArch),
		Manager:      ManagerRPM,
		Status:       "installed",
		License:      noneToEmpty(h.String(TagLicense)),
		Vendor:       noneToEmpty(h.String(TagVendor)),
		Release:      h.String(TagRelease),
		Origin:       origin,
	}
	if p.Name == "" {
		return p, &HeaderError{"no name"}
	}
	ver := h.String(TagVersion)
	p.Version = ver
	if p.Release != "" {
		p.Version += "-" + p.Release
	}
	if e := h.Ints(TagEpoch); len(e) > 0 {
		epoch := int(e[0])
		p.Epoch = &epoch
		p.Version = strconv.Itoa(epoch) + ":" + p.Version
	}
	p.Source, p.SourceVersion = splitSourceRPM(noneToEmpty(h.String(TagSourceRPM)))
	files, err := rpmFiles(h)
	if err != nil {
		return p, err
	}
	p.Files = files
	for _, f := range files {
		if f.Config && f.Digest != "" {
			p.Conffiles = append(p.Conffiles, Conffile{Path: f.Path, Digest: f.Digest, Algo: f.Algo})
		}
	}
	return p, nil
}

func noneToEmpty(s string) string {
	if s == "(none)" {
		return ""
	}
	return s
}

// splitSourceRPM splits "bash-4.2.46-34.el7.src.rpm" into ("bash", "4.2.46-34.el7").
func splitSourceRPM(s string) (string, string) {
	s = strings.TrimSuffix(strings.TrimSuffix(s, ".rpm"), ".src")
	s = strings.TrimSuffix(s, ".nosrc")
	i := strings.LastIndexByte(s, '-')
	if i <= 0 {
		return s, ""
	}
	j := strings.LastIndexByte(s[:i], '-')
	if j <= 0 {
		return s, ""
	}
	return s[:j], s[j+1:]
}

func rpmFiles(h *Header) ([]File, error) {
	var names []string
	if base := h.Strings(TagBasenames); len(base) > 0 {
		dirs := h.Strings(TagDirnames)
		idx := h.Ints(TagDirIndexes)
		if len(idx) != len(base) {
			return nil, &HeaderError{fmt.Sprintf("%d basenames but %d dir indexes", len(base), len(idx))}
		}
		names = make([]string, len(base))
		for i, b := range base {
			if idx[i] < 0 || idx[i] >= int64(len(dirs)) {
				return nil, &HeaderError{fmt.Sprintf("dir index %d outside %d dirnames", idx[i], len(dirs))}
			}
			names[i] = dirs[idx[i]] + b
		}
	} else {
		names = h.Strings(TagOldFilenames)
	}
	if len(names) == 0 {
		return nil, nil
	}
	digests := h.Strings(TagFileDigests)
	modes := h.Ints(TagFileModes)
	flags := h.Ints(TagFileFlags)
	states := h.Ints(TagFileStates)
	algo := crypto.MD5
	if a := h.Ints(TagFileDigestAlgo); len(a) > 0 {
		if x, ok := rpmDigestAlgos[a[0]]; ok {
			algo = x
		} else {
			algo = 0
		}
	}
	out := make([]File, len(names))
	for i, n := range names {
		f := File{Path: path.Clean("/" + n)}
		if i < len(modes) {
			f.Mode = rpmMode(uint16(modes[i]))
		}
		if i < len(flags) {
			f.Config = flags[i]&rpmFileConfig != 0
			f.Ghost = flags[i]&rpmFileGhost != 0
		}
		if i < len(states) && states[i] != 0 {
			f.Ghost = true // replaced, not installed (excluded docs, --nodocs), net-shared, wrong colour
		}
		if i < len(digests) && digests[i] != "" && algo != 0 && f.Mode.IsRegular() {
			f.Digest, f.Algo = strings.ToLower(digests[i]), algo
		}
		out[i] = f
	}
	return out, nil
}

// rpmMode converts a Unix st_mode to an fs.FileMode.
func rpmMode(m uint16) fs.FileMode {
	perm := fs.FileMode(m & 0o777)
	switch m & 0o170000 {
	case 0o040000:
		perm |= fs.ModeDir
	case 0o120000:
		perm |= fs.ModeSymlink
	case 0o020000:
		perm |= fs.ModeDevice | fs.ModeCharDevice
	case 0o060000:
		perm |= fs.ModeDevice
	case 0o010000:
		perm |= fs.ModeNamedPipe
	case 0o140000:
		perm |= fs.ModeSocket
	}
	if m&0o4000 != 0 {
		perm |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		perm |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		perm |= fs.ModeSticky
	}
	return perm
}
