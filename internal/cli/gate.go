package cli

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/vouch-dev/vouch/internal/atomicfile"
	"github.com/vouch-dev/vouch/internal/gate"
	"github.com/vouch-dev/vouch/internal/measure"
	"github.com/vouch-dev/vouch/internal/secureboot"
)

// gateOpts are the flags the gate commands share.
type gateOpts struct {
	ff     firmwareFlags
	ch     *changeFlags
	change *secureboot.Change
	target string
	force  bool
	format string
	hook   bool // called by a package manager: quiet about packages without a shim
	// tpmLog and sealed are the measured-boot part: the event log to
	// predict PCRs from, and warn or refuse for TPM-sealed disks.
	tpmLog, sealed string
}

func (g *gateOpts) register(c *cobra.Command, withTarget bool, parts changePart) {
	g.ff.register(c)
	g.ch = addChangeFlags(c, parts)
	if withTarget {
		c.Flags().StringVar(&g.target, "target", "", "judge against this system: / (the running host: its efivarfs, ESP and kernels), a disk image or a root directory")
	}
	c.Flags().BoolVar(&g.force, "force", false, "print the warning but exit 0 even when the machine would not boot the shim")
	c.Flags().StringVarP(&g.format, "format", "o", "table", "output format: table or json")
}

// resolve builds the machine the gate judges against (gate.ResolveMachine):
// the firmware from the flags, else the target's; the target's next stages;
// the change's firmware writes.
func (g *gateOpts) resolve(targetPath string) (*gate.Machine, error) {
	if err := checkFormat(g.format); err != nil {
		return nil, err
	}
	o, err := g.ff.options()
	if err != nil {
		return nil, err
	}
	if g.change == nil {
		if g.change, err = g.ch.load(); err != nil {
			return nil, err
		}
	}
	m, err := gate.ResolveMachine(gate.MachineOptions{Firmware: g.ff.source(), Target: targetPath, Change: g.change, SBATPolicy: o.SBATPolicy, Hook: g.hook})
	var ue *secureboot.FirmwareUsageError
	switch {
	case errors.As(err, &ue):
		return nil, usageErrorf("%s", ue.Reason)
	case err != nil:
		return nil, &exitError{code: ExitError, err: err}
	}
	return m, nil
}

func newGateCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "gate",
		Short: "Refuse a shim update the firmware would not boot (also as apt, dpkg and dnf hooks)",
		Long: `gate answers, before anything is installed, whether this machine would still boot
a new shim: whether its firmware starts it under UEFI Secure Boot (db and dbx,
decided as edk2 does), whether shim's own SBAT self-check passes the machine's
SbatLevel, and whether the new shim accepts the GRUB and kernel it will load.

It matters during the Microsoft UEFI CA 2011 → 2023 transition: a shim signed only
by the Microsoft UEFI CA 2023 does not boot on firmware whose db holds only the
Microsoft Corporation UEFI CA 2011, and nothing in the package managers checks.

  vouch gate shim NEW.efi         judge one shim binary
  vouch gate deb PKG.deb...       judge the shims in Debian packages
  vouch gate rpm PKG.rpm...       judge the shims in rpm packages
  vouch gate install-hook         make apt, dpkg and dnf run the gate themselves

The firmware state comes from --vars (an edk2/OVMF variable store), --efivars (a
directory of variables), --firmware (a what-if profile), or else from the running
system's efivarfs. Without UEFI (legacy BIOS, a container) or with Secure Boot off
nothing can refuse a shim: the gate allows it and says why.

Exit codes: 0 safe (or nothing to judge, or --force), 1 refused: the machine would
not boot, 2 usage or input error (a file that is not a package or not a shim).`,
		Example: `  vouch gate shim --vars /usr/share/OVMF/OVMF_VARS_4M.ms.fd shimx64.efi.signed
  vouch gate deb shim-signed_1.47_amd64.deb
  vouch gate install-hook
  vouch gate install-hook --root /srv/chroot/bookworm --vars /var/lib/vouch/VARS.fd`,
	}
	c.AddCommand(newGateShimCmd(), newGatePkgCmd("deb"), newGatePkgCmd("rpm"), newGateAptHookCmd(), newGateDpkgHookCmd(), newGateInstallHookCmd())
	return c
}

