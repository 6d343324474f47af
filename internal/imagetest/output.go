package imagetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/vouch-dev/vouch/internal/report"
)

// WriteJSON writes the report as indented JSON:
// {"run": {...}, "summary": {...}, "results": [{"name", "area", "priority",
// "status", "message", "durationSeconds", ...}]}.
func WriteJSON(w io.Writer, rep *Report) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// WriteJUnit writes the report as JUnit XML through internal/report's writer:
// one testsuite per area, one testcase per case. JUnit has no ATTEMPTED: a
// known-issue failure is a skipped test whose message says so.
func WriteJUnit(w io.Writer, rep *Report) error {
	cases := make([]report.JUnitCase, 0, len(rep.Results))
	for _, r := range rep.Results {
		c := report.JUnitCase{
			Suite: r.Area, Name: r.Name, Classname: "vouch.test." + r.Area,
			Seconds: seconds(r.Duration), Message: r.Message,
			Body: strings.Join(append([]string{r.Message}, r.Log...), "\n"),
		}
		switch r.Status {
		case Failed:
			c.Outcome, c.Type = report.JUnitFailure, fmt.Sprintf("P%d", r.Priority)
		case Skipped:
			c.Outcome = report.JUnitSkipped
		case Attempted:
			c.Outcome, c.Message = report.JUnitSkipped, "ATTEMPTED: "+r.Message
		case Passed:
		default: // not finished: the run was cut short
			c.Outcome, c.Message = report.JUnitError, string(r.Status)+": "+r.Message
		}
		cases = append(cases, c)
	}
	return report.WriteJUnitCases(w, "vouch test "+rep.Run.Image, cases)
}

// TableWriter prints one line per case as it finishes (it is an Observer),
// with the deciding log lines under a failure, and the run's summary at the
// end.
type TableWriter struct {
	w      io.Writer
	nameW  int
	areaW  int
	header bool
	err    error
}

// maxTableLog bounds the log lines printed under a failing case.
const maxTableLog = 12

// NewTableWriter prepares columns wide enough for cases.
func NewTableWriter(w io.Writer, cases []Case) *TableWriter {
	t := &TableWriter{w: w, nameW: len("CASE"), areaW: len("AREA")}
	for _, c := range cases {
		t.nameW = max(t.nameW, len(c.Name))
		t.areaW = max(t.areaW, len(c.Area))
	}
	return t
}

func (t *TableWriter) printf(format string, args ...any) {
	if t.err == nil {
		_, t.err = fmt.Fprintf(t.w, format, args...)
	}
}

// Update prints r when its status is final.
func (t *TableWriter) Update(r Result) {
	if !r.Status.Final() {
		return
	}
	if !t.header {
		t.header = true
		t.printf("%-9s %-2s  %-*s  %-*s  %7s  %s\n", "STATUS", "P", t.areaW, "AREA", t.nameW, "CASE", "TIME", "MESSAGE")
	}
	t.printf("%-9s P%d  %-*s  %-*s  %6.1fs  %s\n", r.Status, r.Priority, t.areaW, r.Area, t.nameW, r.Name, seconds(r.Duration), r.Message)
	if r.Status == Failed || r.Status == Attempted {
		log := r.Log
		if len(log) > maxTableLog {
			t.printf("          ... %d earlier lines (the JSON and HTML reports have them all)\n", len(log)-maxTableLog)
			log = log[len(log)-maxTableLog:]
		}
		for _, l := range log {
			t.printf("          | %s\n", l)
		}
	}
}

// Summary prints the run record and the counts.
func (t *TableWriter) Summary(rep *Report) error {
	ri := rep.Run
	t.printf("\nImage:       %s", ri.Image)
	if ri.Format != "" {
		t.printf(" (%s)", ri.Format)
	}
	t.printf("\nFirmware:    %s\n", ri.Firmware)
	t.printf("Secure Boot: %s expected\n", onOff(ri.ExpectSecureBoot))
	if ri.Accel != "" {
		boot := "did not boot: " + ri.BootError
		if ri.Booted {
			boot = "booted in " + ri.BootTime.Round(100*time.Millisecond).String()
		}
		t.printf("VM:          %s, %s; SSH %s\n", ri.Accel, boot, map[bool]string{true: "yes", false: "no"}[ri.SSH])
	}
	if ri.ConsoleLog != "" {
		t.printf("Console log: %s\n", ri.ConsoleLog)
	}
	for _, n := range ri.Notes {
		t.printf("Note:        %s\n", n)
	}
	s := rep.Summary
	t.printf("\n%d passed, %d failed, %d skipped, %d attempted of %d cases in %s\n",
		s.Passed, s.Failed, s.Skipped, s.Attempted, s.Total, ri.Duration.Round(time.Second))
	return t.err
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// WriteList prints the cases as a table (vouch test --list).
func WriteList(w io.Writer, cases []Case) error {
	t := NewTableWriter(w, cases)
	t.printf("%-2s  %-*s  %-*s  %-26s  %s\n", "P", t.areaW, "AREA", t.nameW, "CASE", "NEEDS", "TAGS")
	for _, c := range Order(cases) {
		needs := c.Requires.String()
		if needs == "" {
			needs = "-"
		}
		t.printf("P%d  %-*s  %-*s  %-26s  %s\n", c.Priority, t.areaW, c.Area, t.nameW, c.Name, needs, strings.Join(c.Tags, ","))
	}
	return t.err
}

// CaseInfo is a case's metadata as JSON (vouch test --list --format json).
type CaseInfo struct {
	Name        string   `json:"name"`
	Area        string   `json:"area"`
	Priority    int      `json:"priority"`
	Tags        []string `json:"tags"`
	Requires    []string `json:"requires"`
	Phase       string   `json:"phase"`
	Timeout     float64  `json:"timeoutSeconds"`
	KnownIssue  string   `json:"knownIssue,omitempty"`
	Description string   `json:"description"`
}

// Describe returns the cases' metadata in run order.
func Describe(cases []Case) []CaseInfo {
	out := []CaseInfo{}
	for _, c := range Order(cases) {
		to := c.Timeout
		if to <= 0 {
			to = DefaultCaseTimeout
		}
		out = append(out, CaseInfo{Name: c.Name, Area: c.Area, Priority: c.Priority, Tags: c.Tags,
			Requires: c.Requires.Names(), Phase: c.Phase.String(), Timeout: to.Seconds(),
			KnownIssue: c.KnownIssue, Description: c.Description})
	}
	return out
}
