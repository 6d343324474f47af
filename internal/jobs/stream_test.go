package jobs_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vouch-dev/vouch/internal/api"
	"github.com/vouch-dev/vouch/internal/imagetest"
	"github.com/vouch-dev/vouch/internal/jobs"
	"github.com/vouch-dev/vouch/internal/pgtest"
	"github.com/vouch-dev/vouch/internal/store"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// dripping is a quick runner that prints its console one line at a time,
// each when the test sends on step, as a booting VM would.
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
		r := imagetest.Result{Name: c.Name, Area: c.Area, Priority: c.Priority, Status: imagetest.Passed, Message: "ok"}
		obs.Update(r)
		rep.Results = append(rep.Results, r)
	}
	return rep, nil
}

func (d *dripping) Matrix(context.Context, jobs.Spec, io.Writer) (*imagetest.Matrix, error) {
	return &imagetest.Matrix{}, nil
}

// within waits for a value on c, failing the test after a minute.
func within[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(time.Minute):
		t.Fatalf("no %s within a minute", what)
		panic("unreachable")
	}
}

// TestLogsStreamWhileRunning follows a job's log over HTTP while a worker
// runs it: each console line reaches the follower while the job still
// runs (the runner prints the next one only after), and the follower ends
// with the job, having seen the whole stored log once.
func TestLogsStreamWhileRunning(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "vouch.db"), 30*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := e.admin.CreateJob(ctx, createReq("drip", diskImage(t), inline(imagetest.Selection{Names: []string{"boot.multi-user"}}))); err != nil {
		t.Fatal(err)
	}
	const n = 5
	r := &dripping{lines: n, step: make(chan struct{})}
	wk := &jobs.Worker{Server: e.worker, Caps: store.Caps{Worker: "w", Cores: 2, MemoryMiB: 4096, DiskMiB: 10000}, Runner: r}
	ran := make(chan error, 1)
	go func() { ran <- wk.Run(ctx, true) }()

	seen := make(chan store.JobLogLine, 100)
	followed := make(chan jobs.LogEnd, 1)
	go func() {
		end, err := e.admin.FollowJobLog(ctx, "drip", "", 0, func(l store.JobLogLine) error {
			seen <- l
			return nil
		})
		if err != nil {
			t.Error(err)
		}
		followed <- end
		close(seen)
	}()
	var got []store.JobLogLine
	for i := 0; i < n; i++ {
		r.step <- struct{}{}
		want := fmt.Sprintf("console line %d", i)
		for {
			l := within(t, seen, want)
			got = append(got, l)
			if l.Line == want {
				if l.Case != "console" {
					t.Errorf("%q: case %q, want console", l.Line, l.Case)
				}
				break
			}
		}
		j, err := e.admin.Job(ctx, "drip")
		if err != nil {
			t.Fatal(err)
		}
		if store.JobFinal(j.Properties.ProvisioningState) {
			t.Fatalf("line %d arrived only once the job was %s", i, j.Properties.ProvisioningState)
		}
	}
	r.step <- struct{}{}
	if err := within(t, ran, "end of the worker"); err != nil {
		t.Fatal(err)
	}
	end := within(t, followed, "end of the stream")
	for l := range seen {
		got = append(got, l)
	}
	if end.State != store.JobSucceeded {
		t.Errorf("stream ended with %+v", end)
	}
	// The follower saw the whole log kept after the job, once each, in
	// order.
	all, _, err := e.admin.JobLog(ctx, "drip", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(got) {
		t.Fatalf("followed %d lines, the job keeps %d", len(got), len(all))
	}
	var console []string
	for i, l := range all {
		if l.Seq != got[i].Seq || l.Line != got[i].Line {
			t.Errorf("line %d: followed %+v, kept %+v", i, got[i], l)
		}
		if l.Case == "console" {
			console = append(console, l.Line)
		}
	}
	if fmt.Sprint(console) != "[console line 0 console line 1 console line 2 console line 3 console line 4]" {
		t.Errorf("console kept: %q", console)
	}
	// Following an ended job gives its log and the end at once.
	var again int
	if end, err := e.admin.FollowJobLog(ctx, "drip", "console", 0, func(store.JobLogLine) error { again++; return nil }); err != nil || again != n || end.State != store.JobSucceeded {
		t.Errorf("following the ended job: %d lines, %+v, %v", again, end, err)
	}
}

