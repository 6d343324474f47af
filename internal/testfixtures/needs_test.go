package testfixtures

import (
	"flag"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// recorder is a testing.TB that records how a helper ended the test.
type recorder struct {
	testing.TB
	ended string // "fatal: ..." or "skip: ..."
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.ended = "fatal: " + fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (r *recorder) Skip(args ...any) {
	r.ended = "skip: " + fmt.Sprint(args...)
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

func withShort(t *testing.T, short bool) {
	t.Helper()
	old := flag.Lookup("test.short").Value.String()
	if err := flag.Set("test.short", fmt.Sprint(short)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { flag.Set("test.short", old) })
}

func TestShortGuards(t *testing.T) {
	withShort(t, true)
	if got := call(t, func(tb testing.TB) { Long(tb, QEMU, OVMF) }); got != "skip: needs a QEMU boot and Debian's OVMF (package ovmf): not run under -short (make test runs it)" {
		t.Errorf("Long under -short: %q", got)
	}
	for name, f := range map[string]func(testing.TB){
		"Path":   func(tb testing.TB) { Path(tb, "debian.raw") },
		"Deb":    func(tb testing.TB) { Deb(tb, "shim-signed/usr/lib/shim/shimx64.efi.signed") },
		"Kernel": func(tb testing.TB) { Kernel(tb) },
		"Schema": func(tb testing.TB) { Schema(tb, "spdx-2.3.schema.json") },
	} {
		if got := call(t, f); !strings.HasPrefix(got, "fatal: testfixtures: ") || !strings.Contains(got, "call testfixtures.NeedFixtures(t)") {
			t.Errorf("%s under -short: %q, want a failure saying to guard the test", name, got)
		}
	}
	if got := call(t, func(tb testing.TB) {
		if DebSeed(tb, "shim-signed/usr/lib/shim/shimx64.efi.signed") != nil {
			tb.Fatalf("a seed under -short")
		}
	}); got != "" {
		t.Errorf("DebSeed under -short: %q", got)
	}
	withShort(t, false)
	if got := call(t, func(tb testing.TB) { Long(tb, Fixtures) }); got != "" {
		t.Errorf("Long without -short: %q, want the test to run", got)
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
