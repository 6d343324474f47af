package rootfs

import (
	"fmt"
	"io/fs"
	"time"
)

// Meta is what vouch knows about a file beyond fs.FileInfo, the same for every
// backend: a directory or the live host (from stat(2)), ext2/3/4 and XFS (from
// the inode, read by vouch's own readers) and FAT (which has no owners: root).
// Every fs.FileInfo that a backend returns, from Lstat, Stat, ReadDir entries'
// Info or an opened file's Stat, carries a *Meta as its Sys(); MetaOf reads it.
type Meta struct {
	// Mode is the file's type and permission bits, as FileInfo.Mode reports them.
	Mode fs.FileMode
	// UID and GID are the owner and group, 32 bits wide (ext4 keeps the high
	// 16 bits apart from the low ones; the reader puts them together).
	UID, GID uint32
	// Size is the file's length in bytes.
	Size int64
	// Nlink is the number of hard links (0 when the file system has none: FAT).
	Nlink uint32
	// Inode is the inode number (0 when the file system has none: FAT).
	Inode uint64
	// Link is a symlink's target as stored; empty for other files, and for a
	// symlink whose target could not be read (ReadLink says why).
	Link string
	// ModTime, ChangeTime and AccessTime are the inode's mtime, ctime and
	// atime; a file system without one (FAT has no ctime) repeats ModTime.
	ModTime, ChangeTime, AccessTime time.Time
}

// MetaOf returns the metadata of a file as the backend that described it read
// it. It accepts the FileInfo of any rootfs backend and, for the host's own
// files, of os.Stat and os.Lstat. A FileInfo that carries neither is an error
// naming the file: a caller must never guess an owner.
func MetaOf(info fs.FileInfo) (*Meta, error) {
	switch s := info.Sys().(type) {
	case *Meta:
		if s != nil {
			return s, nil
		}
	case Meta:
		return &s, nil
	default:
		if m, ok := fromStat(info); ok {
			return m, nil
		}
	}
	return nil, fmt.Errorf("rootfs: %s: the file system reader gives no owner, times or inode number for this file (%T)", info.Name(), info.Sys())
}

// metaInfo is a FileInfo over a Meta, for backends that have nothing else to add.
type metaInfo struct {
	name string
	m    *Meta
}

// NewFileInfo returns an fs.FileInfo named name whose every answer comes from m,
// and whose Sys is m.
func NewFileInfo(name string, m *Meta) fs.FileInfo { return metaInfo{name: name, m: m} }

func (i metaInfo) Name() string       { return i.name }
func (i metaInfo) Size() int64        { return i.m.Size }
func (i metaInfo) Mode() fs.FileMode  { return i.m.Mode }
func (i metaInfo) ModTime() time.Time { return i.m.ModTime }
func (i metaInfo) IsDir() bool        { return i.m.Mode.IsDir() }
func (i metaInfo) Sys() any           { return i.m }
