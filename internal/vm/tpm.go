package vm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// swtpm is a software TPM 2.0 (Debian's swtpm) serving one VM over a unix
// socket: QEMU's tpm-emulator backend talks to its control channel and the TPM
// commands go over the same connection. It runs as a child process in its
// own process group, with SIGKILL when the process that started it dies, and
// --terminate makes it exit when QEMU closes the connection; Close kills it
// in any case. The TPM's state lives in the VM's temporary directory (a
// fresh TPM per VM; PCRs reset on every machine reset, as on hardware).
type swtpm struct {
	cmd    *exec.Cmd
	sock   string
	done   chan struct{}
	status string
}

// startTPM starts swtpm with its state and control socket in dir and waits
// until the socket accepts a connection.
func startTPM(ctx context.Context, dir string) (*swtpm, error) {
	bin, err := exec.LookPath("swtpm")
	if err != nil {
		return nil, &Error{Op: "tpm", Reason: "swtpm not found in PATH (install the Debian package swtpm)", Err: err}
	}
	state := filepath.Join(dir, "tpm")
	if err := os.MkdirAll(state, 0o700); err != nil {
		return nil, &Error{Op: "tpm", Reason: "create the TPM state directory", Err: err}
	}
	sock := filepath.Join(dir, "tpm.sock")
	os.Remove(sock)
	logPath := filepath.Join(dir, "swtpm.log")
	cmd := exec.Command(bin, "socket", "--tpm2",
		"--tpmstate", "dir="+state,
		"--ctrl", "type=unixio,path="+sock,
		"--log", "file="+logPath+",level=1",
		"--terminate")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, &Error{Op: "tpm", Reason: "run " + bin, Err: err}
	}
	t := &swtpm{cmd: cmd, sock: sock, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		t.status = "exit status 0"
		if err != nil {
			t.status = err.Error()
		}
		close(t.done)
	}()
	// The socket exists once swtpm listens; poll for it with a deadline.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			return t, nil
		}
		select {
		case <-t.done:
			return nil, &Error{Op: "tpm", Reason: "swtpm exited before listening (" + t.status + "): " + readTail(logPath, 10)}
		case <-ctx.Done():
			t.stop()
			return nil, &Error{Op: "tpm", Reason: "cancelled while starting swtpm", Err: ctx.Err()}
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.stop()
			return nil, &Error{Op: "tpm", Reason: fmt.Sprintf("swtpm did not create %s within 20s: %s", sock, readTail(logPath, 10))}
		}
	}
}

// stop kills swtpm's process group and waits for it.
func (t *swtpm) stop() {
	if t == nil {
		return
	}
	select {
	case <-t.done:
		return
	default:
	}
	if p := t.cmd.Process; p != nil {
		syscall.Kill(-p.Pid, syscall.SIGKILL)
		p.Kill()
	}
	<-t.done
}

// tpmArgs is QEMU's part: the emulator backend on swtpm's socket and a
// CRB interface (what OVMF's Tcg2 stack and Linux's tpm_crb drive).
func tpmArgs(sock string) []string {
	return []string{
		"-chardev", "socket,id=chrtpm,path=" + qemuPath(sock),
		"-tpmdev", "emulator,id=tpm0,chardev=chrtpm",
		"-device", "tpm-crb,tpmdev=tpm0",
	}
}

// saveVars copies the VM's variable store to path (written to a temporary
// name beside it, then renamed).
func saveVars(src, path string) error {
	if path == "" {
		return nil
	}
	tmp := path + ".tmp"
	os.Remove(tmp)
	if err := copyFile(src, tmp); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}
