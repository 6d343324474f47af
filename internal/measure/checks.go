package measure

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/vouch-dev/vouch/internal/check"
	"github.com/vouch-dev/vouch/internal/finding"
)

// Suite is the check suite of this package.
const Suite = "measured-boot"

// Evidence is what the checks read: the event log and the TPM's PCRs.
type Evidence struct {
	Log *Log
	// TPM are the TPM's PCRs; nil when only the log is known (a saved
	// copy), and then the replay cannot be compared.
	TPM PCRs
	// Source names where the log came from.
	Source string
}

var (
	// evidenceFact is the log (and PCRs) the checks judge: set by a command
	// that read them elsewhere (SetEvidence), else the running system's,
	// read once per run and shared by the checks.
	evidenceFact = check.NewFact[*liveEvidence]("measure.evidence")
)

// liveEvidence is the evidence of one run, or why there is none.
type liveEvidence struct {
	ev  *Evidence
	err error // reading failed
	na  string
}

// SetEvidence gives the checks a log (and PCRs) read elsewhere, e.g. a file
// named on the command line; without it, a live target's securityfs log
// and sysfs PCRs are read.
func SetEvidence(env *check.Env, ev *Evidence) {
	evidenceFact.Set(env, &liveEvidence{ev: ev})
}

func load(env *check.Env) (*Evidence, []check.Result) {
	e := evidenceFact.Once(env, func() *liveEvidence {
		ev, na, err := readLive(env)
		return &liveEvidence{ev: ev, na: na, err: err}
	})
	switch {
	case e.err != nil:
		return nil, check.Errorf("%v", e.err)
	case e.na != "":
		return nil, check.NA(e.na)
	}
	return e.ev, nil
}

// readLive reads the running system's log and PCRs through its root.
func readLive(env *check.Env) (*Evidence, string, error) {
	if env.Has(check.NeedLive) == 0 || env.Target.Root == nil {
		return nil, "no TPM event log: the target is not the running system and no log was given", nil
	}
	b, err := fs.ReadFile(env.Target.Root, LogPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, "no TPM event log at /" + LogPath + " (no TPM 2.0, or securityfs not mounted)", nil
	case err != nil:
		return nil, "", fmt.Errorf("measure: /%s: %w", LogPath, err)
	}
	lg, err := Parse(b, "/"+LogPath)
	if err != nil {
		return nil, "", err
	}
	ev := &Evidence{Log: lg, Source: "/" + LogPath}
	if tpm, err := ReadPCRs(env.Target.Root, lg.Banks); err == nil {
		ev.TPM = tpm
	}
	return ev, "", nil
}

// Checks are the measured-boot checks.
func Checks() []check.Check {
	return []check.Check{
		{
			ID: "measured-boot.log-replays", Suite: Suite, Severity: finding.High,
			Title:       "The TPM event log replays to the TPM's PCRs",
			Needs:       check.NeedLive,
			Remediation: "A log that does not replay cannot explain the PCRs: remote attestation and PCR predictions built on it are wrong. Look for firmware that measures without logging, or a log truncated by a full buffer.",
			Run:         runReplays,
		},
		{
			ID: "measured-boot.pcr7-authority", Suite: Suite, Severity: finding.Medium,
			Title:       "PCR 7 names the Microsoft UEFI CA 2023 as shim's authority",
			Needs:       check.NeedLive,
			Remediation: "Install a shim signed by the Microsoft UEFI CA 2023 once db trusts that CA; PCR 7 changes when the authority does, so re-seal TPM-bound disks after that boot.",
			Run:         runAuthority,
		},
		{
			ID: "measured-boot.sealed-pcr7", Suite: Suite, Severity: finding.High,
			Title:       "No disk sealed to PCR 7 faces a pending Secure Boot change",
			Needs:       check.NeedLive | check.NeedRoot,
			Remediation: "Before the db/dbx/shim update, add a recovery key or re-enrol after it (systemd-cryptenroll --wipe-slot=tpm2 --tpm2-device=auto --tpm2-pcrs=7); `vouch measure predict` prints the PCR 7 to expect.",
			Run:         runSealed,
		},
	}
}

