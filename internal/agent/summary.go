package agent

import (
	"context"
	"errors"

	"github.com/vouch-dev/vouch/internal/baseline"
	"github.com/vouch-dev/vouch/internal/check"
	"github.com/vouch-dev/vouch/internal/finding"
	"github.com/vouch-dev/vouch/internal/fleet"
	"github.com/vouch-dev/vouch/internal/integrity"
	"github.com/vouch-dev/vouch/internal/pkgdb"
	"github.com/vouch-dev/vouch/internal/target"
)

// summarize adds the baseline and package-integrity summaries of t's root
// to r: the baseline suites run by the engine of `vouch baseline` and `vouch
// scan` (check.Run over baseline.Checks), the integrity check of `vouch
// packages verify` (integrity.Verify). Only counts travel. Kept cheap for a
// host's background job: one hashing worker, configuration files (which
// admins edit) left out; the unit file adds Nice and idle I/O.
func summarize(ctx context.Context, t *target.Target, r *fleet.Report) error {
	if t.Root == nil {
		return nil
	}
	env := &check.Env{Target: t}
	bs := &fleet.BaselineSummary{Suites: []fleet.SuiteCounts{}}
	idx := map[string]int{}
	for _, f := range check.Run(ctx, env, baseline.Checks()) {
		i, ok := idx[f.Suite]
		if !ok {
			i = len(bs.Suites)
			idx[f.Suite] = i
			bs.Suites = append(bs.Suites, fleet.SuiteCounts{Suite: f.Suite})
		}
		c := &bs.Suites[i]
		switch f.Status {
		case finding.Pass:
			c.Pass++
		case finding.Fail:
			c.Fail++
		case finding.Error:
			c.Error++
		case finding.NotApplicable:
			c.NotApplicable++
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r.Baseline = bs
	inv, err := pkgdb.Read(ctx, t.Root, pkgdb.Options{Files: true})
	var re *pkgdb.ReadError
	switch {
	case errors.Is(err, pkgdb.ErrNoDatabase), errors.As(err, &re):
		return nil // no package database (or none readable): no integrity summary
	case err != nil:
		return err
	}
	res, err := integrity.Verify(ctx, t.Root, inv, integrity.Options{Workers: 1, SkipConffiles: true})
	if err != nil {
		return err
	}
	is := &fleet.IntegritySummary{Packages: res.Packages, Files: res.Files, Issues: len(inv.Issues) + len(res.Issues)}
	for _, p := range res.Problems {
		switch p.Problem {
		case integrity.Modified, integrity.Replaced:
			is.Altered++
		case integrity.Missing:
			is.Missing++
		}
	}
	r.Integrity = is
	return nil
}