func newGateShimCmd() *cobra.Command {
	var g gateOpts
	c := &cobra.Command{
		Use:   "shim NEW_SHIM.efi",
		Short: "Say whether this machine would boot a new shim",
		Long: `shim judges one shim binary against the machine's firmware state and says, in plain
words, whether installing it would leave the machine unbootable and what to do first.

The next stages it judges the new shim against are --grub and --kernel when given;
else, with --target, the GRUB behind the target's current shim and its newest
kernel; else a grubx64.efi (grubaa64.efi, ...) beside the shim file.

Exit codes: 0 it boots (or nothing can refuse it), 1 it would not boot (0 with
--force, which still prints the warning), 2 usage or input error.`,
		Example: `  vouch gate shim --vars /usr/share/OVMF/OVMF_VARS_4M.ms.fd shimx64.efi
  vouch gate shim --target / /usr/lib/shim/shimx64.efi.signed
  vouch gate shim --efivars ./exported-vars --grub grubx64.efi --kernel vmlinuz shimx64.efi
  vouch gate shim --firmware microsoft-2011 --format json shimx64.efi`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			policy, err := measure.ParseSealedPolicy(g.sealed)
			if err != nil {
				return usageErrorf("%v", err)
			}
			m, err := g.resolve(g.target)
			if err != nil {
				return err
			}
			shim, err := gate.ReadEFI(args[0], true)
			if err != nil {
				return &exitError{code: ExitError, err: err}
			}
			stages := m.Stages
			if g.target == "" && g.change.GRUB == nil {
				stages.GRUB = gate.BesideShim(args[0])
			}
			if g.change.GRUB != nil {
				stages.GRUB = g.change.GRUB
			}
			if g.change.Kernel != nil {
				stages.Kernel = g.change.Kernel
			}
			v := m.Judge(shim, stages)
			sealed, blocks, err := g.sealedVerdicts(shim)
			if err != nil {
				return err
			}
			if g.format == "json" {
				err = writeJSON(c.OutOrStdout(), struct {
					Firmware *secureboot.Summary   `json:"firmware"`
					Verdict  *gate.Verdict         `json:"verdict"`
					Sealed   []measure.SealVerdict `json:"sealed,omitempty"`
					Forced   bool                  `json:"forced"`
				}{m.Summary(), v, sealed, g.force && !v.Boots})
			} else {
				err = buffered(c.OutOrStdout(), func(w io.Writer) error {
					writeGateFirmware(w, m)
					writeVerdict(w, v)
					for _, s := range sealed {
						fmt.Fprintf(w, "TPM-sealed disk %s: %s\n", s.Disk.Name, s.Verdict)
					}
					return nil
				})
			}
			if err != nil {
				return err
			}
			if blocks && policy == measure.SealedRefuse && !g.force {
				fmt.Fprintln(c.ErrOrStderr(), "vouch gate: refusing: a TPM-sealed disk would not unlock after this update (--sealed refuse)")
				return &exitError{code: ExitFindings}
			}
			return g.exit(c, []*gate.Verdict{v})
		},
	}
	g.register(c, true, changeFirmware|changeStages)
	c.Flags().StringVar(&g.tpmLog, "tpm-log", "", "the machine's TPM event log, to predict PCR 4 and 7 for disks sealed to them (default with --target /: the live log)")
	c.Flags().StringVar(&g.sealed, "sealed", "warn", "when a TPM-sealed disk (crypttab tpm2-device=) would not unlock after the update: warn, or refuse (exit 1)")
	return c
}