// TestLogAppendRetry sends the same chunk twice, as a worker whose answer
// was lost does: the log keeps it once; a gap and a foreign lease are
// refused.
func TestLogAppendRetry(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "vouch.db"), 30*time.Second)
	ctx := context.Background()
	if _, err := e.admin.CreateJob(ctx, createReq("j", diskImage(t), inline(imagetest.Selection{Priorities: []int{0}}))); err != nil {
		t.Fatal(err)
	}
	cl, err := e.worker.Claim(ctx, store.Caps{Worker: "w", Cores: 2, MemoryMiB: 4096, DiskMiB: 10000})
	if err != nil || cl == nil || cl.LogOffset != 0 {
		t.Fatalf("claim: %+v %v", cl, err)
	}
	chunk := jobs.LogAppend{Lease: cl.Lease, From: 0, Lines: []store.JobLogLine{{Case: "console", Line: "a"}, {Case: "console", Line: "b"}}}
	for i := 0; i < 2; i++ {
		if ans, err := e.worker.AppendLog(ctx, "j", chunk); err != nil || ans.Next != 2 {
			t.Fatalf("append %d: %+v %v", i, ans, err)
		}
	}
	chunk.From = 7
	if _, err := e.worker.AppendLog(ctx, "j", chunk); !errors.Is(err, jobs.ErrLogRefused) || !strings.Contains(err.Error(), "422 log lines missing") {
		t.Errorf("gap: %v", err)
	}
	chunk.From, chunk.Lease = 2, "not-the-lease"
	if _, err := e.worker.AppendLog(ctx, "j", chunk); err == nil || !strings.Contains(err.Error(), "lease") {
		t.Errorf("foreign lease: %v", err)
	}
	if _, err := e.admin.AppendLog(ctx, "j", chunk); !errors.Is(err, jobs.ErrLogRefused) || !strings.Contains(err.Error(), "403") {
		t.Errorf("admin appending: %v", err)
	}
	if lines, _, _ := e.admin.JobLog(ctx, "j", "", 0); len(lines) != 2 {
		t.Errorf("log %+v", lines)
	}
}

// recorder is a quick runner that records the image file each job ran on
// and the SHA-256 of its bytes.
type recorder struct {
	mu    sync.Mutex
	paths []string
	sums  []string
}

func (r *recorder) Cases(ctx context.Context, spec jobs.Spec, cases []imagetest.Case, obs imagetest.Observer, out jobs.Output) (*imagetest.Report, error) {
	b, err := os.ReadFile(spec.Image.Path)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	r.mu.Lock()
	r.paths = append(r.paths, spec.Image.Path)
	r.sums = append(r.sums, hex.EncodeToString(sum[:]))
	r.mu.Unlock()
	rep := &imagetest.Report{}
	for _, c := range cases {
		res := imagetest.Result{Name: c.Name, Area: c.Area, Priority: c.Priority, Status: imagetest.Passed, Message: "ok"}
		obs.Update(res)
		rep.Results = append(rep.Results, res)
	}
	return rep, nil
}

func (r *recorder) Matrix(context.Context, jobs.Spec, io.Writer) (*imagetest.Matrix, error) {
	return &imagetest.Matrix{}, nil
}

// cutter cuts the body of the first image download after half its bytes,
// as a dropped connection does.
type cutter struct {
	r    io.ReadCloser
	left int64
}

func (c *cutter) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, io.ErrUnexpectedEOF
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

func (c *cutter) Close() error { return c.r.Close() }

