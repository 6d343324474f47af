package vm

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// ProbeResult is what the KVM probe found.
type ProbeResult struct {
	Accel  string        // "kvm" when KVM works, else "tcg"
	Reason string        // why, for people
	Took   time.Duration // how long the probe ran
}

// probeTimeout is how long the probe guest has to print its line. Under a
// working KVM it prints within milliseconds of SeaBIOS starting; under TCG the
// same guest needs well under a second even on a loaded machine.
const probeTimeout = 5 * time.Second

// The probe runs once per process: every VM of a run uses its result.
var kvmProbe struct {
	once   sync.Once
	result ProbeResult
}

// ProbeKVM reports whether KVM works on this host, probing at most once per
// process (later calls return the first result).
func ProbeKVM(ctx context.Context, workDir string) ProbeResult {
	kvmProbe.once.Do(func() {
		kvmProbe.result = probeKVM(ctx, workDir)
	})
	return kvmProbe.result
}

func autoAccel(ctx context.Context, workDir string, log io.Writer) string {
	first := false
	kvmProbe.once.Do(func() {
		first = true
		kvmProbe.result = probeKVM(ctx, workDir)
	})
	r := kvmProbe.result
	if first && log != nil {
		fmt.Fprintf(log, "vm: accelerator %s: %s (probe took %s)\n", r.Accel, r.Reason, r.Took.Round(10*time.Millisecond))
	}
	return r.Accel
}

func probeKVM(ctx context.Context, workDir string) ProbeResult {
	start := time.Now()
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return ProbeResult{Accel: "tcg", Reason: fmt.Sprintf("KVM not usable (%v); using TCG (software emulation)", err), Took: time.Since(start)}
	}
	f.Close()
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return ProbeResult{Accel: "tcg", Reason: "qemu-system-x86_64 not found", Took: time.Since(start)}
	}
	if err := probeBoot(ctx, qemu, workDir, "kvm", probeTimeout); err != nil {
		return ProbeResult{Accel: "tcg", Reason: fmt.Sprintf("/dev/kvm exists but a KVM test guest failed (%v); using TCG (software emulation)", err), Took: time.Since(start)}
	}
	return ProbeResult{Accel: "kvm", Reason: "a KVM test guest booted and printed to its serial port", Took: time.Since(start)}
}

// probeMarker is what the probe guest prints.
const probeMarker = "VOUCH-PROBE-OK"

// probeSector is a BIOS boot sector (loaded by SeaBIOS at 0000:7C00, real mode)
// that writes probeMarker to COM1 (I/O port 0x3F8) and halts:
//
//	00: 31 C0        xor ax, ax
//	02: 8E D8        mov ds, ax
//	04: FC           cld
//	05: BA F8 03     mov dx, 0x3F8
//	08: BE 18 7C     mov si, 0x7C18      ; the message at offset 0x18
//	0B: AC           lodsb               ; loop:
//	0C: 84 C0        test al, al
//	0E: 74 03        jz 0x13
//	10: EE           out dx, al
//	11: EB F8        jmp 0x0B
//	13: FA           cli                 ; done:
//	14: F4           hlt
//	15: EB FC        jmp 0x13
//	17: 90           nop
//	18: "VOUCH-PROBE-OK\r\n\0"
//	1FE: 55 AA       boot signature
func probeSector() []byte {
	s := make([]byte, 512)
	copy(s, []byte{0x31, 0xC0, 0x8E, 0xD8, 0xFC, 0xBA, 0xF8, 0x03, 0xBE, 0x18, 0x7C,
		0xAC, 0x84, 0xC0, 0x74, 0x03, 0xEE, 0xEB, 0xF8, 0xFA, 0xF4, 0xEB, 0xFC, 0x90})
	copy(s[0x18:], probeMarker+"\r\n\x00")
	s[510], s[511] = 0x55, 0xAA
	return s
}

// probeBoot boots the probe sector with accel and waits for its line on the
// serial port. QEMU is killed and its files removed on every path.
func probeBoot(ctx context.Context, qemu, workDir, accel string, timeout time.Duration) error {
	dir, err := os.MkdirTemp(workDir, "vouch-probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	img := filepath.Join(dir, "probe.img")
	if err := os.WriteFile(img, probeSector(), 0o600); err != nil {
		return err
	}
	serial := filepath.Join(dir, "serial.log")
	var stderr bytes.Buffer
	cmd := exec.Command(qemu, "-nodefaults", "-no-user-config", "-machine", "pc",
		"-accel", accel, "-m", "32", "-display", "none", "-no-reboot",
		"-chardev", "file,id=s0,path="+qemuPath(serial), "-serial", "chardev:s0",
		"-drive", "if=ide,format=raw,file="+qemuPath(img))
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-exited:
			exited <- err // for the deferred wait
			return fmt.Errorf("QEMU exited: %v: %s", err, bytes.TrimSpace(stderr.Bytes()))
		case <-deadline.C:
			return fmt.Errorf("the guest printed nothing within %s", timeout)
		case <-tick.C:
			if b, _ := os.ReadFile(serial); bytes.Contains(b, []byte(probeMarker)) {
				return nil
			}
		}
	}
}
