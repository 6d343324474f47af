package fleet

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vouch-dev/vouch/internal/fleet"
	"github.com/vouch-dev/vouch/internal/fleetsim"
	"github.com/vouch-dev/vouch/internal/pgtest"
	"github.com/vouch-dev/vouch/internal/store"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// BenchmarkPostgresMillion answers the fleet questions over a million hosts
// on PostgreSQL: Debian's server started by pgtest, the schema made by
// vouch's migrations, then VOUCH_BENCH_PG_BULK_HOSTS (default 1,000,000)
// hosts built by fleetsim from the real templates bulk-loaded with COPY
// (the report path is BenchmarkFleetPostgres's; a million reports through
// HTTP would time the load, not the questions). The templates' blobs and
// state documents are stored as the server stores them. host_facts (the
// report as sent) is left empty: no fleet question reads it. It takes
// minutes and a few GiB of disk:
//
//	go test -run '^$' -bench PostgresMillion -benchtime 1x -timeout 60m ./bench/fleet/
func BenchmarkPostgresMillion(b *testing.B) {
	n := hostsFromEnv("VOUCH_BENCH_PG_BULK_HOSTS", 1000000)
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		c, err := pgtest.StartCluster()
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Stop() })
		u, err := c.CreateDatabase()
		if err != nil {
			b.Fatal(err)
		}
		st, err := store.Open(ctx, u) // migrates
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		ts := templates(b)
		t0 := time.Now()
		if err := bulkLoad(ctx, u, ts, n); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(t0).Seconds(), "s-load")
		b.Logf("loaded %d hosts from %d templates in %s", n, len(ts), time.Since(t0).Round(time.Millisecond))
		dbx, err := os.ReadFile(testfixtures.Data("secureboot", "dbx", "DBXUpdate-amd64.bin"))
		if err != nil {
			b.Fatal(err)
		}
		change, err := (&fleet.ChangeRequest{DBXUpdate: dbx, DBXUpdateName: "DBXUpdate.bin"}).Parse()
		if err != nil {
			b.Fatal(err)
		}
		svc := fleet.NewService(st)
		timed := func(name string, f func() error) {
			t0, c0 := time.Now(), cpuTime()
			if err := f(); err != nil {
				b.Fatalf("%s: %v", name, err)
			}
			d := time.Since(t0)
			b.ReportMetric(float64(d.Milliseconds()), "ms-"+name)
			b.ReportMetric(float64((cpuTime() - c0).Milliseconds()), "cpu-ms-"+name)
			b.Logf("%s over %d hosts: %s", name, n, d.Round(time.Millisecond))
		}
		var rd *fleet.Readiness
		timed("readiness-by-platform-cold", func() error {
			var err error
			rd, err = svc.Readiness(ctx, []string{"platform"}, fleet.Query{})
			return err
		})
		if rd.Total.Hosts != int64(n) {
			b.Fatalf("readiness counted %d hosts of %d", rd.Total.Hosts, n)
		}
		timed("readiness-by-platform", func() error { _, err := svc.Readiness(ctx, []string{"platform"}, fleet.Query{}); return err })
		timed("readiness", func() error { _, err := svc.Readiness(ctx, nil, fleet.Query{}); return err })
		var cn *fleet.Canaries
		timed("canaries", func() error {
			var err error
			cn, err = svc.Canaries(ctx, fleet.CanaryOptions{Dims: []string{"platform", "model", "release", "lineage", "channel"}, SeenWithin: 7 * 24 * time.Hour})
			return err
		})
		timed("canaries-pairwise", func() error {
			_, err := svc.Canaries(ctx, fleet.CanaryOptions{Dims: []string{"platform", "model", "release", "lineage", "channel"}, Pairwise: true, SeenWithin: 7 * 24 * time.Hour})
			return err
		})
		timed("canaries-per-group-3", func() error {
			_, err := svc.Canaries(ctx, fleet.CanaryOptions{Dims: []string{"platform", "model", "release", "lineage", "channel"}, PerGroup: 3, SeenWithin: 7 * 24 * time.Hour})
			return err
		})
		var w *fleet.WhatIf
		timed("whatif-dbx", func() error {
			var err error
			w, err = svc.WhatIf(ctx, change, fleet.Query{})
			return err
		})
		if w.Hosts != n {
			b.Fatalf("what-if saw %d hosts of %d", w.Hosts, n)
		}
		b.Logf("%d distinct states, %d canaries; what-if: %d stop booting, %d keep booting, %d already not booting, %d unknown",
			rd.DistinctStates, len(cn.Hosts), len(w.StopBooting), w.KeepBooting, len(w.AlreadyBroken), len(w.Unknown))
	}
}

// bulkLoad COPYs n simulated hosts (and the templates' blobs) into the
// database at url.
func bulkLoad(ctx context.Context, url string, ts []fleetsim.Template, n int) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	now := time.Now().Unix()
	// Blobs: every template's uploaded content and its state documents.
	blobs := map[string][]any{}
	type tmpl struct{ fw, chain string }
	tstate := make([]tmpl, len(ts))
	for i, t := range ts {
		for d, bl := range t.Col.Blobs {
			blobs[d] = []any{d, bl.Kind, int64(len(bl.Data)), bl.Data, now}
		}
		fwD, fwDoc, chD, chDoc := t.Col.Report.StateDocs()
		blobs[chD] = []any{chD, "boot-chain", int64(len(chDoc)), chDoc, now}
		if fwDoc != nil {
			blobs[fwD] = []any{fwD, "firmware-state", int64(len(fwDoc)), fwDoc, now}
		}
		tstate[i] = tmpl{fwD, chD}
	}
	var rows [][]any
	for _, r := range blobs {
		rows = append(rows, r)
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"blobs"}, []string{"digest", "kind", "size", "data", "created_at"}, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("copy blobs: %w", err)
	}
	cols := []string{"id", "hostname", "enrolled_at", "last_seen", "report_digest", "firmware_state", "boot_chain",
		"platform", "model", "firmware", "os_release", "lineage", "channel", "label", "pcr7_sealed"}
	i := 0
	src := pgx.CopyFromFunc(func() ([]any, error) {
		if i >= n {
			return nil, nil
		}
		r := rand.New(rand.NewPCG(1, uint64(i)))
		ti := r.IntN(len(ts))
		rep := fleetsim.Host(ts[ti], i, r)
		d := rep.Dims()
		sealed := int64(0)
		if rep.TPM.PCR7Sealed {
			sealed = 1
		}
		row := []any{fmt.Sprintf("h-%016x", i), rep.Hostname, now - 86400, now - int64(r.IntN(86400)),
			fmt.Sprintf("%064x", i), tstate[ti].fw, tstate[ti].chain,
			d[store.DimPlatform], d[store.DimModel], d[store.DimFirmware], d[store.DimRelease], d[store.DimLineage], d[store.DimChannel], d[store.DimLabel], sealed}
		i++
		return row, nil
	})
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"hosts"}, cols, src); err != nil {
		return fmt.Errorf("copy hosts: %w", err)
	}
	_, err = conn.Exec(ctx, `ANALYZE`)
	return err
}
