// Package finding is the one result model every check produces and every report
// renders: what was checked, how it came out, what was seen, and what to do.
package finding

import (
	"fmt"
	"strings"
)

// Severity orders findings by how much they matter.
type Severity int

// Severities, lowest first.
const (
	Info Severity = iota
	Low
	Medium
	High
	Critical
)

var severityNames = [...]string{"info", "low", "medium", "high", "critical"}

func (s Severity) String() string {
	if s < Info || s > Critical {
		return fmt.Sprintf("severity(%d)", int(s))
	}
	return severityNames[s]
}

// ParseSeverity reads a severity name, case-insensitively.
func ParseSeverity(s string) (Severity, error) {
	for i, n := range severityNames {
		if strings.EqualFold(s, n) {
			return Severity(i), nil
		}
	}
	return 0, fmt.Errorf("finding: unknown severity %q (want one of %s)", s, strings.Join(severityNames[:], ", "))
}

// MarshalText writes the severity's name.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a severity's name.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Status is how a check came out on a target.
type Status string

// Statuses. A check that cannot apply to a target says NotApplicable, never Pass.
const (
	Pass          Status = "pass"
	Fail          Status = "fail"
	NotApplicable Status = "not-applicable"
	Error         Status = "error"
)

// Finding is one result of one check. A check may produce several findings, one
// per subject (a boot path, a file, a package).
type Finding struct {
	ID          string   `json:"id"`
	Suite       string   `json:"suite"`
	Title       string   `json:"title"`
	Severity    Severity `json:"severity"`
	Status      Status   `json:"status"`
	Subject     string   `json:"subject,omitempty"` // what this finding is about, when a check has several
	Message     string   `json:"message"`           // one line: what was observed
	Evidence    []string `json:"evidence,omitempty"`
	Remediation string   `json:"remediation,omitempty"`
	References  []string `json:"references,omitempty"`
}

// Failing reports whether f counts against a --fail-on threshold: a failure or an
// error at or above it. An error is not a pass: the property was not shown.
func (f Finding) Failing(threshold Severity) bool {
	return (f.Status == Fail || f.Status == Error) && f.Severity >= threshold
}
