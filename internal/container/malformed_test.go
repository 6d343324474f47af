package container

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// fixture builds the small real images the malformed cases start from.
type fixture struct {
	t     *testing.T
	dir   string
	cache map[string][]byte
}

// image converts a 1 MiB raw disk with data at its start to format (qemu-img's
// name, with -o options) and returns the bytes of the result.
func (f *fixture) image(name, format string, opts ...string) []byte {
	f.t.Helper()
	raw := filepath.Join(f.dir, "small.raw")
	if _, err := os.Stat(raw); err != nil {
		b := make([]byte, 1<<20)
		for i := range 256 << 10 {
			b[i] = byte(i*7 + i>>9)
		}
		if err := os.WriteFile(raw, b, 0o644); err != nil {
			f.t.Fatal(err)
		}
	}
	key := format + " " + strings.Join(opts, " ")
	if b, ok := f.cache[key]; ok {
		f.write(name, b)
		return bytes.Clone(b)
	}
	out := filepath.Join(f.dir, name)
	args := append([]string{"convert", "-f", "raw", "-O", format}, opts...)
	run(f.t, f.dir, "qemu-img", append(args, raw, out)...)
	b, err := os.ReadFile(out)
	if err != nil {
		f.t.Fatal(err)
	}
	f.cache[key] = b
	return bytes.Clone(b)
}

func (f *fixture) write(name string, b []byte) string {
	f.t.Helper()
	p := filepath.Join(f.dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		f.t.Fatal(err)
	}
	return p
}

var be, le = binary.BigEndian, binary.LittleEndian

// fixVHDFooter recomputes the checksum of the footer at the end of b.
func fixVHDFooter(b []byte) {
	f := b[len(b)-512:]
	be.PutUint32(f[64:], vhdChecksum(f, 64))
}

// fixVHDXHeaders recomputes the CRC-32C of both VHDX headers.
func fixVHDXHeaders(b []byte) {
	for _, off := range []int{vhdxHeader1, 2 * vhdxHeader1} {
		fixCRC32C(b[off:off+vhdxHeaderSize], 4)
	}
}

