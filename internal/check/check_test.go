package check

import (
	"context"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/vouch-dev/vouch/internal/finding"
	"github.com/vouch-dev/vouch/internal/target"
)

func TestRun(t *testing.T) {
	env := &Env{Target: &target.Target{Kind: target.KindDirectory, ESP: fstest.MapFS{}}}
	checks := []Check{
		{ID: "s.root", Suite: "s", Title: "needs root", Severity: finding.High, Needs: NeedRoot, Remediation: "x",
			Run: func(context.Context, *Env) []Result { t.Error("ran without root"); return nil }},
		{ID: "s.esp", Suite: "s", Title: "needs esp", Severity: finding.Low, Needs: NeedESP, Remediation: "fix it",
			Run: func(context.Context, *Env) []Result { return Fail("bad", "ev") }},
		{ID: "s.pass", Suite: "s", Title: "passes", Remediation: "never shown",
			Run: func(context.Context, *Env) []Result { return Pass("ok") }},
		{ID: "s.panic", Suite: "s", Title: "panics", Severity: finding.Medium,
			Run: func(context.Context, *Env) []Result { panic("boom") }},
		{ID: "s.multi", Suite: "s", Title: "several subjects",
			Run: func(context.Context, *Env) []Result {
				return []Result{{Status: finding.Pass, Subject: "a"}, {Status: finding.Fail, Subject: "b"}}
			}},
	}
	fs := Run(context.Background(), env, checks)
	if len(fs) != 6 {
		t.Fatalf("got %d findings: %+v", len(fs), fs)
	}
	want := []finding.Status{finding.NotApplicable, finding.Fail, finding.Pass, finding.Error, finding.Pass, finding.Fail}
	for i, f := range fs {
		if f.Status != want[i] {
			t.Errorf("finding %d (%s) status %s, want %s", i, f.ID, f.Status, want[i])
		}
	}
	if fs[0].Message != "needs a root file system, which this target does not have" {
		t.Errorf("not-applicable message %q", fs[0].Message)
	}
	if fs[1].Remediation != "fix it" || fs[1].Severity != finding.Low || fs[1].Evidence[0] != "ev" {
		t.Errorf("fail finding %+v", fs[1])
	}
	if fs[2].Remediation != "" {
		t.Error("a pass carries a remediation")
	}
	if !fs[3].Failing(finding.Medium) || fs[3].Failing(finding.High) {
		t.Error("error findings must count against --fail-on at their severity")
	}
	if fs[5].Subject != "b" {
		t.Errorf("subject %q", fs[5].Subject)
	}
}

func TestSelect(t *testing.T) {
	all := []Check{{ID: "a.1", Suite: "a"}, {ID: "b.1", Suite: "b"}, {ID: "a.2", Suite: "a"}}
	got, err := Select(all, []string{"a"})
	if err != nil || len(got) != 2 || got[1].ID != "a.2" {
		t.Errorf("Select(a) = %v, %v", got, err)
	}
	if _, err := Select(all, []string{"nope"}); err == nil || err.Error() != `check: unknown suite "nope" (known: a, b)` {
		t.Errorf("unknown suite: %v", err)
	}
}

// TestFacts: a fact set is read back typed; a computed fact is computed once
// however many checks ask at the same time; Reset forgets it.
func TestFacts(t *testing.T) {
	env := &Env{}
	name := NewFact[string]("test.name")
	if _, ok := name.Get(env); ok {
		t.Fatal("unset fact has a value")
	}
	name.Set(env, "debian")
	if v, ok := name.Get(env); !ok || v != "debian" {
		t.Fatalf("got %q %v", v, ok)
	}
	calls := 0
	var mu sync.Mutex
	count := NewFact[int]("test.count")
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if v := count.Once(env, func() int { mu.Lock(); calls++; mu.Unlock(); return 42 }); v != 42 {
				t.Errorf("Once gave %d", v)
			}
		}()
	}
	wg.Wait()
	if calls != 1 {
		t.Errorf("computed %d times, want once", calls)
	}
	count.Reset(env)
	if v := count.Once(env, func() int { return 7 }); v != 7 || calls != 1 {
		t.Errorf("after Reset: %d", v)
	}
}