// exit applies the gate's exit policy (gate.Decide): refusals are exit 1,
// or a warning under --force (VOUCH_GATE_FORCE=1 for the hooks).
func (g *gateOpts) exit(c *cobra.Command, vs []*gate.Verdict) error {
	force := g.force || g.hook && os.Getenv(forceEnv) == "1"
	d := gate.Decide(vs, force)
	switch {
	case d.Forced:
		fmt.Fprintf(c.ErrOrStderr(), "vouch gate: WARNING: forced: allowing %d shim(s) this machine would not boot\n", d.Refused)
	case !d.Allowed() && g.hook:
		fmt.Fprintf(c.ErrOrStderr(), "vouch gate: refusing the installation. To install anyway, run the command again with %s=1 in its environment.\n", forceEnv)
	}
	if !d.Allowed() {
		return &exitError{code: ExitFindings}
	}
	return nil
}

func newGatePkgCmd(format string) *cobra.Command {
	var g gateOpts
	what := map[string]string{"deb": "Debian packages (.deb)", "rpm": "rpm packages (.rpm)"}[format]
	c := &cobra.Command{
		Use:   format + " PKG." + format + "...",
		Short: "Judge the shims in " + what + " before installing them",
		Long: format + ` reads ` + what + ` without installing or unpacking them, finds
every signed shim they would install (by content: a PE image with shim's .vendor_cert
or .sbatlevel section, wherever it lives, e.g. usr/lib/shim/shimx64.efi.signed or
boot/efi/EFI/fedora/shimx64.efi), and judges each against the machine's firmware
state as 'vouch gate shim' does. A GRUB or kernel in the same set of packages is
judged as the new shim's next stage; otherwise, with --target, the target's own.

Only packages whose file list names a file containing ".efi" or under boot/ are
decompressed. A package that holds no shim has nothing to judge (exit 0).

Exit codes: 0 safe or nothing to judge, 1 a shim would not boot (0 with --force),
2 a file that is not a readable ` + format + ` package.`,
		Example: map[string]string{
			"deb": `  vouch gate deb --vars /usr/share/OVMF/OVMF_VARS_4M.ms.fd shim-signed_1.47_amd64.deb
  vouch gate deb --target / /var/cache/apt/archives/*.deb`,
			"rpm": `  vouch gate rpm --firmware microsoft-2011 shim-x64-15.8-3.x86_64.rpm
  vouch gate rpm --target / --format json /var/cache/dnf/*/packages/*.rpm`,
		}[format],
		Args: cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return g.runPackages(c, args, format, nil)
		},
	}
	g.register(c, true, changeFirmware)
	if format == "rpm" {
		c.Flags().BoolVar(&g.hook, "hook", false, "called by the dnf plugin: judge the live system, print only packages holding a shim")
		c.Flags().MarkHidden("hook")
	}
	return c
}

// runPackages judges the shims of package files. want is "deb", "rpm" or
// "" (by content). display, when not nil, gives the names to show for
// files (the paths dpkg was given, rather than /proc/PID/cwd/...).
func (g *gateOpts) runPackages(c *cobra.Command, files []string, want string, display []string) error {
	tp := g.target
	if g.hook && tp == "" {
		tp = "/"
	}
	pkgs, err := gate.ReadTransaction(files, want, display)
	if err != nil {
		return &exitError{code: ExitError, err: err}
	}
	var m *gate.Machine
	if gate.HasShim(pkgs) {
		if m, err = g.resolve(tp); err != nil {
			return err
		}
	} else if err := checkFormat(g.format); err != nil {
		return err
	}
	results, all := m.JudgeTransaction(pkgs)
	if g.format == "json" {
		d := gate.Decide(all, g.force)
		err = writeJSON(c.OutOrStdout(), struct {
			Firmware *secureboot.Summary  `json:"firmware"`
			Packages []gate.PackageResult `json:"packages"`
			Allowed  bool                 `json:"allowed"`
			Forced   bool                 `json:"forced"`
		}{m.Summary(), results, d.Allowed(), d.Forced})
	} else {
		err = buffered(c.OutOrStdout(), func(w io.Writer) error {
			writePackages(w, m, results, g.hook)
			return nil
		})
	}
	if err != nil {
		return err
	}
	return g.exit(c, all)
}

