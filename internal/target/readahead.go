package target

import (
	"io"
	"sync"
)

// readAhead serves small reads from a few cached windows of the underlying
// reader. The XFS library reads file data a block at a time through
// bytes.Buffer.ReadFrom, which asks for 512 bytes per call: eight reads of the
// image per 4 KiB block, 16,000 for a kernel. With 64 KiB windows those become
// memory copies and one read per window. vouch's ext4 reader uses it for
// inodes (neighbouring inodes share a window) and extent-tree blocks; it reads
// file data and directories in whole runs of blocks, without it.
type readAhead struct {
	r    io.ReaderAt
	size int64

	mu   sync.Mutex
	wins [raWindows]raWindow
	next int
}

const (
	raWindowSize = 64 << 10
	raWindows    = 8
)

type raWindow struct {
	off int64
	buf []byte // nil when empty
}

func newReadAhead(r io.ReaderAt, size int64) *readAhead {
	return &readAhead{r: r, size: size}
}

func (ra *readAhead) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, io.EOF
	}
	// Large reads gain nothing from the windows.
	if len(p) >= raWindowSize {
		return ra.r.ReadAt(p, off)
	}
	ra.mu.Lock()
	defer ra.mu.Unlock()
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		if pos >= ra.size {
			return n, io.EOF
		}
		w, err := ra.window(pos)
		if err != nil {
			return n, err
		}
		c := copy(p[n:], w.buf[pos-w.off:])
		if c == 0 {
			return n, io.EOF
		}
		n += c
	}
	return n, nil
}

func (ra *readAhead) window(pos int64) (*raWindow, error) {
	for i := range ra.wins {
		w := &ra.wins[i]
		if w.buf != nil && pos >= w.off && pos < w.off+int64(len(w.buf)) {
			return w, nil
		}
	}
	start := pos - pos%raWindowSize
	length := min(int64(raWindowSize), ra.size-start)
	w := &ra.wins[ra.next]
	ra.next = (ra.next + 1) % raWindows
	if cap(w.buf) < int(length) {
		w.buf = make([]byte, length)
	}
	w.buf = w.buf[:length]
	m, err := ra.r.ReadAt(w.buf, start)
	if m < int(length) {
		w.buf = nil
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	w.off = start
	return w, nil
}
