package disk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/vouch-dev/vouch/internal/testfixtures"
)

func need(t testing.TB, cmd, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(cmd); err != nil {
		t.Fatalf("%s not found: install the Debian package %s (make test does)", cmd, pkg)
	}
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// sparse makes an empty sparse file of size bytes.
func sparse(t testing.TB, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return p
}

func readTable(t testing.TB, p string) (*Table, error) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	info, _ := f.Stat()
	return ReadTable(f, info.Size())
}

// sgdiskRow matches a partition row of `sgdisk -p`: number, start, end sectors, code, name.
var sgdiskRow = regexp.MustCompile(`(?m)^\s+(\d+)\s+(\d+)\s+(\d+)\s+\S+ \S+\s+([0-9A-F]{4})\s+(.*)$`)

func TestGPTMatchesSgdisk(t *testing.T) {
	testfixtures.Long(t, testfixtures.Peers)
	need(t, "sgdisk", "gdisk")
	p := sparse(t, 64<<20)
	run(t, "sgdisk", "-n1:1M:+16M", "-t1:EF00", "-c1:EFI System", "-n2:0:+20M", "-t2:8304", "-c2:root",
		"-n3:0:0", "-t3:8200", "-c3:swap", p)
	tab, err := readTable(t, p)
	if err != nil {
		t.Fatal(err)
	}
	if tab.Kind != "gpt" || tab.Hybrid || tab.RecoveredFromBackup {
		t.Fatalf("table = %+v", tab)
	}
	rows := sgdiskRow.FindAllStringSubmatch(run(t, "sgdisk", "-p", p), -1)
	if len(rows) != len(tab.Partitions) {
		t.Fatalf("sgdisk lists %d partitions, vouch %d", len(rows), len(tab.Partitions))
	}
	wantTypes := []string{TypeESP, TypeRootX86_64, TypeLinuxSwap}
	for i, row := range rows {
		got := tab.Partitions[i]
		idx, _ := strconv.Atoi(row[1])
		start, _ := strconv.ParseInt(row[2], 10, 64)
		end, _ := strconv.ParseInt(row[3], 10, 64)
		if got.Index != idx || got.Start != start*512 || got.Size != (end-start+1)*512 || got.Label != strings.TrimSpace(row[5]) {
			t.Errorf("partition %d: vouch %+v, sgdisk %q", i, got, row[0])
		}
		if got.Type != wantTypes[i] {
			t.Errorf("partition %d type %s, want %s", i, got.Type, wantTypes[i])
		}
	}
	if !tab.Partitions[0].IsESP() || tab.Partitions[0].TypeName != "EFI System" || !IsRootType(tab.Partitions[1].Type) {
		t.Errorf("type names: %+v", tab.Partitions)
	}
}

func TestGPTBackupFallback(t *testing.T) {
	testfixtures.Long(t, testfixtures.Peers)
	need(t, "sgdisk", "gdisk")
	p := sparse(t, 32<<20)
	run(t, "sgdisk", "-n1:1M:+8M", "-t1:EF00", "-n2:0:0", "-t2:8300", p)
	// Smash the primary header's CRC field.
	f, _ := os.OpenFile(p, os.O_RDWR, 0)
	f.WriteAt([]byte{0xde, 0xad, 0xbe, 0xef}, 512+16)
	f.Close()
	tab, err := readTable(t, p)
	if err != nil {
		t.Fatalf("backup GPT not used: %v", err)
	}
	if !tab.RecoveredFromBackup || len(tab.Partitions) != 2 {
		t.Errorf("table = %+v", tab)
	}
	// Now smash the backup too: a clear error.
	f, _ = os.OpenFile(p, os.O_RDWR, 0)
	f.WriteAt([]byte("XXXXXXXX"), 32<<20-512)
	f.Close()
	if _, err := readTable(t, p); err == nil {
		t.Error("both GPT headers broken, but no error")
	}
}

func TestHybridMBR(t *testing.T) {
	testfixtures.Long(t, testfixtures.Peers)
	need(t, "sgdisk", "gdisk")
	p := sparse(t, 32<<20)
	run(t, "sgdisk", "-n1:1M:+8M", "-t1:EF00", "-n2:0:0", "-t2:8300", "-h", "2", p)
	tab, err := readTable(t, p)
	if err != nil {
		t.Fatal(err)
	}
	if tab.Kind != "gpt" || !tab.Hybrid {
		t.Errorf("table = %+v, want hybrid gpt", tab)
	}
}

