package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/vouch-dev/vouch/internal/imagetest"
	"github.com/vouch-dev/vouch/internal/store"
)

// Server is what a worker needs of the server (api.Client over HTTP).
type Server interface {
	Claim(ctx context.Context, caps store.Caps) (*Claim, error)
	Update(ctx context.Context, job string, u Update) (UpdateAnswer, error)
	// AppendLog sends a chunk of the job's log (ErrLeaseLost as Update).
	AppendLog(ctx context.Context, job string, a LogAppend) (LogAnswer, error)
	// FetchImage writes an image the server keeps (named by its SHA-256),
	// from byte offset on, to w; it returns the bytes written.
	FetchImage(ctx context.Context, sha256 string, offset int64, w io.Writer) (int64, error)
}

// ErrLeaseLost is the server saying the worker no longer holds the job.
var ErrLeaseLost = errors.New("jobs: the server gave the job's lease to no one or to another worker")

// Runner runs cases of a job once, as `vouch test` does.
type Runner interface {
	// Cases runs cases (in run order) and reports every status change to
	// obs; progress lines go to out.Log and the VM's serial console to
	// out.Console, as they come (the worker sends them on while the job
	// runs).
	Cases(ctx context.Context, spec Spec, cases []imagetest.Case, obs imagetest.Observer, out Output) (*imagetest.Report, error)
	// Matrix boots the image on the three firmware profiles.
	Matrix(ctx context.Context, spec Spec, log io.Writer) (*imagetest.Matrix, error)
}

// Output is where a runner writes while it runs: progress lines for
// people, and the serial console.
type Output struct {
	Log, Console io.Writer
}

// Worker claims jobs from a server and runs them.
type Worker struct {
	Server    Server
	Caps      store.Caps
	Runner    Runner
	Catalogue []imagetest.Case
	// Poll is the wait between claims when no job waits (default 1 s).
	Poll time.Duration
	// Heartbeat is how often progress is sent and the lease renewed
	// (default: a fifth of the lease, at most 2 s, so a cancel lands
	// within seconds).
	Heartbeat time.Duration
	// CacheDir keeps images downloaded from the server, by digest
	// (default: the user's cache directory, vouch/images).
	CacheDir string
	// CacheMaxBytes bounds CacheDir: each time a job's image is fetched
	// or found there, the least recently used images no job holds are
	// removed until it fits (0: no bound).
	CacheMaxBytes int64
	Log           io.Writer
}

func (w *Worker) logf(format string, args ...any) {
	if w.Log != nil {
		fmt.Fprintf(w.Log, "vouch worker: "+format+"\n", args...)
	}
}

// Run claims and runs jobs until ctx ends; once is one job at most.
func (w *Worker) Run(ctx context.Context, once bool) error {
	if w.Poll <= 0 {
		w.Poll = time.Second
	}
	if w.Catalogue == nil {
		w.Catalogue = imagetest.All()
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		cl, err := w.Server.Claim(ctx, w.Caps)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			w.logf("claim: %v", err)
			t.Reset(w.Poll)
			continue
		}
		if cl == nil {
			if once {
				return nil
			}
			t.Reset(w.Poll)
			continue
		}
		w.logf("job %s: claimed (attempt %d of %d)", cl.Job.Name, cl.Job.Properties.Attempt, cl.Job.Properties.MaxAttempts)
		st := w.Execute(ctx, cl)
		w.logf("job %s: %s", cl.Job.Name, st)
		if once || ctx.Err() != nil {
			return nil
		}
		t.Reset(0)
	}
}

// execution is one job on this worker: the live results and the log lines
// not yet sent.
type execution struct {
	w       *Worker
	cl      *Claim
	mu      sync.Mutex
	results []Result
	report  Report
	states  []string // state changes not yet sent, in order
	dirty   bool
	// logs are the lines the server has not confirmed, numbered from
	// logFrom in the job's log; logDropped counts lines refused because
	// too many waited (the server unreachable).
	logs       []store.JobLogLine
	logFrom    int64
	logDropped int
	logKick    chan struct{}
}

// maxPendingLog bounds the log lines a worker keeps while the server does
// not take them.
const maxPendingLog = 100000

