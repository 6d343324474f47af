package gate

import (
	"fmt"
	"io/fs"

	"github.com/vouch-dev/vouch/internal/secureboot"
	"github.com/vouch-dev/vouch/internal/target"
)

// Machine is what a new shim is judged against: the firmware state (after
// the proposed change's variable writes), the next stages it will load and
// shim's SBAT policy.
type Machine struct {
	// Firmware is nil when there is no firmware state; NoFirmware says
	// why.
	Firmware   *secureboot.Firmware
	NoFirmware string
	// Stages are the target's GRUB and kernel (empty without a target).
	Stages     Stages
	SBATPolicy secureboot.SBATPolicy
}

// MachineOptions say where a Machine comes from.
type MachineOptions struct {
	// Firmware names the firmware state; none: the target's own.
	Firmware secureboot.FirmwareSource
	// Target is an image, a root directory or "/" (the running host: its
	// efivarfs, ESP and kernels), anything vouch scan takes; "" judges
	// against the running host's firmware without its stages.
	Target string
	// Change is applied to the firmware state (db, dbx, SbatLevel).
	Change *secureboot.Change
	// SBATPolicy is shim's SbatPolicy before the change.
	SBATPolicy secureboot.SBATPolicy
	// Hook is set for package-manager hooks: a root that cannot be opened
	// (dnf --installroot populating an empty directory) is judged without
	// its stages rather than stopping every install.
	Hook bool
}

// ResolveMachine builds the Machine: the firmware through
// secureboot.LoadFirmware (the named source, else the target's own), the
// next stages from the target's ESP and root when a target is named, then
// the change's firmware writes. Errors are a firmware source or target that
// cannot be read (secureboot.FirmwareUsageError for a source named wrongly).
func ResolveMachine(o MachineOptions) (*Machine, error) {
	m := &Machine{SBATPolicy: o.SBATPolicy}
	defer m.apply(o.Change)
	var err error
	if o.Target == "" && o.Firmware.Given() {
		m.Firmware, _, err = secureboot.LoadFirmware(o.Firmware, nil)
		return m, err
	}
	path := o.Target
	if path == "" {
		path = "/"
	}
	t, terr := target.Open(path, target.Options{Live: path == "/"})
	if terr != nil && o.Hook {
		if m.Firmware, _, err = secureboot.LoadFirmware(o.Firmware, nil); err == nil && m.Firmware == nil {
			m.NoFirmware = fmt.Sprintf("firmware state unknown: %v, and no --vars, --efivars or --firmware was given", terr)
		}
		return m, err
	}
	if terr != nil {
		return nil, terr
	}
	defer t.Close()
	if m.Firmware, m.NoFirmware, err = secureboot.LoadFirmware(o.Firmware, t); err != nil {
		return nil, err
	}
	if o.Target != "" {
		var root fs.FS
		if t.Root != nil {
			root = t.Root
		}
		label := ""
		if t.Kind != target.KindLive {
			label = t.Path + ":"
		}
		m.Stages = TargetStages(t.ESP, root, label)
	}
	return m, nil
}

// apply makes the machine the one after the change's firmware writes.
func (m *Machine) apply(c *secureboot.Change) {
	o := secureboot.Options{SBATPolicy: m.SBATPolicy}
	m.Firmware, o = m.Firmware.WithChange(c, o)
	m.SBATPolicy = o.SBATPolicy
}

// Judge judges a new shim with the given next stages on the machine.
func (m *Machine) Judge(shim *Binary, stages Stages) *Verdict {
	return Judge(Request{Shim: shim, GRUB: stages.GRUB, Kernel: stages.Kernel, Firmware: m.Firmware, NoFirmware: m.NoFirmware, SBATPolicy: m.SBATPolicy})
}

// Summary describes the firmware state, nil without one.
func (m *Machine) Summary() *secureboot.Summary {
	if m == nil || m.Firmware == nil {
		return nil
	}
	s := m.Firmware.Summarize()
	return &s
}

// PackageResult is one package of a transaction and the verdicts on its
// shims. Its JSON keys are a contract.
type PackageResult struct {
	*Package
	Verdicts []*Verdict `json:"verdicts"`
}

// ReadTransaction reads the package files of one install (want "deb",
// "rpm", or "" to tell by content). Kernel payloads, slow to decompress, are
// read only when a shim is among the packages, since a kernel matters only
// as a new shim's next stage. display, when not nil, gives the names to show
// for the files.
func ReadTransaction(files []string, want string, display []string) ([]*Package, error) {
	var pkgs []*Package
	anyShim := false
	for _, f := range files {
		p, err := ReadPackageFile(f, want, ReadOptions{})
		if err != nil {
			return nil, err
		}
		anyShim = anyShim || len(p.Shims()) > 0
		pkgs = append(pkgs, p)
	}
	for i, p := range pkgs {
		if anyShim && p.KernelFiles {
			k, err := ReadPackageFile(p.File, want, ReadOptions{Kernels: true})
			if err != nil {
				return nil, err
			}
			pkgs[i] = k
		}
		if display != nil {
			pkgs[i].File = display[i]
		}
	}
	return pkgs, nil
}

// HasShim reports whether any package holds a signed shim.
func HasShim(pkgs []*Package) bool {
	for _, p := range pkgs {
		if len(p.Shims()) > 0 {
			return true
		}
	}
	return false
}

// JudgeTransaction judges every shim of the packages on m, with the GRUB
// and kernel the same transaction installs (else the machine's own) as its
// next stages. m may be nil when no package holds a shim.
func (m *Machine) JudgeTransaction(pkgs []*Package) ([]PackageResult, []*Verdict) {
	var results []PackageResult
	var all []*Verdict
	for _, p := range pkgs {
		r := PackageResult{Package: p, Verdicts: []*Verdict{}}
		if shims := p.Shims(); len(shims) > 0 {
			stages := PackageStages(pkgs, m.Stages)
			for _, s := range shims {
				v := m.Judge(p.Binary(s), stages)
				r.Verdicts = append(r.Verdicts, v)
				all = append(all, v)
			}
		}
		results = append(results, r)
	}
	return results, all
}

// Decision is the gate's exit policy on a set of verdicts: installing is
// allowed when every shim boots, or when forced (--force, or
// VOUCH_GATE_FORCE=1 for the hooks), which still warns.
type Decision struct {
	// Refused counts the shims the machine would not boot.
	Refused int
	// Forced is set when refusals were overridden.
	Forced bool
}

// Allowed reports whether the installation may go on (exit 0).
func (d Decision) Allowed() bool { return d.Refused == 0 || d.Forced }

// Decide applies the exit policy to verdicts.
func Decide(vs []*Verdict, force bool) Decision {
	d := Decision{}
	for _, v := range vs {
		if !v.Boots {
			d.Refused++
		}
	}
	d.Forced = force && d.Refused > 0
	return d
}
