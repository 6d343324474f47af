// Package vm runs a disk image under QEMU for image-validation tests (`vouch
// test`): UEFI (Debian's OVMF, Secure Boot on or off, a chosen variable store)
// or legacy BIOS, the image behind a throw-away qcow2 overlay so it is never
// written, the serial console captured to a file and scanned live, QMP for power
// control, user-mode networking with SSH forwarded to 127.0.0.1 only, an optional
// NoCloud seed with an ephemeral SSH key, and a hard time limit.
//
// Every exit path cleans up: Close (and a failed Start) kills QEMU's process
// group and removes the VM's temporary directory; the context given to Start
// and Config.Timeout kill the VM; QEMU gets SIGKILL if the process that started
// it dies (Pdeathsig).
//
// KVM is used when it works for the VM at hand. On some hosts /dev/kvm exists
// but guests hang under it, or KVM boots a plain guest but not OVMF (nested
// virtualization: no SMM for the Secure Boot build, an emulation failure for
// the plain one). So "auto" first boots a probe guest with the real VM's
// machine options and firmware code (q35, SMM for Secure Boot, -cpu host) that
// must reach the firmware's boot manager (BIOS: print from its boot sector)
// within a few seconds, once per firmware set-up and process, and falls back to
// TCG (software emulation) saying why in one line; a KVM start that still fails
// falls back the same way. A probe cut short by its context is not remembered.
//
// At most DefaultGuestSlots guests run at once machine-wide (AcquireSlot: flock
// on slot files under SlotDir), whichever process starts them.
package vm

