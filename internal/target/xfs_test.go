package target

import (
	"bytes"
	"io"
	"io/fs"
	"path"
	"strings"
	"sync"
	"testing"

	"github.com/vouch-dev/vouch/internal/rootfs"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// patched reads base with patch laid over it at off: a fuzzed image without
// copying the 300 MiB an XFS file system needs at least.
type patched struct {
	base  []byte
	off   int64
	patch []byte
}

func (p *patched) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 || off >= int64(len(p.base)) {
		return 0, io.EOF
	}
	n := copy(b, p.base[off:])
	// Overlay the part of the patch inside [off, off+n).
	lo, hi := max(off, p.off), min(off+int64(n), p.off+int64(len(p.patch)))
	if lo < hi {
		copy(b[lo-off:hi-off], p.patch[lo-p.off:hi-p.off])
	}
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

var (
	xfsSeedsOnce sync.Once
	xfsSeeds     [][]byte
)

// smallXFS builds the fuzzer's images once: the metaTree on XFS v5 and v4.
func smallXFS(t testing.TB) [][]byte {
	testfixtures.Long(t, testfixtures.Peers) // mkfs.xfs
	xfsSeedsOnce.Do(func() {
		src := metaTree(t)
		for _, kind := range []string{"xfs", "xfs-v4"} {
			xfsSeeds = append(xfsSeeds, metaImage(t, src, kind))
		}
	})
	if len(xfsSeeds) != 2 {
		t.Fatal("xfs seed images were not built")
	}
	return xfsSeeds
}

func walkAll(root *rootfs.FS) {
	fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if info, err := d.Info(); err == nil {
			rootfs.MetaOf(info)
		}
		if d.Type()&fs.ModeSymlink != 0 {
			root.ReadLink(p)
		}
		if !d.IsDir() {
			root.ReadFile(p)
			root.Lstat(p)
		}
		return nil
	})
}

// FuzzXFSImage corrupts XFS images (superblock, inode cores and forks,
// short-form and block directories, extent lists, symlink blocks) and reads
// every file and its metadata: any error is fine, a panic, a hang or a huge
// allocation is not. The input is a patch (image, where, what) over a v5 or
// a v4 image of metaTree.
func FuzzXFSImage(f *testing.F) {
	seeds := smallXFS(f)
	f.Add(uint8(0), uint32(0x64), []byte{0xff, 0xff})                 // superblock version
	f.Add(uint8(0), uint32(0x10000), bytes.Repeat([]byte{0xff}, 176)) // root inode core
	f.Add(uint8(1), uint32(0x8000), []byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, which uint8, off uint32, patch []byte) {
		seed := seeds[int(which)%len(seeds)]
		p := &patched{base: seed, off: int64(off) % int64(len(seed)), patch: patch}
		root, err := openLinuxFS("xfs", io.NewSectionReader(p, 0, int64(len(seed))))
		if err != nil {
			return
		}
		walkAll(root)
	})
}

// TestXFSCorrupt: a corrupt inode core, a directory entry naming an inode past
// the file system, and a short-form directory whose count overruns its fork are
// errors for the paths that meet them; the rest of the tree still reads.
func TestXFSCorrupt(t *testing.T) {
	img := smallXFS(t)[0]
	root, err := openKind("xfs", img)
	if err != nil {
		t.Fatal(err)
	}
	info, err := root.Lstat("etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := rootfs.MetaOf(info)
	x, err := newXFSFS(io.NewSectionReader(bytes.NewReader(img), 0, int64(len(img))))
	if err != nil {
		t.Fatal(err)
	}
	agIno := x.agBlkLog + x.inoPBLog
	inodeOff := func(ino uint64) int64 {
		ag, agb, idx := ino>>agIno, (ino>>x.inoPBLog)&(1<<x.agBlkLog-1), ino&(1<<x.inoPBLog-1)
		return int64(ag*x.agBlocks+agb)*x.blockSize + int64(idx)*x.inodeSize
	}
	// etc/passwd's inode core overwritten with 0xff (magic, mode, version...).
	bad := &patched{base: img, off: inodeOff(m.Inode), patch: bytes.Repeat([]byte{0xff}, int(x.inodeSize))}
	root, err = openLinuxFS("xfs", io.NewSectionReader(bad, 0, int64(len(img))))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := root.Lstat("etc/passwd"); err == nil || !strings.Contains(err.Error(), "inode") {
		t.Errorf("corrupt inode: %v", err)
	}
	if b, err := root.ReadFile("usr/lib/os-release"); err != nil || !bytes.HasPrefix(b, []byte("ID=debian")) {
		t.Errorf("rest of the tree: %q %v", b, err)
	}
	walkAll(root)
}

// TestMetaFixtures compares the metadata of every entry of the fixtures' root
// directory with what the ext4 reader (debian.raw) and the XFS reader
// (debian-xfs.raw) give for it: mode, owner, size, symlink target.
func TestMetaFixtures(t *testing.T) {
	testfixtures.Long(t, testfixtures.Fixtures)
	dir := testfixtures.Path(t, "rootfs")
	src := rootfs.New(rootfs.Dir(dir))
	for _, img := range []string{"debian.raw", "debian-xfs.raw"} {
		t.Run(img, func(t *testing.T) {
			tgt, err := Open(testfixtures.Path(t, img), Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer tgt.Close()
			n := 0
			err = fs.WalkDir(src, ".", func(p string, d fs.DirEntry, err error) error {
				if err != nil || p == "." {
					return err
				}
				want, err := d.Info()
				if err != nil {
					return err
				}
				got, err := tgt.Root.Lstat(p)
				if err != nil {
					if img == "debian-xfs.raw" && strings.HasPrefix(path.Base(p), ":") {
						return nil // a name a protofile cannot carry (debian-xfs.raw.protofile.log)
					}
					t.Errorf("%s: %v", p, err)
					return nil
				}
				wm, _ := rootfs.MetaOf(want)
				gm, err := rootfs.MetaOf(got)
				if err != nil {
					t.Fatal(err)
				}
				if img == "debian-xfs.raw" && p == "etc/fstab" {
					return nil // the XFS image's fstab names its XFS root
				}
				if gm.Mode != wm.Mode || gm.UID != wm.UID || gm.GID != wm.GID || gm.Link != wm.Link || (!d.IsDir() && gm.Size != wm.Size) {
					t.Errorf("%s: image %v %d:%d %d %q, directory %v %d:%d %d %q", p, gm.Mode, gm.UID, gm.GID, gm.Size, gm.Link, wm.Mode, wm.UID, wm.GID, wm.Size, wm.Link)
				}
				n++
				return nil
			})
			if err != nil || n < 10000 {
				t.Fatalf("compared %d entries: %v", n, err)
			}
		})
	}
}
