package jobs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/vouch-dev/vouch/internal/testfixtures"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vouch-dev/vouch/internal/api"
	"github.com/vouch-dev/vouch/internal/imagetest"
	"github.com/vouch-dev/vouch/internal/jobs"
	"github.com/vouch-dev/vouch/internal/pgtest"
	"github.com/vouch-dev/vouch/internal/store"
)

// env is a real API server over a real database, with an admin and a
// worker token.
type env struct {
	srv           *api.Server
	http          *httptest.Server
	st            store.Store
	admin, worker *api.Client
	imageDir      string
}

func newEnv(t testing.TB, dsn string, lease time.Duration) *env {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := api.New(st, api.Limits{Rate: 1e9, Burst: 1 << 30}, nil)
	srv.Jobs.Lease = lease
	srv.ImageDir = filepath.Join(t.TempDir(), "images")
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	e := &env{srv: srv, http: hs, st: st, imageDir: srv.ImageDir}
	for _, role := range []string{store.RoleAdmin, store.RoleWorker} {
		secret, h := api.NewToken()
		if err := st.CreateToken(ctx, store.Token{Hash: h, Role: role, CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		c, err := api.NewClient(hs.URL, secret, "")
		if err != nil {
			t.Fatal(err)
		}
		if role == store.RoleAdmin {
			e.admin = c
		} else {
			e.worker = c
		}
	}
	return e
}

// diskImage writes a small raw disk with a GPT (made by the disk package's
// own writer would be circular; an MBR with one Linux partition suffices
// for the check).
func diskImage(t testing.TB) string {
	t.Helper()
	b := make([]byte, 1<<20)
	// One partition entry: type 0x83, start LBA 2048... beyond 1 MiB is
	// fine for the table read; keep it inside: start 64, 1024 sectors.
	e := b[446:]
	e[4] = 0x83
	putLE32(e[8:], 64)
	putLE32(e[12:], 1024)
	b[510], b[511] = 0x55, 0xaa
	p := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func putLE32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

// instant is a runner that returns at once, every case PASSED; it records
// how often each job ran and whether two runs of a job overlapped.
type instant struct {
	mu       sync.Mutex
	running  map[string]bool
	runs     map[string]int
	overlaps []string
	block    chan struct{} // when set, runs wait for it or their context
	started  chan string
	stopped  chan string
}

func newInstant() *instant { return &instant{running: map[string]bool{}, runs: map[string]int{}} }

func (r *instant) Cases(ctx context.Context, spec jobs.Spec, cases []imagetest.Case, obs imagetest.Observer, out jobs.Output) (*imagetest.Report, error) {
	key := spec.Image.Path + "|" + cases[0].Name
	if v, ok := ctx.Value(jobKey{}).(string); ok {
		key = v
	}
	r.mu.Lock()
	if r.running[key] {
		r.overlaps = append(r.overlaps, key)
	}
	r.running[key] = true
	r.runs[key]++
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.running[key] = false
		r.mu.Unlock()
	}()
	fmt.Fprintf(out.Log, "running %d cases\n", len(cases))
	var results []imagetest.Result
	for _, c := range cases {
		obs.Update(imagetest.Result{Name: c.Name, Status: imagetest.Running})
	}
	if r.block != nil {
		r.started <- key
		select {
		case <-r.block:
		case <-ctx.Done():
			r.stopped <- key
			return nil, ctx.Err()
		}
	}
	for _, c := range cases {
		res := imagetest.Result{Name: c.Name, Area: c.Area, Priority: c.Priority, Status: imagetest.Passed, Message: "ok", Duration: time.Millisecond}
		obs.Update(res)
		results = append(results, res)
	}
	return &imagetest.Report{Results: results}, nil
}

func (r *instant) Matrix(ctx context.Context, spec jobs.Spec, log io.Writer) (*imagetest.Matrix, error) {
	return &imagetest.Matrix{}, nil
}

type jobKey struct{}

func inline(sel ...imagetest.Selection) *jobs.TemplateProperties {
	return &jobs.TemplateProperties{Selections: sel}
}

func createReq(name, image string, props *jobs.TemplateProperties) jobs.CreateRequest {
	var r jobs.CreateRequest
	r.Name = name
	r.Properties.Image.Path = image
	r.Properties.TemplateProperties = props
	return r
}

func TestQueueLoadSQLite(t *testing.T) {
	queueLoad(t, filepath.Join(t.TempDir(), "vouch.db"), 1000)
}

func TestQueueLoadPostgres(t *testing.T) {
	testfixtures.Long(t, testfixtures.Services)
	c := pgtest.Start(t)
	queueLoad(t, c.NewDatabase(t), 1000)
}

// queueLoad queues n jobs, runs them with four workers and a runner that
// returns at once: none lost, none run twice, each job's states in order.
func queueLoad(t *testing.T, dsn string, n int) {
	e := newEnv(t, dsn, 30*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	img := diskImage(t)
	props := inline(imagetest.Selection{Priorities: []int{0}})
	start := time.Now()
	for i := 0; i < n; i++ {
		if _, err := e.admin.CreateJob(ctx, createReq(fmt.Sprintf("load-%04d", i), img, props)); err != nil {
			t.Fatal(err)
		}
	}
	queued := time.Since(start)
	r := newInstant()
	var wg sync.WaitGroup
	var done atomic.Int64
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			wk := &jobs.Worker{Server: e.worker, Caps: store.Caps{Worker: fmt.Sprint("w", w), Cores: 2, MemoryMiB: 4096, DiskMiB: 10000},
				Runner: r, Poll: 10 * time.Millisecond}
			for done.Load() < int64(n) && ctx.Err() == nil {
				cl, err := e.worker.Claim(ctx, wk.Caps)
				if err != nil {
					t.Error(err)
					return
				}
				if cl == nil {
					time.Sleep(5 * time.Millisecond) // the queue is empty: poll again
					continue
				}
				// Each job's runs are keyed by its name.
				st := wk.Execute(context.WithValue(ctx, jobKey{}, cl.Job.Name), cl)
				if st != store.JobSucceeded {
					t.Errorf("job %s: %s", cl.Job.Name, st)
				}
				done.Add(1)
			}
		}(w)
	}
	wg.Wait()
	took := time.Since(start) - queued
	t.Logf("%s: %d jobs queued in %s (%.0f/s), run by 4 workers over HTTP in %s (%.0f jobs/s)", e.st.Driver(), n,
		queued.Round(time.Millisecond), float64(n)/queued.Seconds(), took.Round(time.Millisecond), float64(n)/took.Seconds())
	list, err := e.admin.Jobs(ctx, store.JobFilter{Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != n {
		t.Fatalf("%d jobs listed, want %d", len(list), n)
	}
	for _, j := range list {
		if j.Properties.ProvisioningState != store.JobSucceeded || j.Properties.Attempt != 1 {
			t.Errorf("job %s: %s, attempt %d", j.Name, j.Properties.ProvisioningState, j.Properties.Attempt)
		}
		for _, res := range j.Properties.Results {
			if res.Status != imagetest.Passed {
				t.Errorf("job %s: %s %s", j.Name, res.TestName, res.Status)
			}
		}
		if r.runs[j.Name] != 1 {
			t.Errorf("job %s ran %d times", j.Name, r.runs[j.Name])
		}
	}
	if len(r.overlaps) > 0 {
		t.Errorf("jobs run twice at once: %v", r.overlaps)
	}
	// States in order, on a sample (every event list is read the same way).
	for i := 0; i < n; i += n / 20 {
		ev, err := e.admin.JobEvents(ctx, fmt.Sprintf("load-%04d", i))
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, x := range ev {
			s = append(s, x.State)
		}
		if got := strings.Join(s, ","); got != "Accepted,Queued,Scheduling,Provisioning,Running,Succeeded" {
			t.Errorf("job %d: states %s", i, got)
		}
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "vouch.db"), 30*time.Second)
	ctx := context.Background()
	img := diskImage(t)
	text := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(text, []byte(strings.Repeat("not a disk\n", 100)), 0o600)
	for _, c := range []struct {
		name   string
		req    jobs.CreateRequest
		status int
		want   string
	}{
		{"selection matching nothing", createReq("a", img, inline(imagetest.Selection{Names: []string{"boot.multi-user"}},
			imagetest.Selection{Names: []string{"boot.multi-user"}, Action: imagetest.Exclude})), 400, "matches no case"},
		{"empty selection", createReq("b", img, inline(imagetest.Selection{})), 400, "names no caseName"},
		{"no selections", createReq("b2", img, inline()), 400, "no selections"},
		{"unknown case", createReq("c", img, inline(imagetest.Selection{Names: []string{"boot.nonexistent"}})), 400, `no case named "boot.nonexistent"`},
		{"unknown area", createReq("c2", img, inline(imagetest.Selection{Areas: []string{"gpu"}})), 400, `unknown area "gpu"`},
		{"not a disk image", createReq("d", text, inline(imagetest.Selection{Priorities: []int{0}})), 400, "no partition table"},
		{"missing image", createReq("e", "/nonexistent.qcow2", inline(imagetest.Selection{Priorities: []int{0}})), 400, "no such file"},
		{"unknown template", func() jobs.CreateRequest {
			r := createReq("f", img, nil)
			r.Properties.Template = "nope"
			return r
		}(), 400, `no job template named "nope"`},
		{"bad firmware", createReq("g", img, &jobs.TemplateProperties{Selections: []imagetest.Selection{{Priorities: []int{0}}},
			Firmware: jobs.Firmware{Profile: "microsoft-2099"}}), 400, "firmware profile"},
	} {
		_, err := e.admin.CreateJob(ctx, c.req)
		se, ok := err.(*api.StatusError)
		if !ok || se.Code != c.status || !strings.Contains(se.Message, c.want) {
			t.Errorf("%s: %v, want %d %q", c.name, err, c.status, c.want)
		}
	}
	// Templates are checked the same way.
	_, err := e.admin.PutTemplate(ctx, jobs.Template{Name: "t", Properties: jobs.TemplateProperties{Selections: []imagetest.Selection{{Names: []string{"nope"}}}}})
	if se, ok := err.(*api.StatusError); !ok || se.Code != 400 || !strings.Contains(se.Message, `no case named "nope"`) {
		t.Errorf("template with an unknown case: %v", err)
	}
	_, err = e.admin.PutTemplate(ctx, jobs.Template{Name: "t0", Properties: jobs.TemplateProperties{Selections: []imagetest.Selection{
		{Areas: []string{"boot"}}, {Areas: []string{"boot"}, Action: imagetest.Exclude}}}})
	if se, ok := err.(*api.StatusError); !ok || se.Code != 400 || !strings.Contains(se.Message, "matches no case") {
		t.Errorf("template selecting no case: %v", err)
	}
	// A patch that would leave a stored template selecting an unknown case
	// is refused, and the template stays as it was.
	if _, err := e.admin.PutTemplate(ctx, jobs.Template{Name: "keep", Properties: jobs.TemplateProperties{Selections: []imagetest.Selection{{Priorities: []int{0}}}}}); err != nil {
		t.Fatal(err)
	}
	patch := func(c *api.Client, body string) *http.Response {
		req, _ := http.NewRequest(http.MethodPatch, e.http.URL+"/v1/templates/keep", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+c.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := patch(e.admin, `{"properties":{"selections":[{"caseName":["boot.nope"]}]}}`); resp.StatusCode != 400 {
		t.Errorf("patch to an unknown case: %s", resp.Status)
	}
	if resp := patch(e.worker, `{"properties":{"retryCount":3}}`); resp.StatusCode != 403 {
		t.Errorf("worker patching a template: %s", resp.Status)
	}
	if tp, err := e.admin.Template(ctx, "keep"); err != nil || fmt.Sprint(tp.Properties.Selections[0].Priorities) != "[0]" || tp.Properties.RetryCount != 0 {
		t.Errorf("template after refused patches: %+v %v", tp, err)
	}
	if err := e.worker.DeleteTemplate(ctx, "keep"); err == nil || err.(*api.StatusError).Code != 403 {
		t.Errorf("worker deleting a template: %v", err)
	}
	if err := e.admin.DeleteTemplate(ctx, "keep"); err != nil {
		t.Fatal(err)
	}
	// A worker token is not an admin token.
	if _, err := e.worker.UploadImage(ctx, img); err == nil || err.(*api.StatusError).Code != 403 {
		t.Errorf("worker uploading an image: %v", err)
	}
	if err := e.worker.DeleteJob(ctx, "x"); err == nil || err.(*api.StatusError).Code != 403 {
		t.Errorf("worker deleting a job: %v", err)
	}
	_, err = e.worker.CreateJob(ctx, createReq("w", img, inline(imagetest.Selection{Priorities: []int{0}})))
	if se, ok := err.(*api.StatusError); !ok || se.Code != 403 || !strings.Contains(se.Message, "a worker token cannot do this") {
		t.Errorf("worker creating a job: %v", err)
	}
	_, err = e.worker.PutTemplate(ctx, jobs.Template{Name: "w", Properties: jobs.TemplateProperties{Selections: []imagetest.Selection{{Priorities: []int{0}}}}})
	if se, ok := err.(*api.StatusError); !ok || se.Code != 403 {
		t.Errorf("worker creating a template: %v", err)
	}
	if _, err := e.worker.CancelJob(ctx, "x"); err == nil || err.(*api.StatusError).Code != 403 {
		t.Errorf("worker canceling: %v", err)
	}
	// An admin token cannot claim (a worker's call).
	if _, err := e.admin.Claim(ctx, store.Caps{Worker: "x"}); err == nil || err.(*api.StatusError).Code != 403 {
		t.Errorf("admin claiming: %v", err)
	}
	// An upload cut off halfway: the connection closes after half the
	// announced bytes.
	body, _ := os.ReadFile(img)
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.http.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /v1/images HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", e.admin.Token, len(body))
	conn.Write(body[:len(body)/2])
	conn.(*net.TCPConn).CloseWrite()
	answer, _ := io.ReadAll(conn)
	conn.Close()
	if !strings.Contains(string(answer), "400 Bad Request") || !strings.Contains(string(answer), "upload cut off after 524288 of 1048576 bytes") {
		t.Errorf("cut-off upload answered:\n%s", answer)
	}
	// A text file uploaded whole is not a disk image.
	if _, err := e.admin.UploadImage(ctx, text); err == nil || !strings.Contains(err.Error(), "no partition table") {
		t.Errorf("text upload: %v", err)
	}
	if ents, _ := os.ReadDir(e.imageDir); len(ents) != 0 {
		t.Errorf("refused uploads left files: %v", ents)
	}
	// Nothing was created.
	if list, _ := e.admin.Jobs(ctx, store.JobFilter{}); len(list) != 0 {
		t.Errorf("%d jobs created by refused requests", len(list))
	}
	if ts, _ := e.admin.Templates(ctx); len(ts) != 0 {
		t.Errorf("%d templates created by refused requests", len(ts))
	}
	// A good upload is usable by a job.
	up, err := e.admin.UploadImage(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.CreateJob(ctx, createReq("ok", up.Path, inline(imagetest.Selection{Priorities: []int{0}}))); err != nil {
		t.Fatal(err)
	}
	if err := e.admin.DeleteJob(ctx, "ok"); err == nil || err.(*api.StatusError).Code != 409 {
		t.Errorf("deleting a queued job: %v", err)
	}
}

func TestTemplatesAndRetries(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "vouch.db"), 30*time.Second)
	ctx := context.Background()
	tp := jobs.TemplateProperties{Selections: []imagetest.Selection{{Priorities: []int{0}}, {Names: []string{"kernel.*"}, Action: imagetest.Exclude}},
		TestIterations: 2, RetryCount: 1}
	got, err := e.admin.PutTemplate(ctx, jobs.Template{Name: "smoke", Properties: tp})
	if err != nil || got.Properties.TestIterations != 2 {
		t.Fatalf("%+v %v", got, err)
	}
	// PATCH is a JSON merge patch.
	req, _ := http.NewRequest(http.MethodPatch, e.http.URL+"/v1/templates/smoke", strings.NewReader(`{"properties":{"retryCount":2}}`))
	req.Header.Set("Authorization", "Bearer "+e.admin.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var patched jobs.Template
	json.NewDecoder(resp.Body).Decode(&patched)
	resp.Body.Close()
	if resp.StatusCode != 200 || patched.Properties.RetryCount != 2 || patched.Properties.TestIterations != 2 {
		t.Fatalf("patch: %d %+v", resp.StatusCode, patched.Properties)
	}
	r := createReq("t1", diskImage(t), nil)
	r.Properties.Template = "smoke"
	j, err := e.admin.CreateJob(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range j.Properties.Cases {
		if strings.HasPrefix(c, "kernel.") {
			t.Errorf("excluded case %s selected", c)
		}
	}
	// A runner whose first run of each case fails: the retry passes, and
	// the case is reported flaky.
	fl := &flaky{seen: map[string]int{}}
	wk := &jobs.Worker{Server: e.worker, Caps: store.Caps{Worker: "w", Cores: 2, MemoryMiB: 4096, DiskMiB: 10000}, Runner: fl}
	if err := wk.Run(ctx, true); err != nil {
		t.Fatal(err)
	}
	j, _ = e.admin.Job(ctx, "t1")
	if j.Properties.ProvisioningState != store.JobSucceeded || len(j.Properties.Results) != 2*len(j.Properties.Cases) {
		t.Fatalf("%s, %d results for %d cases x 2 iterations", j.Properties.ProvisioningState, len(j.Properties.Results), len(j.Properties.Cases))
	}
	for _, res := range j.Properties.Results {
		if res.Status != imagetest.Passed || !res.Flaky || res.Attempts != 2 || !strings.Contains(res.Message, "passed on retry 1") {
			t.Errorf("%s #%d: %s flaky=%v attempts=%d %q", res.TestName, res.Iteration, res.Status, res.Flaky, res.Attempts, res.Message)
		}
	}
	lines, _, err := e.admin.JobLog(ctx, "t1", "", 0)
	if err != nil || len(lines) == 0 {
		t.Fatalf("no log: %v", err)
	}
}

// flaky fails each case the first time it runs in a job iteration.
type flaky struct {
	mu   sync.Mutex
	seen map[string]int
}

func (f *flaky) Cases(ctx context.Context, spec jobs.Spec, cases []imagetest.Case, obs imagetest.Observer, out jobs.Output) (*imagetest.Report, error) {
	rep := &imagetest.Report{}
	for _, c := range cases {
		f.mu.Lock()
		f.seen[c.Name]++
		n := f.seen[c.Name]
		f.mu.Unlock()
		obs.Update(imagetest.Result{Name: c.Name, Status: imagetest.Running})
		st := imagetest.Passed
		if n%2 == 1 {
			st = imagetest.Failed
		}
		r := imagetest.Result{Name: c.Name, Status: st, Message: fmt.Sprintf("run %d", n), Log: []string{"line of " + c.Name}}
		obs.Update(r)
		rep.Results = append(rep.Results, r)
	}
	return rep, nil
}

func (f *flaky) Matrix(context.Context, jobs.Spec, io.Writer) (*imagetest.Matrix, error) {
	return nil, fmt.Errorf("no matrix")
}

func TestCancelStopsTheRun(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "vouch.db"), 30*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := e.admin.CreateJob(ctx, createReq("long", diskImage(t), inline(imagetest.Selection{Priorities: []int{0}}))); err != nil {
		t.Fatal(err)
	}
	r := newInstant()
	r.block, r.started, r.stopped = make(chan struct{}), make(chan string, 1), make(chan string, 1)
	wk := &jobs.Worker{Server: e.worker, Caps: store.Caps{Worker: "w", Cores: 2, MemoryMiB: 4096, DiskMiB: 10000}, Runner: r,
		Heartbeat: 200 * time.Millisecond}
	errc := make(chan error, 1)
	go func() { errc <- wk.Run(ctx, true) }()
	<-r.started
	j, err := e.admin.CancelJob(ctx, "long")
	if err != nil || !j.Properties.CancelRequested {
		t.Fatalf("cancel: %+v %v", j.Properties, err)
	}
	<-r.stopped // the runner's context ended: the VM is killed
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	j, _ = e.admin.Job(ctx, "long")
	if j.Properties.ProvisioningState != store.JobCanceled || !strings.Contains(j.Properties.Reason, "canceled on request") {
		t.Fatalf("after cancel: %s %q", j.Properties.ProvisioningState, j.Properties.Reason)
	}
}

func TestLostWorker(t *testing.T) {
	// A worker that stops heartbeating (here: its runner blocks and its
	// heartbeats go nowhere) loses the job after the lease; another worker
	// runs it; the first one's late updates are refused.
	e := newEnv(t, filepath.Join(t.TempDir(), "vouch.db"), 2*time.Second)
	ctx := context.Background()
	if _, err := e.admin.CreateJob(ctx, createReq("j", diskImage(t), inline(imagetest.Selection{Priorities: []int{0}}))); err != nil {
		t.Fatal(err)
	}
	cl, err := e.worker.Claim(ctx, store.Caps{Worker: "gone", Cores: 2, MemoryMiB: 4096, DiskMiB: 10000})
	if err != nil || cl == nil {
		t.Fatal(cl, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	var j jobs.Job
	for {
		j, _ = e.admin.Job(ctx, "j")
		if j.Properties.ProvisioningState == store.JobQueued || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
	}
	if j.Properties.ProvisioningState != store.JobQueued {
		t.Fatalf("job still %s after the lease", j.Properties.ProvisioningState)
	}
	if _, err := e.worker.Update(ctx, "j", jobs.Update{Lease: cl.Lease, State: store.JobRunning}); err == nil || !strings.Contains(err.Error(), "lease") {
		t.Errorf("late update of the lost worker: %v", err)
	}
	wk := &jobs.Worker{Server: e.worker, Caps: store.Caps{Worker: "second", Cores: 2, MemoryMiB: 4096, DiskMiB: 10000}, Runner: newInstant()}
	if err := wk.Run(ctx, true); err != nil {
		t.Fatal(err)
	}
	j, _ = e.admin.Job(ctx, "j")
	if j.Properties.ProvisioningState != store.JobSucceeded || j.Properties.Attempt != 2 || j.Properties.Worker != "second" {
		t.Fatalf("%s attempt %d worker %s", j.Properties.ProvisioningState, j.Properties.Attempt, j.Properties.Worker)
	}
	ev, _ := e.admin.JobEvents(ctx, "j")
	var notes []string
	for _, x := range ev {
		notes = append(notes, x.State+" "+x.Note)
	}
	if !strings.Contains(strings.Join(notes, "|"), "worker gone stopped reporting: its lease expired") {
		t.Errorf("events do not say why: %v", notes)
	}
}

func TestOpenAPIDocumentsJobRoutes(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "vouch.db"), 30*time.Second)
	resp, err := http.Get(e.http.URL + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"get /v1/templates", "get /v1/templates/{name}", "put /v1/templates/{name}", "patch /v1/templates/{name}",
		"delete /v1/templates/{name}", "post /v1/images", "post /v1/jobs", "get /v1/jobs", "get /v1/jobs/{name}", "get /v1/jobs/{name}/events",
		"get /v1/jobs/{name}/logs", "post /v1/jobs/{name}/cancel", "delete /v1/jobs/{name}", "post /v1/worker/claim", "post /v1/worker/jobs/{name}",
		"post /v1/worker/jobs/{name}/logs", "get /v1/worker/images/{sha256}"} {
		m, p, _ := strings.Cut(r, " ")
		if doc.Paths[p][m] == nil {
			t.Errorf("openapi.json lacks %s", r)
		}
	}
}

func TestImageURL(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "vouch.db"), 30*time.Second)
	ctx := context.Background()
	disk, _ := os.ReadFile(diskImage(t))
	mux := http.NewServeMux()
	mux.HandleFunc("/disk.raw", func(w http.ResponseWriter, r *http.Request) { w.Write(disk) })
	mux.HandleFunc("/notes.txt", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(strings.Repeat("text\n", 1000))) })
	mux.HandleFunc("/cut.raw", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(disk)))
		w.Write(disk[:len(disk)/2])
	})
	var origin string
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, strings.Replace(origin, "127.0.0.1", "127.0.0.2", 1)+"/disk.raw", http.StatusFound)
	})
	src := httptest.NewServer(mux)
	defer src.Close()
	origin = src.URL
	job := func(name, url string) error {
		var r jobs.CreateRequest
		r.Name = name
		r.Properties.Image.URL = url
		r.Properties.TemplateProperties = inline(imagetest.Selection{Priorities: []int{0}})
		_, err := e.admin.CreateJob(ctx, r)
		return err
	}
	want := func(err error, code int, msg string) {
		t.Helper()
		se, ok := err.(*api.StatusError)
		if !ok || se.Code != code || !strings.Contains(se.Message, msg) {
			t.Errorf("%v, want %d %q", err, code, msg)
		}
	}
	want(job("a", src.URL+"/disk.raw"), 400, "fetches no URLs")
	e.srv.ImageAllow, _ = api.ParseImageAllow([]string{"10.0.0.0/8"})
	want(job("b", src.URL+"/disk.raw"), 400, "outside what the server may fetch from")
	e.srv.ImageAllow, _ = api.ParseImageAllow([]string{"127.0.0.1"})
	want(job("c", src.URL+"/elsewhere"), 400, "127.0.0.2")
	want(job("d", src.URL+"/notes.txt"), 400, "not a bootable disk image")
	want(job("e", src.URL+"/cut.raw"), 502, "cut off")
	want(job("f", "file:///etc/passwd"), 400, "want http(s)")
	if ents, _ := os.ReadDir(e.imageDir); len(ents) != 0 {
		t.Errorf("refused fetches left files: %v", ents)
	}
	if err := job("ok", src.URL+"/disk.raw"); err != nil {
		t.Fatal(err)
	}
	j, _ := e.admin.Job(ctx, "ok")
	if !strings.HasPrefix(j.Properties.Image.Path, e.imageDir) {
		t.Errorf("fetched image at %s", j.Properties.Image.Path)
	}
	// A refused job keeps no fetched image.
	var r jobs.CreateRequest
	r.Name = "bad-sel"
	r.Properties.Image.URL = src.URL + "/disk.raw?again"
	r.Properties.TemplateProperties = inline(imagetest.Selection{Names: []string{"nope"}})
	if _, err := e.admin.CreateJob(ctx, r); err == nil {
		t.Fatal("a job selecting an unknown case was accepted")
	}
	if ents, _ := os.ReadDir(e.imageDir); len(ents) != 1 {
		t.Errorf("images after a refused job: %v", ents)
	}
	if _, err := api.ParseImageAllow([]string{"example.com"}); err == nil {
		t.Error("a host name was taken as a network")
	}
}

