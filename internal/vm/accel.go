package vm

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ProbeResult is what the KVM probe found.
type ProbeResult struct {
	Accel  string        // "kvm" when KVM works for this firmware, else "tcg"
	Reason string        // why, for people
	Took   time.Duration // how long the probe ran
}

// probeTimeout is how long the probe guest has to show it runs: the probe
// sector's line (BIOS) or OVMF's boot manager ("BdsDxe:", UEFI). Under a
// working KVM both come within a few seconds; a KVM that cannot run the
// guest fails at once (QEMU exits, or reports a KVM internal error).
const probeTimeout = 20 * time.Second

// probeSpec is what the probe must prove: the machine and firmware of the
// real VM (q35, SMM for the Secure Boot build, -cpu host, the same OVMF code
// file). A KVM that boots a plain guest may still refuse these (nested
// virtualization without SMM, a KVM emulation failure in OVMF's early code).
type probeSpec struct {
	boot       Boot
	secureBoot bool
	code, vars string // firmware files (UEFI)
}

func specOf(fw Firmware) (probeSpec, error) {
	sp := probeSpec{boot: fw.Boot, secureBoot: fw.SecureBoot && fw.Boot == UEFI}
	if fw.Boot == UEFI {
		code, vars, err := firmwareFiles(fw)
		if err != nil {
			return sp, err
		}
		sp.code, sp.vars = code, vars
	}
	return sp, nil
}

// key is sp without the variable store, which does not change what KVM can
// run.
func (sp probeSpec) key() probeSpec {
	sp.vars = ""
	return sp
}

func (sp probeSpec) String() string {
	switch {
	case sp.boot == BIOS:
		return "BIOS guest"
	case sp.secureBoot:
		return "OVMF Secure Boot (SMM) guest"
	}
	return "OVMF guest"
}

// Probe results, per firmware set-up, for the process's life. A probe cut
// short by its context is not kept.
var kvmProbe struct {
	mu      sync.Mutex
	results map[probeSpec]ProbeResult
}

// ProbeKVM reports whether KVM runs a guest with the machine and firmware of
// fw on this host, probing at most once per firmware set-up and process.
// A probe whose context ends is reported as such and not remembered.
func ProbeKVM(ctx context.Context, fw Firmware, workDir string) ProbeResult {
	sp, err := specOf(fw)
	if err != nil {
		return ProbeResult{Accel: "tcg", Reason: fmt.Sprintf("firmware: %v", err)}
	}
	r, _ := probeCached(ctx, sp, workDir)
	return r
}

// probeCached returns the remembered result for sp, or probes; first
// reports that this call probed.
func probeCached(ctx context.Context, sp probeSpec, workDir string) (r ProbeResult, first bool) {
	kvmProbe.mu.Lock()
	defer kvmProbe.mu.Unlock()
	if r, ok := kvmProbe.results[sp.key()]; ok {
		return r, false
	}
	r = probeKVM(ctx, sp, workDir)
	if ctx.Err() == nil {
		if kvmProbe.results == nil {
			kvmProbe.results = map[probeSpec]ProbeResult{}
		}
		kvmProbe.results[sp.key()] = r
	}
	return r, true
}

// rememberTCG records that KVM failed for sp after all (the VM's own start).
func rememberTCG(sp probeSpec, reason string) {
	kvmProbe.mu.Lock()
	defer kvmProbe.mu.Unlock()
	if kvmProbe.results == nil {
		kvmProbe.results = map[probeSpec]ProbeResult{}
	}
	kvmProbe.results[sp.key()] = ProbeResult{Accel: "tcg", Reason: reason}
}

// autoAccel picks the accelerator for sp, logging the choice once per
// firmware set-up in one line.
func autoAccel(ctx context.Context, sp probeSpec, workDir string, log io.Writer) string {
	r, first := probeCached(ctx, sp, workDir)
	if first && log != nil {
		fmt.Fprintf(log, "vm: accelerator %s: %s (probe took %s)\n", r.Accel, r.Reason, r.Took.Round(10*time.Millisecond))
	}
	return r.Accel
}