func newGateAptHookCmd() *cobra.Command {
	var g gateOpts
	c := &cobra.Command{
		Use:   "apt-hook",
		Short: "apt's DPkg::Pre-Install-Pkgs hook: judge the shims apt is about to install",
		Long: `apt-hook is what 'vouch gate install-hook' makes apt run before it calls dpkg
(DPkg::Pre-Install-Pkgs in apt.conf(5)): it reads the .deb files on its standard
input (hook protocol version 1, 2 or 3), judges the shims among them against the
running system (its efivarfs, or the firmware flags written into the hook) and exits
1 when the machine would not boot one, which makes apt stop before dpkg unpacks
anything. Packages without a shim pass silently. To install anyway, set
VOUCH_GATE_FORCE=1 in apt's environment: the hook then warns and exits 0.`,
		Example: `  # /etc/apt/apt.conf.d/05vouch-gate, as written by install-hook:
  DPkg::Pre-Install-Pkgs { "/usr/bin/vouch gate apt-hook"; };
  # by hand:
  ls /var/cache/apt/archives/*.deb | vouch gate apt-hook --firmware microsoft-2011`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			files, err := gate.AptArchives(c.InOrStdin())
			if err != nil {
				return &exitError{code: ExitError, err: err}
			}
			if len(files) == 0 {
				return nil
			}
			g.hook = true
			return g.runPackages(c, files, "deb", nil)
		},
	}
	g.register(c, false, 0)
	return c
}

func newGateDpkgHookCmd() *cobra.Command {
	var g gateOpts
	c := &cobra.Command{
		Use:   "dpkg-hook",
		Short: "dpkg's pre-invoke hook: judge the shims of 'dpkg -i' and 'dpkg --unpack'",
		Long: `dpkg-hook is what 'vouch gate install-hook' makes dpkg run before each run
(pre-invoke in dpkg.cfg, see dpkg(1)), so that 'dpkg -i shim-signed_....deb' run by
hand is judged too: apt's hooks do not run then. dpkg tells a hook only the action
(DPKG_HOOK_ACTION), not the archives, so for the install and unpack actions the hook
reads the archives from the dpkg process's command line in /proc (resolving relative
paths against dpkg's working directory, searching directories with -R), and exits 1
when the machine would not boot a shim among them: dpkg then stops before unpacking.

When dpkg was started by apt and apt's vouch hook is installed, the archives were
judged already and the hook does nothing. VOUCH_GATE_FORCE=1 in dpkg's environment
turns a refusal into a warning. When /proc is not mounted (a bare chroot)
the command line cannot be read: the hook warns and lets dpkg go on.`,
		Example: `  # /etc/dpkg/dpkg.cfg.d/vouch-gate, as written by install-hook:
  pre-invoke=/usr/bin/vouch gate dpkg-hook`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			action := os.Getenv("DPKG_HOOK_ACTION")
			if action != "install" && action != "unpack" {
				return nil
			}
			inv, err := gate.FindDpkg("/proc", os.Getppid())
			if err != nil {
				fmt.Fprintf(c.ErrOrStderr(), "vouch gate: warning: cannot read dpkg's command line (%v); the archives of this dpkg run are not checked\n", err)
				return nil
			}
			if inv.ParentIsApt() && aptHookInstalled() {
				return nil
			}
			files, display := inv.Archives()
			if len(files) == 0 {
				return nil
			}
			g.hook = true
			return g.runPackages(c, files, "", display)
		},
	}
	g.register(c, false, 0)
	return c
}

// writeGateFirmware prints the firmware state in one line.
func writeGateFirmware(w io.Writer, m *gate.Machine) {
	if m == nil {
		return
	}
	if m.Firmware == nil {
		fmt.Fprintf(w, "Firmware: none — %s\n", m.NoFirmware)
		return
	}
	fw := m.Firmware
	mode := "Secure Boot on"
	switch {
	case fw.SetupMode:
		mode = "setup mode (no PK)"
	case !fw.SecureBoot:
		mode = "Secure Boot off"
	}
	names := make([]string, len(fw.DBCAs))
	for i, id := range fw.DBCAs {
		names[i] = secureboot.CAName(id)
	}
	fmt.Fprintf(w, "Firmware: %s — %s; db trusts %s\n", fw.Source, mode, orNone(names))
}