// barrier is a runner whose runs wait until two are in flight at once.
type barrier struct {
	mu      sync.Mutex
	cur, mx int
	both    chan struct{}
	once    sync.Once
}

func (b *barrier) Cases(ctx context.Context, spec jobs.Spec, cases []imagetest.Case, obs imagetest.Observer, out jobs.Output) (*imagetest.Report, error) {
	b.mu.Lock()
	b.cur++
	b.mx = max(b.mx, b.cur)
	if b.cur == 2 {
		b.once.Do(func() { close(b.both) })
	}
	b.mu.Unlock()
	defer func() { b.mu.Lock(); b.cur--; b.mu.Unlock() }()
	select {
	case <-b.both:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(time.Minute):
		return nil, fmt.Errorf("the second environment never started")
	}
	rep := &imagetest.Report{}
	for _, c := range cases {
		r := imagetest.Result{Name: c.Name, Status: imagetest.Passed}
		obs.Update(r)
		rep.Results = append(rep.Results, r)
	}
	return rep, nil
}

func (b *barrier) Matrix(context.Context, jobs.Spec, io.Writer) (*imagetest.Matrix, error) {
	return nil, nil
}

func TestConcurrentEnvironments(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "vouch.db"), 30*time.Second)
	ctx := context.Background()
	props := &jobs.TemplateProperties{Selections: []imagetest.Selection{{Priorities: []int{0}}}, UseNewEnvironment: true, Concurrency: 2}
	if _, err := e.admin.CreateJob(ctx, createReq("par", diskImage(t), props)); err != nil {
		t.Fatal(err)
	}
	b := &barrier{both: make(chan struct{})}
	wk := &jobs.Worker{Server: e.worker, Caps: store.Caps{Worker: "w", Cores: 2, MemoryMiB: 4096, DiskMiB: 10000}, Runner: b}
	if err := wk.Run(ctx, true); err != nil {
		t.Fatal(err)
	}
	j, _ := e.admin.Job(ctx, "par")
	if j.Properties.ProvisioningState != store.JobSucceeded || b.mx != 2 {
		t.Fatalf("%s (%s), %d environments at once", j.Properties.ProvisioningState, j.Properties.Reason, b.mx)
	}
}
