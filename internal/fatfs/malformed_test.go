package fatfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"unicode/utf16"
)

// tiny is a hand-made FAT12 volume for malformed-input tests: 512-byte sectors,
// one sector per cluster, one reserved sector, two one-sector FATs, a one-sector
// root directory of 16 entries and 60 data clusters (2..61) in 64 sectors.
type tiny struct {
	b    []byte
	bits int
}

const (
	tinyFAT0  = 512
	tinyFATSz = 512
	tinyRoot  = 3 * 512
	tinyData  = 4 * 512
)

func newTiny() *tiny {
	m := &tiny{b: make([]byte, 64*512), bits: 12}
	b := m.b
	copy(b, []byte{0xEB, 0x3C, 0x90})
	copy(b[3:], "MSWIN4.1")
	le := binary.LittleEndian
	le.PutUint16(b[11:], 512) // bytes per sector
	b[13] = 1                 // sectors per cluster
	le.PutUint16(b[14:], 1)   // reserved sectors
	b[16] = 2                 // FATs
	le.PutUint16(b[17:], 16)  // root entries
	le.PutUint16(b[19:], 64)  // total sectors
	b[21] = 0xF8
	le.PutUint16(b[22:], 1) // sectors per FAT
	b[38] = 0x29
	le.PutUint32(b[39:], 0xCAFEF00D)
	copy(b[43:], "BPB LABEL  ")
	copy(b[54:], "FAT12   ")
	b[510], b[511] = 0x55, 0xAA
	m.setFAT(0, 0xFF8)
	m.setFAT(1, 0xFFF)
	return m
}

// setFAT sets FAT entry c in both FATs, packing 12-bit entries.
func (m *tiny) setFAT(c, v uint32) {
	for _, fat := range []int{tinyFAT0, tinyFAT0 + tinyFATSz} {
		off := fat + int(c) + int(c)/2
		old := binary.LittleEndian.Uint16(m.b[off:])
		var n uint16
		if c&1 == 1 {
			n = old&0x000F | uint16(v&0xFFF)<<4
		} else {
			n = old&0xF000 | uint16(v&0xFFF)
		}
		binary.LittleEndian.PutUint16(m.b[off:], n)
	}
}

func (m *tiny) root(i int) int       { return tinyRoot + 32*i }
func (m *tiny) cluster(c uint32) int { return tinyData + int(c-2)*512 }

// entry writes an 8.3 directory entry at off.
func (m *tiny) entry(off int, name11 string, attr byte, cluster, size uint32) {
	e := m.b[off : off+32]
	clear(e)
	copy(e, fmt.Sprintf("%-11s", name11))
	e[11] = attr
	le := binary.LittleEndian
	le.PutUint16(e[22:], 12<<11|34<<5|28) // 12:34:56
	le.PutUint16(e[24:], 45<<9|6<<5|15)   // 2025-06-15
	le.PutUint16(e[20:], uint16(cluster>>16))
	le.PutUint16(e[26:], uint16(cluster))
	le.PutUint32(e[28:], size)
}

// file writes data into the given clusters, chains them and adds the entry.
func (m *tiny) file(off int, name11 string, data []byte, clusters ...uint32) {
	for i, c := range clusters {
		copy(m.b[m.cluster(c):m.cluster(c)+512], data[min(len(data), i*512):])
		next := uint32(0xFFF)
		if i+1 < len(clusters) {
			next = clusters[i+1]
		}
		m.setFAT(c, next)
	}
	first := uint32(0)
	if len(clusters) > 0 {
		first = clusters[0]
	}
	m.entry(off, name11, attrArchive, first, uint32(len(data)))
}