import (
	"context"
	"errors"
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

// Boot is how the VM boots.
type Boot int

// The boot modes.
const (
	UEFI Boot = iota // OVMF
	BIOS             // SeaBIOS (QEMU's default firmware)
)

func (b Boot) String() string {
	if b == BIOS {
		return "bios"
	}
	return "uefi"
}

// OVMFDir is where Debian's ovmf package puts the firmware.
const OVMFDir = "/usr/share/OVMF"

// Firmware selects the firmware and its initial state.
type Firmware struct {
	Boot       Boot
	SecureBoot bool // OVMF_CODE_4M.secboot.fd on a q35 with SMM; false: OVMF_CODE_4M.fd
	// Vars is the variable-store template, copied per VM and never modified;
	// "": OVMF_VARS_4M.ms.fd (Microsoft 2011 keys enrolled) with SecureBoot,
	// else OVMF_VARS_4M.fd (no keys).
	Vars string
	// Code is the firmware code image; "": the OVMF_CODE_4M file above. It
	// must match the size of Vars (4M builds with 4M stores).
	Code string
}

// Config describes a VM.
type Config struct {
	Image     string   // raw, qcow2, VHD (fixed/dynamic), VHDX; never written
	Firmware  Firmware //
	MemoryMiB int      // default 1024
	CPUs      int      // default 1
	// Accel is "auto" (default: KVM when a probe boot shows it works, else
	// TCG), "kvm" or "tcg".
	Accel string
	// Timeout is the hard limit for the VM's whole life: QEMU is killed when
	// it is reached, whatever is going on. Default 10m.
	Timeout time.Duration
	WorkDir string // parent of the VM's temporary directory; default os.TempDir()
	// CloudInit attaches a NoCloud "cidata" seed that creates user GuestUser
	// with an ephemeral ed25519 key and passwordless sudo.
	CloudInit bool
	// SSHPort is the host port (on 127.0.0.1) forwarded to the guest's port
	// 22; 0 picks a free one (and retries with another if it is taken by the
	// time QEMU binds it).
	SSHPort int
	Log     io.Writer // progress and diagnostics for people; may be nil
}

// Error is a failure to run the VM (as opposed to a guest that does not boot):
// QEMU or firmware missing, an unreadable image, the SSH port in use, ...
type Error struct {
	Op          string // "start", "image", "firmware", "ssh", "reboot", ...
	Reason      string
	ConsoleTail []string // the serial console's last lines, when there was one
	Err         error
}

func (e *Error) Error() string {
	s := "vm: " + e.Op + ": " + e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// BootError is a boot that failed: a line on the console said so (Line), QEMU
// exited, or the boot did not finish in time.
type BootError struct {
	Reason string   // what happened, e.g. "kernel panic", "timeout after 5m0s"
	Line   string   // the console line that decided it; "" for timeouts and exits
	Tail   []string // the console's last lines
}

func (e *BootError) Error() string {
	if e.Line != "" {
		return fmt.Sprintf("vm: boot failed: %s: %q", e.Reason, e.Line)
	}
	return "vm: boot failed: " + e.Reason
}

// Machine is a running VM. Close it.
type Machine struct {
	cfg     Config
	dir     string
	accel   string
	port    int
	cmd     *exec.Cmd
	console *Console
	qmp     *QMP
	seed    *seed

	done       chan struct{} // closed when QEMU has exited
	exitStatus string        // valid after done
	followDone chan struct{}
	stopFollow chan struct{}
	stopWatch  func() bool // context.AfterFunc's stop
	timer      *time.Timer

	mu         sync.Mutex
	killReason string
	bootMark   int
	bootStart  time.Time
	hostKey    string

	closeOnce sync.Once
	closeErr  error
	slot      *Slot // the machine-wide guest budget, released by Close
}

func (cfg *Config) logf(format string, args ...any) {
	if cfg.Log != nil {
		fmt.Fprintf(cfg.Log, "vm: "+format+"\n", args...)
	}
}

// Start boots a VM. The context governs the VM's whole life: when it ends, QEMU
// is killed (Close must still be called to remove the temporary files). Errors
// are *Error.
func Start(ctx context.Context, cfg Config) (*Machine, error) {
	if cfg.MemoryMiB <= 0 {
		cfg.MemoryMiB = 1024
	}
	if cfg.CPUs <= 0 {
		cfg.CPUs = 1
	}
	if cfg.Accel == "" {
		cfg.Accel = "auto"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Minute
	}
	if cfg.WorkDir == "" {
		cfg.WorkDir = os.TempDir()
	}
	switch cfg.Accel {
	case "auto", "kvm", "tcg":
	default:
		return nil, &Error{Op: "start", Reason: fmt.Sprintf("unknown accelerator %q (want auto, kvm or tcg)", cfg.Accel)}
	}
	if cfg.SSHPort < 0 || cfg.SSHPort > 65535 {
		return nil, &Error{Op: "start", Reason: fmt.Sprintf("SSH port %d out of range", cfg.SSHPort)}
	}
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return nil, &Error{Op: "start", Reason: "qemu-system-x86_64 not found in PATH (install the Debian package qemu-system-x86)", Err: err}
	}
	qemuImg, err := exec.LookPath("qemu-img")
	if err != nil {
		return nil, &Error{Op: "start", Reason: "qemu-img not found in PATH (install the Debian package qemu-utils)", Err: err}
	}
	image, format, err := imageFormat(cfg.Image)
	if err != nil {
		return nil, err
	}
	code, vars, err := firmwareFiles(cfg.Firmware)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, &Error{Op: "start", Reason: "cancelled", Err: err}
	}
	// The machine-wide guest budget: the slot is held until Close (or this
	// function fails), and covers the accelerator probe too.
	slot, err := acquireSlot(ctx, func(n int, dir string) {
		cfg.logf("waiting for one of the %d QEMU guest slots of this machine (%s; VOUCH_QEMU_SLOTS changes the count)", n, dir)
	})
	if err != nil {
		return nil, &Error{Op: "start", Reason: "no QEMU guest slot", Err: err}
	}
	ok := false
	defer func() {
		if !ok {
			slot.Release()
		}
	}()
	sp := probeSpec{boot: cfg.Firmware.Boot, secureBoot: cfg.Firmware.SecureBoot && cfg.Firmware.Boot == UEFI, code: code, vars: vars}
	accel := cfg.Accel
	if accel == "auto" {
		accel = autoAccel(ctx, sp, cfg.WorkDir, cfg.Log)
	}

	dir, err := os.MkdirTemp(cfg.WorkDir, "vouch-vm-")
	if err != nil {
		return nil, &Error{Op: "start", Reason: "cannot create the VM's temporary directory", Err: err}
	}
	defer func() {
		if !ok {
			os.RemoveAll(dir)
		}
	}()
	if len(filepath.Join(dir, "qmp.sock")) >= 108 { // sockaddr_un.sun_path
		return nil, &Error{Op: "start", Reason: fmt.Sprintf("work directory path %s is too long for a unix socket", dir)}
	}
	overlay := filepath.Join(dir, "overlay.qcow2")
	out, err := exec.CommandContext(ctx, qemuImg, "create", "-q", "-f", "qcow2",
		"-b", image, "-F", format, overlay).CombinedOutput()
	if err != nil {
		return nil, &Error{Op: "image", Reason: fmt.Sprintf("qemu-img create (overlay over %s): %s", image, strings.TrimSpace(string(out))), Err: err}
	}
	var varsCopy string
	if cfg.Firmware.Boot == UEFI {
		varsCopy = filepath.Join(dir, "vars.fd")
		if err := copyFile(vars, varsCopy); err != nil {
			return nil, &Error{Op: "firmware", Reason: "copy the variable store " + vars, Err: err}
		}
	}
	var sd *seed
	seedPath := ""
	if cfg.CloudInit {
		if sd, err = newSeed(); err != nil {
			return nil, &Error{Op: "start", Reason: "cloud-init seed", Err: err}
		}
		seedPath = filepath.Join(dir, "seed.iso")
		if err := sd.writeISO(seedPath); err != nil {
			return nil, &Error{Op: "start", Reason: "cloud-init seed", Err: err}
		}
	}
	cfg.logf("%s: %s image, %s firmware%s, accel %s, temp dir %s", image, format,
		cfg.Firmware.Boot, map[bool]string{true: " (Secure Boot)", false: ""}[cfg.Firmware.SecureBoot && cfg.Firmware.Boot == UEFI], accel, dir)

	const attempts = 3
	for attempt := 1; ; attempt++ {
		port := cfg.SSHPort
		if port == 0 {
			if port, err = freePort(); err != nil {
				return nil, &Error{Op: "start", Reason: "no free TCP port on 127.0.0.1", Err: err}
			}
		}
		args := qemuArgs(cfg, accel, dir, code, varsCopy, overlay, seedPath, port)
		m, err := launch(ctx, cfg, qemu, args, dir, accel, port, sd)
		if err == nil {
			ok = true
			m.slot = slot
			return m, nil
		}
		var pe *portError
		if !errors.As(err, &pe) {
			if cfg.Accel == "auto" && accel == "kvm" && ctx.Err() == nil {
				// KVM passed the probe but QEMU could not start the VM
				// with it: software emulation, said in one line.
				reason := fmt.Sprintf("KVM passed the probe but QEMU failed to start the VM with it (%v); using TCG (software emulation)", err)
				if cfg.Log != nil {
					fmt.Fprintf(cfg.Log, "vm: accelerator tcg: %s\n", reason)
				}
				rememberTCG(sp, reason)
				accel = "tcg"
				if cfg.Firmware.Boot == UEFI {
					os.Remove(varsCopy)
					if err := copyFile(vars, varsCopy); err != nil {
						return nil, &Error{Op: "firmware", Reason: "copy the variable store " + vars, Err: err}
					}
				}
				attempt--
				continue
			}
			return nil, err
		}
		if cfg.SSHPort != 0 || attempt == attempts {
			reason := fmt.Sprintf("port 127.0.0.1:%d is in use", port)
			if cfg.SSHPort == 0 {
				reason = fmt.Sprintf("port in use: %d free ports were taken before QEMU could bind them (last 127.0.0.1:%d)", attempts, port)
			}
			return nil, &Error{Op: "start", Reason: reason + " (QEMU: " + pe.msg + ")"}
		}
		cfg.logf("port 127.0.0.1:%d was taken before QEMU bound it; retrying with another", port)
	}
}

