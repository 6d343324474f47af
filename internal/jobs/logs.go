package jobs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vouch-dev/vouch/internal/store"
)

// Bounds of a log append: lines per call and bytes per line (longer lines
// are cut, not refused: a guest may print anything).
const (
	MaxLogLinesPerAppend = 2000
	MaxLogLine           = 16 << 10
)

// LogAppend is a chunk of a job's log sent by the worker holding it: its
// lines are numbered From, From+1, ... in the job's log, so that a retried
// append stores nothing twice.
type LogAppend struct {
	Lease string             `json:"lease"`
	From  int64              `json:"from"`
	Lines []store.JobLogLine `json:"lines"`
}

// LogAnswer is the number of the next line the server expects.
type LogAnswer struct {
	Next int64 `json:"next"`
}

// AppendLog stores a worker's log chunk and wakes the log's followers.
func (s *Service) AppendLog(ctx context.Context, name string, a LogAppend) (LogAnswer, error) {
	if err := checkAppend(&a); err != nil {
		return LogAnswer{}, err
	}
	next, err := s.Store.AppendJobLog(ctx, name, a.Lease, a.From, a.Lines, s.now(), s.MaxLogBytes)
	if err != nil {
		return LogAnswer{Next: next}, err
	}
	s.wake()
	return LogAnswer{Next: next}, nil
}

const lineCut = " (line cut)"

// cutLine cuts a line longer than MaxLogLine at a rune boundary, saying so
// (the result is at most MaxLogLine bytes).
func cutLine(s string) string {
	if len(s) <= MaxLogLine {
		return s
	}
	cut := MaxLogLine - len(lineCut)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + lineCut
}

// checkAppend refuses what no worker sends and cuts lines to the bound.
func checkAppend(a *LogAppend) error {
	if len(a.Lines) > MaxLogLinesPerAppend {
		return inputf("at most %d log lines per append, not %d", MaxLogLinesPerAppend, len(a.Lines))
	}
	if a.From < 0 {
		return inputf("log line number %d is negative", a.From)
	}
	for i := range a.Lines {
		l := &a.Lines[i]
		if len(l.Case) > 128 {
			return inputf("log line %d: case name longer than 128 bytes", a.From+int64(i))
		}
		// PostgreSQL's text holds no NUL; a guest may print one.
		l.Line = strings.ToValidUTF8(strings.ReplaceAll(l.Line, "\x00", ""), "\uFFFD")
		l.Case = strings.ToValidUTF8(strings.ReplaceAll(l.Case, "\x00", ""), "\uFFFD")
		l.Line = cutLine(l.Line)
	}
	return nil
}

// LogChanged returns a channel closed at the next change of any job's log
// or state on this server (followers wait on it, and re-read).
func (s *Service) LogChanged() <-chan struct{} {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	if s.logWake == nil {
		s.logWake = make(chan struct{})
	}
	return s.logWake
}

func (s *Service) wake() {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	if s.logWake != nil {
		close(s.logWake)
		s.logWake = nil
	}
}

// LogEnd is the last event of a followed log: the job's final state.
type LogEnd struct {
	State  string `json:"provisioningState"`
	Reason string `json:"reason,omitempty"`
}

func (e LogEnd) String() string {
	if e.Reason == "" {
		return e.State
	}
	return fmt.Sprintf("%s: %s", e.State, e.Reason)
}

// maxAppendBytes bounds one append's body as JSON (the API's limit is
// 4 MiB).
const maxAppendBytes = 1 << 20

// jsonSize is at most what s takes in a JSON string (control characters,
// quotes and backslashes escaped; other bytes as they are).
func jsonSize(s string) int {
	n := len(s) + 2
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			n += 5
		}
	}
	return n
}

// ErrLogRefused is the server refusing an append as malformed (a 4xx other
// than a lost lease): sending it again would not help.
var ErrLogRefused = errors.New("jobs: the server refused the log lines")

// sendLogs sends the oldest unconfirmed lines once; more reports whether
// lines remain.
func (e *execution) sendLogs(ctx context.Context) (more bool, err error) {
	e.mu.Lock()
	n, size := 0, 0
	for n < len(e.logs) && n < MaxLogLinesPerAppend {
		l := &e.logs[n]
		l.Line = cutLine(l.Line) // as the server would, so that one line fits
		ls := jsonSize(l.Line) + jsonSize(l.Case) + 64
		if n > 0 && size+ls > maxAppendBytes {
			break
		}
		size += ls
		n++
	}
	chunk := append([]store.JobLogLine{}, e.logs[:n]...)
	from := e.logFrom
	e.mu.Unlock()
	if n == 0 {
		return false, nil
	}
	ans, err := e.w.Server.AppendLog(ctx, e.cl.Job.Name, LogAppend{Lease: e.cl.Lease, From: from, Lines: chunk})
	if errors.Is(err, ErrLogRefused) {
		// Dropped, not retried; the next lines keep the numbers.
		e.w.logf("job %s: %d log lines dropped: %v", e.cl.Job.Name, n, err)
		e.mu.Lock()
		defer e.mu.Unlock()
		e.logs = e.logs[min(n, len(e.logs)):]
		return len(e.logs) > 0, nil
	}
	if err != nil {
		return true, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	took := min(max(ans.Next-e.logFrom, 0), int64(len(e.logs)))
	e.logs = e.logs[took:]
	e.logFrom += took
	return len(e.logs) > 0, nil
}

// shipLogs sends log lines as they come until done is closed; a failed
// send is retried after retry.
func (e *execution) shipLogs(ctx context.Context, done <-chan struct{}, retry time.Duration) {
	for {
		select {
		case <-done:
			return
		case <-ctx.Done():
			return
		case <-e.logKick:
		}
		for {
			more, err := e.sendLogs(ctx)
			if errors.Is(err, ErrLeaseLost) {
				return // the heartbeat stops the run
			}
			if err != nil {
				e.w.logf("job %s: log: %v", e.cl.Job.Name, err)
				select {
				case <-done:
					return
				case <-ctx.Done():
					return
				case <-time.After(retry):
				}
				continue
			}
			if !more {
				break
			}
		}
	}
}

// flushLogs sends every line left, retrying until deadline.
func (e *execution) flushLogs(ctx context.Context, deadline time.Time, retry time.Duration) error {
	for {
		more, err := e.sendLogs(ctx)
		switch {
		case err == nil && !more:
			return nil
		case err == nil:
			continue
		case errors.Is(err, ErrLeaseLost) || time.Now().After(deadline) || ctx.Err() != nil:
			return err
		}
		select {
		case <-ctx.Done():
		case <-time.After(retry):
		}
	}
}
