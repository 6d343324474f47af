package testfixtures

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// recorder is a testing.TB that records how a helper ended the test.
type recorder struct {
	testing.TB
	ended string // "fatal: ..."
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.ended = "fatal: " + fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// call runs f with a recorder on a goroutine of its own (the helpers end it
// with runtime.Goexit, as the testing package does).
func call(t *testing.T, f func(testing.TB)) string {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r.ended
}

// TestLongNeeds: a need that is there lets the test run; a missing one
// fails it saying what to install (PATH and the OVMF directory pointed at
// nothing for the second half).
func TestLongNeeds(t *testing.T) {
	if got := call(t, func(tb testing.TB) { Long(tb, Fixtures, QEMU, OVMF, Peers, Services, Network) }); got != "" {
		t.Errorf("Long with everything installed: %q, want the test to run", got)
	}
	t.Setenv("PATH", t.TempDir())
	if got := call(t, func(tb testing.TB) { Long(tb, QEMU) }); !strings.Contains(got, "qemu-system-x86_64 is not installed") || !strings.Contains(got, "scripts/deps.sh") {
		t.Errorf("Long without QEMU: %q", got)
	}
	old := ovmfDir
	ovmfDir = t.TempDir() + "/none"
	defer func() { ovmfDir = old }()
	if got := call(t, func(tb testing.TB) { Long(tb, OVMF) }); !strings.HasPrefix(got, "fatal: needs Debian's OVMF") {
		t.Errorf("Long without OVMF: %q", got)
	}
}

func TestEventually(t *testing.T) {
	n := 0
	if !Eventually(time.Minute, time.Millisecond, func() bool { n++; return n == 3 }) || n != 3 {
		t.Errorf("Eventually stopped after %d calls", n)
	}
	if Eventually(5*time.Millisecond, time.Millisecond, func() bool { return false }) {
		t.Error("Eventually true for a condition that never holds")
	}
}
