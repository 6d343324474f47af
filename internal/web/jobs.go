package web

import (
	"bytes"
	_ "embed"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vouch-dev/vouch/internal/api"
	"github.com/vouch-dev/vouch/internal/fleet"
	"github.com/vouch-dev/vouch/internal/imagetest"
	"github.com/vouch-dev/vouch/internal/jobs"
	"github.com/vouch-dev/vouch/internal/store"
)

// registerJobs adds the job pages: the job list with flaky cases across
// jobs, a job's page (live state, results, firmware matrix, console, rerun
// of the failed cases) and its JUnit and HTML reports.
func (d *Dashboard) registerJobs() {
	m := d.srv.Mux()
	m.HandleFunc("GET /ui/jobs", d.page(d.jobList))
	m.HandleFunc("GET /ui/jobs/{name}", d.page(d.jobPage))
	m.HandleFunc("GET /ui/jobs/{name}/junit.xml", d.page(d.jobJUnit))
	m.HandleFunc("GET /ui/jobs/{name}/report.html", d.page(d.jobHTML))
	m.HandleFunc("POST /ui/jobs/{name}/rerun", d.page(d.jobRerun))
	m.HandleFunc("GET /ui/jobs/{name}/console", d.page(d.jobConsole))
	m.HandleFunc("GET /ui/static/job.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Write(jobJS)
	})
}

//go:embed static/job.js
var jobJS []byte

// jobConsole streams a job's serial console after a sequence number to the
// job page (server-sent events, as GET /v1/jobs/{name}/logs?follow=1).
func (d *Dashboard) jobConsole(w http.ResponseWriter, r *http.Request) error {
	var after int64
	if v := r.URL.Query().Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return &fleet.InputError{Reason: "after: want a log sequence number"}
		}
		after = n
	}
	return d.srv.FollowJobLog(w, r, r.PathValue("name"), "console", after)
}

func (d *Dashboard) jobService() (*jobs.Service, error) {
	if d.srv.Jobs == nil {
		return nil, &fleet.InputError{Reason: "this server's database has no job queue"}
	}
	return d.srv.Jobs, nil
}

// flakyCase is a case that passed and failed across jobs, or passed on a
// retry.
type flakyCase struct {
	Name                  string
	Passed, Failed, Retry int
	Jobs                  []string
}

func (d *Dashboard) jobList(w http.ResponseWriter, r *http.Request) error {
	js, err := d.jobService()
	if err != nil {
		return err
	}
	list, err := js.Jobs(r.Context(), store.JobFilter{State: r.URL.Query().Get("state"), Limit: 500})
	if err != nil {
		return err
	}
	type row struct {
		J                     jobs.Job
		Passed, Failed, Other int
	}
	var rows []row
	live := false
	byCase := map[string]*flakyCase{}
	for _, j := range list {
		s := jobs.Summary(j.Properties.Results)
		rows = append(rows, row{J: j, Passed: s[imagetest.Passed], Failed: s[imagetest.Failed],
			Other: len(j.Properties.Results) - s[imagetest.Passed] - s[imagetest.Failed]})
		live = live || !store.JobFinal(j.Properties.ProvisioningState)
		for _, res := range j.Properties.Results {
			f := byCase[res.TestName]
			if f == nil {
				f = &flakyCase{Name: res.TestName}
				byCase[res.TestName] = f
			}
			switch res.Status {
			case imagetest.Passed:
				f.Passed++
			case imagetest.Failed:
				f.Failed++
			}
			if res.Flaky {
				f.Retry++
			}
			if (res.Flaky || res.Status == imagetest.Failed) && (len(f.Jobs) == 0 || f.Jobs[len(f.Jobs)-1] != j.Name) && len(f.Jobs) < 5 {
				f.Jobs = append(f.Jobs, j.Name)
			}
		}
	}
	var flaky []*flakyCase
	for _, f := range byCase {
		if (f.Passed > 0 && f.Failed > 0) || f.Retry > 0 {
			flaky = append(flaky, f)
		}
	}
	sort.Slice(flaky, func(i, j int) bool { return flaky[i].Failed+flaky[i].Retry > flaky[j].Failed+flaky[j].Retry })
	d.render(w, "jobs", map[string]any{"Rows": rows, "Live": live, "Flaky": flaky})
	return nil
}