// TestUploadedImageReachesRemoteWorker runs jobs on an uploaded image with
// a worker whose cache directory is not the server's data directory: the
// worker downloads the image over HTTP with its worker token (the first
// download is cut off halfway and resumed with a range), checks its
// digest, runs the job on its own copy with the same bytes, and the next
// job on the same image uses the cache.
func TestUploadedImageReachesRemoteWorker(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "vouch.db"), 30*time.Second)
	ctx := context.Background()
	img := diskImage(t)
	up, err := e.admin.UploadImage(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	// The worker reaches the server through a proxy that cuts the first
	// image download and records the ranges asked.
	target, _ := url.Parse(e.http.URL)
	var mu sync.Mutex
	var downloads []string
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(resp *http.Response) error {
		if !strings.HasPrefix(resp.Request.URL.Path, "/v1/worker/images/") {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		downloads = append(downloads, resp.Status+" range="+resp.Request.Header.Get("Range"))
		if len(downloads) == 1 {
			resp.Body = &cutter{r: resp.Body, left: up.Size / 2}
		}
		return nil
	}
	ps := httptest.NewServer(proxy)
	defer ps.Close()
	remote, err := api.NewClient(ps.URL, e.worker.Token, "")
	if err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(t.TempDir(), "worker-cache")
	r := &recorder{}
	wk := &jobs.Worker{Server: remote, Caps: store.Caps{Worker: "remote", Cores: 2, MemoryMiB: 4096, DiskMiB: 10000}, Runner: r, CacheDir: cache}
	for _, name := range []string{"first", "second"} {
		j, err := e.admin.CreateJob(ctx, createReq(name, up.Path, inline(imagetest.Selection{Names: []string{"boot.multi-user"}})))
		if err != nil {
			t.Fatal(err)
		}
		if im := j.Properties.Image; im.SHA256 != up.SHA256 || im.Size != up.Size {
			t.Fatalf("job image %+v, want the upload %s (%d bytes)", im, up.SHA256, up.Size)
		}
		if err := wk.Run(ctx, true); err != nil {
			t.Fatal(err)
		}
		j, err = e.admin.Job(ctx, name)
		if err != nil || j.Properties.ProvisioningState != store.JobSucceeded {
			t.Fatalf("job %s: %s %s %v", name, j.Properties.ProvisioningState, j.Properties.Reason, err)
		}
	}
	want := filepath.Join(cache, up.SHA256+".img")
	if len(r.paths) != 2 || r.paths[0] != want || r.paths[1] != want {
		t.Errorf("ran on %v, want the worker's copy %s", r.paths, want)
	}
	for _, s := range r.sums {
		if s != up.SHA256 {
			t.Errorf("worker's copy has SHA-256 %s, the upload %s", s, up.SHA256)
		}
	}
	half := fmt.Sprintf("bytes=%d-", up.Size/2)
	if fmt.Sprint(downloads) != "[200 OK range= 206 Partial Content range="+half+"]" {
		t.Errorf("downloads %q: want one cut off, one resumed at %s, none for the cached second job", downloads, half)
	}
	if ents, _ := filepath.Glob(filepath.Join(cache, "*.part")); len(ents) != 0 {
		t.Errorf("partial downloads left: %v", ents)
	}
	lines, _, _ := e.admin.JobLog(ctx, "first", "", 0)
	var log []string
	for _, l := range lines {
		log = append(log, l.Line)
	}
	if s := strings.Join(log, "\n"); !strings.Contains(s, "resuming") || !strings.Contains(s, "downloaded and checked") {
		t.Errorf("first job's log does not tell the download:\n%s", s)
	}
	// A job naming the image by digest only; and a digest the server
	// does not keep is refused with nothing created.
	var byDigest jobs.CreateRequest
	byDigest.Name = "by-digest"
	byDigest.Properties.Image.SHA256 = up.SHA256
	byDigest.Properties.TemplateProperties = inline(imagetest.Selection{Priorities: []int{0}})
	if j, err := e.admin.CreateJob(ctx, byDigest); err != nil || j.Properties.Image.Path != up.Path {
		t.Errorf("job by digest: %+v %v", j.Properties.Image, err)
	}
	byDigest.Name, byDigest.Properties.Image.SHA256 = "unknown-digest", strings.Repeat("0", 64)
	if _, err := e.admin.CreateJob(ctx, byDigest); err == nil || err.(*api.StatusError).Code != 400 || !strings.Contains(err.Error(), "no image") {
		t.Errorf("unknown digest: %v", err)
	}
	// Only workers and admins download; a reader token cannot.
	secret, h := api.NewToken()
	if err := e.st.CreateToken(ctx, store.Token{Hash: h, Role: store.RoleReader, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	reader, _ := api.NewClient(e.http.URL, secret, "")
	if _, err := reader.FetchImage(ctx, up.SHA256, 0, io.Discard); err == nil || err.(*api.StatusError).Code != http.StatusForbidden {
		t.Errorf("reader downloading: %v", err)
	}
}

// noisy writes more log lines than one append takes, a console line of
// 40 KiB and one with a NUL byte.
type noisy struct{ lines int }

func (r *noisy) Cases(ctx context.Context, spec jobs.Spec, cases []imagetest.Case, obs imagetest.Observer, out jobs.Output) (*imagetest.Report, error) {
	for i := 0; i < r.lines; i++ {
		fmt.Fprintf(out.Log, "progress %04d\n", i)
	}
	fmt.Fprintf(out.Console, "%s\nnul\x00byte\n", strings.Repeat("é", 20<<10))
	rep := &imagetest.Report{}
	for _, c := range cases {
		res := imagetest.Result{Name: c.Name, Status: imagetest.Passed, Message: "ok"}
		obs.Update(res)
		rep.Results = append(rep.Results, res)
	}
	return rep, nil
}

func (r *noisy) Matrix(context.Context, jobs.Spec, io.Writer) (*imagetest.Matrix, error) {
	return &imagetest.Matrix{}, nil
}

// logBounds: a log of more lines than one append takes arrives whole
// and in order; a 40 KiB line is cut; past the server's bound one line
// says the log was cut, and the job still ends.
func TestLogBoundsSQLite(t *testing.T) { logBounds(t, filepath.Join(t.TempDir(), "vouch.db")) }

func TestLogBoundsPostgres(t *testing.T) {
	testfixtures.Long(t, testfixtures.Services)
	logBounds(t, pgtest.Start(t).NewDatabase(t))
}

func logBounds(t *testing.T, dsn string) {
	e := newEnv(t, dsn, 30*time.Second)
	ctx := context.Background()
	wk := &jobs.Worker{Server: e.worker, Caps: store.Caps{Worker: "w", Cores: 2, MemoryMiB: 4096, DiskMiB: 10000}, Runner: &noisy{lines: 5000}}
	run := func(name string) []store.JobLogLine {
		t.Helper()
		if _, err := e.admin.CreateJob(ctx, createReq(name, diskImage(t), inline(imagetest.Selection{Names: []string{"boot.multi-user"}}))); err != nil {
			t.Fatal(err)
		}
		if err := wk.Run(ctx, true); err != nil {
			t.Fatal(err)
		}
		if j, err := e.admin.Job(ctx, name); err != nil || j.Properties.ProvisioningState != store.JobSucceeded {
			t.Fatalf("job %s: %+v %v", name, j.Properties, err)
		}
		var all []store.JobLogLine
		for {
			lines, _, err := e.admin.JobLog(ctx, name, "", seqOf(all))
			if err != nil {
				t.Fatal(err)
			}
			if len(lines) == 0 {
				return all
			}
			all = append(all, lines...)
		}
	}
	all := run("whole")
	var progress int
	var console []string
	for _, l := range all {
		if l.Case == "" && strings.HasPrefix(l.Line, "progress ") {
			if want := fmt.Sprintf("progress %04d", progress); l.Line != want {
				t.Fatalf("line %q, want %q", l.Line, want)
			}
			progress++
		}
		if l.Case == "console" {
			console = append(console, l.Line)
		}
	}
	if progress != 5000 || len(console) != 2 || len(console[0]) > jobs.MaxLogLine || !strings.HasSuffix(console[0], "é (line cut)") || console[1] != "nulbyte" {
		t.Errorf("%d progress lines, console %d lines: %.40q", progress, len(console), console)
	}
	e.srv.Jobs.MaxLogBytes = 20000
	all = run("cut")
	if last := all[len(all)-1].Line; !strings.Contains(last, "log cut") || len(all) > 2000 {
		t.Errorf("%d lines kept, the last %q", len(all), last)
	}
}

func seqOf(ls []store.JobLogLine) int64 {
	if len(ls) == 0 {
		return 0
	}
	return ls[len(ls)-1].Seq
}

// flipper changes the first byte of a body, as a corrupting link would.
type flipper struct {
	r    io.ReadCloser
	done bool
}

func (f *flipper) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if n > 0 && !f.done {
		p[0] ^= 0xff
		f.done = true
	}
	return n, err
}

func (f *flipper) Close() error { return f.r.Close() }

// TestCorruptDownloadRefused: an image whose bytes do not match its digest
// on arrival is discarded and the job fails with the reason; nothing is
// left in the worker's cache.
func TestCorruptDownloadRefused(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "vouch.db"), 30*time.Second)
	ctx := context.Background()
	up, err := e.admin.UploadImage(ctx, diskImage(t))
	if err != nil {
		t.Fatal(err)
	}
	target, _ := url.Parse(e.http.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(resp *http.Response) error {
		if strings.HasPrefix(resp.Request.URL.Path, "/v1/worker/images/") {
			resp.Body = &flipper{r: resp.Body}
		}
		return nil
	}
	ps := httptest.NewServer(proxy)
	defer ps.Close()
	remote, _ := api.NewClient(ps.URL, e.worker.Token, "")
	cache := t.TempDir()
	r := &recorder{}
	wk := &jobs.Worker{Server: remote, Caps: store.Caps{Worker: "remote", Cores: 2, MemoryMiB: 4096, DiskMiB: 10000}, Runner: r, CacheDir: cache}
	if _, err := e.admin.CreateJob(ctx, createReq("corrupt", up.Path, inline(imagetest.Selection{Names: []string{"boot.multi-user"}}))); err != nil {
		t.Fatal(err)
	}
	if err := wk.Run(ctx, true); err != nil {
		t.Fatal(err)
	}
	j, err := e.admin.Job(ctx, "corrupt")
	if err != nil || j.Properties.ProvisioningState != store.JobFailed || !strings.Contains(j.Properties.Reason, "discarded") {
		t.Errorf("job: %s %q %v", j.Properties.ProvisioningState, j.Properties.Reason, err)
	}
	if len(r.paths) != 0 {
		t.Errorf("the runner ran on %v", r.paths)
	}
	if ents, _ := filepath.Glob(filepath.Join(cache, "*.img")); len(ents) != 0 {
		t.Errorf("corrupt images kept: %v", ents)
	}
	if ents, _ := filepath.Glob(filepath.Join(cache, "*.part")); len(ents) != 0 {
		t.Errorf("corrupt parts kept: %v", ents)
	}
}

// TestImageCacheBounded: with the cache bounded to one image, a job on a
// second image removes the least recently used one; an image another job
// holds (its lock taken, as by a worker sharing the cache) is not removed,
// and the job says the cache is over its bound.
func TestImageCacheBounded(t *testing.T) {
	e := newEnv(t, filepath.Join(t.TempDir(), "vouch.db"), 30*time.Second)
	ctx := context.Background()
	var ups []api.ImageUpload
	for i := 0; i < 3; i++ {
		p := diskImage(t)
		b, _ := os.ReadFile(p)
		b[1<<19] = byte(i + 1) // three different images of the same size
		os.WriteFile(p, b, 0o600)
		up, err := e.admin.UploadImage(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		ups = append(ups, up)
	}
	cache := filepath.Join(t.TempDir(), "worker-cache")
	wk := &jobs.Worker{Server: e.worker, Caps: store.Caps{Worker: "bounded", Cores: 2, MemoryMiB: 4096, DiskMiB: 10000},
		Runner: &recorder{}, CacheDir: cache, CacheMaxBytes: ups[0].Size + ups[0].Size/2}
	run := func(name string, up api.ImageUpload) string {
		t.Helper()
		if _, err := e.admin.CreateJob(ctx, createReq(name, up.Path, inline(imagetest.Selection{Names: []string{"boot.multi-user"}}))); err != nil {
			t.Fatal(err)
		}
		if err := wk.Run(ctx, true); err != nil {
			t.Fatal(err)
		}
		j, err := e.admin.Job(ctx, name)
		if err != nil || j.Properties.ProvisioningState != store.JobSucceeded {
			t.Fatalf("job %s: %s %s %v", name, j.Properties.ProvisioningState, j.Properties.Reason, err)
		}
		lines, _, _ := e.admin.JobLog(ctx, name, "", 0)
		var b strings.Builder
		for _, l := range lines {
			b.WriteString(l.Line + "\n")
		}
		return b.String()
	}
	cached := func() []string {
		m, _ := filepath.Glob(filepath.Join(cache, "*.img"))
		for i := range m {
			m[i] = strings.TrimSuffix(filepath.Base(m[i]), ".img")
		}
		sort.Strings(m)
		return m
	}
	run("a", ups[0])
	log := run("b", ups[1])
	if got := cached(); len(got) != 1 || got[0] != ups[1].SHA256 {
		t.Errorf("after a job on a second image the cache holds %v, want only %s", got, ups[1].SHA256)
	}
	if !strings.Contains(log, "image cache: removed "+ups[0].SHA256+".img") {
		t.Errorf("job b's log does not say the first image was removed:\n%s", log)
	}
	// Another job holds image b.
	held, err := os.OpenFile(filepath.Join(cache, ups[1].SHA256+".lock"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := syscall.Flock(int(held.Fd()), syscall.LOCK_SH); err != nil {
		t.Fatal(err)
	}
	log = run("c", ups[2])
	want := []string{ups[1].SHA256, ups[2].SHA256}
	sort.Strings(want)
	if got := cached(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("with image b in use the cache holds %v, want %v", got, want)
	}
	if !strings.Contains(log, "over the") || !strings.Contains(log, "the rest is in use") {
		t.Errorf("job c's log does not say the cache is over its bound:\n%s", log)
	}
}
