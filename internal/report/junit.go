package report

import (
	"encoding/xml"
	"io"
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
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
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

// WriteJUnit writes the report as JUnit XML.
func WriteJUnit(w io.Writer, r *Report) error {
	out := junitSuites{Name: "vouch " + r.Target.Path}
	index := map[string]int{}
	for _, f := range r.Findings {
		i, ok := index[f.Suite]
		if !ok {
			i = len(out.Suites)
			index[f.Suite] = i
			out.Suites = append(out.Suites, junitSuite{Name: f.Suite})
		}
		s := &out.Suites[i]
		name := f.ID + " " + f.Title
		if f.Subject != "" {
			name += " [" + f.Subject + "]"
		}
		c := junitCase{Name: name, Classname: "vouch." + f.Suite}
		body := strings.Join(append([]string{f.Message}, f.Evidence...), "\n")
		if f.Remediation != "" {
			body += "\nRemediation: " + f.Remediation
		}
		switch f.Status {
		case finding.Fail:
			c.Failure = &junitMessage{Message: f.Message, Type: f.Severity.String(), Body: body}
			s.Failures++
		case finding.Error:
			c.Error = &junitMessage{Message: f.Message, Body: body}
			s.Errors++
		case finding.NotApplicable:
			c.Skipped = &junitMessage{Message: f.Message}
			s.Skipped++
		default:
			c.SystemOut = body
		}
		s.Tests++
		s.Cases = append(s.Cases, c)
	}
	for _, s := range out.Suites {
		out.Tests += s.Tests
		out.Failures += s.Failures
		out.Errors += s.Errors
		out.Skipped += s.Skipped
	}
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
