package secureboot

import (
	"errors"
	"fmt"

	"github.com/vouch-dev/vouch/internal/target"
)

// Judgement is `vouch secureboot`'s answer on a target: the analysis of its
// boot paths and transition, and what a revocation update would do.
type Judgement struct {
	Report *Report
	// Impact is nil when no revocation update was asked for.
	Impact *RevocationImpact
}

// JudgeTarget analyses a target under fw (nil: unknown firmware) and, when
// rev is not nil, judges the revocation update on it. A target without an
// ESP can only boot through legacy BIOS, which the advice says. An update
// that cannot be judged on this target is a *RevocationError naming it.
func JudgeTarget(t *target.Target, fw *Firmware, o Options, rev *Revocation) (*Judgement, error) {
	r := AnalyzeTarget(t, fw, o)
	if t.ESP == nil {
		r.Transition.Advice = "no EFI System Partition found: the target can only boot through legacy BIOS, where Secure Boot does not apply. " + r.Transition.Advice
	}
	j := &Judgement{Report: r}
	if rev == nil {
		return j, nil
	}
	imp, err := AnalyzeRevocation(t.ESP, r.BootPaths, fw, o, *rev)
	if err != nil {
		var re *RevocationError
		if errors.As(err, &re) {
			return nil, fmt.Errorf("%s: %w", t.Path, err)
		}
		return nil, err
	}
	j.Impact = imp
	return j, nil
}

// Fails is the exit policy (exit 1): under a known firmware state the
// target does not boot today, or the revocation update leaves it
// unbootable (RevocationImpact.Breaks).
func (j *Judgement) Fails() bool {
	tr := j.Report.Transition
	return tr.FirmwareKnown && !tr.BootsToday || j.Impact.Breaks()
}

// Breaks reports whether the update leaves the target unbootable: under
// known firmware, when no boot path boots after it; under unknown firmware,
// when it stops a target that boots under the stand-in profile. A nil
// impact breaks nothing.
func (imp *RevocationImpact) Breaks() bool {
	if imp == nil {
		return false
	}
	if imp.FirmwareKnown {
		return !imp.BootsAfter
	}
	return imp.BootsBefore && !imp.BootsAfter
}
