package secureboot

import (
	"cmp"
	"context"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/vouch-dev/vouch/internal/check"
	"github.com/vouch-dev/vouch/internal/efi"
	"github.com/vouch-dev/vouch/internal/finding"
	"github.com/vouch-dev/vouch/internal/target"
)

// Suite is the check suite of this package.
const Suite = "secureboot"

// The facts the secure boot checks share in a run: the firmware state and
// options the command sets, and the analysis computed once from them.
var (
	firmwareFact = check.NewFact[*Firmware]("secureboot.firmware")
	optionsFact  = check.NewFact[Options]("secureboot.options")
	analysisFact = check.NewFact[*analysis]("secureboot.analysis")
)

// SetFirmware gives the secure boot checks a firmware state (from --vars,
// --efivars, --firmware, or the live host's efivarfs) and marks the
// environment as having firmware variables.
func SetFirmware(env *check.Env, fw *Firmware) {
	firmwareFact.Set(env, fw)
	analysisFact.Reset(env)
	env.Firmware = fw != nil
}

// SetOptions sets the analysis options the checks use.
func SetOptions(env *check.Env, o Options) {
	optionsFact.Set(env, o)
	analysisFact.Reset(env)
}

// EnvFirmware returns the firmware state set with SetFirmware.
func EnvFirmware(env *check.Env) (*Firmware, bool) {
	fw, ok := firmwareFact.Get(env)
	return fw, ok && fw != nil
}

// TargetFirmware reads the firmware state a target carries itself: the live
// host's efivarfs. It returns nil for images, directories and hosts booted
// without UEFI.
func TargetFirmware(t *target.Target) (*Firmware, error) {
	if t == nil || t.EFIVars == nil {
		return nil, nil
	}
	vs, err := efi.ReadVarDir(t.EFIVars, "efivarfs")
	if err != nil {
		return nil, err
	}
	return FromVars(vs)
}

type analysis struct {
	report *Report
	policy *Report // with Secure Boot assumed enforced
}

// AnalyzeTarget runs Analyze on a target's ESP and root.
func AnalyzeTarget(t *target.Target, fw *Firmware, o Options) *Report {
	var root fs.FS
	if t.Root != nil {
		root = t.Root
	}
	return Analyze(t.ESP, root, fw, o)
}

func analyzed(env *check.Env) *analysis {
	return analysisFact.Once(env, func() *analysis {
		a := &analysis{}
		fw, _ := EnvFirmware(env)
		o, _ := optionsFact.Get(env)
		a.report = AnalyzeTarget(env.Target, fw, o)
		a.policy = a.report
		if fw != nil && (!fw.Enforcing() || fw.ShimValidationDisabled) {
			pol := *fw
			pol.SecureBoot, pol.SetupMode, pol.ShimValidationDisabled = true, false, false
			a.policy = AnalyzeTarget(env.Target, &pol, o)
		}
		return a
	})
}

// Checks returns the secure boot checks, in report order.
func Checks() []check.Check {
	return []check.Check{
		{
			ID:          "secureboot.enabled",
			Suite:       Suite,
			Title:       "UEFI Secure Boot is enforced",
			Severity:    finding.High,
			Needs:       check.NeedFirmware,
			Remediation: "Enable Secure Boot in the firmware setup (or the VM's security settings) with the platform's keys enrolled (PK, KEK, db).",
			References:  []string{"UEFI 2.10 §32.3 (Firmware/OS key exchange: SecureBoot, SetupMode)"},
			Run:         runEnabled,
		},
		{
			ID:          "secureboot.boot-path-allowed",
			Suite:       Suite,
			Title:       "Every boot path passes Secure Boot from firmware to kernel",
			Severity:    finding.Critical,
			Needs:       check.NeedESP | check.NeedFirmware,
			Remediation: "Install boot loaders signed by a certificate the firmware's db trusts (for Linux: a current shim-signed and signed GRUB and kernel), or add the signing CA to db.",
			References:  []string{"edk2 DxeImageVerificationLib", "rhboot/shim verify_buffer"},
			Run:         runBootPaths,
		},
		{
			ID:          "secureboot.shim-2023-ready",
			Suite:       Suite,
			Title:       "A shim signed only by the Microsoft UEFI CA 2023 will boot",
			Severity:    finding.High,
			Needs:       check.NeedESP | check.NeedFirmware,
			Remediation: "Add the Microsoft UEFI CA 2023 to db (a signed db update from the machine or cloud vendor) before a 2023-only shim is installed.",
			References:  []string{"Microsoft: Windows Secure Boot certificate expiration and CA updates (Microsoft Corporation UEFI CA 2011 expires 2026-06-27)"},
			Run:         runShim2023Ready,
		},
		{
			ID:          "secureboot.shim-ca-transition",
			Suite:       Suite,
			Title:       "The installed shim carries a Microsoft UEFI CA 2023 signature",
			Severity:    finding.Medium,
			Needs:       check.NeedESP,
			Remediation: "Install your distribution's current shim-signed, signed by the Microsoft UEFI CA 2023 (dual-signed shims boot on firmware that trusts either CA).",
			Run:         runShimTransition,
		},
		{
			ID:          "secureboot.sbat-current",
			Suite:       Suite,
			Title:       "Boot binaries meet shim's SBAT revocation level",
			Severity:    finding.High,
			Needs:       check.NeedESP,
			Remediation: "Update the signed boot packages (shim-signed, grub-efi-*-signed, the kernel) to builds whose SBAT generations meet the SbatLevel.",
			References:  []string{"rhboot/shim SBAT.md", "rhboot/shim SbatLevel_Variable.txt"},
			Run:         runSBAT,
		},
		{
			ID:          "secureboot.dbx-revoked",
			Suite:       Suite,
			Title:       "No boot binary is revoked by dbx, the vendor dbx or MokListX",
			Severity:    finding.Critical,
			Needs:       check.NeedESP | check.NeedFirmware,
			Remediation: "Replace the revoked binaries with current signed builds (shim-signed, grub-efi-*-signed) before applying the dbx update or enabling Secure Boot.",
			Run:         runDbx,
		},
	}
}

