package fatfs

import (
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/vouch-dev/vouch/internal/rootfs"
)

// Directory entry attributes (fatgen103, "FAT Directory Structure").
const (
	attrReadOnly  = 0x01
	attrHidden    = 0x02
	attrSystem    = 0x04
	attrVolumeID  = 0x08
	attrDirectory = 0x10
	attrArchive   = 0x20
	attrLongName  = attrReadOnly | attrHidden | attrSystem | attrVolumeID
	attrLongMask  = attrLongName | attrDirectory | attrArchive
)

// NT reserved byte flags (DIR_NTRes) for lower-case 8.3 names, as Windows NT and
// Linux's vfat write them.
const (
	ntLowerBase = 0x08
	ntLowerExt  = 0x10
)

// dirRef names a directory: the root, or the first cluster of a subdirectory.
type dirRef struct {
	root    bool
	cluster uint32
}

// entry is one file or directory of a FAT directory; it implements fs.DirEntry
// and fs.FileInfo.
type entry struct {
	name    string // long name, else 8.3 name with the case flags applied
	short   string // 8.3 name as stored (upper case unless flagged)
	attr    byte
	cluster uint32
	size    uint32
	mtime   time.Time
	off     int64 // byte offset of the 8.3 entry in the partition
	root    bool  // the root directory, which has no entry of its own
}

func (e *entry) isDir() bool { return e.attr&attrDirectory != 0 }

func (e *entry) Name() string               { return e.name }
func (e *entry) IsDir() bool                { return e.isDir() }
func (e *entry) Type() fs.FileMode          { return e.Mode().Type() }
func (e *entry) Info() (fs.FileInfo, error) { return e, nil }
func (e *entry) ModTime() time.Time         { return e.mtime }
func (e *entry) String() string             { return fs.FormatDirEntry(e) }

func (e *entry) Size() int64 {
	if e.isDir() {
		return 0
	}
	return int64(e.size)
}

// Sys is the entry's *rootfs.Meta: FAT has no owners (Linux mounts it as
// root unless told otherwise), no inode numbers, no link counts and no
// change time; the mode is what Mode derives from the attributes.
func (e *entry) Sys() any {
	return &rootfs.Meta{
		Mode: e.Mode(), Size: e.Size(),
		ModTime: e.mtime, ChangeTime: e.mtime, AccessTime: e.mtime,
	}
}

func (e *entry) Mode() fs.FileMode {
	if e.isDir() {
		return fs.ModeDir | 0o555
	}
	return 0o444
}

// matches reports whether a path element names e. Like FAT itself, it compares
// case-insensitively against both the long and the 8.3 name.
func (e *entry) matches(name string) bool {
	return strings.EqualFold(e.name, name) || strings.EqualFold(e.short, name)
}

// rootEntry describes the root directory for Stat.
var rootEntry = entry{name: ".", attr: attrDirectory, root: true}

// dirList is the parsed content of a directory. It is shared through the
// directory cache and never modified after parsing.
type dirList struct {
	entries  []*entry
	label    string // volume label entry (root directory only)
	hasLabel bool
}

// maxCachedEntries bounds the entries held by the directory cache.
const maxCachedEntries = 1 << 16

// readDir returns the parsed content of a directory, from the cache when it has
// been read before. Path lookups go through it once per path element, so the cache
// keeps a deep or wide tree walk from re-reading every directory above.
func (f *FS) readDir(d dirRef) (*dirList, error) {
	key := d.cluster
	if d.root {
		key = 0 // no subdirectory starts at cluster 0
	}
	f.dirMu.Lock()
	list, ok := f.dirCache[key]
	f.dirMu.Unlock()
	if ok {
		return list, nil
	}
	list, err := f.parseDir(d)
	if err != nil {
		return nil, err
	}
	f.dirMu.Lock()
	defer f.dirMu.Unlock()
	if f.dirCache == nil || f.dirCached+len(list.entries) > maxCachedEntries {
		f.dirCache, f.dirCached = map[uint32]*dirList{}, 0
	}
	f.dirCache[key] = list
	f.dirCached += len(list.entries)
	return list, nil
}

