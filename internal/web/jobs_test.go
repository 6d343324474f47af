package web_test

import (
	"context"
	"fmt"
	"github.com/vouch-dev/vouch/internal/testfixtures"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vouch-dev/vouch/internal/api"
	"github.com/vouch-dev/vouch/internal/imagetest"
	"github.com/vouch-dev/vouch/internal/jobs"
	"github.com/vouch-dev/vouch/internal/store"
)

// scripted is a runner whose cases end as the test says: boot passes, the
// kernel log fails, Secure Boot fails once then passes (flaky).
type scripted struct{ runs map[string]int }

func (s *scripted) Cases(ctx context.Context, spec jobs.Spec, cases []imagetest.Case, obs imagetest.Observer, out jobs.Output) (*imagetest.Report, error) {
	rep := &imagetest.Report{Run: imagetest.RunInfo{Image: spec.Image.Path, Console: []string{"Booting `Debian GNU/Linux'", "debian login:"}}}
	for _, l := range rep.Run.Console {
		fmt.Fprintln(out.Console, l)
	}
	for _, c := range cases {
		s.runs[c.Name]++
		obs.Update(imagetest.Result{Name: c.Name, Status: imagetest.Running})
		r := imagetest.Result{Name: c.Name, Area: c.Area, Priority: c.Priority, Status: imagetest.Passed, Message: "fine"}
		switch {
		case c.Name == "kernel.log-clean":
			r.Status, r.Message = imagetest.Failed, "WARNING: CPU: 0 PID: 1 at mm/page_alloc.c"
		case c.Name == "secureboot.state" && s.runs[c.Name] == 1:
			r.Status, r.Message = imagetest.Failed, "SSH timed out"
		}
		obs.Update(r)
		rep.Results = append(rep.Results, r)
	}
	return rep, nil
}

func (s *scripted) Matrix(context.Context, jobs.Spec, io.Writer) (*imagetest.Matrix, error) {
	yes := true
	return &imagetest.Matrix{Rows: []imagetest.MatrixRow{
		{Profile: "microsoft-2011", Booted: true, Outcome: "booted", Predicted: &yes, Agrees: true, Reason: "kernel started"},
		{Profile: "microsoft-2023", Booted: true, Outcome: "booted", Predicted: &yes, Agrees: true, Reason: "kernel started"},
	}}, nil
}

func mbrImage(t *testing.T) string {
	b := make([]byte, 1<<20)
	b[446+4] = 0x83
	b[446+8], b[446+12+1] = 64, 4 // start LBA 64, 1024 sectors
	b[510], b[511] = 0x55, 0xaa
	p := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestJobPages drives the job pages in headless Chromium: the list with the
// flaky cases, a job's results, firmware matrix, state changes and
// console, the JUnit and HTML downloads, and a rerun of the failed case.
func TestJobPages(t *testing.T) {
	testfixtures.Long(t, testfixtures.Services)
	s := serve(t)
	ctx := context.Background()
	admin, _ := api.NewClient(s.url, s.admin, "")
	wtok, err := admin.CreateToken(ctx, "worker", "")
	if err != nil {
		t.Fatal(err)
	}
	wc, _ := api.NewClient(s.url, wtok, "")
	var req jobs.CreateRequest
	req.Name = "nightly-1"
	req.Properties.Image.Path = mbrImage(t)
	req.Properties.TemplateProperties = &jobs.TemplateProperties{Selections: []imagetest.Selection{{Priorities: []int{0}}},
		RetryCount: 1, Firmware: jobs.Firmware{Profile: jobs.FirmwareMatrix}}
	if _, err := admin.CreateJob(ctx, req); err != nil {
		t.Fatal(err)
	}
	runner := &scripted{runs: map[string]int{}}
	w := &jobs.Worker{Server: wc, Caps: store.Caps{Worker: "w1", Cores: 2, MemoryMiB: 4096, DiskMiB: 10000}, Runner: runner}
	if err := w.Run(ctx, true); err != nil {
		t.Fatal(err)
	}

	bctx, done := chromium(t)
	defer done()
	do := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, steps...); err != nil {
			t.Fatal(err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("%s: %v", sel, err)
		}
		return strings.TrimSpace(s)
	}
	do(chromedp.Navigate(s.url+"/ui/jobs"), chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), s.admin), chromedp.Click(chromedp.ID("signin")), chromedp.WaitVisible(chromedp.CSS("header")))
	do(chromedp.Navigate(s.url+"/ui/jobs"), chromedp.WaitVisible(chromedp.ID("jobs")))
	if got := text("#jobs"); !strings.Contains(got, "nightly-1") || !strings.Contains(got, "Failed") {
		t.Errorf("job list: %q", got)
	}
	if got := text("#flaky"); !strings.Contains(got, "secureboot.state") || strings.Contains(got, "boot.multi-user") {
		t.Errorf("flaky cases: %q", got)
	}
	do(chromedp.Click(chromedp.CSS("#jobs a")), chromedp.WaitVisible(chromedp.ID("results")))
	if got := text("#state"); got != "Failed" {
		t.Errorf("state %q", got)
	}
	res := text("#results")
	for _, want := range []string{"boot.multi-user", "PASSED", "kernel.log-clean", "FAILED", "WARNING: CPU", "secureboot.state", "PASSED (flaky)"} {
		if !strings.Contains(res, want) {
			t.Errorf("results lack %q:\n%s", want, res)
		}
	}
	if got := text("#matrix"); !strings.Contains(got, "microsoft-2023") || !strings.Contains(got, "boots") {
		t.Errorf("matrix: %q", got)
	}
	if got := text("#events"); !strings.Contains(got, "Running") || !strings.Contains(got, "Failed") {
		t.Errorf("events: %q", got)
	}
	if got := text("#console"); !strings.Contains(got, "debian login:") {
		t.Errorf("console: %q", got)
	}
	// The downloads, with the browser's cookie.
	for path, want := range map[string]string{"/ui/jobs/nightly-1/junit.xml": `<testcase`, "/ui/jobs/nightly-1/report.html": "kernel.log-clean"} {
		r, _ := http.NewRequest(http.MethodGet, s.url+path, nil)
		r.AddCookie(&http.Cookie{Name: "vouch_token", Value: s.admin})
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("%s: %d, lacks %q", path, resp.StatusCode, want)
		}
	}
	// Rerun the failed case: a new job with only kernel.log-clean.
	// Read the new job's name from the address once the browser has left
	// this page (the old page's #results is visible until then).
	do(chromedp.Click(chromedp.ID("rerun")))
	var name string
	for deadline := time.Now().Add(time.Minute); ; {
		loc, err := chromedp.Run(bctx, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		if name = loc[strings.LastIndex(loc, "/")+1:]; name != "nightly-1" || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // polling the address with a deadline
	}
	do(chromedp.WaitVisible(chromedp.ID("results")))
	if !strings.HasPrefix(name, "nightly-1-rerun-") {
		t.Fatalf("rerun landed on %q", name)
	}
	j, err := admin.Job(ctx, name)
	if err != nil || fmt.Sprint(j.Properties.Cases) != "[kernel.log-clean]" {
		t.Errorf("rerun job: %v %v", j.Properties.Cases, err)
	}
}