func TestMBRExtended(t *testing.T) {
	testfixtures.Long(t, testfixtures.Peers)
	need(t, "sfdisk", "fdisk")
	p := sparse(t, 64<<20)
	cmd := exec.Command("sfdisk", "--no-reread", "--no-tell-kernel", p)
	cmd.Stdin = strings.NewReader("label: dos\n" +
		"start=2048, size=16384, type=ef, bootable\n" +
		"start=18432, size=32768, type=83\n" +
		"start=51200, type=5\n" +
		"size=8192, type=83\n" +
		"type=82\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	tab, err := readTable(t, p)
	if err != nil {
		t.Fatal(err)
	}
	// sfdisk --dump is the truth.
	dump := run(t, "sfdisk", "--dump", p)
	re := regexp.MustCompile(`(?m)^\S+?(\d+) : start=\s*(\d+), size=\s*(\d+), type=(\w+)`)
	rows := re.FindAllStringSubmatch(dump, -1)
	if len(rows) != len(tab.Partitions) {
		t.Fatalf("sfdisk lists %d partitions, vouch %d:\n%s\n%+v", len(rows), len(tab.Partitions), dump, tab.Partitions)
	}
	for i, row := range rows {
		got := tab.Partitions[i]
		idx, _ := strconv.Atoi(row[1])
		start, _ := strconv.ParseInt(row[2], 10, 64)
		size, _ := strconv.ParseInt(row[3], 10, 64)
		typ, _ := strconv.ParseUint(row[4], 16, 8)
		if got.Index != idx || got.Start != start*512 || got.Size != size*512 || got.Type != fmt.Sprintf("0x%02x", typ) {
			t.Errorf("partition %d: vouch %+v, sfdisk %q", i, got, row[0])
		}
	}
	if !tab.Partitions[0].Bootable || !tab.Partitions[0].IsESP() || !tab.Partitions[3].Logical || tab.Partitions[4].Index != 6 {
		t.Errorf("flags: %+v", tab.Partitions)
	}
}

// mbrImage builds an MBR sector with the given entries.
func mbrImage(size int, entries ...[4]uint32) []byte {
	b := make([]byte, size)
	for i, e := range entries {
		o := 446 + 16*i
		b[o+4] = byte(e[0])
		binary.LittleEndian.PutUint32(b[o+8:], e[1])
		binary.LittleEndian.PutUint32(b[o+12:], e[2])
	}
	b[510], b[511] = 0x55, 0xaa
	return b
}

func TestMalformed(t *testing.T) {
	gptHeader := func(count, esize uint32) []byte {
		b := mbrImage(1<<20, [4]uint32{0xee, 1, (1 << 20 / 512) - 1})
		copy(b[512:], "EFI PART")
		binary.LittleEndian.PutUint32(b[512+80:], count)
		binary.LittleEndian.PutUint32(b[512+84:], esize)
		return b
	}
	ebrLoop := mbrImage(1<<20, [4]uint32{0x05, 100, 1000})
	// The first EBR links to a second one that links to itself.
	copy(ebrLoop[100*512:], mbrImage(512, [4]uint32{0x83, 1, 5}, [4]uint32{0x05, 10, 10}))
	copy(ebrLoop[110*512:], mbrImage(512, [4]uint32{0x83, 1, 5}, [4]uint32{0x05, 10, 10}))
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"tiny", []byte{1, 2, 3}},
		{"partition past end", mbrImage(1<<20, [4]uint32{0x83, 2048, 1 << 30})},
		{"two extended", mbrImage(1<<20, [4]uint32{0x05, 10, 100}, [4]uint32{0x0f, 200, 100})},
		{"ebr loop", ebrLoop},
		{"ebr no signature", mbrImage(1<<20, [4]uint32{0x05, 100, 1000})},
		{"protective mbr, no gpt", mbrImage(1<<20, [4]uint32{0xee, 1, 2047})},
		{"gpt huge entry count", gptHeader(1<<30, 128)},
		{"gpt bad entry size", gptHeader(128, 7)},
		{"gpt bad crc", gptHeader(128, 128)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadTable(bytes.NewReader(tc.b), int64(len(tc.b)))
			if err == nil {
				t.Fatal("no error")
			}
			var de *Error
			if !errors.As(err, &de) && !strings.HasPrefix(err.Error(), "disk: ") {
				t.Errorf("error %q is not a disk error", err)
			}
		})
	}
	// No table at all is not an error: the disk may hold a bare file system.
	tab, err := ReadTable(bytes.NewReader(make([]byte, 4096)), 4096)
	if err != nil || tab.Kind != "none" {
		t.Errorf("blank disk: %+v, %v", tab, err)
	}
}

