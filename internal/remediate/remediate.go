// Package remediate is vouch's remediation engine: it audits a root
// directory (or the live root) rule by rule and applies the fix of each
// failing rule that has one. A fix only plans changes through a Changer
// (file contents, modes, owners); the engine shows each change (a unified
// diff for contents), and unless it is a dry run writes every file atomically
// (a temporary file in the same directory, then rename) with its mode and
// owner kept, after copying the original under BackupRoot with a MANIFEST.
// Running it twice changes nothing the second time. The rules themselves,
// what they audit and what they change, live in internal/baseline.
package remediate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/vouch-dev/vouch/internal/check"
	"github.com/vouch-dev/vouch/internal/finding"
	"github.com/vouch-dev/vouch/internal/rootfs"
	"github.com/vouch-dev/vouch/internal/target"
)

// BackupRoot is where Remediate keeps the originals of the files it changes,
// relative to the remediated root: one directory per run,
// var/backups/vouch/<UTC timestamp>/, holding each changed file at its own
// relative path (content, mode and owner preserved) and a MANIFEST listing
// every change (created files, edits, mode and owner changes with their old
// values). The directory is 0700 and created only when something changes.
const BackupRoot = "var/backups/vouch"

// ErrImage is returned when Remediate is given a disk image.
var ErrImage = errors.New("remediate: vouch does not modify disk images; extract or mount the root and remediate the directory")

// Summary counts what Remediate did.
type Summary struct {
	Fixed          int           `json:"fixed"`          // rules changed (or, dry run, that would be)
	AlreadyPassing int           `json:"alreadyPassing"` // rules that passed before
	NotApplicable  int           `json:"notApplicable"`
	Manual         int           `json:"manual"` // failing rules vouch does not fix
	Errors         int           `json:"errors"` // audits or fixes that could not complete
	Changes        int           `json:"changes"`
	DryRun         bool          `json:"dryRun"`
	BackupDir      string        `json:"backupDir,omitempty"`
	Rules          []RuleOutcome `json:"rules"`
}

// RuleOutcome is what happened to one rule.
type RuleOutcome struct {
	ID      string   `json:"id"`
	Outcome string   `json:"outcome"` // fixed, would-fix, pass, not-applicable, manual, error
	Message string   `json:"message,omitempty"`
	Changes []string `json:"changes,omitempty"`
}

// Rule is one rule as the engine sees it, over the audit state S its rules
// share (the state is rebuilt after each change that was written, so later
// audits see it).
type Rule[S any] struct {
	ID string
	// Remedy says what a person should do when the rule has no fix.
	Remedy string
	// Audit returns the rule's status on the state.
	Audit func(S) check.Result
	// Fix plans the changes that make a failing rule pass; nil when vouch
	// cannot make them safely.
	Fix func(S, *Changer) error
}

// Run audits rules on the root directory root and fixes the failing ones
// that have a fix, printing the exact change of each (a unified diff for file
// contents) to out; newState builds the audit state over the root. With
// dryRun nothing is written. Each file is written atomically (a temporary
// file in the same directory, then rename) with its mode and owner preserved,
// after its original is copied under BackupRoot. Running it twice changes
// nothing the second time.
func Run[S any](ctx context.Context, root string, rules []Rule[S], newState func(root *rootfs.FS, live bool) S, dryRun bool, out io.Writer) (Summary, error) {
	sum := Summary{DryRun: dryRun}
	info, err := os.Stat(root)
	if err != nil {
		return sum, fmt.Errorf("remediate: %w", err)
	}
	if !info.IsDir() {
		return sum, ErrImage
	}
	t, err := target.Open(root, target.Options{})
	if err != nil {
		return sum, err
	}
	defer t.Close()
	if t.Kind == target.KindImage {
		return sum, ErrImage
	}
	if t.Root == nil {
		return sum, fmt.Errorf("remediate: %s is not a root file system (no etc/os-release)", root)
	}
	abs := t.Path
	c := &Changer{root: abs, fsys: t.Root, dry: dryRun, overlay: map[string]*pending{}, stamp: time.Now().UTC().Format("20060102T150405Z")}
	live := t.Kind == target.KindLive
	st := newState(t.Root, live)
	for _, r := range rules {
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		res := r.Audit(st)
		o := RuleOutcome{ID: r.ID, Message: res.Message}
		switch res.Status {
		case finding.Pass:
			o.Outcome = "pass"
			sum.AlreadyPassing++
		case finding.NotApplicable:
			o.Outcome = "not-applicable"
			sum.NotApplicable++
		case finding.Error:
			o.Outcome = "error"
			sum.Errors++
			fmt.Fprintf(out, "# %s: error: %s\n", r.ID, res.Message)
		case finding.Fail:
			if r.Fix == nil {
				o.Outcome = "manual"
				sum.Manual++
				fmt.Fprintf(out, "# %s: not fixed: vouch cannot make this change safely. %s\n", r.ID, r.Remedy)
				break
			}
			c.begin()
			if err := r.Fix(st, c); err != nil {
				c.abort()
				o.Outcome, o.Message = "error", err.Error()
				sum.Errors++
				fmt.Fprintf(out, "# %s: not fixed: %v\n", r.ID, err)
				break
			}
			done, err := c.commit()
			o.Changes = done
			if err != nil {
				o.Outcome, o.Message = "error", err.Error()
				sum.Errors++
				fmt.Fprintf(out, "# %s: fix failed: %v\n", r.ID, err)
				break
			}
			if len(done) == 0 {
				o.Outcome, o.Message = "error", "the fix made no change but the audit fails: "+res.Message
				sum.Errors++
				fmt.Fprintf(out, "# %s: %s\n", r.ID, o.Message)
				break
			}
			verb := "fixed"
			if dryRun {
				verb = "would-fix"
			}
			o.Outcome = verb
			sum.Fixed++
			sum.Changes += len(done)
			fmt.Fprintf(out, "# %s: %s (%s)\n", r.ID, strings.ReplaceAll(verb, "-", " "), res.Message)
			for _, d := range c.printed {
				fmt.Fprint(out, d)
			}
			if !dryRun {
				st = newState(t.Root, live) // later audits see the change
			}
		}
		sum.Rules = append(sum.Rules, o)
	}
	if c.backupDir != "" {
		sum.BackupDir = c.backupDir
	}
	fmt.Fprintf(out, "# %d rules %s, %d already passing, %d not applicable, %d need a person, %d errors",
		sum.Fixed, map[bool]string{true: "would be fixed", false: "fixed"}[dryRun], sum.AlreadyPassing, sum.NotApplicable, sum.Manual, sum.Errors)
	if sum.BackupDir != "" {
		fmt.Fprintf(out, "; originals in %s", sum.BackupDir)
	}
	fmt.Fprintln(out)
	if live && sum.Fixed > 0 && !dryRun {
		fmt.Fprintln(out, "# kernel parameters, sshd and module settings take effect after `sysctl --system`, reloading sshd, or a reboot")
	}
	return sum, nil
}
