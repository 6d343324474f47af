package imagetest

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"
)

// maxHTMLConsole bounds the console lines embedded in the HTML report (the
// last ones are kept: a boot's end decides it).
const maxHTMLConsole = 50000

// htmlTemplate is a self-contained page: inline CSS, no scripts, no external
// assets; html/template escapes everything that came from the guest.
var htmlTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"lower": func(s Status) string { return strings.ToLower(string(s)) },
	"secs":  func(d time.Duration) string { return fmt.Sprintf("%.1fs", seconds(d)) },
	"onoff": onOff,
	"join":  strings.Join,
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>vouch test: {{.Run.Image}}</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em;color:#1d2330;background:#fff}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.6em 0 .5em}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.35em .6em;border-bottom:1px solid #e3e6ec;vertical-align:top}
th{background:#f4f6f9;font-weight:600}dl{display:grid;grid-template-columns:max-content 1fr;gap:.2em 1.2em;margin:0}dt{color:#5b6475}dd{margin:0}
.st{font-weight:700;font-size:.85em;padding:.1em .45em;border-radius:3px;white-space:nowrap}
.passed{background:#dff3e4;color:#13622d}.failed{background:#fbe0e0;color:#9b1c1c}.skipped{background:#eceff3;color:#4b5563}.attempted{background:#fdf0d5;color:#8a5a00}
.queued,.assigned,.running{background:#e0ecfb;color:#1e4f8f}
.counts span{margin-right:1em}pre{background:#0f1420;color:#d7dce5;padding:1em;overflow:auto;font:12px/1.35 ui-monospace,Menlo,Consolas,monospace;max-height:40em}
details pre{max-height:20em;margin:.4em 0 0}summary{cursor:pointer}.msg{white-space:pre-wrap}.muted{color:#5b6475}
</style>
</head>
<body>
<h1>vouch test: {{.Run.Image}}</h1>
<p class="counts"><span class="st passed">{{.Summary.Passed}} PASSED</span><span class="st failed">{{.Summary.Failed}} FAILED</span><span class="st skipped">{{.Summary.Skipped}} SKIPPED</span><span class="st attempted">{{.Summary.Attempted}} ATTEMPTED</span><span class="muted">of {{.Summary.Total}} cases in {{secs .Run.Duration}}</span></p>
<h2>Run</h2>
<dl>
<dt>Image</dt><dd>{{.Run.Image}}{{with .Run.Format}} ({{.}}){{end}}</dd>
<dt>Firmware</dt><dd>{{.Run.Firmware}}</dd>
<dt>Secure Boot</dt><dd>{{onoff .Run.ExpectSecureBoot}} expected</dd>
{{with .Run.Accel}}<dt>Accelerator</dt><dd>{{.}}</dd>{{end}}
<dt>Boot</dt><dd>{{if .Run.Booted}}booted in {{secs .Run.BootTime}}{{else if .Run.BootError}}did not boot: {{.Run.BootError}}{{else}}no VM{{end}}</dd>
<dt>SSH</dt><dd>{{if .Run.SSH}}yes{{with .Run.HostKey}} (host key {{.}}){{end}}{{else}}no{{end}}{{if not .Run.CloudInit}} (no cloud-init in the image: console-only){{end}}</dd>
<dt>Started</dt><dd>{{.Run.Started.UTC.Format "2006-01-02 15:04:05 UTC"}}</dd>
{{with .Run.ConsoleLog}}<dt>Console log</dt><dd>{{.}}</dd>{{end}}
{{range .Run.Notes}}<dt>Note</dt><dd>{{.}}</dd>{{end}}
</dl>
<h2>Results</h2>
<table>
<thead><tr><th>Status</th><th>P</th><th>Area</th><th>Case</th><th>Time</th><th>Message</th></tr></thead>
<tbody>
{{range .Results}}<tr id="{{.Name}}">
<td><span class="st {{lower .Status}}">{{.Status}}</span></td><td>P{{.Priority}}</td><td>{{.Area}}</td><td><b>{{.Name}}</b>{{with .Tags}}<br><span class="muted">{{join . ", "}}</span>{{end}}</td><td>{{secs .Duration}}</td>
<td><div class="msg">{{.Message}}</div>{{if or .Log .Description}}<details><summary class="muted">details</summary>{{with .Description}}<p class="muted">{{.}}</p>{{end}}{{with .Log}}<pre>{{join . "\n"}}</pre>{{end}}</details>{{end}}</td>
</tr>
{{end}}</tbody>
</table>
<h2>Serial console</h2>
{{if .Console}}{{if .ConsoleCut}}<p class="muted">The first {{.ConsoleCut}} lines are left out.</p>{{end}}<pre>{{join .Console "\n"}}</pre>{{else}}<p class="muted">No console output (no VM was started).</p>{{end}}
<p class="muted">Written by vouch {{.Version}}.</p>
</body>
</html>
`))

// WriteHTML writes the report as one self-contained HTML page with the serial
// console embedded. version is the vouch version shown in the footer.
func WriteHTML(w io.Writer, rep *Report, version string) error {
	console := rep.Run.Console
	cut := 0
	if len(console) > maxHTMLConsole {
		cut = len(console) - maxHTMLConsole
		console = console[cut:]
	}
	var buf bytes.Buffer
	err := htmlTemplate.Execute(&buf, struct {
		*Report
		Console    []string
		ConsoleCut int
		Version    string
	}{rep, console, cut, version})
	if err != nil {
		return err
	}
	_, err = w.Write(buf.Bytes())
	return err
}
