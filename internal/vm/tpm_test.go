package vm

import (
	"context"
	"github.com/vouch-dev/vouch/internal/testfixtures"
	"os"
	"path/filepath"
	"testing"
)

// TestSwtpmStartStop starts the software TPM the VM would use and stops it:
// the control socket appears, and after stop no swtpm of the directory is
// left running.
func TestSwtpmStartStop(t *testing.T) {
	testfixtures.Long(t, testfixtures.Services)
	needTool(t, "swtpm", "swtpm")
	dir := t.TempDir()
	tpm, err := startTPM(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "tpm.sock")); err != nil {
		t.Errorf("no control socket: %v", err)
	}
	if pids := processesMentioning(dir); len(pids) != 1 {
		t.Errorf("want one swtpm running for %s, found %v", dir, pids)
	}
	tpm.stop()
	tpm.stop() // idempotent
	if pids := processesMentioning(dir); len(pids) != 0 {
		t.Errorf("swtpm still running after stop: %v", pids)
	}
	args := tpmArgs("/a,b/tpm.sock")
	if args[1] != "socket,id=chrtpm,path=/a,,b/tpm.sock" || args[len(args)-1] != "tpm-crb,tpmdev=tpm0" {
		t.Errorf("QEMU arguments %v", args)
	}
}
