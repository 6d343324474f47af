package pgtest_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vouch-dev/vouch/internal/pgtest"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// TestServerDiesWithTest runs this test binary again as a child that starts
// a cluster and waits, kills the child with SIGKILL (as go test's timeout or
// an impatient user does), and checks that the server goes too: a killed
// test must not leave PostgreSQL running.
func TestServerDiesWithTest(t *testing.T) {
	testfixtures.Long(t, testfixtures.Services)
	if os.Getenv("PGTEST_CHILD") == "1" {
		c, err := pgtest.StartCluster()
		if err != nil {
			t.Fatal(err)
		}
		os.Stdout.WriteString("DIR " + c.Dir + "\n")
		select {} // killed by the parent
	}
	child := exec.Command(os.Args[0], "-test.run=^TestServerDiesWithTest$", "-test.v")
	child.Env = append(os.Environ(), "PGTEST_CHILD=1")
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Process.Kill()
	var dir string
	for sc := bufio.NewScanner(out); sc.Scan(); {
		if d, ok := strings.CutPrefix(sc.Text(), "DIR "); ok {
			dir = d
			break
		}
	}
	if dir == "" {
		t.Fatal("the child started no cluster")
	}
	defer os.RemoveAll(dir)
	// The postmaster's PID is postmaster.pid's first line.
	b, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(first)
	if err != nil {
		t.Fatalf("postmaster.pid: %v", err)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("postgres (pid %d) is not running while the child lives: %v", pid, err)
	}
	child.Process.Signal(syscall.SIGKILL)
	child.Wait()
	gone := testfixtures.Eventually(time.Minute, 100*time.Millisecond, func() bool {
		// The server is the dead child's child: reparented, then reaped
		// by init; until then it is a zombie, which counts as gone.
		st, err := os.ReadFile("/proc/" + first + "/stat")
		return err != nil || strings.Contains(string(st), ") Z ")
	})
	if !gone {
		t.Fatalf("postgres (pid %d) still runs a minute after its test process was killed", pid)
	}
}
