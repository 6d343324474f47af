package target

import (
	"io"
	"io/fs"
	"time"
)

// ext4File reads a file's content: each Read is served from one run of
// contiguous blocks with one read of the image, straight into the caller's buffer.
type ext4File struct {
	fs     *ext4FS
	in     *ext4Inode
	name   string
	runs   []ext4Run
	inline []byte
	off    int64
	next   int // index of the run to search from
}

func (f *ext4File) Stat() (fs.FileInfo, error) { return &ext4Info{name: f.name, in: f.in}, nil }
func (f *ext4File) Close() error               { return nil }

func (f *ext4File) Read(p []byte) (int, error) {
	if f.inline != nil {
		if f.off >= f.in.size {
			return 0, io.EOF
		}
		n := copy(p, f.inline[f.off:])
		f.off += int64(n)
		return n, nil
	}
	return readRuns(f.fs.data, f.fs.blockSize, f.runs, f.in.size, uint64(f.in.ino), &f.off, &f.next, p)
}

// ext4Info is an inode's fs.FileInfo; Sys is its *rootfs.Meta.
type ext4Info struct {
	name string
	in   *ext4Inode
}

func (i *ext4Info) Name() string       { return i.name }
func (i *ext4Info) Size() int64        { return i.in.size }
func (i *ext4Info) ModTime() time.Time { return i.in.meta.ModTime }
func (i *ext4Info) IsDir() bool        { return i.in.mode&0xF000 == 0x4000 }
func (i *ext4Info) Mode() fs.FileMode  { return i.in.meta.Mode }
func (i *ext4Info) Sys() any {
	m := i.in.meta // a copy: the cached inode is shared
	return &m
}

// ext4FileMode maps an inode's i_mode (the same bits in ext4 and XFS) to an
// fs.FileMode.
func ext4FileMode(mode uint16) fs.FileMode {
	m := fs.FileMode(mode & 0o777)
	if mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	if mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	return m | ext4TypeMode(mode>>12)
}

// ext4TypeMode maps an inode's S_IFMT>>12 to fs.FileMode type bits.
func ext4TypeMode(t uint16) fs.FileMode {
	switch t {
	case 0x8:
		return 0
	case 0x4:
		return fs.ModeDir
	case 0xA:
		return fs.ModeSymlink
	case 0x2:
		return fs.ModeDevice | fs.ModeCharDevice
	case 0x6:
		return fs.ModeDevice
	case 0x1:
		return fs.ModeNamedPipe
	case 0xC:
		return fs.ModeSocket
	}
	return fs.ModeIrregular
}

// direntType maps a directory entry's file type (ext4's EXT4_FT_* and XFS's
// XFS_DIR3_FT_* share the numbers) to fs.FileMode type bits.
func direntType(typ byte) (fs.FileMode, bool) {
	switch typ {
	case 1:
		return 0, true
	case 2:
		return fs.ModeDir, true
	case 3:
		return fs.ModeDevice | fs.ModeCharDevice, true
	case 4:
		return fs.ModeDevice, true
	case 5:
		return fs.ModeNamedPipe, true
	case 6:
		return fs.ModeSocket, true
	case 7:
		return fs.ModeSymlink, true
	}
	return 0, false
}
