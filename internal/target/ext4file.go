package target

import (
	"fmt"
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
	size := f.in.size
	if f.off >= size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if int64(len(p)) > size-f.off {
		p = p[:size-f.off]
	}
	if f.inline != nil {
		n := copy(p, f.inline[f.off:])
		f.off += int64(n)
		return n, nil
	}
	bs := f.fs.blockSize
	blk := uint64(f.off / bs)
	// Find the run holding blk, or the next one after it (a hole before it).
	for f.next > 0 && f.runs[f.next-1].logical+f.runs[f.next-1].n > blk {
		f.next--
	}
	for f.next < len(f.runs) && f.runs[f.next].logical+f.runs[f.next].n <= blk {
		f.next++
	}
	if f.next == len(f.runs) || f.runs[f.next].logical > blk {
		// A hole: zeros up to the next run or the end.
		end := size
		if f.next < len(f.runs) {
			end = min(end, int64(f.runs[f.next].logical)*bs)
		}
		n := int(min(int64(len(p)), end-f.off))
		clear(p[:n])
		f.off += int64(n)
		return n, nil
	}
	r := f.runs[f.next]
	within := f.off - int64(r.logical)*bs
	avail := int64(r.n)*bs - within
	n := int(min(int64(len(p)), avail))
	if r.zero {
		clear(p[:n])
	} else {
		m, err := f.fs.data.ReadAt(p[:n], int64(r.phys)*bs+within)
		if m < n {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			f.off += int64(m)
			return m, fmt.Errorf("inode %d: %w", f.in.ino, err)
		}
	}
	f.off += int64(n)
	return n, nil
}

// ext4Info is an inode's fs.FileInfo.
type ext4Info struct {
	name string
	in   *ext4Inode
}

func (i *ext4Info) Name() string       { return i.name }
func (i *ext4Info) Size() int64        { return i.in.size }
func (i *ext4Info) ModTime() time.Time { return time.Unix(i.in.mtime, 0) }
func (i *ext4Info) IsDir() bool        { return i.in.mode&0xF000 == 0x4000 }
func (i *ext4Info) Sys() any           { return nil }

// Ino is the inode number (the directory-cycle check uses it).
func (i *ext4Info) Ino() uint64 { return uint64(i.in.ino) }

func (i *ext4Info) Mode() fs.FileMode {
	m := fs.FileMode(i.in.mode & 0o777)
	if i.in.mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	if i.in.mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if i.in.mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	return m | ext4TypeMode(i.in.mode>>12)
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

// ext4DirEntry is a directory entry; its inode is read only when needed.
type ext4DirEntry struct {
	fs   *ext4FS
	name string
	ent  ext4DirEnt
}

func (d *ext4DirEntry) Name() string { return d.name }
func (d *ext4DirEntry) IsDir() bool  { return d.Type().IsDir() }

// Type comes from the entry's file type when the file system records it
// (EXT4_FT_*: 1 file, 2 dir, 3 chr, 4 blk, 5 fifo, 6 sock, 7 symlink).
func (d *ext4DirEntry) Type() fs.FileMode {
	switch d.ent.typ {
	case 1:
		return 0
	case 2:
		return fs.ModeDir
	case 3:
		return fs.ModeDevice | fs.ModeCharDevice
	case 4:
		return fs.ModeDevice
	case 5:
		return fs.ModeNamedPipe
	case 6:
		return fs.ModeSocket
	case 7:
		return fs.ModeSymlink
	}
	info, err := d.Info()
	if err != nil {
		return fs.ModeIrregular
	}
	return info.Mode().Type()
}

func (d *ext4DirEntry) Info() (fs.FileInfo, error) {
	in, err := d.fs.inode(d.ent.ino)
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: d.name, Err: err}
	}
	return &ext4Info{name: d.name, in: in}, nil
}

func (d *ext4DirEntry) String() string { return fs.FormatDirEntry(d) }