// addLog queues log lines for the server (the caller holds mu).
func (e *execution) addLog(lines ...store.JobLogLine) {
	for _, l := range lines {
		if len(e.logs) >= maxPendingLog {
			e.logDropped++
			continue
		}
		if e.logDropped > 0 {
			e.logs = append(e.logs, store.JobLogLine{At: l.At, Line: fmt.Sprintf("(vouch worker: %d log lines dropped: the server did not take them in time)", e.logDropped)})
			e.logDropped = 0
		}
		e.logs = append(e.logs, l)
	}
	select {
	case e.logKick <- struct{}{}:
	default:
	}
}

// setState queues a state change (the caller holds mu).
func (e *execution) setState(s string) {
	if n := len(e.states); n == 0 || e.states[n-1] != s {
		e.states = append(e.states, s)
	}
}

func (e *execution) logLine(caseName, line string) {
	e.mu.Lock()
	e.addLog(store.JobLogLine{Case: caseName, At: time.Now().UTC(), Line: line})
	e.mu.Unlock()
}

// logWriter turns what the runner writes into job log lines of one case
// ("" for progress, "console" for the serial console).
type logWriter struct {
	e    *execution
	name string
	mu   sync.Mutex
	buf  bytes.Buffer
}

func (l *logWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for {
		i := bytes.IndexByte(l.buf.Bytes(), '\n')
		if i < 0 {
			break
		}
		line := string(l.buf.Next(i + 1))
		l.e.logLine(l.name, strings.TrimRight(line, "\r\n"))
	}
	if l.buf.Len() > MaxLogLine { // printing without newlines: a line of its own
		l.e.logLine(l.name, l.buf.String())
		l.buf.Reset()
	}
	return len(p), nil
}

// Flush sends an unfinished last line.
func (l *logWriter) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf.Len() > 0 {
		l.e.logLine(l.name, strings.TrimRight(l.buf.String(), "\r"))
		l.buf.Reset()
	}
}

// pending takes what the heartbeat sends: the next state change and the
// results when they changed (log lines go on their own, shipLogs); more
// reports whether state changes remain.
func (e *execution) pending() (u Update, more bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	u = Update{Lease: e.cl.Lease}
	if e.dirty {
		u.Results = append([]Result{}, e.results...)
		u.Report, _ = json.Marshal(e.report)
		e.dirty = false
	}
	if len(e.states) > 0 {
		u.State = e.states[0]
		e.states = e.states[1:]
	}
	return u, len(e.states) > 0
}

// requeue puts back what pending took, when sending it failed.
func (e *execution) requeue(u Update) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if u.Results != nil {
		e.dirty = true
	}
	if u.State != "" {
		e.states = append([]string{u.State}, e.states...)
	}
}

