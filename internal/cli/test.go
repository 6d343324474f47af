package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/vouch-dev/vouch/internal/atomicfile"
	"github.com/vouch-dev/vouch/internal/imagetest"
	"github.com/vouch-dev/vouch/internal/nvram"
	"github.com/vouch-dev/vouch/internal/vm"
)

type testFlags struct {
	vars, profile, certs, secureBoot string
	bios                             bool
	priorities                       []int
	areas, cases, excludes, tags     []string
	format, output, consoleLog       string
	timeout, bootTimeout             time.Duration
	accel, dnsName, workDir          string
	cpus, memoryMiB                  int
	matrix, fullBoot, list           bool
}

func newTestCmd() *cobra.Command {
	var f testFlags
	c := &cobra.Command{
		Use:   "test IMAGE",
		Short: "Boot an image under QEMU and run image-validation test cases (boot, Secure Boot, kernel log, systemd, network, cloud-init)",
		Long: `test boots a disk image (raw, qcow2, VHD, VHDX) under QEMU — never writing it: the VM
runs on a throw-away overlay — and runs the image-validation cases a publisher runs
before an image ships, like LISA's and kola's:

  boot        boots to multi-user.target (P0); reboots from the guest and from
              QMP (the reset button) come back (P1)
  secureboot  the guest's Secure Boot state is what the firmware's variables say (P0)
  kernel      no panic, Oops, BUG, WARNING, call trace, segfault, OOM or emergency
              shell on the console or in the journal (P0); console= on the
              kernel command line (P2)
  console     kernel messages and a login prompt on the serial console (P1)
  systemd     no failed units once start-up has finished (P1)
  storage     / read-write and in fstab by UUID (P1); no swap (P2)
  network     DHCP lease and default route, DNS, sshd running (P1)
  time        time synchronisation active (P1)
  provisioning  cloud-init provisions an SSH user and finishes without errors (P1)
  cloud-image the offline cloud-image rules of 'vouch scan --suite cloud-image',
              read from the image file while the VM boots (P by severity)

Images with cloud-init get a NoCloud seed ("cidata" volume) with a user and an SSH
key made for this run only; nothing secret is baked into the image. The SSH port is
forwarded on 127.0.0.1 only. Images without cloud-init get the console cases; the
cases that need SSH are SKIPPED with the reason.

Firmware (UEFI by default, Debian's OVMF from /usr/share/OVMF, package ovmf):
  --secure-boot=on    OVMF_CODE_4M.secboot.fd with SMM and OVMF_VARS_4M.ms.fd
                      (Secure Boot on, Microsoft 2011 CAs in db) — the default
  --secure-boot=off   OVMF_CODE_4M.fd with the empty OVMF_VARS_4M.fd
  --vars FILE.fd      start from this variable store instead (a copy is used)
  --firmware PROFILE  db and KEK set to microsoft-2011, microsoft-2023 or
                      microsoft-both in a copy of OVMF_VARS_4M.ms.fd, with
                      the built-in Microsoft certificates (--certs DIR to
                      take them from a folder)
  --bios              legacy BIOS (SeaBIOS); Secure Boot cases are SKIPPED
The Secure Boot state the guest must show follows the variable store: on when PK
is enrolled.

--firmware-matrix boots the image on the microsoft-2011, microsoft-2023 and
microsoft-both firmware (Secure Boot on) and prints what booted
next to what 'vouch secureboot --firmware PROFILE' predicts for the image, calling
out any disagreement. A boot counts once the kernel starts (shim, GRUB and the
kernel have passed verification); --full-boot waits for the login prompt.

Selection (as a job service's selections): --case NAME (globs: 'network.*'),
--area, --priority, --tag choose cases (a case must match every flag given, any
value within one); --exclude NAME removes cases. --list prints the cases.

Statuses: QUEUED, ASSIGNED, RUNNING while in progress; PASSED, FAILED, SKIPPED,
ATTEMPTED (a failure of a case marked as a known issue) at the end. The table
prints one line per case as it finishes; --format json, junit or html writes the
report to --output (or stdout) and the progress lines to stderr. The HTML report
is one self-contained page with the serial console embedded.

KVM is used when it works (a probe boot decides; --accel tcg forces software
emulation). The VM is killed and its temporary files removed on every exit,
Ctrl-C included.

Exit codes: 0 every selected case PASSED, SKIPPED or ATTEMPTED (matrix: every
profile booted as predicted), 1 a case FAILED (matrix: a profile did not boot or
the boot disagrees with the prediction), 2 bad input or the test could not run
(QEMU or OVMF missing, unreadable image, ...).`,
		Example: `  vouch test debian-cloud.qcow2
  vouch test --priority 0,1 --format junit --output results.xml image.qcow2
  vouch test --firmware microsoft-2023 --format html --output report.html disk.raw
  vouch test --secure-boot=off --area boot,kernel disk.vhdx
  vouch test --case 'network.*' --exclude network.dns image.qcow2
  vouch test --firmware-matrix debian.raw
  vouch test --list --priority 0`,
		Args: func(c *cobra.Command, args []string) error {
			if f.list {
				return cobra.NoArgs(c, args)
			}
			if len(args) != 1 {
				return usageErrorf("name one disk image to test (see 'vouch test --help')")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			return runTest(c, args, &f)
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.vars, "vars", "", varsHelp+" to boot with (a copy is used)")
	fl.StringVar(&f.profile, "firmware", "", firmwareHelp+strings.Join(imagetest.MatrixProfiles, ", "))
	fl.StringVar(&f.certs, "certs", "", "take the Microsoft certificates of --firmware and --firmware-matrix from this folder (DER or PEM; default: the built-in ones)")
	fl.StringVar(&f.secureBoot, "secure-boot", "on", "Secure Boot firmware: on (OVMF secboot build with SMM) or off")
	fl.BoolVar(&f.bios, "bios", false, "boot with legacy BIOS (SeaBIOS) instead of UEFI")
	fl.IntSliceVar(&f.priorities, "priority", nil, "run cases of these priorities (0-5; e.g. 0,1)")
	fl.StringSliceVar(&f.areas, "area", nil, "run cases of these areas (e.g. boot,network)")
	fl.StringSliceVar(&f.cases, "case", nil, "run these cases (names or globs)")
	fl.StringSliceVar(&f.excludes, "exclude", nil, "leave out these cases (names or globs)")
	fl.StringSliceVar(&f.tags, "tag", nil, "run cases with any of these tags (e.g. smoke, offline)")
	fl.StringVarP(&f.format, "format", "o", "table", "output format: table, json, junit or html")
	fl.StringVar(&f.output, "output", "", "write the report to this file (written whole at the end)")
	fl.StringVar(&f.consoleLog, "console-log", "", "save the serial console to this file")
	fl.DurationVar(&f.timeout, "timeout", 30*time.Minute, "hard limit for the VM's life (all boots and cases)")
	fl.DurationVar(&f.bootTimeout, "boot-timeout", 8*time.Minute, "limit for each boot (and reboot) to reach a login prompt")
	fl.IntVar(&f.cpus, "cpus", 2, "virtual CPUs of the VM (under TCG each is a host thread: more than the host's cores only slows it)")
	fl.IntVar(&f.memoryMiB, "memory", 1024, "memory of the VM in MiB")
	fl.StringVar(&f.accel, "accel", "auto", "accelerator: auto (KVM when a probe shows it works, else TCG), kvm or tcg")
	fl.StringVar(&f.dnsName, "dns-name", "deb.debian.org", "name the network.dns case resolves in the guest")
	fl.StringVar(&f.workDir, "work-dir", "", "directory for the VM's temporary files (default: the system's)")
	fl.BoolVar(&f.matrix, "firmware-matrix", false, "boot on microsoft-2011, microsoft-2023 and microsoft-both firmware and compare with the prediction")
	fl.BoolVar(&f.fullBoot, "full-boot", false, "with --firmware-matrix: count a boot at the login prompt, not the kernel's start")
	fl.BoolVar(&f.list, "list", false, "list the test cases (with the selection flags: the selected ones) and exit")
	return c
}

func runTest(c *cobra.Command, args []string, f *testFlags) error {
	switch f.format {
	case "table", "json", "junit", "html":
	default:
		return usageErrorf("unknown format %q (want table, json, junit or html)", f.format)
	}
	switch f.accel {
	case "auto", "kvm", "tcg":
	default:
		return usageErrorf("unknown accelerator %q (want auto, kvm or tcg)", f.accel)
	}
	if f.secureBoot != "on" && f.secureBoot != "off" {
		return usageErrorf("--secure-boot is on or off, not %q", f.secureBoot)
	}
	sel := []imagetest.Selection{{Names: f.cases, Areas: f.areas, Priorities: f.priorities, Tags: f.tags}}
	if len(f.excludes) > 0 {
		sel = append(sel, imagetest.Selection{Names: f.excludes, Action: imagetest.Exclude})
	}
	cases, err := imagetest.Select(imagetest.All(), sel)
	if err != nil {
		return usageErrorf("%v", strings.TrimPrefix(err.Error(), "imagetest: "))
	}
	out := c.OutOrStdout()
	if f.list {
		if f.format == "json" {
			return writeJSON(out, imagetest.Describe(cases))
		}
		if f.format != "table" {
			return usageErrorf("--list writes table or json")
		}
		return imagetest.WriteList(out, cases)
	}
	if f.matrix {
		return runMatrix(c, args[0], f)
	}
	fw, name, cleanup, err := testFirmware(f)
	if err != nil {
		return err
	}
	defer cleanup()
	if err := checkOutputPath(f.output); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(c.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	progress := out
	if f.format != "table" || f.output != "" {
		progress = c.ErrOrStderr()
	}
	table := imagetest.NewTableWriter(progress, cases)
	cfg := imagetest.Config{
		Image: args[0], Firmware: fw, FirmwareName: name, Accel: f.accel,
		CPUs: f.cpus, MemoryMiB: f.memoryMiB,
		Timeout: f.timeout, BootTimeout: f.bootTimeout, WorkDir: f.workDir,
		ConsoleLog: f.consoleLog, DNSName: f.dnsName, Log: c.ErrOrStderr(), Observer: table,
	}
	rep, err := imagetest.Run(ctx, cfg, cases)
	if rep == nil {
		return testError(err)
	}
	if serr := table.Summary(rep); serr != nil {
		return serr
	}
	if f.format != "table" || f.output != "" {
		if werr := writeReport(out, f, func(w io.Writer) error {
			switch f.format {
			case "json":
				return imagetest.WriteJSON(w, rep)
			case "junit":
				return imagetest.WriteJUnit(w, rep)
			case "html":
				return imagetest.WriteHTML(w, rep, Version())
			}
			t := imagetest.NewTableWriter(w, cases)
			for _, r := range rep.Results {
				t.Update(r)
			}
			return t.Summary(rep)
		}); werr != nil {
			return werr
		}
	}
	if err != nil {
		return testError(err)
	}
	if !rep.OK() {
		return &exitError{code: ExitFindings}
	}
	return nil
}

// testError maps a run that could not happen to exit 2 with its reason and,
// when there was one, the console's tail.
func testError(err error) error {
	if errors.Is(err, context.Canceled) {
		return &exitError{code: ExitError, err: errors.New("interrupted: the VM was killed and its temporary files removed")}
	}
	var ve *vm.Error
	if errors.As(err, &ve) && len(ve.ConsoleTail) > 0 {
		err = fmt.Errorf("%w\nconsole tail:\n  %s", err, strings.Join(ve.ConsoleTail, "\n  "))
	}
	return &exitError{code: ExitError, err: err}
}

// testFirmware turns the firmware flags into the VM's firmware; a profile's
// variable store is written to a temporary file that cleanup removes.
func testFirmware(f *testFlags) (vm.Firmware, string, func(), error) {
	none := func() {}
	fw := vm.Firmware{Boot: vm.UEFI, SecureBoot: f.secureBoot == "on"}
	if f.vars != "" && f.profile != "" {
		return fw, "", none, usageErrorf("give --vars or --firmware, not both")
	}
	if f.bios {
		if f.vars != "" || f.profile != "" {
			return fw, "", none, usageErrorf("--bios boots without UEFI: --vars and --firmware do not apply")
		}
		return vm.Firmware{Boot: vm.BIOS}, "legacy BIOS", none, nil
	}
	// The one firmware loader checks the flags (one source, a readable
	// store, a known profile) as every other command does.
	ff := firmwareFlags{vars: f.vars, profile: f.profile}
	if _, _, err := ff.load(nil); err != nil {
		return fw, "", none, err
	}
	switch {
	case f.vars != "":
		fw.Vars = f.vars
		return fw, "variable store " + f.vars, none, nil
	case f.profile != "":
		tmplPath := filepath.Join(vm.OVMFDir, "OVMF_VARS_4M.ms.fd")
		tmpl, err := os.ReadFile(tmplPath)
		if err != nil {
			return fw, "", none, &exitError{code: ExitError, err: fmt.Errorf("%s: %w (install the Debian package ovmf)", tmplPath, err)}
		}
		store, err := nvram.ProfileStore(tmpl, f.profile, f.certs)
		if err != nil {
			return fw, "", none, &exitError{code: ExitError, err: fmt.Errorf("--firmware %s: %w", f.profile, err)}
		}
		dir, err := os.MkdirTemp(f.workDir, "vouch-test-vars-")
		if err != nil {
			return fw, "", none, &exitError{code: ExitError, err: err}
		}
		cleanup := func() { os.RemoveAll(dir) }
		fw.Vars = filepath.Join(dir, f.profile+".fd")
		if err := os.WriteFile(fw.Vars, store, 0o600); err != nil {
			cleanup()
			return fw, "", none, &exitError{code: ExitError, err: err}
		}
		return fw, "profile " + f.profile, cleanup, nil
	}
	return fw, "", none, nil
}

func runMatrix(c *cobra.Command, image string, f *testFlags) error {
	if f.vars != "" || f.profile != "" || f.bios || c.Flags().Changed("secure-boot") {
		return usageErrorf("--firmware-matrix chooses the firmware itself: drop --vars, --firmware, --bios and --secure-boot")
	}
	if f.format != "table" && f.format != "json" {
		return usageErrorf("--firmware-matrix writes table or json")
	}
	if err := checkOutputPath(f.output); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(c.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	progress := c.ErrOrStderr()
	mx, err := imagetest.RunMatrix(ctx, imagetest.MatrixConfig{
		Image: image, CertDir: f.certs, Accel: f.accel, BootTimeout: f.bootTimeout,
		FullBoot: f.fullBoot, WorkDir: f.workDir, Log: progress,
		Observer: func(r imagetest.MatrixRow) {
			fmt.Fprintf(progress, "%s: %s (%s)\n", r.Profile, r.Outcome, r.Reason)
		},
	})
	if err != nil {
		return testError(err)
	}
	if werr := writeReport(c.OutOrStdout(), f, func(w io.Writer) error {
		if f.format == "json" {
			return writeJSON(w, mx)
		}
		return imagetest.WriteMatrixTable(w, mx)
	}); werr != nil {
		return werr
	}
	if !mx.OK() {
		return &exitError{code: ExitFindings}
	}
	return nil
}

// checkOutputPath refuses an --output whose directory does not exist before
// minutes of booting are spent.
func checkOutputPath(p string) error {
	if p == "" {
		return nil
	}
	st, err := os.Stat(filepath.Dir(p))
	if err != nil || !st.IsDir() {
		return usageErrorf("--output %s: directory %s does not exist", p, filepath.Dir(p))
	}
	if st, err := os.Stat(p); err == nil && st.IsDir() {
		return usageErrorf("--output %s is a directory", p)
	}
	return nil
}

// writeReport renders into memory, then writes stdout or --output (through a
// temporary file renamed into place), so nothing is left half written.
func writeReport(stdout io.Writer, f *testFlags, render func(io.Writer) error) error {
	var buf bytes.Buffer
	if err := render(&buf); err != nil {
		return err
	}
	if f.output == "" {
		_, err := stdout.Write(buf.Bytes())
		return err
	}
	if err := atomicfile.Write(f.output, buf.Bytes(), atomicfile.Options{Mode: 0o644}); err != nil {
		return &exitError{code: ExitError, err: err}
	}
	return nil
}
