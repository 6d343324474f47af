package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vouch-dev/vouch/internal/store"
)

// RunJobs is the job queue's conformance suite (issue 13): the same calls
// and answers on every driver.
func RunJobs(t *testing.T, open Open) {
	ctx := context.Background()
	jobsOf := func(t *testing.T) store.JobStore {
		js, err := store.Jobs(open(t))
		if err != nil {
			t.Fatal(err)
		}
		return js
	}
	job := func(id string, prio int, needs store.Needs, at time.Time) store.JobRecord {
		return store.JobRecord{ID: id, Priority: prio, Spec: []byte(`{"image":{"path":"x"}}`), Needs: needs, MaxAttempts: 2, CreatedAt: at}
	}
	caps := store.Caps{Worker: "w1", Cores: 2, MemoryMiB: 2048, DiskMiB: 10000}
	states := func(t *testing.T, js store.JobStore, id string) string {
		t.Helper()
		ev, err := js.JobEvents(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, e := range ev {
			s = append(s, e.State)
		}
		return strings.Join(s, ",")
	}

	t.Run("Templates", func(t *testing.T) {
		js := jobsOf(t)
		created, err := js.PutTemplate(ctx, store.Template{Name: "smoke", Body: []byte(`{"a":1}`), CreatedAt: t0, UpdatedAt: t0})
		if err != nil || !created {
			t.Fatalf("first put: created=%v err=%v", created, err)
		}
		created, err = js.PutTemplate(ctx, store.Template{Name: "smoke", Body: []byte(`{"a":2}`), CreatedAt: t0, UpdatedAt: t0.Add(time.Minute)})
		if err != nil || created {
			t.Fatalf("replace: created=%v err=%v", created, err)
		}
		got, err := js.Template(ctx, "smoke")
		if err != nil || string(got.Body) != `{"a":2}` || !got.CreatedAt.Equal(t0) || !got.UpdatedAt.Equal(t0.Add(time.Minute)) {
			t.Fatalf("get: %+v %v", got, err)
		}
		js.PutTemplate(ctx, store.Template{Name: "all", Body: []byte(`{}`), CreatedAt: t0, UpdatedAt: t0})
		list, err := js.Templates(ctx)
		if err != nil || len(list) != 2 || list[0].Name != "all" {
			t.Fatalf("list: %+v %v", list, err)
		}
		if err := js.DeleteTemplate(ctx, "smoke"); err != nil {
			t.Fatal(err)
		}
		if err := js.DeleteTemplate(ctx, "smoke"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}
		if _, err := js.Template(ctx, "smoke"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("get deleted: %v", err)
		}
	})

	t.Run("Claim order and fit", func(t *testing.T) {
		js := jobsOf(t)
		for i, j := range []store.JobRecord{
			job("a", 0, store.Needs{Cores: 1}, t0),
			job("b", 5, store.Needs{Cores: 1}, t0.Add(time.Second)),
			job("c", 0, store.Needs{Cores: 1}, t0.Add(2*time.Second)),
			job("big", 9, store.Needs{KVM: true, MemoryMiB: 4096}, t0),
		} {
			if err := js.CreateJob(ctx, j); err != nil {
				t.Fatal(i, err)
			}
		}
		if err := js.CreateJob(ctx, job("a", 0, store.Needs{}, t0)); !errors.Is(err, store.ErrExists) {
			t.Fatalf("duplicate: %v", err)
		}
		var order []string
		for i := 0; i < 3; i++ {
			j, err := js.ClaimJob(ctx, caps, fmt.Sprint("lease", i), t0.Add(time.Hour), t0)
			if err != nil {
				t.Fatal(err)
			}
			if j.State != store.JobScheduling || j.Worker != "w1" || j.Attempt != 1 {
				t.Fatalf("claimed %+v", j)
			}
			order = append(order, j.ID)
		}
		if got := strings.Join(order, ","); got != "b,a,c" {
			t.Errorf("claim order %s, want b,a,c (priority, then age); big needs KVM and 4 GiB", got)
		}
		if _, err := js.ClaimJob(ctx, caps, "x", t0.Add(time.Hour), t0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("nothing fits: %v", err)
		}
		kvmSmall := store.Caps{Worker: "k", KVM: true, Cores: 8, MemoryMiB: 2048, DiskMiB: 1 << 20}
		if _, err := js.ClaimJob(ctx, kvmSmall, "x", t0.Add(time.Hour), t0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("KVM but 2 GiB: %v", err)
		}
		kvmSmall.MemoryMiB = 8192
		if j, err := js.ClaimJob(ctx, kvmSmall, "x", t0.Add(time.Hour), t0); err != nil || j.ID != "big" {
			t.Fatalf("fitting worker: %+v %v", j, err)
		}
		if got := states(t, js, "a"); got != "Accepted,Queued,Scheduling" {
			t.Errorf("events %s", got)
		}
	})

	t.Run("Updates need the lease", func(t *testing.T) {
		js := jobsOf(t)
		js.CreateJob(ctx, job("j", 0, store.Needs{}, t0))
		if _, err := js.ClaimJob(ctx, caps, "L1", t0.Add(time.Minute), t0); err != nil {
			t.Fatal(err)
		}
		at := t0.Add(time.Second)
		if _, err := js.UpdateJob(ctx, "j", "other", store.JobUpdate{State: store.JobRunning, At: at}); !errors.Is(err, store.ErrLeaseLost) {
			t.Fatalf("foreign lease: %v", err)
		}
		if _, err := js.UpdateJob(ctx, "j", "L1", store.JobUpdate{State: store.JobProvisioning, At: at,
			Logs: []store.JobLogLine{{Line: "booting"}, {Case: "boot.x", Line: "ok"}}}); err != nil {
			t.Fatal(err)
		}
		j, err := js.UpdateJob(ctx, "j", "L1", store.JobUpdate{State: store.JobRunning, Results: []byte(`[{"testName":"boot.x","status":"RUNNING"}]`),
			LeaseUntil: at.Add(time.Minute), At: at})
		if err != nil || j.State != store.JobRunning || string(j.Results) != `[{"testName":"boot.x","status":"RUNNING"}]` || !j.LeaseUntil.Equal(at.Add(time.Minute)) {
			t.Fatalf("running: %+v %v", j, err)
		}
		if _, err := js.UpdateJob(ctx, "j", "L1", store.JobUpdate{State: store.JobProvisioning, At: at}); !errors.Is(err, store.ErrBadTransition) {
			t.Fatalf("back to Provisioning: %v", err)
		}
		j, err = js.UpdateJob(ctx, "j", "L1", store.JobUpdate{State: store.JobSucceeded, At: at.Add(time.Second)})
		if err != nil || j.State != store.JobSucceeded || j.Lease != "" || !j.FinishedAt.Equal(at.Add(time.Second)) {
			t.Fatalf("succeeded: %+v %v", j, err)
		}
		if _, err := js.UpdateJob(ctx, "j", "L1", store.JobUpdate{At: at}); !errors.Is(err, store.ErrLeaseLost) {
			t.Fatalf("update after the end: %v", err)
		}
		if got := states(t, js, "j"); got != "Accepted,Queued,Scheduling,Provisioning,Running,Succeeded" {
			t.Errorf("events %s", got)
		}
		all, err := js.JobLog(ctx, "j", "", 0, 0)
		if err != nil || len(all) != 2 || all[0].Line != "booting" || all[1].Case != "boot.x" {
			t.Fatalf("log: %+v %v", all, err)
		}
		one, _ := js.JobLog(ctx, "j", "boot.x", 0, 0)
		after, _ := js.JobLog(ctx, "j", "", all[0].Seq, 0)
		if len(one) != 1 || len(after) != 1 || after[0].Line != "ok" {
			t.Fatalf("log by case %+v, after %+v", one, after)
		}
	})

	t.Run("Log appends are numbered, idempotent and bounded", func(t *testing.T) {
		js := jobsOf(t)
		js.CreateJob(ctx, job("j", 0, store.Needs{}, t0))
		if _, err := js.ClaimJob(ctx, caps, "L1", t0.Add(time.Minute), t0); err != nil {
			t.Fatal(err)
		}
		lines := func(ss ...string) []store.JobLogLine {
			var out []store.JobLogLine
			for _, s := range ss {
				out = append(out, store.JobLogLine{Case: "console", Line: s})
			}
			return out
		}
		if _, err := js.AppendJobLog(ctx, "j", "other", 0, lines("x"), t0, 100); !errors.Is(err, store.ErrLeaseLost) {
			t.Fatalf("foreign lease: %v", err)
		}
		if n, err := js.AppendJobLog(ctx, "j", "L1", 0, lines("one", "two"), t0, 100); err != nil || n != 2 {
			t.Fatalf("append: %d %v", n, err)
		}
		// A retry of the same lines and one more: only the new one is kept.
		if n, err := js.AppendJobLog(ctx, "j", "L1", 0, lines("one", "two", "three"), t0, 100); err != nil || n != 3 {
			t.Fatalf("retried append: %d %v", n, err)
		}
		if n, err := js.AppendJobLog(ctx, "j", "L1", 1, lines("two"), t0, 100); err != nil || n != 3 {
			t.Fatalf("old lines again: %d %v", n, err)
		}
		if n, err := js.AppendJobLog(ctx, "j", "L1", 5, lines("six"), t0, 100); !errors.Is(err, store.ErrLogGap) || n != 3 {
			t.Fatalf("gap: %d %v", n, err)
		}
		// Past the bound: one line says so, the rest are counted, not kept.
		if n, err := js.AppendJobLog(ctx, "j", "L1", 3, lines(strings.Repeat("x", 90), "five", "six"), t0, 100); err != nil || n != 6 {
			t.Fatalf("over the bound: %d %v", n, err)
		}
		all, err := js.JobLog(ctx, "j", "console", 0, 0)
		var got []string
		for _, l := range all {
			got = append(got, l.Line)
		}
		if err != nil || len(got) != 4 || strings.Join(got[:3], ",") != "one,two,three" || !strings.Contains(got[3], "log cut") {
			t.Fatalf("log %q %v", got, err)
		}
		if j, _ := js.Job(ctx, "j"); j.LogNext != 6 {
			t.Errorf("log_next %d", j.LogNext)
		}
	})

	t.Run("Expired lease", func(t *testing.T) {
		js := jobsOf(t)
		js.CreateJob(ctx, job("j", 0, store.Needs{}, t0))
		js.ClaimJob(ctx, caps, "L1", t0.Add(10*time.Second), t0)
		if n, err := js.RescueJobs(ctx, t0.Add(5*time.Second)); n != 0 || err != nil {
			t.Fatalf("lease still valid: %d %v", n, err)
		}
		if n, err := js.RescueJobs(ctx, t0.Add(11*time.Second)); n != 1 || err != nil {
			t.Fatalf("rescue: %d %v", n, err)
		}
		j, _ := js.Job(ctx, "j")
		if j.State != store.JobQueued || j.Worker != "" {
			t.Fatalf("after the first loss: %+v", j)
		}
		if _, err := js.UpdateJob(ctx, "j", "L1", store.JobUpdate{At: t0}); !errors.Is(err, store.ErrLeaseLost) {
			t.Fatalf("the lost worker's update: %v", err)
		}
		c2 := caps
		c2.Worker = "w2"
		j, err := js.ClaimJob(ctx, c2, "L2", t0.Add(30*time.Second), t0.Add(20*time.Second))
		if err != nil || j.Attempt != 2 || j.Worker != "w2" {
			t.Fatalf("second claim: %+v %v", j, err)
		}
		js.RescueJobs(ctx, t0.Add(31*time.Second))
		j, _ = js.Job(ctx, "j")
		if j.State != store.JobFailed || !strings.Contains(j.Reason, "worker w2 stopped reporting: its lease expired") || !strings.Contains(j.Reason, "attempt 2 of 2") {
			t.Fatalf("after the last attempt: %s %q", j.State, j.Reason)
		}
		if got := states(t, js, "j"); got != "Accepted,Queued,Scheduling,Queued,Scheduling,Failed" {
			t.Errorf("events %s", got)
		}
	})

	t.Run("Cancel and delete", func(t *testing.T) {
		js := jobsOf(t)
		js.CreateJob(ctx, job("q", 0, store.Needs{}, t0))
		js.CreateJob(ctx, job("r", 0, store.Needs{}, t0.Add(time.Second)))
		js.CreateJob(ctx, job("dead", 0, store.Needs{}, t0.Add(2*time.Second)))
		j, err := js.CancelJob(ctx, "q", t0)
		if err != nil || j.State != store.JobCanceled {
			t.Fatalf("queued cancel: %+v %v", j, err)
		}
		j, _ = js.ClaimJob(ctx, caps, "L", t0.Add(time.Minute), t0)
		if j.ID != "r" {
			t.Fatalf("claimed %s, want r (q is canceled)", j.ID)
		}
		if err := js.DeleteJob(ctx, "r"); !errors.Is(err, store.ErrJobActive) {
			t.Fatalf("delete running: %v", err)
		}
		if j, err = js.CancelJob(ctx, "r", t0); err != nil || j.State != store.JobScheduling || !j.CancelRequested {
			t.Fatalf("running cancel: %+v %v", j, err)
		}
		j, err = js.UpdateJob(ctx, "r", "L", store.JobUpdate{At: t0})
		if err != nil || !j.CancelRequested {
			t.Fatalf("the worker must learn of the cancel: %+v %v", j, err)
		}
		if _, err := js.UpdateJob(ctx, "r", "L", store.JobUpdate{State: store.JobCanceled, Reason: "VM stopped", At: t0}); err != nil {
			t.Fatal(err)
		}
		js.ClaimJob(ctx, caps, "D", t0.Add(time.Second), t0)
		js.CancelJob(ctx, "dead", t0)
		js.RescueJobs(ctx, t0.Add(time.Minute))
		if j, _ = js.Job(ctx, "dead"); j.State != store.JobCanceled {
			t.Fatalf("canceled job whose worker died: %s", j.State)
		}
		if err := js.DeleteJob(ctx, "r"); err != nil {
			t.Fatal(err)
		}
		if _, err := js.Job(ctx, "r"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleted: %v", err)
		}
		if ev, _ := js.JobEvents(ctx, "r"); len(ev) != 0 {
			t.Fatalf("events of a deleted job: %+v", ev)
		}
		list, _ := js.Jobs(ctx, store.JobFilter{State: store.JobCanceled})
		if len(list) != 2 {
			t.Fatalf("canceled jobs: %d", len(list))
		}
	})

	t.Run("Concurrent claims", func(t *testing.T) {
		js := jobsOf(t)
		const n = 60
		for i := 0; i < n; i++ {
			if err := js.CreateJob(ctx, job(fmt.Sprintf("j%03d", i), 0, store.Needs{}, t0.Add(time.Duration(i)*time.Millisecond))); err != nil {
				t.Fatal(err)
			}
		}
		var mu sync.Mutex
		got := map[string]string{}
		var wg sync.WaitGroup
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				c := caps
				c.Worker = fmt.Sprint("w", w)
				for {
					j, err := js.ClaimJob(ctx, c, c.Worker, t0.Add(time.Hour), t0)
					if errors.Is(err, store.ErrNotFound) {
						// Nothing left, or lost a race: done when none is queued.
						if q, _ := js.Jobs(ctx, store.JobFilter{State: store.JobQueued}); len(q) == 0 {
							return
						}
						continue
					}
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					if prev, ok := got[j.ID]; ok {
						t.Errorf("job %s claimed by %s and %s", j.ID, prev, c.Worker)
					}
					got[j.ID] = c.Worker
					mu.Unlock()
				}
			}(w)
		}
		wg.Wait()
		if len(got) != n {
			t.Fatalf("%d of %d jobs claimed", len(got), n)
		}
	})
}