// parseDir reads and parses a whole directory.
func (f *FS) parseDir(d dirRef) (*dirList, error) {
	p := &dirParser{f: f, list: &dirList{}}
	if d.root && f.bits != 32 {
		buf := make([]byte, f.rootBytes)
		if m, err := f.r.ReadAt(buf, f.rootOffset); m < len(buf) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("fatfs: read root directory at offset 0x%x: %w", f.rootOffset, err)
		}
		p.parse(buf, f.rootOffset)
		return p.list, nil
	}
	first := d.cluster
	if d.root {
		first = f.rootCluster
	}
	ch := f.newChain(first)
	buf := make([]byte, f.clusterSize)
	for i := 0; !p.end; i++ {
		if int64(i+1)*f.clusterSize > maxDirBytes {
			return nil, formatErr(f.clusterOffset(first), "directory larger than %d entries has no end marker", maxDirBytes/32)
		}
		if err := ch.extend(i + 1); err != nil {
			return nil, err
		}
		if len(ch.clusters) <= i {
			break // chain ended without an end-of-directory entry: that is allowed
		}
		if err := ch.readAt(buf, int64(i)*f.clusterSize); err != nil {
			return nil, err
		}
		p.parse(buf, f.clusterOffset(ch.clusters[i]))
	}
	return p.list, nil
}

// dirParser turns raw 32-byte directory entries into entries, assembling VFAT long
// names across calls (a long name may span a cluster boundary).
type dirParser struct {
	f    *FS
	list *dirList
	end  bool // a 0x00 entry marked the end of the directory

	// Long name being assembled (Microsoft's VFAT LFN scheme): parts arrive from
	// the highest ordinal down to 1, each holding 13 UTF-16 code units.
	lfn     [20 * 13]uint16
	lfnN    int  // number of parts announced by the first (0x40-flagged) part
	lfnNext int  // ordinal expected next; 0 when complete
	lfnSum  byte // checksum of the 8.3 name the long name belongs to
	lfnOK   bool
}

func (p *dirParser) parse(buf []byte, base int64) {
	for i := 0; i+32 <= len(buf) && !p.end; i += 32 {
		b := buf[i : i+32]
		switch {
		case b[0] == 0x00:
			p.end = true
		case b[0] == 0xE5:
			p.lfnOK = false
		case b[11]&attrLongMask == attrLongName:
			p.longPart(b)
		default:
			p.shortEntry(b, base+int64(i))
		}
	}
}

// longPart records one LFN directory entry.
func (p *dirParser) longPart(b []byte) {
	ord := b[0]
	if ord&0x40 != 0 {
		n := int(ord & 0x1F)
		if ord&0xA0 != 0 || n == 0 || n > 20 {
			p.lfnOK = false
			return
		}
		p.lfnN, p.lfnNext, p.lfnSum, p.lfnOK = n, n, b[13], true
	} else if !p.lfnOK || int(ord) != p.lfnNext || b[13] != p.lfnSum {
		p.lfnOK = false
		return
	}
	part := p.lfn[(p.lfnNext-1)*13:]
	j := 0
	for _, r := range [][2]int{{1, 11}, {14, 26}, {28, 32}} {
		for k := r[0]; k < r[1]; k += 2 {
			part[j] = binary.LittleEndian.Uint16(b[k:])
			j++
		}
	}
	p.lfnNext--
}

// longName returns the assembled long name if it belongs to the 8.3 name short,
// else "".
func (p *dirParser) longName(short []byte) string {
	if !p.lfnOK || p.lfnNext != 0 || lfnChecksum(short) != p.lfnSum {
		return ""
	}
	u := p.lfn[:p.lfnN*13]
	for i, c := range u {
		if c == 0 {
			u = u[:i]
			break
		}
	}
	for len(u) > 0 && u[len(u)-1] == 0xFFFF {
		u = u[:len(u)-1]
	}
	return string(utf16.Decode(u))
}

// lfnChecksum is the checksum of an 11-byte 8.3 name stored in each of its long
// name entries (fatgen103, "ChkSum").
func lfnChecksum(name []byte) byte {
	var sum byte
	for _, c := range name[:11] {
		sum = (sum&1)<<7 + sum>>1 + c
	}
	return sum
}