// portError is QEMU refusing the hostfwd rule: the port is taken.
type portError struct{ msg string }

func (e *portError) Error() string { return "vm: " + e.msg }

// launch starts QEMU paused, connects QMP, starts the console reader and the
// watchdogs, and lets the guest run.
func launch(ctx context.Context, cfg Config, qemu string, args []string, dir, accel string, port int, sd *seed) (*Machine, error) {
	logPath := filepath.Join(dir, "qemu.log")
	serial := filepath.Join(dir, "serial.log")
	os.Remove(serial)
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, &Error{Op: "start", Reason: "create qemu.log", Err: err}
	}
	defer logf.Close()
	cmd := exec.Command(qemu, args...)
	cmd.Stdin = nil
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, &Error{Op: "start", Reason: "run " + qemu, Err: err}
	}
	m := &Machine{
		cfg: cfg, dir: dir, accel: accel, port: port, cmd: cmd, seed: sd,
		console:    newConsole(serial),
		done:       make(chan struct{}),
		followDone: make(chan struct{}),
		stopFollow: make(chan struct{}),
	}
	go func() {
		err := cmd.Wait()
		status := "exit status 0"
		if err != nil {
			status = err.Error()
		}
		m.mu.Lock()
		if m.killReason != "" {
			status = m.killReason
		}
		m.exitStatus = status
		m.mu.Unlock()
		close(m.done)
	}()

	// QMP: the socket exists once QEMU has parsed its options; with -S the
	// guest waits for "cont", so nothing of the console is missed.
	qctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	go func() {
		select {
		case <-m.done:
			cancel()
		case <-qctx.Done():
		}
	}()
	q, err := dialQMP(qctx, filepath.Join(dir, "qmp.sock"))
	cancel()
	if err != nil {
		m.kill("start failed")
		<-m.done
		qlog := readTail(logPath, 20)
		if strings.Contains(qlog, "Could not set up host forwarding rule") {
			return nil, &portError{msg: firstLine(qlog, "host forwarding")}
		}
		if qlog != "" {
			return nil, &Error{Op: "start", Reason: "QEMU failed: " + qlog, Err: err}
		}
		return nil, &Error{Op: "start", Reason: "QEMU did not answer on QMP", Err: err}
	}
	m.qmp = q
	go func() {
		m.console.follow(m.stopFollow, func() error {
			<-m.done
			return exitedErr(m.exitStatus)
		})
		close(m.followDone)
	}()
	go func() {
		<-m.done
		close(m.stopFollow)
	}()
	m.stopWatch = context.AfterFunc(ctx, func() { m.kill("cancelled: " + context.Cause(ctx).Error()) })
	m.timer = time.AfterFunc(cfg.Timeout, func() {
		cfg.logf("time limit %s reached: killing the VM", cfg.Timeout)
		m.kill(fmt.Sprintf("killed at the VM's time limit (%s)", cfg.Timeout))
	})
	m.bootStart = time.Now()
	if _, err := q.Execute(ctx, "cont", nil); err != nil {
		m.Close()
		return nil, &Error{Op: "start", Reason: "QMP cont", Err: err}
	}
	return m, nil
}

