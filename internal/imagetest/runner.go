package imagetest

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	"github.com/vouch-dev/vouch/internal/atomicfile"
	"github.com/vouch-dev/vouch/internal/check"
	"github.com/vouch-dev/vouch/internal/efi"
	"github.com/vouch-dev/vouch/internal/secureboot"
	"github.com/vouch-dev/vouch/internal/target"
	"github.com/vouch-dev/vouch/internal/vm"
)

// Config is one run.
type Config struct {
	Image    string
	Firmware vm.Firmware
	// FirmwareName says how the firmware state was chosen (a profile, a
	// variable store file) for the report; "" describes Firmware.
	FirmwareName string
	MemoryMiB    int
	CPUs         int
	Accel        string // auto, kvm, tcg
	// Timeout is the VM's hard time limit (default 30m); BootTimeout bounds
	// each boot (default 8m: under TCG on a busy host a warm reboot alone
	// has taken 5 minutes), SSHTimeout the first SSH login (default 4m:
	// cloud-init creates the user first).
	Timeout     time.Duration
	BootTimeout time.Duration
	SSHTimeout  time.Duration
	WorkDir     string
	// ConsoleLog, when set, receives a copy of the serial console (raw, as
	// QEMU wrote it) at the end of the run.
	ConsoleLog string
	// DNSName is the name network.dns resolves in the guest (default
	// deb.debian.org).
	DNSName  string
	Log      io.Writer // progress for people; may be nil
	Observer Observer  // may be nil
}

func (c *Config) logf(format string, args ...any) {
	if c.Log != nil {
		fmt.Fprintf(c.Log, format+"\n", args...)
	}
}

func (c *Config) defaults() {
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Minute
	}
	if c.BootTimeout <= 0 {
		c.BootTimeout = 8 * time.Minute
	}
	if c.SSHTimeout <= 0 {
		c.SSHTimeout = 4 * time.Minute
	}
	if c.DNSName == "" {
		c.DNSName = "deb.debian.org"
	}
	if c.Accel == "" {
		c.Accel = "auto"
	}
}

// Error is a run that could not happen (as opposed to cases that failed): a
// missing image, an unreadable variable store, QEMU missing, ...
type Error struct {
	Reason string
	Err    error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return "imagetest: " + e.Reason
	}
	return "imagetest: " + e.Reason + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Order sorts cases into run order: by phase, then as listed.
func Order(cases []Case) []Case {
	out := append([]Case(nil), cases...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Phase < out[j].Phase })
	return out
}

// ExpectedSecureBoot says whether the firmware will enforce Secure Boot: never
// under BIOS; under UEFI, when the variable store (the one the VM gets a copy
// of) has PK enrolled and SecureBootEnable is not 0, as edk2's
// AuthVariableLib decides at boot. Debian's OVMF_CODE_4M.fd supports Secure
// Boot too (without SMM), so the store decides, not the code build.
func ExpectedSecureBoot(fw vm.Firmware) (bool, string, error) {
	if fw.Boot == vm.BIOS {
		return false, "legacy BIOS (SeaBIOS)", nil
	}
	vars := fw.Vars
	if vars == "" {
		vars = filepath.Join(vm.OVMFDir, "OVMF_VARS_4M.fd")
		if fw.SecureBoot {
			vars = filepath.Join(vm.OVMFDir, "OVMF_VARS_4M.ms.fd")
		}
	}
	s, err := efi.ReadVarStoreFile(vars)
	if err != nil {
		return false, "", &Error{Reason: "read the variable store", Err: err}
	}
	f, err := secureboot.FromVars(s.Vars())
	if err != nil {
		return false, "", &Error{Reason: "variable store " + vars, Err: err}
	}
	code := "OVMF_CODE_4M.fd"
	if fw.SecureBoot {
		code = "OVMF_CODE_4M.secboot.fd (SMM)"
	}
	if fw.Code != "" {
		code = fw.Code
	}
	return f.Enforcing(), "UEFI: " + code + " with variables from " + vars, nil
}