func (d *Dashboard) job(r *http.Request) (*jobs.Service, jobs.Job, error) {
	js, err := d.jobService()
	if err != nil {
		return nil, jobs.Job{}, err
	}
	j, err := js.Job(r.Context(), r.PathValue("name"))
	return js, j, err
}

func (d *Dashboard) jobPage(w http.ResponseWriter, r *http.Request) error {
	js, j, err := d.job(r)
	if err != nil {
		return err
	}
	console, err := js.Store.JobLog(r.Context(), j.Name, "console", 0, 5000)
	if err != nil {
		return err
	}
	var con []string
	var after int64
	for _, l := range console {
		con = append(con, l.Line)
		after = l.Seq
	}
	events, err := js.Store.JobEvents(r.Context(), j.Name)
	if err != nil {
		return err
	}
	failed := 0
	for _, res := range j.Properties.Results {
		if res.Status == imagetest.Failed {
			failed++
		}
	}
	d.render(w, "job", map[string]any{"J": j, "P": j.Properties, "Live": !store.JobFinal(j.Properties.ProvisioningState),
		"Console": strings.Join(con, "\n"), "ConsoleAfter": after, "Events": events, "Failed": failed, "Admin": d.isAdmin(r),
		"Passed": jobs.Summary(j.Properties.Results)[imagetest.Passed]})
	return nil
}

func (d *Dashboard) isAdmin(r *http.Request) bool {
	c, err := r.Cookie(cookie)
	if err != nil {
		return false
	}
	t, err := d.srv.Store.Token(r.Context(), api.HashToken(c.Value))
	return err == nil && t.Role == store.RoleAdmin
}

// report turns a job into the imagetest report the JUnit and HTML writers
// take.
func report(j jobs.Job) *imagetest.Report {
	rep := &imagetest.Report{}
	if j.Properties.Report.Run != nil {
		rep.Run = *j.Properties.Report.Run
	}
	rep.Run.Image = j.Properties.Image.Path
	for _, res := range j.Properties.Results {
		name := res.TestName
		rep.Results = append(rep.Results, imagetest.Result{Name: name, Area: res.Area, Priority: res.Priority, Status: res.Status,
			Message: res.Message, Duration: time.Duration(res.DurationSeconds * float64(time.Second)), Log: res.Log})
	}
	rep.Summary = imagetest.Summarize(rep.Results)
	return rep
}

func (d *Dashboard) jobJUnit(w http.ResponseWriter, r *http.Request) error {
	_, j, err := d.job(r)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := imagetest.WriteJUnit(&buf, report(j)); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("Content-Disposition", `attachment; filename="`+j.Name+`-junit.xml"`)
	_, err = w.Write(buf.Bytes())
	return err
}

func (d *Dashboard) jobHTML(w http.ResponseWriter, r *http.Request) error {
	_, j, err := d.job(r)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := imagetest.WriteHTML(&buf, report(j), "vouch serve"); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.Header().Set("Content-Disposition", `attachment; filename="`+j.Name+`-report.html"`)
	_, err = w.Write(buf.Bytes())
	return err
}

// jobRerun queues a new job of the same image and settings with only the
// failed cases (admins only).
func (d *Dashboard) jobRerun(w http.ResponseWriter, r *http.Request) error {
	if !d.isAdmin(r) {
		return &fleet.InputError{Reason: "rerunning needs an admin token: sign in with one"}
	}
	js, j, err := d.job(r)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	var names []string
	for _, res := range j.Properties.Results {
		if res.Status == imagetest.Failed && !seen[res.TestName] {
			seen[res.TestName] = true
			names = append(names, res.TestName)
		}
	}
	if len(names) == 0 {
		return &fleet.InputError{Reason: "the job has no FAILED case to rerun"}
	}
	var req jobs.CreateRequest
	p := &req.Properties
	props := j.Properties.Spec.Properties
	props.Selections = []imagetest.Selection{{Names: names}}
	p.TemplateProperties = &props
	p.Image, p.CPUs, p.MemoryMiB, p.Accel = j.Properties.Image, j.Properties.CPUs, j.Properties.MemoryMiB, j.Properties.Accel
	req.Name = j.Name + "-rerun-" + time.Now().UTC().Format("150405")
	nj, err := js.CreateJob(r.Context(), req)
	var ie *jobs.InputError
	if errors.As(err, &ie) {
		return &fleet.InputError{Reason: ie.Reason}
	}
	if err != nil {
		return err
	}
	http.Redirect(w, r, "/ui/jobs/"+nj.Name, http.StatusSeeOther)
	return nil
}