// lfn writes the long-name entries of long for the 8.3 name short11 starting at
// off, with checksum sum, and returns the offset for the 8.3 entry.
func (m *tiny) lfn(off int, long, short11 string, sum byte) int {
	u := utf16.Encode([]rune(long))
	n := (len(u) + 12) / 13
	if len(u)%13 != 0 {
		u = append(u, 0)
	}
	for len(u) < n*13 {
		u = append(u, 0xFFFF)
	}
	for ord := n; ord >= 1; ord-- {
		e := m.b[off : off+32]
		clear(e)
		e[0] = byte(ord)
		if ord == n {
			e[0] |= 0x40
		}
		e[11] = attrLongName
		e[13] = sum
		part := u[(ord-1)*13 : ord*13]
		j := 0
		for _, r := range [][2]int{{1, 11}, {14, 26}, {28, 32}} {
			for k := r[0]; k < r[1]; k += 2 {
				binary.LittleEndian.PutUint16(e[k:], part[j])
				j++
			}
		}
		off += 32
	}
	return off
}

func (m *tiny) bytes() []byte { return m.b }

func sum11(s string) byte { return lfnChecksum([]byte(fmt.Sprintf("%-11s", s))) }

// tiny32 is a hand-made FAT32 volume: 512-byte sectors, one sector per cluster,
// 32 reserved sectors, one FAT of 600 sectors, 70000 sectors in all (69368
// clusters), root directory at cluster 2. Only the metadata and the first
// clusters are backed by bytes; the rest of the claimed volume is missing.
func newTiny32() []byte {
	b := make([]byte, (32+600+8)*512)
	copy(b, []byte{0xEB, 0x58, 0x90})
	le := binary.LittleEndian
	le.PutUint16(b[11:], 512)
	b[13] = 1
	le.PutUint16(b[14:], 32)
	b[16] = 1
	b[21] = 0xF8
	le.PutUint32(b[32:], 70000)
	le.PutUint32(b[36:], 600)
	le.PutUint32(b[44:], 2)
	b[66] = 0x29
	le.PutUint32(b[67:], 0x32323232)
	copy(b[71:], "TINY32     ")
	b[510], b[511] = 0x55, 0xAA
	fat := b[32*512:]
	le.PutUint32(fat[0:], 0x0FFFFFF8)
	le.PutUint32(fat[4:], 0xFFFFFFFF)
	le.PutUint32(fat[8:], 0xFFFFFFFF) // root: one cluster; the top nibble is ignored
	return b
}

const tiny32Data = (32 + 600) * 512

