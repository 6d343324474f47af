package report

import (
	"encoding/xml"
	"io"
	"strconv"
	"strings"

	"github.com/vouch-dev/vouch/internal/finding"
)

// JUnit XML as Jenkins, GitLab and GitHub test reporters read it: one testsuite
// per check suite, one testcase per finding.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr,omitempty"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Time     string      `xml:"time,attr,omitempty"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr,omitempty"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Error     *junitMessage `xml:"error,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Body    string `xml:",chardata"`
}

// JUnitOutcome is how a JUnitCase ended.
type JUnitOutcome int

// JUnit outcomes: a pass, a <failure>, an <error>, a <skipped>.
const (
	JUnitPassed JUnitOutcome = iota
	JUnitFailure
	JUnitError
	JUnitSkipped
)

// JUnitCase is one testcase of a JUnit report that is not made of findings
// (vouch test's image-validation results use it through WriteJUnitCases).
type JUnitCase struct {
	Suite     string // the testsuite; suites appear in the order first seen
	Name      string
	Classname string
	Seconds   float64 // duration; 0 leaves the time attribute out
	Outcome   JUnitOutcome
	Message   string // the failure, error or skip message
	Type      string // the failure's type attribute
	Body      string // the failure or error text, or system-out for a pass
}

// WriteJUnit writes the report as JUnit XML.
func WriteJUnit(w io.Writer, r *Report) error {
	cases := make([]JUnitCase, 0, len(r.Findings))
	for _, f := range r.Findings {
		name := f.ID + " " + f.Title
		if f.Subject != "" {
			name += " [" + f.Subject + "]"
		}
		c := JUnitCase{Suite: f.Suite, Name: name, Classname: "vouch." + f.Suite, Message: f.Message}
		c.Body = strings.Join(append([]string{f.Message}, f.Evidence...), "\n")
		if f.Remediation != "" {
			c.Body += "\nRemediation: " + f.Remediation
		}
		switch f.Status {
		case finding.Fail:
			c.Outcome, c.Type = JUnitFailure, f.Severity.String()
		case finding.Error:
			c.Outcome = JUnitError
		case finding.NotApplicable:
			c.Outcome = JUnitSkipped
		}
		cases = append(cases, c)
	}
	return WriteJUnitCases(w, "vouch "+r.Target.Path, cases)
}

// WriteJUnitCases writes cases as JUnit XML, one testsuite per Suite.
func WriteJUnitCases(w io.Writer, name string, cases []JUnitCase) error {
	out := junitSuites{Name: name}
	index := map[string]int{}
	var total float64
	suiteTime := map[int]float64{}
	for _, jc := range cases {
		i, ok := index[jc.Suite]
		if !ok {
			i = len(out.Suites)
			index[jc.Suite] = i
			out.Suites = append(out.Suites, junitSuite{Name: jc.Suite})
		}
		s := &out.Suites[i]
		c := junitCase{Name: jc.Name, Classname: jc.Classname, Time: seconds(jc.Seconds)}
		switch jc.Outcome {
		case JUnitFailure:
			c.Failure = &junitMessage{Message: jc.Message, Type: jc.Type, Body: jc.Body}
			s.Failures++
		case JUnitError:
			c.Error = &junitMessage{Message: jc.Message, Body: jc.Body}
			s.Errors++
		case JUnitSkipped:
			c.Skipped = &junitMessage{Message: jc.Message}
			s.Skipped++
		default:
			c.SystemOut = jc.Body
		}
		s.Tests++
		s.Cases = append(s.Cases, c)
		suiteTime[i] += jc.Seconds
		total += jc.Seconds
	}
	for i := range out.Suites {
		s := &out.Suites[i]
		s.Time = seconds(suiteTime[i])
		out.Tests += s.Tests
		out.Failures += s.Failures
		out.Errors += s.Errors
		out.Skipped += s.Skipped
	}
	out.Time = seconds(total)
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// seconds formats a duration for JUnit's time attribute ("" for none).
func seconds(s float64) string {
	if s <= 0 {
		return ""
	}
	return strconv.FormatFloat(s, 'f', 3, 64)
}
