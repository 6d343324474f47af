package report

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/vouch-dev/vouch/internal/finding"
)

// WriteTable writes the report for a person reading a terminal.
func WriteTable(w io.Writer, r *Report) error {
	ew := &errWriter{w: w}
	fmt.Fprintf(ew, "Target: %s (%s", r.Target.Path, r.Target.Kind)
	if r.Target.Format != "" {
		fmt.Fprintf(ew, ", %s", r.Target.Format)
	}
	fmt.Fprintln(ew, ")")
	if r.Target.OS != "" {
		fmt.Fprintf(ew, "OS:     %s\n", r.Target.OS)
	}
	fmt.Fprintln(ew)
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STATUS\tSEVERITY\tID\tTITLE\tDETAIL")
	for _, f := range Sorted(r.Findings) {
		title := f.Title
		if f.Subject != "" {
			title += " [" + f.Subject + "]"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", strings.ToUpper(string(f.Status)), f.Severity, f.ID, title, oneLine(f.Message))
	}
	tw.Flush()
	var fixes []finding.Finding
	for _, f := range Sorted(r.Findings) {
		if f.Status == finding.Fail && f.Remediation != "" {
			fixes = append(fixes, f)
		}
	}
	if len(fixes) > 0 {
		fmt.Fprintln(ew, "\nWhat to do:")
		for _, f := range fixes {
			fmt.Fprintf(ew, "  %s: %s\n", f.ID, oneLine(f.Remediation))
		}
	}
	fmt.Fprintf(ew, "\n%d passed, %d failed, %d not applicable, %d errors\n",
		r.Summary.Pass, r.Summary.Fail, r.Summary.NotApplicable, r.Summary.Error)
	width := 12 // suite names line up, the longest included
	for _, s := range r.Summary.Suites {
		width = max(width, len(s.Suite))
	}
	for _, s := range r.Summary.Suites {
		if s.Compliance == nil {
			fmt.Fprintf(ew, "  %-*s %6s (nothing applied; %d not applicable)\n", width, s.Suite, "n/a", s.NotApplicable)
			continue
		}
		fmt.Fprintf(ew, "  %-*s %5.1f%% compliant (%d of %d that applied)\n", width, s.Suite, *s.Compliance, s.Pass, s.Applied())
	}
	return ew.err
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// errWriter keeps the first write error so writers can print freely and check once.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return len(p), nil
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, nil
}