// kill sends SIGKILL to QEMU's process group, recording why.
func (m *Machine) kill(reason string) {
	m.mu.Lock()
	if m.killReason == "" {
		m.killReason = reason
	}
	m.mu.Unlock()
	select {
	case <-m.done:
		return
	default:
	}
	if p := m.cmd.Process; p != nil {
		syscall.Kill(-p.Pid, syscall.SIGKILL)
		p.Kill()
	}
}

// Accel is the accelerator in use: "kvm" or "tcg".
func (m *Machine) Accel() string { return m.accel }

// SSHPort is the host port on 127.0.0.1 forwarded to the guest's port 22.
func (m *Machine) SSHPort() int { return m.port }

// Console is the serial console.
func (m *Machine) Console() *Console { return m.console }

// QMP is the machine's QMP connection.
func (m *Machine) QMP() *QMP { return m.qmp }

// Done is closed when QEMU has exited.
func (m *Machine) Done() <-chan struct{} { return m.done }

// HostKey is the SHA256 fingerprint of the guest's SSH host key, once an SSH
// login has happened ("" before). It is recorded, never written to a
// known_hosts file.
func (m *Machine) HostKey() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.hostKey
}

// WaitBoot waits until the current boot (since Start or the last Reboot)
// reaches a login prompt or multi-user.target on the console, and returns how
// long the boot took. A failure line, QEMU exiting or ctx ending first is a
// *BootError. The resets of a first boot (shim's fallback creating its boot
// entry) are part of the boot.
func (m *Machine) WaitBoot(ctx context.Context) (time.Duration, error) {
	m.mu.Lock()
	mark, start := m.bootMark, m.bootStart
	m.mu.Unlock()
	var reason string
	var failed bool
	_, line, err := m.console.WaitFrom(ctx, mark, func(l string) bool {
		r, f, done := classify(l)
		if done {
			reason, failed = r, f
		}
		return done
	})
	took := time.Since(start)
	tail := m.console.Tail(40)
	switch {
	case errors.Is(err, ErrExited):
		return took, &BootError{Reason: fmt.Sprintf("QEMU exited after %s before the boot finished: %s", took.Round(time.Second), m.exitReason()), Tail: tail}
	case err != nil:
		return took, &BootError{Reason: fmt.Sprintf("timeout: no login prompt after %s", took.Round(time.Second)), Tail: tail}
	case failed:
		return took, &BootError{Reason: reason, Line: line, Tail: tail}
	}
	m.cfg.logf("booted in %s (%s)", took.Round(100*time.Millisecond), reason)
	return took, nil
}

