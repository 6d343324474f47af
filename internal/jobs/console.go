package jobs

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// consoleFollower copies the serial logs QEMU writes under a run's work
// directory (vouch-vm-*/serial.log, one per VM the run starts) to a
// writer as they grow, line by line, with terminal escapes removed. A log
// is kept open once found, so what is written before its VM's directory
// is removed is still read. The first VM's lines go as they are; those of
// the second and later VMs (a matrix, a new environment per case, cases
// run side by side) begin with "[vm N] ", so interleaved consoles can be
// told apart.
type consoleFollower struct {
	dir   string
	out   io.Writer
	quit  chan struct{}
	done  chan struct{}
	lines int
}

// followPoll is how often the serial logs are read.
const followPoll = 200 * time.Millisecond

func followConsoles(dir string, out io.Writer) *consoleFollower {
	f := &consoleFollower{dir: dir, out: out, quit: make(chan struct{}), done: make(chan struct{})}
	if out == nil {
		close(f.done)
		return f
	}
	go f.run()
	return f
}

// stop reads what is left and returns how many lines were written.
func (f *consoleFollower) stop() int {
	select {
	case <-f.quit:
	default:
		close(f.quit)
	}
	<-f.done
	return f.lines
}

func (f *consoleFollower) run() {
	defer close(f.done)
	type source struct {
		file    *os.File
		prefix  string
		partial []byte
	}
	open := map[string]*source{}
	var order []string
	buf := make([]byte, 64<<10)
	read := func(final bool) {
		paths, _ := filepath.Glob(filepath.Join(f.dir, "vouch-vm-*", "serial.log"))
		sort.Strings(paths)
		for _, p := range paths {
			if _, ok := open[p]; !ok {
				if fh, err := os.Open(p); err == nil {
					src := &source{file: fh}
					if len(order) > 0 {
						src.prefix = fmt.Sprintf("[vm %d] ", len(order)+1)
					}
					open[p] = src
					order = append(order, p)
				}
			}
		}
		for _, p := range order {
			s := open[p]
			for {
				n, err := s.file.Read(buf)
				s.partial = append(s.partial, buf[:n]...)
				for {
					i := bytes.IndexByte(s.partial, '\n')
					if i < 0 {
						break
					}
					f.emit(s.prefix, s.partial[:i])
					s.partial = s.partial[i+1:]
				}
				if len(s.partial) > maxConsoleLine {
					f.emit(s.prefix, s.partial)
					s.partial = nil
				}
				if err != nil || n == 0 {
					break
				}
			}
			if final && len(s.partial) > 0 {
				f.emit(s.prefix, s.partial)
				s.partial = nil
			}
		}
	}
	t := time.NewTicker(followPoll)
	defer t.Stop()
	for {
		select {
		case <-f.quit:
			read(true)
			for _, s := range open {
				s.file.Close()
			}
			return
		case <-t.C:
			read(false)
		}
	}
}

const maxConsoleLine = 16 << 10

func (f *consoleFollower) emit(prefix string, raw []byte) {
	line := CleanConsoleLine(string(raw))
	if strings.TrimSpace(line) == "" {
		return
	}
	f.lines++
	io.WriteString(f.out, prefix+line+"\n")
}

var escapes = regexp.MustCompile(`\x1b(\[[0-9;?]*[ -/]*[@-~]|[()][0-9A-Za-z]|[=>78cDEHM])`)

// CleanConsoleLine makes a raw serial line readable: terminal escape
// sequences and control characters removed, and of a line redrawn with
// carriage returns only the last drawing kept.
func CleanConsoleLine(s string) string {
	s = escapes.ReplaceAllString(s, "")
	if i := strings.LastIndexByte(strings.TrimRight(s, "\r"), '\r'); i >= 0 {
		s = s[i+1:]
	}
	return strings.Map(func(r rune) rune {
		if r == '\t' || (r >= 0x20 && r != 0x7f) {
			return r
		}
		return -1
	}, strings.ToValidUTF8(s, ""))
}
