package secureboot

import (
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/vouch-dev/vouch/internal/efi"
)

// Options adjust an analysis.
type Options struct {
	// SBATPolicy is the shim SbatPolicy assumed (automatic by default).
	SBATPolicy SBATPolicy
}

// Report is the analysis of one target.
type Report struct {
	// Firmware is nil when the firmware state is unknown.
	Firmware   *Summary   `json:"firmware,omitempty"`
	BootPaths  []BootPath `json:"bootPaths"`
	Transition Transition `json:"transition"`
}

// Analyze finds the boot paths of a target, judges every stage under fw (nil
// when the firmware is unknown: firmware stages stay unjudged and shim
// applies only what it carries) and gives the transition verdict.
func Analyze(esp, root fs.FS, fw *Firmware, o Options) *Report {
	var vars *efi.VarSet
	if fw != nil {
		vars = fw.Vars
	}
	paths := BootPaths(esp, root, vars)
	Evaluate(paths, fw, o)
	r := &Report{BootPaths: paths}
	if r.BootPaths == nil {
		r.BootPaths = []BootPath{}
	}
	if fw != nil {
		s := fw.Summarize()
		r.Firmware = &s
	}
	r.Transition = transition(paths, fw, o)
	return r
}

// Evaluate judges every stage of paths under fw (nil: unknown firmware) and
// sets each path's Boots and Verdict.
func Evaluate(paths []BootPath, fw *Firmware, o Options) {
	for i := range paths {
		judge(&paths[i], fw, o)
	}
}

func judge(bp *BootPath, fw *Firmware, o Options) {
	var shim *Stage
	for i := range bp.Stages {
		st := &bp.Stages[i]
		st.Decision, st.SelfCheck = nil, nil
		if st.Error != "" {
			continue
		}
		switch st.LoadedBy {
		case ByFirmware:
			if fw != nil {
				d := fw.Verify(st.img)
				st.Decision = &d
			}
		case ByShim:
			if shim != nil {
				d := ShimVerifyWith(shim.img, fw, st.img, ShimOptions{SBATPolicy: o.SBATPolicy})
				st.Decision = &d
			}
		}
		if st.Role == RoleShim {
			shim = st
			if fw == nil || (fw.Enforcing() && !fw.ShimValidationDisabled) {
				d := ShimSelfCheck(st.img, fw, o.SBATPolicy)
				st.SelfCheck = &d
			}
		}
	}
	// GRUB hands the kernel to shim's SHIM_LOCK protocol (shim_verify), which
	// sets in_protocol: the same db/MokList/vendor-certificate rules, and SBAT
	// when the kernel has a .sbat section, but a missing .sbat is accepted
	// (verify_sbat_section: "SBAT is mandatory for binaries loaded by shim,
	// but optional for binaries loaded outside of shim but verified via the
	// protocol"). Debian 12's signed kernel has no .sbat section, so SBAT
	// never applies to it.
	for i := range bp.Kernels {
		k := &bp.Kernels[i]
		k.Decision = nil
		if k.Error != "" || shim == nil {
			continue
		}
		d := ShimVerifyWith(shim.img, fw, k.img, ShimOptions{Protocol: true, SBATPolicy: o.SBATPolicy})
		k.Decision = &d
	}
	bp.Boots, bp.Verdict = outcome(bp)
}

// outcome combines the stages: refused when one is refused, unknown when
// one cannot be judged, boots otherwise. The newest kernel is the one GRUB
// boots by default.
func outcome(bp *BootPath) (*bool, string) {
	unknown := ""
	for _, st := range bp.Stages {
		switch st.allowed() {
		case 0:
			return boolp(false), stageFailure(st)
		case -1:
			if unknown == "" && st.Absent {
				unknown = fmt.Sprintf("%s is not on this ESP (another disk?): not judged", st.Path)
			} else if unknown == "" {
				unknown = fmt.Sprintf("%s cannot be judged without the firmware's db and dbx", st.Path)
			}
		}
	}
	if len(bp.Kernels) > 0 {
		k := bp.Kernels[0]
		switch k.allowed() {
		case 0:
			return boolp(false), stageFailure(k)
		case -1:
			if unknown == "" {
				unknown = fmt.Sprintf("%s cannot be judged", k.Path)
			}
		}
	}
	if unknown != "" {
		return nil, unknown
	}
	last := bp.Stages[len(bp.Stages)-1]
	what := last.Path
	if len(bp.Kernels) > 0 {
		what = bp.Kernels[0].Path
	}
	return boolp(true), "boots: every stage up to " + what + " is allowed"
}

func stageFailure(st Stage) string {
	switch {
	case st.Error != "":
		return fmt.Sprintf("does not boot: %s: %s", st.Path, st.Error)
	case st.Decision != nil && !st.Decision.Allowed:
		return fmt.Sprintf("does not boot: %s refuses %s: %s", st.LoadedBy, st.Path, st.Decision.Reason)
	case st.SelfCheck != nil && !st.SelfCheck.Allowed:
		return fmt.Sprintf("does not boot: %s: %s", st.Path, st.SelfCheck.Reason)
	}
	return "does not boot"
}

func boolp(b bool) *bool { return &b }

// booted reports whether the path boots (false when unknown).
func (bp BootPath) booted() bool { return bp.Boots != nil && *bp.Boots }

// firstShim returns the first shim stage loaded by the firmware, preferring
// paths that boot, and its path.
func firstShim(paths []BootPath) (*Stage, *BootPath) {
	for pass := 0; pass < 2; pass++ {
		for i := range paths {
			bp := &paths[i]
			if pass == 0 && !bp.booted() {
				continue
			}
			for j := range bp.Stages {
				st := &bp.Stages[j]
				if st.Role == RoleShim && st.LoadedBy == ByFirmware && st.img != nil {
					return st, bp
				}
			}
		}
	}
	return nil, nil
}

// failures lists, once each, why paths fail.
func failures(paths []BootPath) []string {
	var out []string
	for _, bp := range paths {
		if bp.Boots != nil && !*bp.Boots && !slices.Contains(out, bp.Verdict) {
			out = append(out, bp.Verdict)
		}
	}
	return out
}

func stringsJoinAnd(s []string) string {
	switch len(s) {
	case 0:
		return ""
	case 1:
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}
