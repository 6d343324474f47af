// Package baseline holds vouch's security baseline as data: CIS-derived rules
// (suite "baseline"), kernel and binary hardening rules (suite "hardening") and
// the cloud image requirements (suite "cloud-image"). Each rule is a Go value
// in an explicit list, with an audit built from a small set of reusable
// primitives (file mode and owner, file content, sysctl, kernel module, package,
// systemd unit, fstab option, sshd option, PAM, login.defs, kernel config and
// command line, ELF properties) and, where the change is safe, a remediation.
//
// Audits read the target only through its root io/fs.FS, so the same rule runs
// on a disk image, a directory and the live host. On an offline target,
// runtime-only facts (a sysctl value, a loaded module) come from the
// configuration that applies at boot, and the finding says so.
//
// A rule's Fix only plans what to change through a remediate.Changer;
// internal/remediate is the engine that shows the changes, writes them
// atomically with backups, and never touches an image.
package baseline

import (
	"context"
	"fmt"
	"strings"

	"github.com/vouch-dev/vouch/internal/check"
	"github.com/vouch-dev/vouch/internal/finding"
	"github.com/vouch-dev/vouch/internal/remediate"
)

// Suite names; a rule's ID prefix is its suite.
const (
	SuiteBaseline   = "baseline"
	SuiteHardening  = "hardening"
	SuiteCloudImage = "cloud-image"
)

// Audit inspects the target through s and returns one result. Status is Pass,
// Fail, NotApplicable or Error; a failure carries the observed and the expected
// value.
type Audit func(s *State) check.Result

// Fix plans the changes that make a failing rule pass, through c. It is only
// called after the audit failed. A Fix never runs a program: it edits files,
// modes and owners.
type Fix func(s *State, c *remediate.Changer) error

// Control is what a primitive builds: an audit, an optional fix, and a
// sentence saying what the fix does (or what a person should do).
type Control struct {
	Audit  Audit
	Fix    Fix
	Remedy string
	// Gate makes the rule not applicable when none of these packages is
	// installed (and, without a dpkg database, none of GateFiles exists).
	Gate      []string
	GateFiles []string
}

// Rule is one baseline rule.
type Rule struct {
	ID         string
	Title      string
	Rationale  string
	Severity   finding.Severity
	References []string
	// Platforms lists os-release IDs (matched against ID and ID_LIKE) the rule
	// applies to; empty means every Linux.
	Platforms []string
	Control
}

// Suite is the rule's suite, the prefix of its ID.
func (r Rule) Suite() string {
	s, _, _ := strings.Cut(r.ID, ".")
	return s
}

// Remediable reports whether vouch can fix a failure of r.
func (r Rule) Remediable() bool { return r.Fix != nil }

// Rules returns every rule of every suite, in report order.
func Rules() []Rule {
	var out []Rule
	out = append(out, baselineRules()...)
	out = append(out, hardeningRules()...)
	out = append(out, cloudRules()...)
	return out
}

// RulesOf returns the rules of the named suites (all when none is named).
func RulesOf(suites ...string) []Rule {
	all := Rules()
	if len(suites) == 0 {
		return all
	}
	var out []Rule
	for _, r := range all {
		for _, s := range suites {
			if r.Suite() == s {
				out = append(out, r)
			}
		}
	}
	return out
}

// Checks returns the rules of all three suites as checks.
func Checks() []check.Check {
	rules := Rules()
	out := make([]check.Check, 0, len(rules))
	for _, r := range rules {
		out = append(out, r.Check())
	}
	return out
}

// Check turns r into a check.Check.
func (r Rule) Check() check.Check {
	remedy := r.Remedy
	if r.Fix != nil {
		remedy += " (vouch baseline remediate --rules " + r.ID + ")"
	}
	return check.Check{
		ID:          r.ID,
		Suite:       r.Suite(),
		Title:       r.Title,
		Severity:    r.Severity,
		Needs:       check.NeedRoot,
		Remediation: strings.TrimSpace(remedy),
		References:  r.References,
		Run: func(_ context.Context, env *check.Env) []check.Result {
			return []check.Result{r.Evaluate(StateFor(env))}
		},
	}
}

// Evaluate runs r's audit on s, after its platform and package gates. A panic
// in an audit is the rule's error, not the scan's.
func (r Rule) Evaluate(s *State) (res check.Result) {
	defer func() {
		if p := recover(); p != nil {
			res = check.Result{Status: finding.Error, Message: fmt.Sprintf("baseline: audit of %s failed internally: %v", r.ID, p)}
		}
	}()
	if len(r.Platforms) > 0 {
		os := s.OS()
		if os == nil {
			return na("no os-release; the rule applies to " + strings.Join(r.Platforms, ", "))
		}
		if !os.matches(r.Platforms) {
			return na(fmt.Sprintf("applies to %s; the target is %s", strings.Join(r.Platforms, ", "), os.desc))
		}
	}
	if len(r.Gate) > 0 || len(r.GateFiles) > 0 {
		if ok, why := s.gate(r.Gate, r.GateFiles); !ok {
			return na(why)
		}
	}
	return r.Audit(s)
}

func na(msg string) check.Result { return check.Result{Status: finding.NotApplicable, Message: msg} }

func pass(msg string, ev ...string) check.Result {
	return check.Result{Status: finding.Pass, Message: msg, Evidence: ev}
}

func fail(msg string, ev ...string) check.Result {
	return check.Result{Status: finding.Fail, Message: msg, Evidence: ev}
}

func errorf(format string, args ...any) check.Result {
	return check.Result{Status: finding.Error, Message: fmt.Sprintf(format, args...)}
}

// cis names a section of the CIS Debian Linux 12 Benchmark v1.1.0.
func cis(section string) []string { return []string{"CIS Debian 12 v1.1.0 " + section} }