func runReplays(_ context.Context, env *check.Env) []check.Result {
	ev, res := load(env)
	if res != nil {
		return res
	}
	var evidence []string
	for _, f := range ev.Log.Findings {
		evidence = append(evidence, f.String())
	}
	if ev.TPM == nil {
		return check.NA("the TPM's PCRs are not available to compare the log with (" + ev.Source + ")")
	}
	mm, verr := ev.Log.Compare(ev.TPM)
	if len(mm) > 0 {
		for _, m := range mm {
			evidence = append(evidence, m.String())
		}
		return check.Fail(fmt.Sprintf("%d PCR values do not match the replay of %s", len(mm), ev.Source), evidence...)
	}
	if verr != nil {
		evidence = append(evidence, "go-attestation: "+verr.Error())
		return check.Fail("go-attestation does not verify the log against the PCRs, though vouch's replay matches", evidence...)
	}
	return check.Pass(fmt.Sprintf("%d events replay to the TPM's PCRs in %d banks", len(ev.Log.Events), len(ev.Log.Banks)), evidence...)
}

func runAuthority(_ context.Context, env *check.Env) []check.Result {
	ev, res := load(env)
	if res != nil {
		return res
	}
	x := ev.Log.Explain()
	if x.SecureBoot == nil || !*x.SecureBoot {
		return check.NA("Secure Boot is not on in the measured boot: PCR 7 names no authority")
	}
	a, ok := x.ShimAuthority()
	if !ok {
		return check.NA("the log has no EV_EFI_VARIABLE_AUTHORITY from firmware")
	}
	evd := fmt.Sprintf("event %d: %s", a.Seq, a.Description)
	switch a.CA {
	case "microsoft-uefi-ca-2023":
		return check.Pass("shim was authorised by the Microsoft UEFI CA 2023", evd)
	case "microsoft-uefi-ca-2011":
		return check.Fail("shim was authorised by the Microsoft Corporation UEFI CA 2011, which expires in June 2026: PCR 7 will change when a 2023-signed shim takes over", evd)
	case "":
		return check.Pass("shim was authorised by a db entry that is not a Microsoft CA (custom keys): "+a.Description, evd)
	}
	return check.Fail("shim was authorised by "+a.CA+", not a Microsoft UEFI CA for third-party boot applications", evd)
}

func runSealed(_ context.Context, env *check.Env) []check.Result {
	disks, notes, err := Sealed(env.Target)
	if err != nil {
		return check.Errorf("%v", err)
	}
	var on7 []SealedDisk
	for _, d := range disks {
		for _, p := range d.PCRs {
			if p == 7 {
				on7 = append(on7, d)
				break
			}
		}
	}
	if len(on7) == 0 {
		return check.NA("no disk is unlocked by the TPM with PCR 7 (crypttab tpm2-device=, Clevis tpm2 pins, systemd-tpm2 tokens)")
	}
	ev, res := load(env)
	if res != nil {
		return res
	}
	x := ev.Log.Explain()
	var pending []string
	if a, ok := x.ShimAuthority(); ok && a.CA == "microsoft-uefi-ca-2011" {
		pending = append(pending, "shim is authorised by the 2011 CA: a 2023-signed shim changes the authority in PCR 7")
	}
	for _, v := range x.Variables {
		if v.Name == "db" && !strings.Contains(strings.Join(v.CAs, ","), "microsoft-uefi-ca-2023") {
			pending = append(pending, "db lacks the Microsoft UEFI CA 2023: adding it changes the db measured into PCR 7")
		}
	}
	var out []check.Result
	for _, d := range on7 {
		via := ""
		if d.Source != "" {
			via = " by " + d.Source
		}
		r := check.Result{Subject: d.Name, Status: finding.Pass, Message: fmt.Sprintf("%s (%s) is sealed to PCR %s%s; no CA-transition change is pending", d.Name, d.Device, joinInts(d.PCRs), via), Evidence: notes}
		switch {
		case len(pending) > 0 && d.Fallback != "":
			r.Message = fmt.Sprintf("%s (%s) is sealed to PCR %s%s and the CA transition will change PCR 7: the TPM binding breaks, but %s", d.Name, d.Device, joinInts(d.PCRs), via, d.Fallback)
			r.Evidence = append(append([]string{}, pending...), notes...)
		case len(pending) > 0:
			r.Status = finding.Fail
			r.Message = fmt.Sprintf("%s (%s) is sealed to PCR %s%s and the CA transition will change PCR 7: it will ask for its recovery key", d.Name, d.Device, joinInts(d.PCRs), via)
			r.Evidence = append(append([]string{}, pending...), notes...)
		}
		out = append(out, r)
	}
	return out
}
