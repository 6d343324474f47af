package jobs

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a buffer the follower writes while the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestConsoleFollower writes a serial log as QEMU does, under a VM
// directory of the run's work directory: the follower passes each line on
// while the file grows, cleaned of escapes, and still reads what was
// written before the VM's directory was removed.
func TestConsoleFollower(t *testing.T) {
	dir := t.TempDir()
	vmDir := filepath.Join(dir, "vouch-vm-123")
	if err := os.Mkdir(vmDir, 0o700); err != nil {
		t.Fatal(err)
	}
	serial, err := os.Create(filepath.Join(vmDir, "serial.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer serial.Close()
	var out lockedBuffer
	f := followConsoles(dir, &out)
	waitOut := func(want string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(out.String(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("follower output %q lacks %q", out.String(), want)
			}
			time.Sleep(20 * time.Millisecond) // polling the follower's output with a deadline
		}
	}
	serial.WriteString("\x1b[2J\x1b[01;01HBdsDxe: loading Boot0001\r\n")
	waitOut("BdsDxe: loading Boot0001\n")
	serial.WriteString("Welcome to GRUB!\r\n\x1b[0mLoading Linux ...")
	waitOut("Welcome to GRUB!\n")
	if strings.Contains(out.String(), "Loading Linux") {
		t.Errorf("an unfinished line was passed on: %q", out.String())
	}
	// The VM ends and its directory goes before the follower stops.
	serial.WriteString("\ndebian login: ")
	os.RemoveAll(vmDir)
	if n := f.stop(); n != 4 {
		t.Errorf("%d lines followed, want 4", n)
	}
	if got := out.String(); got != "BdsDxe: loading Boot0001\nWelcome to GRUB!\nLoading Linux ...\ndebian login: \n" {
		t.Errorf("followed %q", got)
	}
}

// TestConsoleFollowerVMs: two VMs of one run write at once; the second's
// lines are marked, so the interleaved consoles can be told apart.
func TestConsoleFollowerVMs(t *testing.T) {
	dir := t.TempDir()
	var logs []*os.File
	for _, name := range []string{"vouch-vm-1", "vouch-vm-2"} {
		if err := os.Mkdir(filepath.Join(dir, name), 0o700); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(filepath.Join(dir, name, "serial.log"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		logs = append(logs, f)
	}
	var out lockedBuffer
	f := followConsoles(dir, &out)
	logs[0].WriteString("first: BdsDxe\r\n")
	logs[1].WriteString("second: BdsDxe\r\n")
	logs[0].WriteString("first: GRUB\r\n")
	logs[1].WriteString("second: GRUB\r\n")
	if n := f.stop(); n != 4 {
		t.Errorf("%d lines followed, want 4", n)
	}
	got := strings.Split(strings.TrimSpace(out.String()), "\n")
	var first, second []string
	for _, l := range got {
		if rest, ok := strings.CutPrefix(l, "[vm 2] "); ok {
			second = append(second, rest)
		} else {
			first = append(first, l)
		}
	}
	if strings.Join(first, "|") != "first: BdsDxe|first: GRUB" || strings.Join(second, "|") != "second: BdsDxe|second: GRUB" {
		t.Errorf("followed %q: want the first VM's lines as they are and the second's marked [vm 2]", got)
	}
}
