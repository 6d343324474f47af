package web_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vouch-dev/vouch/internal/api"
	"github.com/vouch-dev/vouch/internal/imagetest"
	"github.com/vouch-dev/vouch/internal/jobs"
	"github.com/vouch-dev/vouch/internal/store"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// dripping prints its console one line per step the test sends, as a
// booting VM would.
type dripping struct {
	lines int
	step  chan struct{}
}

func (d *dripping) Cases(ctx context.Context, spec jobs.Spec, cases []imagetest.Case, obs imagetest.Observer, out jobs.Output) (*imagetest.Report, error) {
	for _, c := range cases {
		obs.Update(imagetest.Result{Name: c.Name, Status: imagetest.Running})
	}
	for i := 0; i < d.lines; i++ {
		select {
		case <-d.step:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		fmt.Fprintf(out.Console, "console line %d\n", i)
	}
	// One more step ends the run: the test has seen the last line first.
	select {
	case <-d.step:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	rep := &imagetest.Report{}
	for _, c := range cases {
		r := imagetest.Result{Name: c.Name, Area: c.Area, Priority: c.Priority, Status: imagetest.Passed, Message: "fine"}
		obs.Update(r)
		rep.Results = append(rep.Results, r)
	}
	return rep, nil
}

func (d *dripping) Matrix(context.Context, jobs.Spec, io.Writer) (*imagetest.Matrix, error) {
	return &imagetest.Matrix{}, nil
}

// TestJobPageConsoleLive opens a running job's page in headless Chromium:
// each console line the worker sends appears on the page while the job
// runs (the runner prints the next only after), without a reload; when the
// job ends the page shows its final state, and each line once.
func TestJobPageConsoleLive(t *testing.T) {
	testfixtures.Long(t, testfixtures.Services)
	s := serve(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	admin, _ := api.NewClient(s.url, s.admin, "")
	wtok, err := admin.CreateToken(ctx, "worker", "")
	if err != nil {
		t.Fatal(err)
	}
	wc, _ := api.NewClient(s.url, wtok, "")
	var req jobs.CreateRequest
	req.Name = "live-1"
	req.Properties.Image.Path = mbrImage(t)
	req.Properties.TemplateProperties = &jobs.TemplateProperties{Selections: []imagetest.Selection{{Names: []string{"boot.multi-user"}}}}
	if _, err := admin.CreateJob(ctx, req); err != nil {
		t.Fatal(err)
	}
	const n = 3
	r := &dripping{lines: n, step: make(chan struct{})}
	w := &jobs.Worker{Server: wc, Caps: store.Caps{Worker: "w1", Cores: 2, MemoryMiB: 4096, DiskMiB: 10000}, Runner: r}
	ran := make(chan error, 1)
	go func() { ran <- w.Run(ctx, true) }()

	bctx, done := chromium(t)
	defer done()
	if err := chromedp.Do(bctx, chromedp.Navigate(s.url+"/ui/login"), chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), s.admin), chromedp.Click(chromedp.ID("signin")), chromedp.WaitVisible(chromedp.CSS("header")),
		chromedp.Navigate(s.url+"/ui/jobs/live-1"), chromedp.WaitVisible(chromedp.ID("results"))); err != nil {
		t.Fatal(err)
	}
	eval := func(js string) string {
		t.Helper()
		v, err := chromedp.Run(bctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return v
	}
	// waitPage polls the page until cond holds (a minute at most).
	waitPage := func(what, js string, cond func(string) bool) string {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			v := eval(js)
			if cond(v) {
				return v
			}
			if time.Now().After(deadline) {
				t.Fatalf("the page never showed %s: %q", what, v)
			}
			time.Sleep(100 * time.Millisecond) // polling the page with a deadline
		}
	}
	const console = `document.getElementById("console").textContent`
	for i := 0; i < n; i++ {
		r.step <- struct{}{}
		want := fmt.Sprintf("console line %d", i)
		waitPage(want, console, func(v string) bool { return strings.Contains(v, want) })
		j, err := admin.Job(ctx, "live-1")
		if err != nil {
			t.Fatal(err)
		}
		if store.JobFinal(j.Properties.ProvisioningState) {
			t.Fatalf("%q showed only once the job was %s", want, j.Properties.ProvisioningState)
		}
	}
	r.step <- struct{}{}
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	waitPage("the final state", `document.getElementById("state").textContent`, func(v string) bool { return strings.TrimSpace(v) == store.JobSucceeded })
	if got := eval(console); got != "console line 0\nconsole line 1\nconsole line 2" {
		t.Errorf("console on the page: %q", got)
	}
}