func runEnabled(_ context.Context, env *check.Env) []check.Result {
	fw, ok := EnvFirmware(env)
	if !ok {
		return check.NA("no firmware variables")
	}
	ev := []string{"source: " + fw.Source, fmt.Sprintf("SecureBoot=%v SetupMode=%v", fw.SecureBoot, fw.SetupMode), "db trusts: " + idList(fw.DBCAs)}
	switch {
	case fw.SetupMode:
		return check.Fail("the firmware is in setup mode (no Platform Key): it checks no signatures", ev...)
	case !fw.SecureBoot:
		return check.Fail("Secure Boot is off: the firmware starts any boot loader", ev...)
	case fw.ShimValidationDisabled:
		return check.Fail("Secure Boot is on but shim validation is disabled (MokSBState): shim starts anything", ev...)
	}
	return check.Pass("Secure Boot is on and enforced (user mode)", ev...)
}

func runBootPaths(_ context.Context, env *check.Env) []check.Result {
	r := analyzed(env).report
	if len(r.BootPaths) == 0 {
		return check.NA("no boot loader found on the EFI System Partition")
	}
	var out []check.Result
	for _, bp := range r.BootPaths {
		res := check.Result{Subject: bp.Entry, Message: bp.Name + ": " + bp.Verdict, Evidence: stageEvidence(bp)}
		switch {
		case bp.Boots == nil && len(bp.Stages) > 0 && bp.Stages[0].Absent:
			res.Status = finding.NotApplicable
		case bp.Boots == nil:
			res.Status = finding.Error
		case *bp.Boots:
			res.Status = finding.Pass
		default:
			res.Status = finding.Fail
		}
		out = append(out, res)
	}
	return out
}

func stageEvidence(bp BootPath) []string {
	var ev []string
	line := func(st Stage) string {
		s := fmt.Sprintf("%s %s [%s]", st.LoadedBy, st.Path, st.Role)
		switch {
		case st.Error != "":
			s += ": " + st.Error
		case st.Decision == nil:
			s += ": not judged"
		case st.Decision.Allowed:
			s += ": allowed (" + cmp.Or(st.Decision.AuthorizedBy, st.Decision.Reason) + ")"
		default:
			s += ": refused (" + cmp.Or(st.Decision.DeniedBy, st.Decision.Reason) + ")"
		}
		if st.SelfCheck != nil && !st.SelfCheck.Allowed {
			s += "; " + st.SelfCheck.Reason
		}
		return s
	}
	for _, st := range bp.Stages {
		ev = append(ev, line(st))
	}
	for _, k := range bp.Kernels {
		ev = append(ev, line(k))
	}
	return ev
}

func runShim2023Ready(_ context.Context, env *check.Env) []check.Result {
	a := analyzed(env)
	t := a.policy.Transition
	ev := []string{"shim signed by: " + idList(t.ShimSignedBy), "db trusts: " + idList(t.FirmwareTrusts), "advice: " + a.report.Transition.Advice}
	if t.BootsWith2023OnlyShim {
		return check.Pass("a shim signed only by the Microsoft UEFI CA 2023 will boot", ev...)
	}
	return check.Fail("a shim signed only by the Microsoft UEFI CA 2023 will not boot", ev...)
}

