package imagetest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/vouch-dev/vouch/internal/check"
	"github.com/vouch-dev/vouch/internal/target"
	"github.com/vouch-dev/vouch/internal/vm"
)

// Env is what a case runs against: the image opened offline, the VM, its
// console, an SSH session when the image allows one, and the run's settings.
// The runner owns it; cases read it.
type Env struct {
	cfg  *Config
	info *RunInfo

	// Target is the image opened read-only (nil when it could not be read:
	// targetErr says why).
	Target    *target.Target
	targetErr error
	checkEnv  *check.Env // shared by the cloud-image cases (baseline caches its state in it)

	// cloudInit: the image has cloud-init; unknown when the image could not
	// be read (then the seed is attached and SSH tried anyway).
	cloudInit      bool
	cloudInitKnown bool

	// Machine is the VM (nil while the offline cases run without one).
	Machine *vm.Machine
	booted  bool
	bootErr error // why the first boot failed

	guest      *vm.Guest
	guestErr   error
	guestTried bool
}

// Booted reports whether the VM's first boot reached a login prompt.
func (e *Env) Booted() bool { return e.booted }

// ExpectSecureBoot is the Secure Boot state the firmware should give the guest.
func (e *Env) ExpectSecureBoot() bool { return e.info.ExpectSecureBoot }

// console returns the serial console's lines so far.
func (e *Env) console() []string {
	if e.Machine == nil {
		return nil
	}
	return e.Machine.Console().Lines()
}

// connect opens the SSH session once (it waits for cloud-init to create the
// user and for sshd); later calls return the first outcome.
func (e *Env) connect(ctx context.Context) (*vm.Guest, error) {
	if e.guestTried {
		return e.guest, e.guestErr
	}
	e.guestTried = true
	cctx, cancel := context.WithTimeout(ctx, e.cfg.SSHTimeout)
	defer cancel()
	start := time.Now()
	e.guest, e.guestErr = e.Machine.SSH(cctx)
	if e.guestErr == nil {
		e.info.SSH = true
		e.info.HostKey = e.guest.HostKey()
		e.cfg.logf("SSH login as %s after %s", vm.GuestUser, time.Since(start).Round(100*time.Millisecond))
	}
	return e.guest, e.guestErr
}

// reconnect drops the SSH session (after a reboot) and opens a new one.
func (e *Env) reconnect(ctx context.Context) (*vm.Guest, error) {
	if e.guest != nil {
		e.guest.Close()
	}
	e.guest, e.guestErr, e.guestTried = nil, nil, false
	return e.connect(ctx)
}

func (e *Env) close() {
	if e.guest != nil {
		e.guest.Close()
		e.guest = nil
	}
}

// run runs cmd in the guest; a transport error is returned as is, a non-zero
// exit status is in the result.
func (e *Env) run(ctx context.Context, cmd string) (vm.Result, error) {
	if e.guest == nil {
		return vm.Result{}, errors.New("imagetest: no SSH session")
	}
	return e.guest.Run(ctx, cmd)
}

// sudo runs cmd as root (the seed's user has passwordless sudo; -n never
// prompts).
func (e *Env) sudo(ctx context.Context, cmd string) (vm.Result, error) {
	return e.run(ctx, "sudo -n "+cmd)
}

// unmet returns why c cannot run here, "" when it can.
func (e *Env) unmet(ctx context.Context, c Case) string {
	r := c.Requires
	if r&NeedImage != 0 && e.Target == nil {
		return fmt.Sprintf("the image cannot be read offline: %v", e.targetErr)
	}
	if r&NeedUEFI != 0 && e.cfg.Firmware.Boot == vm.BIOS {
		return "the VM boots through legacy BIOS: UEFI and Secure Boot do not apply"
	}
	if r&NeedSecureBoot != 0 && !e.info.ExpectSecureBoot {
		return "the firmware does not enforce Secure Boot"
	}
	if r&(NeedBoot|NeedSSH) != 0 && !e.booted {
		return "the VM did not boot: " + bootReason(e.bootErr)
	}
	if r&(NeedCloudInit|NeedSSH) != 0 && e.cloudInitKnown && !e.cloudInit {
		return "the image has no cloud-init (no /usr/bin/cloud-init), so no test user can be provisioned for SSH: console-only cases ran"
	}
	if r&NeedSSH != 0 {
		if _, err := e.connect(ctx); err != nil {
			return "no SSH session to the guest (see provisioning.ssh-login): " + oneLine(err.Error())
		}
	}
	return ""
}

func bootReason(err error) string {
	var be *vm.BootError
	if errors.As(err, &be) {
		return be.Reason
	}
	if err == nil {
		return "not started"
	}
	return err.Error()
}

// hasCloudInit looks for cloud-init in the image's root file system.
func hasCloudInit(t *target.Target) bool {
	if t == nil || t.Root == nil {
		return false
	}
	for _, p := range []string{"usr/bin/cloud-init", "etc/cloud/cloud.cfg"} {
		if _, err := fs.Stat(t.Root, p); err == nil {
			return true
		}
	}
	return false
}

// oneLine flattens s for a message.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// lines splits command output into lines without the trailing empty one.
func lines(s string) []string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// prefixed labels command output for a case's log.
func prefixed(cmd string, res vm.Result) []string {
	out := []string{"$ " + cmd}
	out = append(out, lines(res.Stdout)...)
	for _, l := range lines(res.Stderr) {
		out = append(out, "stderr: "+l)
	}
	if res.ExitCode != 0 {
		out = append(out, fmt.Sprintf("(exit status %d)", res.ExitCode))
	}
	return out
}
