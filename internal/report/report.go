// Package report renders a scan's findings to any io.Writer: a table for people,
// JSON for machines, SARIF for code-scanning dashboards and JUnit XML for CI.
package report

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/vouch-dev/vouch/internal/finding"
)

// Report is a scan of one target.
type Report struct {
	Tool     Tool              `json:"tool"`
	Target   TargetInfo        `json:"target"`
	Summary  Summary           `json:"summary"`
	Findings []finding.Finding `json:"findings"`
}

// Tool names the program that made the report.
type Tool struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// TargetInfo says what was scanned.
type TargetInfo struct {
	Path   string `json:"path"`
	Kind   string `json:"kind"`
	Format string `json:"format,omitempty"`
	OS     string `json:"os,omitempty"`
}

// Summary counts findings by status, overall and per suite.
type Summary struct {
	Counts
	Suites []SuiteSummary `json:"suites"`
}

// Counts of findings by status.
type Counts struct {
	Pass          int `json:"pass"`
	Fail          int `json:"fail"`
	NotApplicable int `json:"notApplicable"`
	Error         int `json:"error"`
}

// SuiteSummary is one suite's counts and its compliance: passed findings as a
// percentage of those that applied (pass + fail + error). Compliance is nil
// (JSON null, "n/a" in the table) when nothing applied: a suite with nothing
// to judge is not 0% compliant.
type SuiteSummary struct {
	Suite string `json:"suite"`
	Counts
	Compliance *float64 `json:"compliance"`
}

// Applied is the number of findings that applied (pass + fail + error).
func (s SuiteSummary) Applied() int { return s.Pass + s.Fail + s.Error }

func (c *Counts) add(s finding.Status) {
	switch s {
	case finding.Pass:
		c.Pass++
	case finding.Fail:
		c.Fail++
	case finding.NotApplicable:
		c.NotApplicable++
	case finding.Error:
		c.Error++
	}
}

// New builds a report and its summary.
func New(tool Tool, t TargetInfo, fs []finding.Finding) *Report {
	r := &Report{Tool: tool, Target: t, Findings: fs}
	if r.Findings == nil {
		r.Findings = []finding.Finding{}
	}
	bySuite := map[string]*SuiteSummary{}
	var order []string
	for _, f := range fs {
		r.Summary.add(f.Status)
		s, ok := bySuite[f.Suite]
		if !ok {
			s = &SuiteSummary{Suite: f.Suite}
			bySuite[f.Suite] = s
			order = append(order, f.Suite)
		}
		s.add(f.Status)
	}
	for _, name := range order {
		s := bySuite[name]
		if applied := s.Applied(); applied > 0 {
			c := float64(int(float64(s.Pass)/float64(applied)*1000+0.5)) / 10
			s.Compliance = &c
		}
		r.Summary.Suites = append(r.Summary.Suites, *s)
	}
	return r
}

// Formats lists the output formats of Write.
var Formats = []string{"table", "json", "sarif", "junit"}

// Write renders r in the named format.
func Write(w io.Writer, r *Report, format string) error {
	switch format {
	case "table", "":
		return WriteTable(w, r)
	case "json":
		return WriteJSON(w, r)
	case "sarif":
		return WriteSARIF(w, r)
	case "junit":
		return WriteJUnit(w, r)
	}
	return fmt.Errorf("report: unknown format %q (want %s)", format, strings.Join(Formats, ", "))
}

// Sorted returns findings ordered for people: failures and errors first, by
// severity, then the rest in check order.
func Sorted(fs []finding.Finding) []finding.Finding {
	out := append([]finding.Finding(nil), fs...)
	rank := func(s finding.Status) int {
		switch s {
		case finding.Fail:
			return 0
		case finding.Error:
			return 1
		case finding.Pass:
			return 2
		}
		return 3
	}
	sort.SliceStable(out, func(i, j int) bool {
		ri, rj := rank(out[i].Status), rank(out[j].Status)
		if ri != rj {
			return ri < rj
		}
		if ri <= 1 && out[i].Severity != out[j].Severity {
			return out[i].Severity > out[j].Severity
		}
		return false
	})
	return out
}
