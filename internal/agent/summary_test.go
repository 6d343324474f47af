package agent_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/vouch-dev/vouch/internal/agent"
	"github.com/vouch-dev/vouch/internal/fleet"
	"github.com/vouch-dev/vouch/internal/store"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// TestSummaries: on the Debian 12 fixture root the agent reports the
// baseline suites' counts and the package integrity counts; a copy with one
// packaged program altered and one packaged file removed reports one more
// of each, and the server keeps the counts in the host's facts.
func TestSummaries(t *testing.T) {
	testfixtures.Long(t, testfixtures.Fixtures)
	ctx := context.Background()
	src := testfixtures.Path(t, "rootfs")
	collectWithBlobs := func(root string) (*fleet.Report, map[string]agent.Blob) {
		t.Helper()
		col, err := agent.Collect(ctx, agent.Source{Root: root, Hostname: "summaries", Summaries: true})
		if err != nil {
			t.Fatal(err)
		}
		r := col.Report
		if r.Baseline == nil || r.Integrity == nil {
			t.Fatalf("no summaries: %+v %+v", r.Baseline, r.Integrity)
		}
		return r, col.Blobs
	}
	collect := func(root string) *fleet.Report { r, _ := collectWithBlobs(root); return r }
	before := collect(src)
	suites := map[string]fleet.SuiteCounts{}
	for _, s := range before.Baseline.Suites {
		suites[s.Suite] = s
	}
	for _, name := range []string{"baseline", "hardening", "cloud-image"} {
		s, ok := suites[name]
		if !ok || s.Pass+s.Fail == 0 {
			t.Errorf("suite %s: %+v", name, s)
		}
	}
	if in := before.Integrity; in.Packages < 100 || in.Files < 1000 {
		t.Fatalf("integrity of the fixture: %+v", in)
	}

	// A copy sharing the files (hard links): replaced files get new inodes,
	// the fixture is not touched.
	root := filepath.Join(t.TempDir(), "root")
	if out, err := exec.Command("cp", "-al", src, root).CombinedOutput(); err != nil {
		t.Fatalf("cp -al: %v\n%s", err, out)
	}
	ls := filepath.Join(root, "usr/bin/ls")
	if err := os.Remove(ls); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ls, []byte("#!/bin/sh\necho not ls\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(root, "usr/share/doc/bash/README.gz")); err != nil {
		t.Fatal(err)
	}
	after, blobs := collectWithBlobs(root)
	if after.Integrity.Altered != before.Integrity.Altered+1 || after.Integrity.Missing != before.Integrity.Missing+1 {
		t.Fatalf("integrity before %+v, after altering one file and removing one %+v", before.Integrity, after.Integrity)
	}
	// The server keeps them: the host's detail (API and host page) shows
	// the counts.
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "vouch.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	if err := st.Enroll(ctx, store.Host{ID: "h1", Hostname: "summaries", EnrolledAt: now}, store.Token{Hash: []byte("h1"), CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	for d, b := range blobs {
		if err := st.PutBlob(ctx, store.Blob{Digest: d, Kind: b.Kind, Data: b.Data}); err != nil {
			t.Fatal(err)
		}
	}
	body, _ := json.Marshal(after)
	svc := fleet.NewService(st)
	if _, err := svc.Ingest(ctx, "h1", body); err != nil {
		t.Fatal(err)
	}
	d, err := svc.Host(ctx, "h1")
	if err != nil {
		t.Fatal(err)
	}
	if d.Integrity == nil || *d.Integrity != *after.Integrity || d.Baseline == nil || len(d.Baseline.Suites) != len(after.Baseline.Suites) {
		t.Fatalf("host detail: %+v %+v", d.Baseline, d.Integrity)
	}
	bad := *after
	bad.Integrity = &fleet.IntegritySummary{Missing: -1}
	if err := bad.Validate(); err == nil {
		t.Fatal("a negative count was accepted")
	}
}
