package agent_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/vouch-dev/vouch/internal/agent"
	"github.com/vouch-dev/vouch/internal/fleet"
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
	collect := func(root string) *fleet.Report {
		t.Helper()
		col, err := agent.Collect(ctx, agent.Source{Root: root, Hostname: "summaries", Summaries: true})
		if err != nil {
			t.Fatal(err)
		}
		r := col.Report
		if r.Baseline == nil || r.Integrity == nil {
			t.Fatalf("no summaries: %+v %+v", r.Baseline, r.Integrity)
		}
		return r
	}
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
	after := collect(root)
	if after.Integrity.Altered != before.Integrity.Altered+1 || after.Integrity.Missing != before.Integrity.Missing+1 {
		t.Fatalf("integrity before %+v, after altering one file and removing one %+v", before.Integrity, after.Integrity)
	}
	// The report (with its summaries) passes the server's validation.
	if err := after.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := *after
	bad.Integrity = &fleet.IntegritySummary{Missing: -1}
	if err := bad.Validate(); err == nil {
		t.Fatal("a negative count was accepted")
	}
}
