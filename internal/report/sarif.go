package report

import (
	"io"
	"strings"

	"github.com/owenrumney/go-sarif/v2/sarif"

	"github.com/vouch-dev/vouch/internal/finding"
)

// WriteSARIF writes failing and erroring findings as SARIF 2.1.0 results (passes
// and not-applicable findings are not results in SARIF's sense). Every check that
// produced a finding is listed as a rule, so dashboards know the full rule set.
func WriteSARIF(w io.Writer, r *Report) error {
	doc, err := sarif.New(sarif.Version210)
	if err != nil {
		return err
	}
	run := sarif.NewRunWithInformationURI(r.Tool.Name, "https://github.com/vouch-dev/vouch")
	run.Tool.Driver.Version = &r.Tool.Version
	seen := map[string]bool{}
	for _, f := range r.Findings {
		if seen[f.ID] {
			continue
		}
		seen[f.ID] = true
		rule := run.AddRule(f.ID).WithName(ruleName(f.Title)).WithDescription(f.Title).
			WithDefaultConfiguration(sarif.NewReportingConfiguration().WithLevel(level(f.Severity)))
		pb := sarif.NewPropertyBag()
		pb.Add("suite", f.Suite)
		pb.Add("severity", f.Severity.String())
		rule.AttachPropertyBag(pb)
		if f.Remediation != "" {
			rule.WithTextHelp(f.Remediation)
		}
	}
	uri := r.Target.Path
	for _, f := range r.Findings {
		if f.Status != finding.Fail && f.Status != finding.Error {
			continue
		}
		msg := f.Message
		if f.Subject != "" {
			msg = f.Subject + ": " + msg
		}
		res := run.CreateResultForRule(f.ID).WithMessage(sarif.NewTextMessage(msg)).WithLevel(level(f.Severity))
		if f.Status == finding.Error {
			res.WithKind("review")
		}
		loc := sarif.NewPhysicalLocation().WithArtifactLocation(sarif.NewSimpleArtifactLocation(uri))
		res.AddLocation(sarif.NewLocationWithPhysicalLocation(loc))
		if len(f.Evidence) > 0 {
			pb := sarif.NewPropertyBag()
			pb.Add("evidence", f.Evidence)
			res.AttachPropertyBag(pb)
		}
	}
	doc.AddRun(run)
	return doc.PrettyWrite(w)
}

func level(s finding.Severity) string {
	switch {
	case s >= finding.High:
		return "error"
	case s >= finding.Low:
		return "warning"
	}
	return "note"
}

// ruleName turns a title into SARIF's PascalCase rule name.
func ruleName(title string) string {
	var b strings.Builder
	for _, w := range strings.FieldsFunc(title, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) {
		b.WriteString(strings.ToUpper(w[:1]) + w[1:])
	}
	return b.String()
}