// Execute runs one claimed job and reports its end; it returns the final
// state.
func (w *Worker) Execute(ctx context.Context, cl *Claim) string {
	lease := time.Duration(cl.LeaseSeconds * float64(time.Second))
	hb := w.Heartbeat
	if hb <= 0 {
		hb = min(lease/5, 2*time.Second)
	}
	e := &execution{w: w, cl: cl, results: append([]Result{}, cl.Job.Properties.Results...), states: []string{store.JobProvisioning}, dirty: true,
		logFrom: cl.LogOffset, logKick: make(chan struct{}, 1)}
	runCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	shipDone := make(chan struct{})
	shipped := make(chan struct{})
	go func() {
		defer close(shipped)
		e.shipLogs(ctx, shipDone, hb)
	}()
	var lost error
	var lostMu sync.Mutex
	done := make(chan struct{})
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		t := time.NewTicker(hb)
		defer t.Stop()
		lastOK := time.Now()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			u, _ := e.pending()
			ans, err := w.Server.Update(ctx, cl.Job.Name, u)
			switch {
			case errors.Is(err, ErrLeaseLost):
				lostMu.Lock()
				lost = err
				lostMu.Unlock()
				stop(err)
				return
			case err != nil:
				e.requeue(u)
				// No answer for as long as the lease lasts: the server has
				// given the job back; stop, so it never runs twice.
				if time.Since(lastOK) > lease {
					err = fmt.Errorf("%w: no answer from the server for %s: %v", ErrLeaseLost, lease, err)
					lostMu.Lock()
					lost = err
					lostMu.Unlock()
					stop(err)
					return
				}
				w.logf("job %s: update: %v", cl.Job.Name, err)
			default:
				lastOK = time.Now()
				if ans.Cancel {
					stop(errCanceled)
				}
			}
		}
	}()
	state, reason := w.run(runCtx, e)
	close(shipDone)
	<-shipped
	close(done)
	<-hbDone
	lostMu.Lock()
	l := lost
	lostMu.Unlock()
	if l != nil {
		return "abandoned: " + l.Error()
	}
	if errors.Is(context.Cause(runCtx), errCanceled) {
		state, reason = store.JobCanceled, "canceled on request; the VM was stopped"
	}
	if ctx.Err() != nil {
		return "stopped: the worker is shutting down (the lease will expire and the job be retried)"
	}
	// The log first (a follower that sees the final state has every
	// line), then the remaining state changes and the final one, each
	// retried while the lease lasts.
	if err := e.flushLogs(ctx, time.Now().Add(lease), hb); err != nil {
		if errors.Is(err, ErrLeaseLost) {
			return "result not delivered: " + err.Error()
		}
		w.logf("job %s: log: %v", cl.Job.Name, err)
	}
	e.mu.Lock()
	e.setState(state)
	e.dirty = true
	e.mu.Unlock()
	deadline := time.Now().Add(lease)
	for {
		u, more := e.pending()
		if store.JobFinal(u.State) {
			u.Reason = reason
		}
		_, err := w.Server.Update(ctx, cl.Job.Name, u)
		if err == nil {
			if !more {
				return state
			}
			deadline = time.Now().Add(lease)
			continue
		}
		if errors.Is(err, ErrLeaseLost) || time.Now().After(deadline) || ctx.Err() != nil {
			return "result not delivered: " + err.Error()
		}
		e.requeue(u)
		select {
		case <-ctx.Done():
		case <-time.After(hb):
		}
	}
}

var errCanceled = errors.New("jobs: canceled on request")