func (p *dirParser) shortEntry(b []byte, off int64) {
	long := p.longName(b[:11])
	p.lfnOK = false
	attr := b[11]
	if attr&attrVolumeID != 0 {
		if attr&attrDirectory == 0 && !p.list.hasLabel {
			p.list.label, p.list.hasLabel = decodeLabel(b[:11]), true
		}
		return
	}
	if b[0] == '.' {
		return // "." and ".." (no other short name may start with a dot)
	}
	le := binary.LittleEndian
	e := &entry{
		short:   shortName(b, 0),
		attr:    attr,
		cluster: uint32(le.Uint16(b[26:])),
		size:    le.Uint32(b[28:]),
		mtime:   dosTime(le.Uint16(b[24:]), le.Uint16(b[22:])),
		off:     off,
	}
	if p.f.bits == 32 {
		e.cluster |= uint32(le.Uint16(b[20:])) << 16
	}
	e.name = shortName(b, b[12])
	if validName(long) {
		e.name = long
	}
	if !validName(e.name) {
		return // nothing io/fs could open
	}
	p.list.entries = append(p.list.entries, e)
}

// validName reports whether s can be a path element.
func validName(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\x00")
}

// shortName renders an 8.3 name as "BASE.EXT", lower-casing base or extension
// when the NT flags say so.
func shortName(b []byte, nt byte) string {
	var name [11]byte
	copy(name[:], b[:11])
	if name[0] == 0x05 { // stands for a leading 0xE5 byte
		name[0] = 0xE5
	}
	lower := func(s []byte) {
		for i, c := range s {
			if 'A' <= c && c <= 'Z' {
				s[i] = c + 'a' - 'A'
			}
		}
	}
	if nt&ntLowerBase != 0 {
		lower(name[:8])
	}
	if nt&ntLowerExt != 0 {
		lower(name[8:])
	}
	base := strings.TrimRight(decodeOEM(name[:8]), " ")
	ext := strings.TrimRight(decodeOEM(name[8:]), " ")
	if ext == "" {
		return base
	}
	return base + "." + ext
}

// decodeLabel decodes an 11-byte volume label, trimmed.
func decodeLabel(b []byte) string {
	return strings.TrimRight(decodeOEM(b), " \x00")
}

// dosTime converts a DOS date and time (local time without a zone) to a
// time.Time in UTC. A zero date is the zero time.
func dosTime(date, tm uint16) time.Time {
	if date == 0 {
		return time.Time{}
	}
	return time.Date(1980+int(date>>9), time.Month(date>>5&0x0F), int(date&0x1F),
		int(tm>>11), int(tm>>5&0x3F), int(tm&0x1F)*2, 0, time.UTC)
}

// decodeOEM decodes bytes in code page 437, the default OEM code page of Linux's
// FAT driver.
func decodeOEM(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		if c < 0x80 {
			sb.WriteByte(c)
		} else {
			sb.WriteRune(cp437[c-0x80])
		}
	}
	return sb.String()
}

var cp437 = [128]rune{
	'Ç', 'ü', 'é', 'â', 'ä', 'à', 'å', 'ç', 'ê', 'ë', 'è', 'ï', 'î', 'ì', 'Ä', 'Å',
	'É', 'æ', 'Æ', 'ô', 'ö', 'ò', 'û', 'ù', 'ÿ', 'Ö', 'Ü', '¢', '£', '¥', '₧', 'ƒ',
	'á', 'í', 'ó', 'ú', 'ñ', 'Ñ', 'ª', 'º', '¿', '⌐', '¬', '½', '¼', '¡', '«', '»',
	'░', '▒', '▓', '│', '┤', '╡', '╢', '╖', '╕', '╣', '║', '╗', '╝', '╜', '╛', '┐',
	'└', '┴', '┬', '├', '─', '┼', '╞', '╟', '╚', '╔', '╩', '╦', '╠', '═', '╬', '╧',
	'╨', '╤', '╥', '╙', '╘', '╒', '╓', '╫', '╪', '┘', '┌', '█', '▄', '▌', '▐', '▀',
	'α', 'ß', 'Γ', 'π', 'Σ', 'σ', 'µ', 'τ', 'Φ', 'Θ', 'Ω', 'δ', '∞', 'φ', 'ε', '∩',
	'≡', '±', '≥', '≤', '⌠', '⌡', '÷', '≈', '°', '∙', '·', '√', 'ⁿ', '²', '■', '\u00a0',
}
