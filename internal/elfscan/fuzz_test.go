package elfscan

import (
	"debug/elf"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/vouch-dev/vouch/internal/rootfs"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

var update = flag.Bool("update", false, "rebuild the fuzz seed corpus from the Debian fixture root")

// seeds are the real binaries of the Debian fixture root the FuzzScan corpus
// holds (small ones: a shared library and a PIE executable), and what Scan
// must read from each.
var seeds = []struct {
	name, path string
	want       func(*Info) bool
}{
	{"pam_deny.so", "usr/lib/x86_64-linux-gnu/security/pam_deny.so", func(i *Info) bool {
		return i.Type == elf.ET_DYN && !i.Executable() && i.PIE() == "dso" && i.FullRelro() && i.NX()
	}},
	{"logsave", "usr/sbin/logsave", func(i *Info) bool {
		return i.Executable() && i.PIE() == "yes" && i.FullRelro() && i.NX() && i.Canary && i.Interp
	}},
}

func seedPath(name string) string { return filepath.Join("testdata", "fuzz", "FuzzScan", name) }

// scanBytes scans a root holding b as usr/bin/x and as the target's libc.
func scanBytes(t *testing.T, b []byte) *Result {
	t.Helper()
	m := fstest.MapFS{
		"usr/bin/x":                          {Data: b, Mode: 0o755},
		"usr/lib/x86_64-linux-gnu/libc.so.6": {Data: b, Mode: 0o755},
	}
	r, err := Scan(rootfs.New(m))
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	return r
}

// TestFuzzSeeds checks that the seeds cut from the fixture root are present
// and read as the real binaries they are; with -update it copies them from
// the fixture root again.
func TestFuzzSeeds(t *testing.T) {
	for _, sd := range seeds {
		t.Run(sd.name, func(t *testing.T) {
			if *update {
				src := filepath.Join(testfixtures.Path(t, "rootfs"), sd.path)
				b, err := os.ReadFile(src)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.MkdirAll(filepath.Dir(seedPath(sd.name)), 0o755); err != nil {
					t.Fatal(err)
				}
				corpus := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
				if err := os.WriteFile(seedPath(sd.name), []byte(corpus), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			raw, err := os.ReadFile(seedPath(sd.name))
			if err != nil {
				t.Fatalf("%v (rebuild the corpus with go test ./internal/elfscan -run TestFuzzSeeds -update)", err)
			}
			body, ok := strings.CutPrefix(strings.TrimSpace(string(raw)), "go test fuzz v1\n[]byte(")
			if !ok || !strings.HasSuffix(body, ")") {
				t.Fatalf("%s: not a one-value corpus file", sd.name)
			}
			s, err := strconv.Unquote(strings.TrimSuffix(body, ")"))
			if err != nil {
				t.Fatalf("%s: %v", sd.name, err)
			}
			r := scanBytes(t, []byte(s))
			if len(r.Unreadable) > 0 || len(r.Binaries) != 2 {
				t.Fatalf("%s: %d binaries, unreadable %v", sd.name, len(r.Binaries), r.Unreadable)
			}
			if b := r.Binaries[0]; !sd.want(b) {
				t.Errorf("%s: unexpected properties %+v", sd.name, *b)
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		data       []byte
		unreadable string // in the one unreadable entry, "" when none
		binaries   int
	}{
		{"truncated", b[:200], "usr/bin/x", 0},
		{"header only", b[:10], "truncated ELF header", 0},
		{"not ELF", []byte("#!/bin/sh\necho hi\n"), "", 0},
		{"whole", b, "", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := scanBytes(t, tc.data)
			if len(r.Binaries) != tc.binaries {
				t.Errorf("%d binaries, want %d", len(r.Binaries), tc.binaries)
			}
			if tc.unreadable == "" {
				if len(r.Unreadable) > 0 {
					t.Errorf("unreadable: %v", r.Unreadable)
				}
				return
			}
			if len(r.Unreadable) == 0 || !strings.Contains(strings.Join(r.Unreadable, "\n"), tc.unreadable) {
				t.Errorf("unreadable %v, want %q", r.Unreadable, tc.unreadable)
			}
		})
	}
}

// FuzzScan feeds arbitrary bytes as an executable and as the libc FORTIFY is
// measured against: Scan returns, lists the file as read or unreadable, and
// never panics.
func FuzzScan(f *testing.F) {
	if exe, err := os.Executable(); err == nil {
		if b, err := os.ReadFile(exe); err == nil {
			f.Add(b[:min(len(b), 8192)])
		}
	}
	f.Add([]byte("\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x03\x00\x3e\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := scanBytes(t, b)
		if n := len(r.Binaries) + len(r.Unreadable); n > 2 {
			t.Fatalf("%d results for two files", n)
		}
		for _, i := range r.Binaries {
			if i.Fortified > i.Fortifiable {
				t.Fatalf("%d fortified of %d fortifiable", i.Fortified, i.Fortifiable)
			}
			switch i.PIE() {
			case "no", "yes", "dso":
			default:
				t.Fatalf("PIE %q", i.PIE())
			}
		}
	})
}