// run runs the job's iterations and retries; it returns the final state and
// the reason for a failure.
func (w *Worker) run(ctx context.Context, e *execution) (string, string) {
	spec := e.cl.Job.Properties.Spec
	byName := map[string]imagetest.Case{}
	cat := w.Catalogue
	if cat == nil {
		cat = imagetest.All()
	}
	for _, c := range cat {
		byName[c.Name] = c
	}
	var cases []imagetest.Case
	for _, n := range spec.Cases {
		c, ok := byName[n]
		if !ok {
			return store.JobFailed, fmt.Sprintf("this worker's vouch has no case %q (update the worker)", n)
		}
		cases = append(cases, c)
	}
	iterations := max(spec.Properties.TestIterations, 1)
	// Results: one per case per iteration.
	e.mu.Lock()
	if len(e.results) != len(cases)*iterations {
		e.results = nil
		for it := 1; it <= iterations; it++ {
			for _, c := range cases {
				r := Result{TestName: c.Name, Status: imagetest.Queued, Area: c.Area, Priority: c.Priority}
				if iterations > 1 {
					r.Iteration = it
				}
				e.results = append(e.results, r)
			}
		}
	} else {
		for i := range e.results {
			e.results[i].Status, e.results[i].Message, e.results[i].DurationSeconds = imagetest.Queued, "", 0
		}
	}
	e.dirty = true
	e.mu.Unlock()
	lw := &logWriter{e: e}
	defer lw.Flush()
	if spec.Image.SHA256 != "" {
		path, release, err := w.localImage(ctx, spec.Image, lw)
		if err != nil {
			if ctx.Err() != nil {
				return store.JobFailed, "interrupted"
			}
			return store.JobFailed, err.Error()
		}
		defer release()
		spec.Image.Path = path
	}
	for it := 0; it < iterations; it++ {
		base := it * len(cases)
		todo := cases
		for attempt := 0; attempt <= spec.Properties.RetryCount && len(todo) > 0; attempt++ {
			if spec.Properties.UseNewEnvironment {
				if err := w.eachEnvironment(ctx, e, spec, todo, base, attempt, lw); err != nil {
					return store.JobFailed, err.Error()
				}
			} else if err := w.runCases(ctx, e, spec, todo, base, attempt, lw); err != nil {
				return store.JobFailed, err.Error()
			}
			var again []imagetest.Case
			e.mu.Lock()
			for i, c := range cases {
				if e.results[base+i].Status == imagetest.Failed && containsCase(todo, c.Name) {
					again = append(again, c)
				}
			}
			e.mu.Unlock()
			todo = again
		}
	}
	if spec.Properties.Firmware.Profile == FirmwareMatrix {
		mx, err := w.Runner.Matrix(ctx, spec, lw)
		if err != nil {
			if ctx.Err() != nil {
				return store.JobFailed, "interrupted"
			}
			return store.JobFailed, "firmware matrix: " + err.Error()
		}
		e.mu.Lock()
		e.report.Matrix, e.dirty = mx, true
		e.mu.Unlock()
		if !mx.OK() && !spec.Properties.IgnoreFailure {
			return store.JobFailed, fmt.Sprintf("firmware matrix: %d profile(s) disagree with the prediction, %d did not boot", mx.Disagreements, mx.NotBooted)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	failed := 0
	for _, r := range e.results {
		if r.Status == imagetest.Failed {
			failed++
		}
	}
	if failed > 0 && !spec.Properties.IgnoreFailure {
		return store.JobFailed, fmt.Sprintf("%d of %d case results FAILED", failed, len(e.results))
	}
	return store.JobSucceeded, ""
}

// eachEnvironment runs every case in its own environment (a fresh VM),
// up to the template's concurrency at once; the first error ends the run.
func (w *Worker) eachEnvironment(ctx context.Context, e *execution, spec Spec, todo []imagetest.Case, base, attempt int, lw *logWriter) error {
	n := max(spec.Properties.Concurrency, 1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, n)
	errs := make(chan error, len(todo))
	var wg sync.WaitGroup
	for _, c := range todo {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(c imagetest.Case) {
			defer wg.Done()
			defer func() { <-sem }()
			if err := w.runCases(ctx, e, spec, []imagetest.Case{c}, base, attempt, lw); err != nil {
				errs <- err
				cancel()
			}
		}(c)
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func containsCase(cs []imagetest.Case, name string) bool {
	for _, c := range cs {
		if c.Name == name {
			return true
		}
	}
	return false
}

// runCases runs cases in one environment, mapping their updates onto the
// job's results from index base; attempt > 0 is a retry of failures.
func (w *Worker) runCases(ctx context.Context, e *execution, spec Spec, cases []imagetest.Case, base, attempt int, lw *logWriter) error {
	index := map[string]int{}
	e.mu.Lock()
	for i := base; i < len(e.results) && i < base+len(e.results); i++ {
		if _, ok := index[e.results[i].TestName]; !ok && containsCase(cases, e.results[i].TestName) {
			index[e.results[i].TestName] = i
		}
	}
	e.mu.Unlock()
	obs := imagetest.ObserverFunc(func(r imagetest.Result) {
		i, ok := index[r.Name]
		if !ok {
			return
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		prev := e.results[i]
		if attempt > 0 && !r.Status.Final() && r.Status == imagetest.Queued {
			return // the retry's QUEUED would hide the failure until it runs
		}
		nr := Result{TestName: r.Name, Status: r.Status, Message: r.Message, DurationSeconds: r.Duration.Seconds(),
			Area: r.Area, Priority: r.Priority, Iteration: prev.Iteration, Attempts: attempt + 1, Log: r.Log}
		if attempt > 0 && r.Status == imagetest.Passed {
			nr.Flaky = true
			nr.Message = fmt.Sprintf("passed on retry %d; failed before: %s", attempt, prev.Message)
		}
		e.results[i] = nr
		e.dirty = true
		if r.Status == imagetest.Running {
			e.setState(store.JobRunning)
		}
		if r.Status.Final() {
			now := time.Now().UTC()
			e.addLog(store.JobLogLine{Case: r.Name, At: now, Line: fmt.Sprintf("%s: %s", r.Status, r.Message)})
			for _, l := range r.Log {
				e.addLog(store.JobLogLine{Case: r.Name, At: now, Line: l})
			}
		}
	})
	con := &logWriter{e: e, name: "console"}
	rep, err := w.Runner.Cases(ctx, spec, cases, obs, Output{Log: lw, Console: con})
	con.Flush()
	if rep != nil {
		e.mu.Lock()
		run := rep.Run
		e.report.Run, e.dirty = &run, true
		e.mu.Unlock()
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted: %v", context.Cause(ctx))
		}
		return fmt.Errorf("the run could not happen: %v", err)
	}
	return nil
}