func (m *Machine) exitReason() string {
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.exitStatus
}

// RebootHow is how Reboot restarts the guest.
type RebootHow int

// The ways to reboot.
const (
	ViaGuest RebootHow = iota // "sudo systemctl reboot" over SSH
	ViaQMP                    // QMP system_reset (the reset button)
)

func (h RebootHow) String() string {
	if h == ViaQMP {
		return "qmp"
	}
	return "guest"
}

// Reboot restarts the machine and returns once the reset happened (QMP RESET
// event); call WaitBoot to wait for the new boot. ViaGuest needs the cloud-init
// seed (SSH). ViaQMP is the reset button: what the guest has not yet written
// back is lost, as on real hardware (cloud-init's first-boot SSH host keys,
// seconds old, can come back empty and sshd then refuses to start).
func (m *Machine) Reboot(ctx context.Context, how RebootHow) error {
	events := len(m.qmp.Events())
	mark := m.console.Mark()
	switch how {
	case ViaQMP:
		if err := m.qmp.Reset(ctx); err != nil {
			return &Error{Op: "reboot", Reason: "QMP system_reset", Err: err}
		}
	case ViaGuest:
		g, err := m.SSH(ctx)
		if err != nil {
			return err
		}
		// The session may end with the connection rather than an exit
		// status: sshd is stopped by the reboot. The RESET event decides.
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		res, runErr := g.Run(rctx, "sudo systemctl reboot")
		cancel()
		g.Close()
		if runErr == nil && res.ExitCode != 0 {
			return &Error{Op: "reboot", Reason: fmt.Sprintf("systemctl reboot exited %d: %s", res.ExitCode, strings.TrimSpace(res.Stderr))}
		}
	default:
		return &Error{Op: "reboot", Reason: fmt.Sprintf("unknown reboot method %d", how)}
	}
	ev, err := m.qmp.WaitEvent(ctx, "RESET", events)
	if err != nil {
		return &Error{Op: "reboot", Reason: "no reset (" + how.String() + ")", ConsoleTail: m.console.Tail(20), Err: err}
	}
	m.mu.Lock()
	m.bootMark = mark
	m.bootStart = ev.Time
	m.mu.Unlock()
	m.cfg.logf("reset (%s)", how)
	return nil
}

// Close kills QEMU and removes every temporary file. It is idempotent.
func (m *Machine) Close() error {
	m.closeOnce.Do(func() {
		m.kill("closed")
		<-m.done
		<-m.followDone
		if m.stopWatch != nil {
			m.stopWatch()
		}
		if m.timer != nil {
			m.timer.Stop()
		}
		if m.qmp != nil {
			m.qmp.Close()
		}
		if err := os.RemoveAll(m.dir); err != nil {
			m.closeErr = &Error{Op: "close", Reason: "remove " + m.dir, Err: err}
		}
		m.slot.Release()
	})
	return m.closeErr
}