func runShimTransition(_ context.Context, env *check.Env) []check.Result {
	r := analyzed(env).report
	shim, _ := firstShim(r.BootPaths)
	if shim == nil {
		return check.NA("no shim found on the EFI System Partition")
	}
	ids := SignedBy(shim.img)
	ev := []string{shim.Path + " signed by: " + idList(ids)}
	res := check.Result{Subject: shim.Path, Evidence: ev}
	switch {
	case slices.Contains(ids, CAUEFI2023) && slices.Contains(ids, CAUEFI2011):
		res.Status, res.Message = finding.Pass, "the shim is dual-signed (Microsoft Corporation UEFI CA 2011 and Microsoft UEFI CA 2023): it boots on firmware trusting either"
	case slices.Contains(ids, CAUEFI2023):
		res.Status, res.Message = finding.Pass, "the shim is signed by the Microsoft UEFI CA 2023 only: it needs that CA in db"
	case slices.Contains(ids, CAUEFI2011):
		res.Status, res.Message = finding.Fail, "the shim is signed only by the Microsoft Corporation UEFI CA 2011 (expired 2026-06-27): firmware that trusts only the 2023 CA refuses it"
	default:
		res.Status, res.Message = finding.Fail, "the shim carries no Microsoft UEFI CA signature"
	}
	return []check.Result{res}
}

func runSBAT(_ context.Context, env *check.Env) []check.Result {
	r := analyzed(env).report
	fw, _ := EnvFirmware(env)
	o, _ := optionsFact.Get(env)
	var out []check.Result
	seen := map[string]bool{}
	for _, bp := range r.BootPaths {
		var shim *Stage
		for i := range bp.Stages {
			if bp.Stages[i].Role == RoleShim {
				shim = &bp.Stages[i]
				break
			}
		}
		if shim == nil || shim.img == nil {
			continue
		}
		level, err := EffectiveSBATLevel(fw, shim.img, o.SBATPolicy)
		if err != nil {
			out = append(out, check.Result{Status: finding.Error, Subject: shim.Path, Message: err.Error()})
			continue
		}
		check1 := func(st Stage, protocol bool) {
			key := st.Path + "|" + shim.Path
			if st.img == nil || seen[key] {
				return
			}
			seen[key] = true
			res := check.Result{Subject: st.Path, Evidence: []string{"level: " + levelName(level) + ": " + strings.ReplaceAll(strings.TrimSpace(level.Text), "\n", " ")}}
			if st.Role == RoleShim {
				d := ShimSelfCheck(st.img, fw, o.SBATPolicy)
				res.Status, res.Message = statusOf(d.Allowed), "shim: "+d.Reason
			} else if d, ok := sbatVerdict(st.img, level, protocol); ok {
				res.Status, res.Message = finding.Pass, d.Explanation
			} else {
				res.Status, res.Message = finding.Fail, d.Reason
			}
			if len(st.SBAT) > 0 {
				res.Evidence = append(res.Evidence, ".sbat: "+sbatSummary(st.SBAT))
			}
			out = append(out, res)
		}
		for _, st := range bp.Stages {
			if st.LoadedBy == ByShim || st.Role == RoleShim {
				check1(st, false)
			}
		}
		for _, k := range bp.Kernels {
			check1(k, true)
		}
	}
	if len(out) == 0 {
		return check.NA("no shim-loaded boot path on the EFI System Partition")
	}
	return out
}

func statusOf(ok bool) finding.Status {
	if ok {
		return finding.Pass
	}
	return finding.Fail
}

func runDbx(_ context.Context, env *check.Env) []check.Result {
	r := analyzed(env).policy
	fw, _ := EnvFirmware(env)
	var out []check.Result
	seen := map[string]bool{}
	for _, bp := range r.BootPaths {
		for _, st := range append(append([]Stage(nil), bp.Stages...), bp.Kernels...) {
			d := st.Decision
			if d == nil || d.Allowed || seen[st.Path] {
				continue
			}
			for _, p := range []string{"dbx", "vendor dbx", "MokListX"} {
				if strings.HasPrefix(d.DeniedBy, p) {
					seen[st.Path] = true
					out = append(out, check.Result{Status: finding.Fail, Subject: st.Path,
						Message:  fmt.Sprintf("%s is revoked: %s", st.Path, d.Reason),
						Evidence: []string{"denied by " + d.DeniedBy, d.Explanation}})
					break
				}
			}
		}
	}
	if len(out) > 0 {
		return out
	}
	n := 0
	if fw != nil {
		for _, l := range fw.DBX {
			n += len(l.Signatures)
		}
	}
	return check.Pass(fmt.Sprintf("no boot binary is revoked (dbx holds %d entries)", n))
}