func TestMalformed(t *testing.T) {
	le := binary.LittleEndian
	withBPB := func(mut func(b []byte)) func() []byte {
		return func() []byte {
			m := newTiny()
			mut(m.b)
			return m.b
		}
	}
	with32 := func(mut func(b []byte)) func() []byte {
		return func() []byte {
			b := newTiny32()
			mut(b)
			return b
		}
	}
	withTiny := func(mut func(m *tiny)) func() []byte {
		return func() []byte {
			m := newTiny()
			mut(m)
			return m.b
		}
	}
	readFile := func(name string) func(*FS) error {
		return func(fsys *FS) error {
			_, err := fsys.ReadFile(name)
			if err == nil {
				// Read through Open as well: it must fail the same way.
				f, oerr := fsys.Open(name)
				if oerr != nil {
					return oerr
				}
				defer f.Close()
				_, err = io.ReadAll(f)
			}
			return err
		}
	}
	readBoth := func(name string) func(*FS) error {
		return func(fsys *FS) error {
			_, err1 := fsys.ReadFile(name)
			f, err := fsys.Open(name)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err2 := io.ReadAll(f)
			if (err1 == nil) != (err2 == nil) {
				return fmt.Errorf("ReadFile error %v but Read error %v", err1, err2)
			}
			return err1
		}
	}
	readDir := func(name string) func(*FS) error {
		return func(fsys *FS) error {
			_, err := fsys.ReadDir(name)
			return err
		}
	}
	rootNames := func(want ...string) func(*FS) error {
		return func(fsys *FS) error {
			ents, err := fsys.ReadDir(".")
			if err != nil {
				return err
			}
			var got []string
			for _, e := range ents {
				got = append(got, e.Name())
			}
			if !slices.Equal(got, want) {
				return fmt.Errorf("root names %q, want %q", got, want)
			}
			return nil
		}
	}

	tests := []struct {
		name   string
		image  func() []byte
		newErr string               // New must fail with a *FormatError containing this
		op     func(fsys *FS) error // else op runs on the file system
		opErr  string               // and must fail with this, or succeed if ""
	}{
		{name: "empty input", image: func() []byte { return nil }, newErr: "boot sector truncated"},
		{name: "truncated boot sector", image: func() []byte { return newTiny().b[:300] }, newErr: "boot sector truncated"},
		{name: "bad signature", image: withBPB(func(b []byte) { b[511] = 0x55 }), newErr: "signature is 0x5555"},
		{name: "bytes per sector 256", image: withBPB(func(b []byte) { le.PutUint16(b[11:], 256) }), newErr: "bytes per sector 256"},
		{name: "zero sectors per cluster", image: withBPB(func(b []byte) { b[13] = 0 }), newErr: "sectors per cluster 0"},
		{name: "sectors per cluster 3", image: withBPB(func(b []byte) { b[13] = 3 }), newErr: "not a power of two"},
		{name: "zero reserved sectors", image: withBPB(func(b []byte) { le.PutUint16(b[14:], 0) }), newErr: "reserved sector count is zero"},
		{name: "zero FATs", image: withBPB(func(b []byte) { b[16] = 0 }), newErr: "number of FATs is zero"},
		{name: "bad media byte", image: withBPB(func(b []byte) { b[21] = 0x12 }), newErr: "media descriptor 0x12"},
		{name: "zero total sectors", image: withBPB(func(b []byte) { le.PutUint16(b[19:], 0) }), newErr: "total sector count is zero"},
		{name: "no data area", image: withBPB(func(b []byte) { le.PutUint16(b[19:], 4) }), newErr: "no data area"},
		{name: "FAT past end of partition", image: withBPB(func(b []byte) {
			le.PutUint16(b[19:], 0)
			le.PutUint32(b[32:], 5000)
			le.PutUint16(b[22:], 200)
		}), newErr: "FAT region ends"},
		{name: "root directory past end of partition", image: withBPB(func(b []byte) {
			le.PutUint16(b[19:], 0)
			le.PutUint32(b[32:], 5000)
			le.PutUint16(b[17:], 4096)
		}), newErr: "root directory ends"},
		{name: "FAT too small for cluster count", image: withBPB(func(b []byte) {
			le.PutUint16(b[19:], 0)
			le.PutUint32(b[32:], 10000)
		}), newErr: "too small for 9996 clusters"},
		{name: "FAT32 layout with FAT12 cluster count", image: withBPB(func(b []byte) {
			le.PutUint16(b[22:], 0)
			le.PutUint32(b[36:], 1)
		}), newErr: "FAT32 layout"},
		{name: "FAT32 root cluster 1", image: with32(func(b []byte) { le.PutUint32(b[44:], 1) }), newErr: "root directory cluster 1"},
		{name: "FAT32 root cluster past cluster count", image: with32(func(b []byte) { le.PutUint32(b[44:], 69370) }), newErr: "root directory cluster 69370"},
		{name: "FAT32 with fixed root entries", image: with32(func(b []byte) { le.PutUint16(b[17:], 16) }), newErr: "fixed root directory"},
		{name: "FAT32 version 1", image: with32(func(b []byte) { le.PutUint16(b[42:], 0x0100) }), newErr: "unsupported FAT32 version"},
		{name: "FAT32 active FAT missing", image: with32(func(b []byte) { le.PutUint16(b[40:], 0x81) }), newErr: "active FAT 1"},
		{name: "FAT32 root directory loop", image: with32(func(b []byte) {
			fat := b[32*512:]
			le.PutUint32(fat[8:], 3)
			le.PutUint32(fat[12:], 2)
			for i := tiny32Data; i < tiny32Data+2*512; i += 32 {
				copy(b[i:], "FILE    TXT")
			}
		}), op: readDir("."), opErr: "loops back to cluster 2"},
		{name: "FAT32 root cluster past end of partition", image: with32(func(b []byte) {
			le.PutUint32(b[44:], 1000)
			le.PutUint32(b[32*512+4000:], 0x0FFFFFFF)
		}), op: readDir("."), opErr: "past the end of the"},
		{name: "FAT32 high cluster bits", image: with32(func(b []byte) {
			le.PutUint32(b[32*512+8:], 0x0FFFFFFF)
			copy(b[tiny32Data:], "BIG     BIN")
			le.PutUint16(b[tiny32Data+20:], 0x0001) // cluster 0x10000
			le.PutUint32(b[tiny32Data+28:], 100)
		}), op: readFile("BIG.BIN"), opErr: "cluster 65536 lies past the end"},
		{name: "cluster chain loop", image: withTiny(func(m *tiny) {
			m.file(m.root(0), "LOOP    BIN", make([]byte, 3*512), 2, 3, 4)
			m.setFAT(4, 2)
			m.entry(m.root(0), "LOOP    BIN", attrArchive, 2, 4*512)
		}), op: readBoth("LOOP.BIN"), opErr: "loops back to cluster 2"},
		{name: "directory chain loop", image: withTiny(func(m *tiny) {
			m.entry(m.root(0), "DIR", attrDirectory, 5, 0)
			m.setFAT(5, 6)
			m.setFAT(6, 5)
			for i := m.cluster(5); i < m.cluster(7); i += 32 {
				copy(m.b[i:], "FILE    TXT")
			}
		}), op: readDir("DIR"), opErr: "loops back to cluster 5"},
		{name: "cluster number past cluster count", image: withTiny(func(m *tiny) {
			m.file(m.root(0), "FAR     BIN", make([]byte, 1000), 2, 3)
			m.setFAT(2, 500)
		}), op: readBoth("FAR.BIN"), opErr: "links to cluster 500, outside 2..61"},
		{name: "first cluster past cluster count", image: withTiny(func(m *tiny) {
			m.entry(m.root(0), "FAR     BIN", attrArchive, 4000, 100)
		}), op: readBoth("FAR.BIN"), opErr: "first cluster 4000 outside 2..61"},
		{name: "directory entry pointing at cluster 1", image: withTiny(func(m *tiny) {
			m.entry(m.root(0), "DIR", attrDirectory, 1, 0)
		}), op: readDir("DIR"), opErr: "starts at cluster 1"},
		{name: "file entry pointing at cluster 1", image: withTiny(func(m *tiny) {
			m.entry(m.root(0), "ONE     BIN", attrArchive, 1, 10)
		}), op: readBoth("ONE.BIN"), opErr: "first cluster 1 outside"},
		{name: "subdirectory at cluster 0", image: withTiny(func(m *tiny) {
			m.entry(m.root(0), "DIR", attrDirectory, 0, 0)
		}), op: readDir("DIR"), opErr: "starts at cluster 0"},
		{name: "subdirectory that is its own parent", image: withTiny(func(m *tiny) {
			m.entry(m.root(0), "DIR", attrDirectory, 2, 0)
			m.setFAT(2, 0xFFF)
			m.entry(m.cluster(2), "SELF", attrDirectory, 2, 0)
		}), op: readDir("DIR/SELF"), opErr: "is its own ancestor"},
		{name: "file size larger than its chain", image: withTiny(func(m *tiny) {
			m.file(m.root(0), "SHORT   BIN", bytes.Repeat([]byte{1}, 512), 2)
			m.entry(m.root(0), "SHORT   BIN", attrArchive, 2, 2000)
		}), op: readBoth("SHORT.BIN"), opErr: "needs 4 clusters but its chain from 2 has 1"},
		{name: "file size larger than partition", image: withTiny(func(m *tiny) {
			m.file(m.root(0), "HUGE    BIN", []byte("x"), 2)
			m.entry(m.root(0), "HUGE    BIN", attrArchive, 2, 0xFFFFFFFF)
		}), op: readFile("HUGE.BIN"), opErr: "exceeds the 32768-byte partition"},
		{name: "free cluster in chain", image: withTiny(func(m *tiny) {
			m.file(m.root(0), "FREE    BIN", make([]byte, 1000), 2, 3)
			m.setFAT(2, 0)
		}), op: readBoth("FREE.BIN"), opErr: "links to a free cluster"},
		{name: "bad cluster in chain", image: withTiny(func(m *tiny) {
			m.file(m.root(0), "BAD     BIN", make([]byte, 1000), 2, 3)
			m.setFAT(2, 0xFF7)
		}), op: readBoth("BAD.BIN"), opErr: "bad cluster"},
		{name: "file with a size but no cluster", image: withTiny(func(m *tiny) {
			m.entry(m.root(0), "NONE    BIN", attrArchive, 0, 100)
		}), op: readBoth("NONE.BIN"), opErr: "first cluster 0"},
		{name: "data past end of partition", image: func() []byte {
			m := newTiny()
			m.file(m.root(0), "TAIL    BIN", []byte("tail"), 40)
			return m.b[:tinyData+512]
		}, op: readBoth("TAIL.BIN"), opErr: "cluster 40 lies past the end"},
		{name: "root directory truncated", image: func() []byte { return newTiny().b[:tinyRoot+100] }, newErr: "root directory ends"},
		{name: "LFN with bad checksum falls back to 8.3 name", image: withTiny(func(m *tiny) {
			off := m.lfn(m.root(0), "A Long Name.txt", "ALONGN~1TXT", sum11("ALONGN~1TXT")+1)
			m.file(off, "ALONGN~1TXT", []byte("x"), 2)
		}), op: rootNames("ALONGN~1.TXT")},
		{name: "LFN with good checksum", image: withTiny(func(m *tiny) {
			off := m.lfn(m.root(0), "A Long Name.txt", "ALONGN~1TXT", sum11("ALONGN~1TXT"))
			m.file(off, "ALONGN~1TXT", []byte("x"), 2)
		}), op: rootNames("A Long Name.txt")},
		{name: "LFN with a missing part falls back", image: withTiny(func(m *tiny) {
			long := "A name long enough for three parts.txt"
			off := m.lfn(m.root(0), long, "ANAMEL~1TXT", sum11("ANAMEL~1TXT"))
			m.b[m.root(1)] = 3 // part 2 numbered as 3
			m.file(off, "ANAMEL~1TXT", []byte("x"), 2)
		}), op: rootNames("ANAMEL~1.TXT")},
		{name: "LFN separated from its entry by a deleted entry", image: withTiny(func(m *tiny) {
			off := m.lfn(m.root(0), "Orphan.txt", "ORPHAN  TXT", sum11("ORPHAN  TXT"))
			m.entry(off, "\xe5OTHER  TXT", attrArchive, 0, 0)
			m.file(off+32, "ORPHAN  TXT", []byte("x"), 2)
		}), op: rootNames("ORPHAN.TXT")},
		{name: "LFN containing a slash falls back", image: withTiny(func(m *tiny) {
			off := m.lfn(m.root(0), "a/b", "AB         ", sum11("AB"))
			m.file(off, "AB", []byte("x"), 2)
		}), op: rootNames("AB")},
		{name: "lower-case flags", image: withTiny(func(m *tiny) {
			m.file(m.root(0), "LOWER   TXT", []byte("x"), 2)
			m.b[m.root(0)+12] = ntLowerBase | ntLowerExt
			m.file(m.root(1), "BASEONLYEXT", []byte("y"), 3)
			m.b[m.root(1)+12] = ntLowerBase
			m.file(m.root(2), "\x05KANJI", []byte("z"), 4)
		}), op: rootNames("baseonly.EXT", "lower.txt", "σKANJI")},
		{name: "label, deleted entries, dot entries and end marker", image: withTiny(func(m *tiny) {
			m.entry(m.root(0), "MY LABEL", attrVolumeID|attrArchive, 0, 0)
			m.entry(m.root(1), "\xe5GONE   TXT", attrArchive, 0, 0)
			m.entry(m.root(2), ".", attrDirectory, 0, 0)
			m.file(m.root(3), "KEEP    TXT", []byte("x"), 2)
			// root(4) stays zero: the end marker.
			m.file(m.root(5), "AFTER   TXT", []byte("x"), 3)
		}), op: func(fsys *FS) error {
			if got := fsys.Label(); got != "MY LABEL" {
				return fmt.Errorf("Label() = %q", got)
			}
			return rootNames("KEEP.TXT")(fsys)
		}},
		{name: "BPB label when root has none", image: withTiny(func(m *tiny) {}), op: func(fsys *FS) error {
			if got := fsys.Label(); got != "BPB LABEL" {
				return fmt.Errorf("Label() = %q", got)
			}
			if fsys.Serial() != 0xCAFEF00D || fsys.Type() != "FAT12" {
				return fmt.Errorf("Serial() = %08x, Type() = %s", fsys.Serial(), fsys.Type())
			}
			return nil
		}},
		{name: "directory without end marker ends with its chain", image: withTiny(func(m *tiny) {
			m.entry(m.root(0), "DIR", attrDirectory, 2, 0)
			m.setFAT(2, 0xFFF)
			for i := range 16 {
				m.entry(m.cluster(2)+32*i, fmt.Sprintf("F%02d", i), attrArchive, 0, 0)
			}
		}), op: func(fsys *FS) error {
			ents, err := fsys.ReadDir("DIR")
			if err == nil && len(ents) != 16 {
				err = fmt.Errorf("%d entries, want 16", len(ents))
			}
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := tt.image()
			fsys, err := New(bytes.NewReader(data), int64(len(data)))
			if tt.newErr != "" {
				checkFormatErr(t, "New", err, tt.newErr)
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			// Whatever is broken, a full walk must end without panicking.
			defer walkAll(fsys)
			err = tt.op(fsys)
			if tt.opErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			checkFormatErr(t, "op", err, tt.opErr)
		})
	}
}

func checkFormatErr(t *testing.T, what string, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want one containing %q", what, want)
	}
	var fe *FormatError
	if !errors.As(err, &fe) {
		t.Fatalf("%s: error %v (%T) is not a *FormatError", what, err, err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("%s: error %q does not contain %q", what, err, want)
	}
	if !strings.HasPrefix(fe.Error(), "fatfs: ") || !strings.Contains(fe.Error(), "(offset 0x") {
		t.Errorf("%s: error %q lacks the package prefix or the offset", what, fe)
	}
}

// walkAll visits every entry reachable in fsys and reads every file, ignoring
// errors, with a bound on the number of entries visited.
func walkAll(fsys *FS) {
	visited := 0
	_ = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if visited++; visited > 5000 {
			return fs.SkipAll
		}
		if err != nil || d.IsDir() {
			return nil
		}
		if _, err := d.Info(); err != nil {
			return nil
		}
		if f, err := fsys.Open(p); err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(f, 4<<20))
			if ra, ok := f.(io.ReaderAt); ok {
				_, _ = ra.ReadAt(make([]byte, 100), 1000)
			}
			f.Close()
		}
		_, _ = fs.Stat(fsys, p)
		return nil
	})
}