var outcomeWords = map[string]string{
	gate.Safe:        "SAFE",
	gate.Refused:     "REFUSED — would not boot",
	gate.NotEnforced: "ALLOWED — Secure Boot not enforced",
	gate.NoFirmware:  "ALLOWED — no firmware state",
}

func writeVerdict(w io.Writer, v *gate.Verdict) {
	fmt.Fprintf(w, "%s: %s\n", v.Shim, outcomeWords[v.Outcome])
	names := make([]string, len(v.ShimSignedBy))
	for i, id := range v.ShimSignedBy {
		names[i] = secureboot.CAName(id)
	}
	fmt.Fprintf(w, "  signed by: %s\n", orNone(names))
	fmt.Fprintf(w, "  %s\n", v.Message)
	if v.Advice != "" {
		fmt.Fprintf(w, "  what to do: %s\n", v.Advice)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, ch := range v.Checks {
		state := "allowed"
		switch {
		case !ch.Allowed:
			state = "REFUSED"
		case !ch.Decision.Enforced:
			state = "not enforced"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", ch.Step, ch.File, state, cmp.Or(ch.Decision.AuthorizedBy, ch.Decision.Reason))
	}
	tw.Flush()
	for _, n := range v.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
}

func writePackages(w io.Writer, m *gate.Machine, results []gate.PackageResult, hook bool) {
	if m != nil {
		if hook {
			fmt.Fprint(w, "vouch gate: ")
		}
		writeGateFirmware(w, m)
	}
	for _, r := range results {
		id := r.File
		if r.Name != "" {
			id = fmt.Sprintf("%s (%s %s)", r.File, r.Name, r.Version)
		}
		if len(r.Verdicts) == 0 {
			if hook {
				continue
			}
			what := "holds no shim: nothing to judge"
			if unsigned := len(r.EFI) > 0 && hasUnsignedShim(r.Package); unsigned {
				what = "holds only unsigned shim builds, which firmware never boots: nothing to judge"
			}
			fmt.Fprintf(w, "%s: %s\n", id, what)
			for _, n := range r.Notes {
				fmt.Fprintf(w, "  note: %s\n", n)
			}
			continue
		}
		fmt.Fprintf(w, "%s:\n", id)
		for _, v := range r.Verdicts {
			writeVerdict(w, v)
		}
	}
}

func hasUnsignedShim(p *gate.Package) bool {
	for _, f := range p.EFI {
		if f.Role == gate.RoleShim && !f.Signed {
			return true
		}
	}
	return false
}

// forceEnv, set to 1 in a package manager's environment, makes the hooks
// warn but allow (the hooks cannot get --force from apt, dpkg or dnf).
const forceEnv = "VOUCH_GATE_FORCE"

// aptHookInstalled reports that vouch's apt hook is configured: then
// dpkg started by apt runs on archives the apt hook judged already.
func aptHookInstalled() bool {
	_, err := os.Stat(filepath.Join("/", gate.AptConfPath))
	return err == nil
}

func newGateInstallHookCmd() *cobra.Command {
	var (
		ff     firmwareFlags
		root   string
		vouch  string
		kinds  []string
		remove bool
	)
	c := &cobra.Command{
		Use:   "install-hook",
		Short: "Make apt, dpkg and dnf run the gate before they install a shim",
		Long: `install-hook writes the package-manager configuration that runs the gate on
every install, atomically (a new file, then a rename):

  apt   /etc/apt/apt.conf.d/05vouch-gate       DPkg::Pre-Install-Pkgs → vouch gate apt-hook
  dpkg  /etc/dpkg/dpkg.cfg.d/vouch-gate        pre-invoke → vouch gate dpkg-hook (dpkg -i by hand)
  dnf   /etc/dnf/plugins/vouch_gate.conf and dnf-plugins/vouch_gate.py (dnf 4:
        RHEL/CentOS/Alma/Rocky 8-10, Amazon Linux 2023, Fedora up to 40), whose
        pre_transaction hook runs vouch gate rpm on the downloaded packages

By default it installs what the system under --root has (/etc/apt, /etc/dpkg, a
dnf-plugins directory); --kind chooses. The hooks call vouch by its absolute path as
seen inside --root (the running binary, which must lie under --root, or --vouch) and
pass the firmware flags given here, whose files are paths inside --root; without
them the hooks read the running system's efivarfs. A firmware file named here must
exist, since a hook that cannot read it stops every install.
--remove deletes the files again.`,
		Example: `  vouch gate install-hook
  vouch gate install-hook --root /srv/chroot/bookworm --vars /var/lib/vouch/VARS.fd
  vouch gate install-hook --kind apt --firmware microsoft-2011
  vouch gate install-hook --remove`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			abs, err := filepath.Abs(root)
			if err != nil {
				return &exitError{code: ExitError, err: err}
			}
			root = abs
			if info, err := os.Stat(root); err != nil || !info.IsDir() {
				return usageErrorf("--root %s: not a directory", root)
			}
			plan, err := gate.PlanHooks(root, splitList(kinds))
			if err != nil {
				return usageErrorf("%v", err)
			}
			if remove {
				for _, f := range plan {
					p := filepath.Join(root, f.Path)
					if err := os.Remove(p); err == nil {
						fmt.Fprintf(c.OutOrStdout(), "removed %s\n", p)
					} else if !errors.Is(err, fs.ErrNotExist) {
						return &exitError{code: ExitError, err: err}
					}
				}
				return nil
			}
			cfg, err := hookConfig(root, vouch, &ff)
			if err != nil {
				return err
			}
			for _, f := range plan {
				p := filepath.Join(root, f.Path)
				if err := atomicfile.Write(p, []byte(f.Content(cfg)), atomicfile.Options{Mode: 0o644, MkdirAll: true}); err != nil {
					return &exitError{code: ExitError, err: err}
				}
				fmt.Fprintf(c.OutOrStdout(), "wrote %s (%s)\n", p, f.Kind)
			}
			return nil
		},
	}
	c.Flags().StringVar(&root, "root", "/", "the system to configure (a chroot or a mounted image's root)")
	c.Flags().StringVar(&vouch, "vouch", "", "the vouch binary's absolute path inside --root (default: the running binary)")
	c.Flags().StringSliceVar(&kinds, "kind", nil, "which hooks: apt, dpkg, dnf (default: those the system has)")
	c.Flags().BoolVar(&remove, "remove", false, "remove the hook files instead")
	c.Flags().StringVar(&ff.vars, "vars", "", "edk2/OVMF variable store the hooks judge against (path inside --root)")
	c.Flags().StringVar(&ff.efivars, "efivars", "", "directory of firmware variables the hooks judge against (path inside --root)")
	c.Flags().StringVar(&ff.profile, "firmware", "", "what-if firmware profile the hooks judge against: "+strings.Join(secureboot.Profiles(), ", "))
	c.Flags().StringVar(&ff.sbatPolicy, "sbat-policy", "automatic", "shim SbatPolicy the hooks assume: automatic or latest")
	return c
}

// hookConfig finds vouch's path inside root (the running binary unless
// --vouch names one) and lets gate.NewHookConfig check the rest.
func hookConfig(root, vouch string, ff *firmwareFlags) (gate.HookConfig, error) {
	exe := ""
	if vouch == "" {
		var err error
		if exe, err = os.Executable(); err == nil {
			exe, err = filepath.EvalSymlinks(exe)
		}
		if err != nil {
			return gate.HookConfig{}, &exitError{code: ExitError, err: err}
		}
	}
	cfg, err := gate.NewHookConfig(gate.HookOptions{Root: root, Vouch: vouch, Executable: exe, Firmware: ff.source(), SBATPolicy: ff.sbatPolicy})
	if err != nil {
		return cfg, usageErrorf("%s", strings.TrimPrefix(err.Error(), "gate: "))
	}
	return cfg, nil
}