func TestProbe(t *testing.T) {
	testfixtures.Long(t, testfixtures.Peers)
	for _, tc := range []struct {
		tool, pkg string
		args      []string
		size      int64
		want      FSInfo
	}{
		{"mkfs.ext4", "e2fsprogs", []string{"-q", "-L", "rootfs", "-U", "0b5e0c4a-1111-4222-8333-444455556666"}, 16 << 20, FSInfo{FSExt4, "rootfs", "0b5e0c4a-1111-4222-8333-444455556666"}},
		{"mkfs.ext2", "e2fsprogs", []string{"-q"}, 8 << 20, FSInfo{Type: FSExt2}},
		{"mkfs.ext3", "e2fsprogs", []string{"-q"}, 8 << 20, FSInfo{Type: FSExt3}},
		{"mkfs.vfat", "dosfstools", []string{"-F", "32", "-n", "ESP", "-i", "12345678"}, 64 << 20, FSInfo{FSVFAT, "ESP", "1234-5678"}},
		{"mkfs.vfat", "dosfstools", []string{"-F", "16", "-i", "0000abcd"}, 16 << 20, FSInfo{Type: FSVFAT, UUID: "0000-ABCD"}},
		{"mkfs.xfs", "xfsprogs", []string{"-q", "-L", "xroot", "-m", "uuid=0b5e0c4a-1111-4222-8333-444455556666"}, 320 << 20, FSInfo{FSXFS, "xroot", "0b5e0c4a-1111-4222-8333-444455556666"}},
		{"mkfs.btrfs", "btrfs-progs", []string{"-q", "-L", "broot", "-U", "0b5e0c4a-1111-4222-8333-444455556666"}, 128 << 20, FSInfo{FSBtrfs, "broot", "0b5e0c4a-1111-4222-8333-444455556666"}},
		{"mkswap", "util-linux", []string{}, 8 << 20, FSInfo{Type: FSSwap}},
	} {
		t.Run(tc.tool+strings.Join(tc.args, ""), func(t *testing.T) {
			need(t, tc.tool, tc.pkg)
			p := sparse(t, tc.size)
			run(t, tc.tool, append(tc.args, p)...)
			f, _ := os.Open(p)
			defer f.Close()
			got := Probe(f, tc.size)
			if got.Type != tc.want.Type || (tc.want.Label != "" && got.Label != tc.want.Label) || (tc.want.UUID != "" && !strings.EqualFold(got.UUID, tc.want.UUID)) {
				t.Errorf("Probe = %+v, want %+v", got, tc.want)
			}
		})
	}
	lvm := make([]byte, 4096)
	copy(lvm[512:], "LABELONE")
	copy(lvm[512+24:], "LVM2 001")
	if got := Probe(bytes.NewReader(lvm), 4096); got.Type != FSLVM {
		t.Errorf("LVM label: %+v", got)
	}
}

func FuzzReadTable(f *testing.F) {
	f.Add(mbrImage(64<<10, [4]uint32{0x83, 2048, 100}))
	f.Add(mbrImage(64<<10, [4]uint32{0x05, 10, 100}))
	f.Add(mbrImage(64<<10, [4]uint32{0xee, 1, 127}))
	f.Fuzz(func(t *testing.T, b []byte) {
		tab, err := ReadTable(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		for _, p := range tab.Partitions {
			if p.Start < 0 || p.Size < 0 || p.Start+p.Size > int64(len(b)) {
				t.Fatalf("partition outside disk: %+v (disk %d)", p, len(b))
			}
		}
		Probe(bytes.NewReader(b), int64(len(b)))
	})
}
