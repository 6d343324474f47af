package rootfs

import (
	"io/fs"
	"syscall"
	"time"
)

// fromStat reads the stat(2) result that os.Stat, os.Lstat and os.DirFS keep in Sys.
func fromStat(info fs.FileInfo) (*Meta, bool) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok || st == nil {
		return nil, false
	}
	return &Meta{
		Mode:       info.Mode(),
		UID:        st.Uid,
		GID:        st.Gid,
		Size:       st.Size,
		Nlink:      uint32(st.Nlink),
		Inode:      st.Ino,
		ModTime:    time.Unix(st.Mtim.Sec, st.Mtim.Nsec),
		ChangeTime: time.Unix(st.Ctim.Sec, st.Ctim.Nsec),
		AccessTime: time.Unix(st.Atim.Sec, st.Atim.Nsec),
	}, true
}