func probeKVM(ctx context.Context, sp probeSpec, workDir string) ProbeResult {
	start := time.Now()
	tcg := func(format string, args ...any) ProbeResult {
		return ProbeResult{Accel: "tcg", Reason: fmt.Sprintf(format, args...), Took: time.Since(start)}
	}
	if err := ctx.Err(); err != nil {
		return tcg("KVM probe cancelled (%v); using TCG (software emulation)", err)
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return tcg("KVM not usable (%v); using TCG (software emulation)", err)
	}
	f.Close()
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return tcg("qemu-system-x86_64 not found")
	}
	if err := probeBoot(ctx, qemu, workDir, sp, "kvm", probeTimeout); err != nil {
		if ctx.Err() != nil {
			return tcg("KVM probe cancelled (%v); using TCG (software emulation)", ctx.Err())
		}
		return tcg("/dev/kvm exists but KVM cannot run the %s (%v); using TCG (software emulation)", sp, err)
	}
	return ProbeResult{Accel: "kvm", Reason: fmt.Sprintf("a KVM test %s started its firmware", sp), Took: time.Since(start)}
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

// probeBoot boots a guest with sp's machine and firmware under accel and
// waits until it shows it runs: the probe sector's line on the serial port
// (BIOS), or OVMF's boot manager (UEFI, no disk: "BdsDxe:"). QEMU exiting or
// reporting a KVM internal error fails at once. QEMU is killed and its files
// removed on every path.
func probeBoot(ctx context.Context, qemu, workDir string, sp probeSpec, accel string, timeout time.Duration) error {
	dir, err := os.MkdirTemp(workDir, "vouch-probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	serial := filepath.Join(dir, "serial.log")
	args := []string{"-nodefaults", "-no-user-config", "-m", "256", "-display", "none", "-no-reboot",
		"-chardev", "file,id=s0,path=" + qemuPath(serial), "-serial", "chardev:s0"}
	marker := []byte(probeMarker)
	if sp.boot == UEFI {
		vars := filepath.Join(dir, "vars.fd")
		if err := copyFile(sp.vars, vars); err != nil {
			return err
		}
		args = append(args, machineArgs(sp, accel, sp.code, vars)...)
		marker = []byte("BdsDxe:")
	} else {
		img := filepath.Join(dir, "probe.img")
		// A 1 MiB disk: SeaBIOS does not boot a one-sector virtio disk.
		disk := append(probeSector(), make([]byte, 1<<20-512)...)
		if err := os.WriteFile(img, disk, 0o600); err != nil {
			return err
		}
		args = append(args, machineArgs(sp, accel, "", "")...)
		args = append(args, "-drive", "if=none,id=d0,format=raw,file="+qemuPath(img), "-device", "virtio-blk-pci,drive=d0")
	}
	var stderr syncBuffer
	cmd := exec.Command(qemu, args...)
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
			return fmt.Errorf("QEMU exited: %v: %s", err, firstLines(stderr.String()))
		case <-deadline.C:
			return fmt.Errorf("the guest showed nothing within %s", timeout)
		case <-tick.C:
			if e := stderr.String(); strings.Contains(e, "KVM internal error") {
				return fmt.Errorf("QEMU: %s", firstLines(e))
			}
			if b, _ := os.ReadFile(serial); bytes.Contains(b, marker) {
				return nil
			}
		}
	}
}

// firstLines is QEMU's stderr in one line, its warnings about CPU features
// left out.
func firstLines(s string) string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l = strings.TrimSpace(l); l == "" || strings.Contains(l, "host doesn't support requested feature") {
			continue
		}
		out = append(out, strings.TrimPrefix(l, "qemu-system-x86_64: "))
		if len(out) == 2 {
			break
		}
	}
	return strings.Join(out, "; ")
}

// syncBuffer is a bytes.Buffer safe for QEMU's stderr copier and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
