package vm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"
)

// ErrExited is returned (wrapped) by waits on a machine whose QEMU process has
// ended.
var ErrExited = errors.New("vm: QEMU exited")

// maxLine bounds one console line: a guest that prints without newlines must not
// grow memory without limit. Longer lines are split.
const maxLine = 16 << 10

// Console is the VM's serial port. QEMU writes it to a file (Path); a goroutine
// reads the file as it grows and splits it into lines with carriage returns,
// ANSI escape sequences and other control characters removed, so that patterns
// match what a person sees.
type Console struct {
	path string

	mu      sync.Mutex
	lines   []string
	partial []byte        // the line being printed (e.g. "host login: ")
	mark    int           // where Wait starts; set by Mark
	changed chan struct{} // closed and replaced on every change
	closed  error         // set when no more output will come
	esc     escState
}

func newConsole(path string) *Console {
	return &Console{path: path, changed: make(chan struct{})}
}

// Path is the serial log file as QEMU wrote it (raw bytes). It is removed by
// Machine.Close: callers that keep it copy it first.
func (c *Console) Path() string { return c.path }

// Lines returns every line so far, the unfinished last line included.
func (c *Console) Lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snapshot(0)
}

// Tail returns the last n lines (fewer if there are fewer).
func (c *Console) Tail(n int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	all := c.snapshot(0)
	if n < len(all) {
		all = all[len(all)-n:]
	}
	return all
}

// Mark returns the number of lines so far and makes it the position that Wait
// searches from. Take a mark before an action (a reboot, a command) to wait for
// output that follows it. An unfinished last line (a login prompt) is finished
// first, so that it counts as output from before the mark.
func (c *Console) Mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.partial) > 0 {
		c.lines = append(c.lines, string(c.partial))
		c.partial = c.partial[:0]
	}
	c.mark = len(c.lines)
	return c.mark
}

// Since returns the lines from mark on, the unfinished last line included.
func (c *Console) Since(mark int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snapshot(mark)
}

func (c *Console) snapshot(from int) []string {
	from = max(0, min(from, len(c.lines)))
	out := append([]string(nil), c.lines[from:]...)
	if len(c.partial) > 0 {
		out = append(out, string(c.partial))
	}
	return out
}

// Wait returns the first line since the last Mark (from the start if Mark was
// never called) that matches re, waiting for it if it has not been printed yet.
// It fails when ctx ends or when QEMU has exited without printing it
// (errors.Is(err, ErrExited)).
func (c *Console) Wait(ctx context.Context, re *regexp.Regexp) (string, error) {
	c.mu.Lock()
	from := c.mark
	c.mu.Unlock()
	_, line, err := c.WaitFrom(ctx, from, re.MatchString)
	return line, err
}

// WaitFrom is Wait from an explicit mark with any predicate. It returns the
// index of the matching line (len of the finished lines when the match is the
// unfinished last line) and the line.
func (c *Console) WaitFrom(ctx context.Context, mark int, match func(string) bool) (int, string, error) {
	next := max(0, mark)
	for {
		c.mu.Lock()
		for ; next < len(c.lines); next++ {
			if match(c.lines[next]) {
				line := c.lines[next]
				c.mu.Unlock()
				return next, line, nil
			}
		}
		if len(c.partial) > 0 && match(string(c.partial)) {
			line := string(c.partial)
			c.mu.Unlock()
			return next, line, nil
		}
		changed, closed := c.changed, c.closed
		c.mu.Unlock()
		if closed != nil {
			return -1, "", closed
		}
		select {
		case <-ctx.Done():
			return -1, "", ctx.Err()
		case <-changed:
		}
	}
}

// write feeds raw serial bytes into the line splitter.
func (c *Console) write(p []byte) {
	if len(p) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range p {
		if !c.esc.keep(b) {
			continue
		}
		switch {
		case b == '\n':
			c.lines = append(c.lines, string(c.partial))
			c.partial = c.partial[:0]
		case b == '\r':
			// Dropped rather than treated as "back to column 0": firmware and
			// the kernel end lines with \r\n, and progress redraws are rare
			// enough on a serial console to keep both versions.
		case b == '\t' || b >= 0x20 && b != 0x7f:
			c.partial = append(c.partial, b)
			if len(c.partial) >= maxLine {
				c.lines = append(c.lines, string(c.partial))
				c.partial = c.partial[:0]
			}
		}
	}
	c.notify()
}

// finish marks the console complete: waits return err from now on.
func (c *Console) finish(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed == nil {
		c.closed = err
		c.notify()
	}
}

func (c *Console) notify() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// escState strips ANSI/VT100 escape sequences (ECMA-48): CSI (ESC [ params
// final), OSC and other strings (ESC ] ... BEL or ESC \), and two-byte escapes.
// edk2's terminal driver and systemd's status output both use CSI sequences.
type escState struct {
	state uint8 // 0 text, 1 after ESC, 2 in CSI, 3 in string (OSC/DCS/...), 4 ESC inside string
	n     int   // bytes in the current sequence, to give up on runaway ones
}

// keep reports whether b is text (true) or part of an escape sequence (false).
func (e *escState) keep(b byte) bool {
	const maxSeq = 256
	switch e.state {
	case 0:
		if b == 0x1b {
			e.state, e.n = 1, 0
			return false
		}
		if b == 0x9b { // 8-bit CSI
			e.state, e.n = 2, 0
			return false
		}
		return true
	case 1:
		switch b {
		case '[':
			e.state = 2
		case ']', 'P', 'X', '^', '_':
			e.state = 3
		default:
			if b >= 0x20 && b <= 0x2f { // intermediate byte: ESC ( B and the like
				return false
			}
			e.state = 0
		}
		return false
	case 2:
		e.n++
		if b >= 0x40 && b <= 0x7e || e.n > maxSeq || b == '\n' {
			e.state = 0
			return b == '\n'
		}
		return false
	default:
		e.n++
		if e.n > maxSeq || b == '\n' {
			e.state = 0
			return b == '\n'
		}
		switch {
		case b == 0x07:
			e.state = 0
		case b == 0x1b:
			e.state = 4
		case e.state == 4 && b == '\\':
			e.state = 0
		default:
			e.state = 3
		}
		return false
	}
}

// follow copies the serial log file into c as it grows until stop is closed,
// then reads what is left and finishes c with exitErr().
func (c *Console) follow(stop <-chan struct{}, exitErr func() error) {
	var f *os.File
	buf := make([]byte, 64<<10)
	drain := func() {
		if f == nil {
			var err error
			if f, err = os.Open(c.path); err != nil {
				return
			}
		}
		for {
			n, err := f.Read(buf)
			c.write(buf[:n])
			if err != nil || n == 0 {
				return
			}
		}
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			drain()
			if f != nil {
				f.Close()
			}
			c.finish(exitErr())
			return
		case <-tick.C:
			drain()
		}
	}
}

// tailText formats console lines for an error message.
func tailText(lines []string) string {
	if len(lines) == 0 {
		return "(console empty)"
	}
	return "  " + strings.Join(lines, "\n  ")
}

func exitedErr(status string) error { return fmt.Errorf("%w (%s)", ErrExited, status) }