func fixCRC32C(b []byte, at int) {
	clear(b[at : at+4])
	le.PutUint32(b[at:], crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
}

// setVHDXLogGUID sets a LogGuid in both headers of a VHDX and, if entry,
// writes a log entry with that GUID, which makes the log need replaying.
func setVHDXLogGUID(b []byte, entry bool) {
	id := []byte("0123456789abcdef")
	for _, off := range []int{vhdxHeader1, 2 * vhdxHeader1} {
		copy(b[off+48:off+64], id)
	}
	fixVHDXHeaders(b)
	if entry {
		e := b[le.Uint64(b[vhdxHeader1+72:]):][:vhdxLogSector]
		copy(e, "loge")
		le.PutUint32(e[8:], vhdxLogSector) // EntryLength
		le.PutUint64(e[16:], 1)            // SequenceNumber
		copy(e[32:48], id)
		fixCRC32C(e, 4)
	}
}

// TestVHDXStaleLogGUID opens a VHDX whose headers have a LogGuid but whose log
// has no entry with it: there is nothing to replay and it reads as before.
func TestVHDXStaleLogGUID(t *testing.T) {
	testfixtures.Long(t, testfixtures.Peers)
	f := &fixture{t: t, dir: t.TempDir(), cache: map[string][]byte{}}
	b := f.image("clean.vhdx", "vhdx")
	setVHDXLogGUID(b, false)
	img, err := Open(f.write("stale.vhdx", b))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	want, err := os.ReadFile(filepath.Join(f.dir, "small.raw"))
	if err != nil {
		t.Fatal(err)
	}
	checkImage(t, img, want)
}

// vhdxRegion returns the offset of region id in a VHDX's first region table.
func vhdxRegion(b []byte, id [16]byte) int {
	t := b[vhdxRegionTable1:]
	for i := range int(le.Uint32(t[8:])) {
		e := t[16+32*i:]
		if [16]byte(e[:16]) == id {
			return int(le.Uint64(e[16:]))
		}
	}
	panic("region not found")
}

// vhdxMetaItem returns the file offset of metadata item id.
func vhdxMetaItem(b []byte, id [16]byte) int {
	m := vhdxRegion(b, vhdxRegionMetadata)
	for i := range int(le.Uint16(b[m+10:])) {
		e := b[m+32+32*i:]
		if [16]byte(e[:16]) == id {
			return m + int(le.Uint32(e[16:]))
		}
	}
	panic("metadata item not found")
}

// TestMalformed opens broken and unsupported images: each must fail with a
// *FormatError that names the file, at Open or at the first read.
func TestMalformed(t *testing.T) {
	testfixtures.Long(t, testfixtures.Peers)
	f := &fixture{t: t, dir: t.TempDir(), cache: map[string][]byte{}}
	qcow2 := func() []byte { return f.image("m.qcow2", "qcow2") }
	l1 := func(b []byte) int { return int(be.Uint64(b[40:])) }
	tests := []struct {
		name        string
		build       func() string // returns the image path
		atRead      bool          // Open succeeds, the first read fails
		want        string        // in the error message
		unsupported bool
	}{
		{"empty file", func() string { return f.write("empty", nil) }, false, "file is empty", false},
		{"vmdk sparse", func() string {
			return f.write("s.vmdk", append([]byte("KDMV\x01\x00\x00\x00"), make([]byte, 504)...))
		}, false, "VMDK images are not supported yet", true},
		{"vmdk descriptor", func() string {
			return f.write("d.vmdk", []byte("# Disk DescriptorFile\nversion=1\n"))
		}, false, "VMDK images are not supported yet", true},
		{"vdi", func() string {
			b := make([]byte, 512)
			copy(b, "<<< Oracle VM VirtualBox Disk Image >>>\n")
			le.PutUint32(b[64:], 0xbeda107f)
			return f.write("x.vdi", b)
		}, false, "VDI images are not supported yet", true},
		{"xz-compressed", func() string {
			return f.write("x.raw.xz", append([]byte("\xfd7zXZ\x00"), make([]byte, 100)...))
		}, false, "xz-compressed file", true},
		{"qcow2 truncated header", func() string {
			return f.write("trunc.qcow2", qcow2()[:40])
		}, false, "qcow2 header truncated", false},
		{"qcow2 v3 header truncated", func() string {
			return f.write("trunc3.qcow2", qcow2()[:80])
		}, false, "version 3 header truncated", false},
		{"qcow2 version 1", func() string {
			b := qcow2()
			be.PutUint32(b[4:], 1)
			return f.write("v1.qcow2", b)
		}, false, "qcow (version 1) images are not supported yet", true},
		{"qcow2 version 4", func() string {
			b := qcow2()
			be.PutUint32(b[4:], 4)
			return f.write("v4.qcow2", b)
		}, false, "qcow2 version 4 is not supported", true},
		{"qcow2 cluster_bits too large", func() string {
			b := qcow2()
			be.PutUint32(b[20:], 22)
			return f.write("cb22.qcow2", b)
		}, false, "cluster_bits 22 is out of range", false},
		{"qcow2 cluster_bits too small", func() string {
			b := qcow2()
			be.PutUint32(b[20:], 8)
			return f.write("cb8.qcow2", b)
		}, false, "cluster_bits 8 is out of range", false},
		{"qcow2 l1 size absurd", func() string {
			b := qcow2()
			be.PutUint32(b[36:], 0x7fffffff)
			return f.write("l1big.qcow2", b)
		}, false, "l1 table of 2147483647 entries is too large", false},
		{"qcow2 l1 too small for size", func() string {
			b := qcow2()
			be.PutUint64(b[24:], 1<<40)
			return f.write("l1small.qcow2", b)
		}, false, "l1 table of 1 entries is too small", false},
		{"qcow2 l1 table past end of file", func() string {
			b := qcow2()
			be.PutUint64(b[40:], uint64(len(b)))
			return f.write("l1eof.qcow2", b)
		}, false, "qcow2 l1 table of 1 entries extends past end of file", false},
		{"qcow2 l2 table past end of file", func() string {
			b := qcow2()
			be.PutUint64(b[l1(b):], 1<<63|1<<40)
			return f.write("l2eof.qcow2", b)
		}, true, "qcow2 l2 table extends past end of file", false},
		{"qcow2 l2 table unaligned", func() string {
			b := qcow2()
			be.PutUint64(b[l1(b):], be.Uint64(b[l1(b):])+512)
			return f.write("l2unaligned.qcow2", b)
		}, true, "not cluster-aligned", false},
		{"qcow2 data cluster past end of file", func() string {
			b := qcow2()
			l2 := be.Uint64(b[l1(b):]) & qcow2OffsetMask
			be.PutUint64(b[l2:], 1<<63|1<<40)
			return f.write("dataeof.qcow2", b)
		}, true, "qcow2 data cluster lies past end of file", false},
		{"qcow2 compressed cluster corrupt", func() string {
			b := f.image("c.qcow2", "qcow2", "-c")
			l2 := be.Uint64(b[l1(b):]) & qcow2OffsetMask
			e := be.Uint64(b[l2:])
			if e&qcow2Compressed == 0 {
				t.Fatal("first cluster is not compressed")
			}
			x := 62 - (16 - 8)
			off := e & (1<<x - 1)
			copy(b[off:off+64], bytes.Repeat([]byte{0xff}, 64))
			return f.write("badz.qcow2", b)
		}, true, "qcow2 compressed cluster is corrupt", false},
		{"qcow2 encrypted", func() string {
			b := qcow2()
			be.PutUint32(b[32:], 1)
			return f.write("aes.qcow2", b)
		}, false, "qcow2 encryption (crypt_method 1) is not supported", true},
		{"qcow2 external data file", func() string {
			raw := filepath.Join(f.dir, "data.raw")
			p := filepath.Join(f.dir, "ext.qcow2")
			run(t, f.dir, "qemu-img", "create", "-f", "qcow2", "-o", "data_file="+raw, p, "1M")
			return p
		}, false, "qcow2 external data file is not supported", true},
		{"qcow2 extended l2", func() string {
			f.image("extl2.qcow2", "qcow2", "-o", "extended_l2=on")
			return filepath.Join(f.dir, "extl2.qcow2")
		}, false, "extended L2 entries (subclusters) are not supported", true},
		{"qcow2 unknown incompatible feature", func() string {
			b := qcow2()
			be.PutUint64(b[72:], 1<<9)
			return f.write("feat9.qcow2", b)
		}, false, "unknown incompatible feature bit 9", true},
		{"qcow2 zstd without feature bit", func() string {
			b := f.image("z.qcow2", "qcow2", "-c", "-o", "compression_type=zstd")
			be.PutUint64(b[72:], be.Uint64(b[72:])&^qcow2IncompatCompression)
			return f.write("zbit.qcow2", b)
		}, false, "compression type bit is not set", false},
		{"qcow2 backing file missing", func() string {
			f.image("gone.qcow2", "qcow2")
			run(t, f.dir, "qemu-img", "create", "-f", "qcow2", "-b", "gone.qcow2", "-F", "qcow2", "orphan.qcow2")
			os.Remove(filepath.Join(f.dir, "gone.qcow2"))
			return filepath.Join(f.dir, "orphan.qcow2")
		}, false, `backing file "gone.qcow2" is missing`, false},
		{"qcow2 backing chain loop", func() string {
			f.image("loop-a.qcow2", "qcow2")
			run(t, f.dir, "qemu-img", "create", "-f", "qcow2", "-b", "loop-a.qcow2", "-F", "qcow2", "loop-b.qcow2")
			run(t, f.dir, "qemu-img", "rebase", "-u", "-b", "loop-b.qcow2", "-F", "qcow2", "loop-a.qcow2")
			return filepath.Join(f.dir, "loop-b.qcow2")
		}, false, "backing chain loop", false},
		{"qcow2 backing chain too deep", func() string {
			// deep00 has no backing file; deepNN's is deepNN-1.
			f.image("deep00.qcow2", "qcow2")
			run(t, f.dir, "qemu-img", "create", "-f", "qcow2", "-u", "-b", "deep99.qcow2", "-F", "qcow2", "deep.tmpl", "1M")
			tmpl, err := os.ReadFile(filepath.Join(f.dir, "deep.tmpl"))
			if err != nil {
				t.Fatal(err)
			}
			at := bytes.Index(tmpl, []byte("deep99.qcow2"))
			var path string
			for i := 1; i <= maxBackingDepth; i++ {
				b := bytes.Clone(tmpl)
				copy(b[at:], fmt.Sprintf("deep%02d.qcow2", i-1))
				path = f.write(fmt.Sprintf("deep%02d.qcow2", i), b)
			}
			return path
		}, false, "backing chain is deeper than 16 images", false},
		{"qcow2 backing format mismatch", func() string {
			f.image("isvhdx.vhdx", "vhdx")
			run(t, f.dir, "qemu-img", "create", "-f", "qcow2", "-u", "-b", "isvhdx.vhdx", "-F", "qcow2", "liar.qcow2", "1M")
			return filepath.Join(f.dir, "liar.qcow2")
		}, false, "backing file is vhdx but the referring image says it is qcow2", false},
		{"vhd bad footer checksum", func() string {
			b := f.image("f.vhd", "vpc", "-o", "subformat=fixed")
			b[len(b)-512+64] ^= 0x55
			return f.write("badsum.vhd", b)
		}, false, "vhd footer checksum", false},
		{"vhd too short", func() string {
			return f.write("short.vhd", f.image("s.vhd", "vpc")[:300])
		}, false, "vhd footer truncated", false},
		{"vhd differencing", func() string {
			b := f.image("diff.vhd", "vpc")
			be.PutUint32(b[len(b)-512+60:], vhdTypeDifferencing)
			fixVHDFooter(b)
			return f.write("diff.vhd", b)
		}, false, "differencing VHD is not supported yet", true},
		{"vhd unknown disk type", func() string {
			b := f.image("t9.vhd", "vpc")
			be.PutUint32(b[len(b)-512+60:], 9)
			fixVHDFooter(b)
			return f.write("t9.vhd", b)
		}, false, "unknown VHD disk type 9", false},
		{"vhd dynamic header cookie", func() string {
			b := f.image("cookie.vhd", "vpc")
			copy(b[512:], "xxsparse")
			return f.write("cookie.vhd", b)
		}, false, "no cxsparse cookie", false},
		{"vhd dynamic header checksum", func() string {
			b := f.image("hsum.vhd", "vpc")
			b[512+100] ^= 1
			return f.write("hsum.vhd", b)
		}, false, "vhd dynamic header checksum", false},
		{"vhd bat past end of file", func() string {
			b := f.image("bat.vhd", "vpc")
			be.PutUint64(b[512+16:], uint64(len(b)))
			be.PutUint32(b[512+36:], vhdChecksum(b[512:512+1024], 36))
			return f.write("bateof.vhd", b)
		}, false, "vhd block allocation table of 1 entries extends past end of file", false},
		{"vhd block past end of file", func() string {
			b := f.image("blk.vhd", "vpc")
			bat := be.Uint64(b[512+16:])
			be.PutUint32(b[bat:], 0x7fffff00)
			return f.write("blkeof.vhd", b)
		}, true, "vhd data block 0 lies past end of file", false},
		{"vhdx bad header crc", func() string {
			b := f.image("h.vhdx", "vhdx")
			b[vhdxHeader1+200] ^= 1
			b[2*vhdxHeader1+200] ^= 1
			return f.write("badcrc.vhdx", b)
		}, false, "vhdx has no valid header", false},
		{"vhdx log needs replay", func() string {
			b := f.image("log.vhdx", "vhdx")
			setVHDXLogGUID(b, true)
			return f.write("dirty.vhdx", b)
		}, false, "not closed cleanly and needs log replay (qemu-img check -r all)", true},
		{"vhdx log past end of file", func() string {
			b := f.image("log.vhdx", "vhdx")
			setVHDXLogGUID(b, false)
			for _, off := range []int{vhdxHeader1, 2 * vhdxHeader1} {
				le.PutUint64(b[off+72:], uint64(len(b)))
			}
			fixVHDXHeaders(b)
			return f.write("logeof.vhdx", b)
		}, false, "vhdx log of 1048576 bytes at offset", false},
		{"vhdx region table without bat", func() string {
			b := f.image("r.vhdx", "vhdx")
			for _, off := range []int{vhdxRegionTable1, vhdxRegionTable1 + vhdxRegionSize} {
				t := b[off : off+vhdxRegionSize]
				for i := range int(le.Uint32(t[8:])) {
					if e := t[16+32*i:]; [16]byte(e[:16]) == vhdxRegionBAT {
						e[0] ^= 0xff // now an unknown, optional region
					}
				}
				fixCRC32C(t, 4)
			}
			return f.write("nobat.vhdx", b)
		}, false, "vhdx region table has no BAT region", false},
		{"vhdx bad region table crc", func() string {
			b := f.image("rc.vhdx", "vhdx")
			b[vhdxRegionTable1+100] ^= 1
			b[vhdxRegionTable1+vhdxRegionSize+100] ^= 1
			return f.write("rcrc.vhdx", b)
		}, false, "vhdx has no valid region table", false},
		{"vhdx truncated", func() string {
			return f.write("trunc.vhdx", f.image("t.vhdx", "vhdx")[:200<<10])
		}, false, "vhdx has no valid region table", false},
		{"vhdx differencing", func() string {
			b := f.image("p.vhdx", "vhdx")
			fp := vhdxMetaItem(b, vhdxFileParameters)
			le.PutUint32(b[fp+4:], le.Uint32(b[fp+4:])|2)
			return f.write("parent.vhdx", b)
		}, false, "differencing VHDX is not supported yet", true},
		{"vhdx block size", func() string {
			b := f.image("bs.vhdx", "vhdx")
			fp := vhdxMetaItem(b, vhdxFileParameters)
			le.PutUint32(b[fp:], 3<<20)
			return f.write("bs.vhdx", b)
		}, false, "vhdx block size 3145728 is not a power of two", false},
		{"vhdx partially present block", func() string {
			b := f.image("pp.vhdx", "vhdx")
			bat := vhdxRegion(b, vhdxRegionBAT)
			le.PutUint64(b[bat:], le.Uint64(b[bat:])|vhdxBlockPartiallyPresent)
			return f.write("pp.vhdx", b)
		}, true, "partially present in a disk without a parent", false},
		{"vhdx payload block past end of file", func() string {
			b := f.image("pe.vhdx", "vhdx")
			bat := vhdxRegion(b, vhdxRegionBAT)
			le.PutUint64(b[bat:], 1<<40|vhdxBlockFullyPresent)
			return f.write("pe.vhdx", b)
		}, true, "lies outside the file", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.t = t
			path := tt.build()
			img, err := Open(path)
			if tt.atRead {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				_, err = img.ReadAt(make([]byte, 4096), 0)
				img.Close()
			} else if err == nil {
				img.Close()
				t.Fatal("Open succeeded")
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v (%T) is not a *FormatError", err, err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "container: ") || !strings.Contains(msg, f.dir) {
				t.Errorf("error %q does not start with container: and name the file", msg)
			}
			if !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not contain %q", msg, tt.want)
			}
			t.Log(msg)
			if fe.Unsupported != tt.unsupported {
				t.Errorf("Unsupported = %v, want %v", fe.Unsupported, tt.unsupported)
			}
		})
	}
}

func TestFormatErrorMessage(t *testing.T) {
	for _, tt := range []struct {
		e    FormatError
		want string
	}{
		{FormatError{Path: "a.img", Offset: 0x1234, Reason: "qcow2 l2 table extends past end of file"},
			"container: a.img: qcow2 l2 table extends past end of file (offset 0x1234)"},
		{FormatError{Path: "d.vmdk", Offset: -1, Reason: "VMDK images are not supported yet"},
			"container: d.vmdk: VMDK images are not supported yet"},
		{FormatError{Offset: 0, Reason: "x"}, "container: x (offset 0x0)"},
	} {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}