// runner carries one run's state.
type runner struct {
	cfg     Config
	env     *Env
	cases   []Case
	results []Result
}

func (r *runner) update(i int, st Status) {
	r.results[i].Status = st
	if r.cfg.Observer != nil {
		r.cfg.Observer.Update(r.results[i])
	}
}

func (r *runner) finish(i int, o Outcome, d time.Duration) {
	res := &r.results[i]
	res.Duration, res.Message, res.Log = d, o.Message, o.Log
	st := o.Status
	if st == Failed && r.cases[i].KnownIssue != "" {
		st = Attempted
		res.Message = "known issue (" + r.cases[i].KnownIssue + "): " + res.Message
	}
	if !st.Final() {
		st = Failed
		res.Message = fmt.Sprintf("case returned status %q: %s", o.Status, res.Message)
	}
	r.update(i, st)
}

// runCase runs case i: requirements first (SKIPPED with the reason), then Run
// under the case's timeout; a panic is the case's failure, not the run's.
func (r *runner) runCase(ctx context.Context, i int) {
	c := r.cases[i]
	if err := ctx.Err(); err != nil {
		r.finish(i, skip("run interrupted before this case: "+err.Error()), 0)
		return
	}
	r.update(i, Running)
	start := time.Now()
	if why := r.env.unmet(ctx, c); why != "" {
		r.finish(i, skip(why), time.Since(start))
		return
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultCaseTimeout
	}
	if c.Phase == PhaseReboot {
		// A reboot case waits for a whole boot and an SSH login: never
		// less than the run's limits for those.
		timeout = max(timeout, r.cfg.BootTimeout+r.cfg.SSHTimeout)
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	o := func() (o Outcome) {
		defer func() {
			if p := recover(); p != nil {
				o = fail(fmt.Sprintf("case panicked: %v", p), firstFrames(string(debug.Stack())))
			}
		}()
		return c.Run(cctx, r.env)
	}()
	if o.Status == Failed && cctx.Err() != nil && ctx.Err() == nil {
		o.Message = fmt.Sprintf("timed out after %s: %s", timeout, o.Message)
	}
	r.finish(i, o, time.Since(start))
}

func firstFrames(stack string) string {
	l := strings.Split(stack, "\n")
	if len(l) > 12 {
		l = l[:12]
	}
	return strings.Join(l, "\n")
}

// Run runs cases against cfg.Image. Cases are put in run order (Order). The
// error is for a run that could not happen (*Error, *vm.Error) or was
// interrupted (the context's error, with the report so far: unfinished cases
// SKIPPED); failing cases are in the report, not the error. Every VM and
// temporary file is gone when Run returns.
func Run(ctx context.Context, cfg Config, cases []Case) (*Report, error) {
	cfg.defaults()
	if len(cases) == 0 {
		return nil, &Error{Reason: "no test cases selected"}
	}
	if cfg.Image == "" {
		return nil, &Error{Reason: "no image given"}
	}
	st, err := os.Stat(cfg.Image)
	if err != nil {
		return nil, &Error{Reason: "cannot read the image", Err: err}
	}
	if st.IsDir() {
		return nil, &Error{Reason: cfg.Image + " is a directory; vouch test boots a disk image (raw, qcow2, VHD, VHDX)"}
	}
	expect, fwDesc, err := ExpectedSecureBoot(cfg.Firmware)
	if err != nil {
		return nil, err
	}
	if cfg.FirmwareName != "" {
		fwDesc = cfg.FirmwareName + " (" + fwDesc + ")"
	}
	info := &RunInfo{
		Image: cfg.Image, Boot: cfg.Firmware.Boot.String(), Firmware: fwDesc,
		SecureBoot: cfg.Firmware.Boot == vm.UEFI && cfg.Firmware.SecureBoot, ExpectSecureBoot: expect,
		Started: time.Now(),
	}
	r := &runner{cfg: cfg, cases: Order(cases)}
	r.env = &Env{cfg: &r.cfg, info: info}
	r.results = make([]Result, len(r.cases))
	needVM := false
	for i, c := range r.cases {
		r.results[i] = Result{Name: c.Name, Area: c.Area, Priority: c.Priority, Tags: c.Tags,
			Description: c.Description, KnownIssue: c.KnownIssue}
		r.update(i, Queued)
		if c.Phase != PhaseOffline {
			needVM = true
		}
	}
	if err := r.run(ctx, needVM); err != nil && ctx.Err() == nil {
		return nil, err
	}
	info.Duration = time.Since(info.Started)
	// Cases the run did not reach (it was interrupted) end SKIPPED.
	for i := range r.results {
		if !r.results[i].Status.Final() {
			r.finish(i, skip("run interrupted before this case"), 0)
		}
	}
	rep := &Report{Run: *info, Results: r.results, Summary: Summarize(r.results)}
	return rep, ctx.Err()
}

// run runs the cases; the VM and the opened image are closed when it returns.
func (r *runner) run(ctx context.Context, needVM bool) error {
	env, cfg := r.env, &r.cfg
	// The image offline: the cloud-image cases read it, and it tells whether
	// cloud-init can provision an SSH user.
	t, err := target.Open(cfg.Image, target.Options{})
	if err != nil {
		env.targetErr = err
		env.info.Notes = append(env.info.Notes, "the image could not be read offline ("+oneLine(err.Error())+"): offline cases are skipped and SSH is tried in case it has cloud-init")
	} else {
		defer t.Close()
		env.Target = t
		env.checkEnv = &check.Env{Target: t}
		env.cloudInit, env.cloudInitKnown = hasCloudInit(t), true
		if t.Image != nil {
			env.info.Format = string(t.Image.Format)
		}
	}
	env.info.CloudInit = env.cloudInit || !env.cloudInitKnown

	if needVM {
		for i, c := range r.cases {
			if c.Phase != PhaseOffline {
				r.update(i, Assigned)
			}
		}
		cfg.logf("starting the VM: %s, %s", cfg.Image, env.info.Firmware)
		m, err := vm.Start(ctx, vm.Config{
			Image: cfg.Image, Firmware: cfg.Firmware, MemoryMiB: cfg.MemoryMiB, CPUs: cfg.CPUs,
			Accel: cfg.Accel, Timeout: cfg.Timeout, WorkDir: cfg.WorkDir,
			CloudInit: env.info.CloudInit, Log: cfg.Log,
		})
		if err != nil {
			return err
		}
		env.Machine = m
		env.info.Accel = m.Accel()
		defer func() {
			env.close()
			env.info.Console = m.Console().Lines()
			if cfg.ConsoleLog != "" {
				if err := copyAtomic(m.Console().Path(), cfg.ConsoleLog); err != nil {
					env.info.Notes = append(env.info.Notes, "console log not saved: "+err.Error())
				} else {
					env.info.ConsoleLog = cfg.ConsoleLog
				}
			}
			m.Close()
		}()
	}
	// Offline cases run while the firmware and kernel start.
	for i, c := range r.cases {
		if c.Phase == PhaseOffline {
			r.update(i, Assigned)
			r.runCase(ctx, i)
		}
	}
	if needVM {
		bctx, cancel := context.WithTimeout(ctx, cfg.BootTimeout)
		took, err := env.Machine.WaitBoot(bctx)
		cancel()
		env.info.BootTime = took
		if err == nil {
			env.booted = true
			env.info.Booted = true
		} else {
			env.bootErr = err
			env.info.BootError = bootReason(err)
			cfg.logf("boot failed: %s", env.info.BootError)
		}
		for i, c := range r.cases {
			if c.Phase != PhaseOffline {
				r.runCase(ctx, i)
			}
		}
	}
	return ctx.Err()
}

// copyAtomic copies src to dst (atomicfile.Write), so dst is either complete
// or untouched.
func copyAtomic(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return atomicfile.Write(dst, b, atomicfile.Options{Mode: 0o600})
}
