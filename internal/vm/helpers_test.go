package vm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// needTool fails the test when a program is missing, naming its package.
func needTool(t testing.TB, name, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s not found: install the Debian package %s", name, pkg)
	}
}

func needQEMU(t testing.TB) {
	t.Helper()
	// Every test that boots or starts QEMU begins here.
	testfixtures.Long(t, testfixtures.QEMU, testfixtures.OVMF)
	needTool(t, "qemu-system-x86_64", "qemu-system-x86")
	needTool(t, "qemu-img", "qemu-utils")
	for _, f := range []string{"OVMF_CODE_4M.secboot.fd", "OVMF_VARS_4M.ms.fd", "OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"} {
		if _, err := os.Stat(filepath.Join(OVMFDir, f)); err != nil {
			t.Fatalf("%s: install the Debian package ovmf", err)
		}
	}
}

// workDir is a per-test parent for VM temp dirs; checkClean verifies that
// nothing is left in it and no QEMU process of it runs.
func workDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	t.Cleanup(func() { checkClean(t, d) })
	return d
}

// checkClean fails when a process whose command line mentions dir is alive or
// when dir is not empty.
func checkClean(t *testing.T, dir string) {
	t.Helper()
	if pids := processesMentioning(dir); len(pids) > 0 {
		t.Errorf("processes still running with %s in their command line: %v", dir, pids)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Errorf("read work dir: %v", err)
		return
	}
	for _, e := range entries {
		t.Errorf("left behind in the work dir: %s", e.Name())
	}
}

func processesMentioning(s string) []string {
	var pids []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil {
			// A zombie has no command line worth reporting and is not running.
			if f := strings.Fields(string(st)); len(f) > 2 && f[2] == "Z" {
				continue
			}
		}
		if bytes.Contains(b, []byte(s)) {
			pids = append(pids, e.Name()+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return pids
}

// imageStamp identifies an image file's content cheaply but well enough to
// notice a write: size, mtime and the sha256 of the ranges given (offset,
// length; clipped to the file).
func imageStamp(t *testing.T, path string, ranges ...[2]int64) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	for _, r := range ranges {
		if _, err := io.Copy(h, io.NewSectionReader(f, r[0], r[1])); err != nil {
			t.Fatal(err)
		}
	}
	return fmt.Sprintf("size %d mtime %s sha256 %x", st.Size(), st.ModTime().UTC().Format(time.RFC3339Nano), h.Sum(nil))
}

// start starts a VM and registers its Close; the test log gets the VM's
// progress lines.
func start(t *testing.T, ctx context.Context, cfg Config) *Machine {
	t.Helper()
	if cfg.Log == nil {
		cfg.Log = testLog{t}
	}
	m, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return m
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// run runs a command on the host and fails the test on error.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}
