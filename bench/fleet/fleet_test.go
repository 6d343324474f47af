// Package fleet benchmarks vouch serve at fleet scale: simulated hosts (real
// firmware states and the fixture image, varied DMI, releases and labels)
// enrol and report through the HTTP API as agents do, then the fleet
// questions run. Sizes: VOUCH_BENCH_HOSTS (default 100000 on SQLite) and
// VOUCH_BENCH_PG_HOSTS (default 100000 on PostgreSQL); VOUCH_BENCH_AGENTS
// concurrent agents (default 64); VOUCH_BENCH_DATA, a directory that keeps
// the SQLite run's data (vouch.db) for BenchmarkQuestions.
//
//	go test -run '^$' -bench . -benchtime 1x ./bench/fleet/
package fleet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vouch-dev/vouch/internal/api"
	"github.com/vouch-dev/vouch/internal/fleet"
	"github.com/vouch-dev/vouch/internal/fleetsim"
	"github.com/vouch-dev/vouch/internal/pgtest"
	"github.com/vouch-dev/vouch/internal/store"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

func hostsFromEnv(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

func templates(b *testing.B) []fleetsim.Template {
	b.Helper()
	img := testfixtures.Path(b, "debian.raw")
	certs := testfixtures.Data("secureboot", "certs")
	ovmf := "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"
	fws := []fleetsim.FirmwareSource{
		{Name: "ami-0", Dir: testfixtures.Data("secureboot", "efivars-shim-test-data-0")},
		{Name: "ami-1", Dir: testfixtures.Data("secureboot", "efivars-shim-test-data-1")},
		{Name: "ovmf-ms", Store: ovmf},
		{Name: "ovmf-2011", Store: ovmf, Profile: "microsoft-2011", CertDir: certs},
		{Name: "ovmf-2023", Store: ovmf, Profile: "microsoft-2023", CertDir: certs},
		{Name: "ovmf-both", Store: ovmf, Profile: "microsoft-both", CertDir: certs},
	}
	ts, err := fleetsim.Templates(context.Background(), []string{img}, fws, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	return ts
}

type server struct{ url, admin string }

func serve(b *testing.B, data, database string) *server {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *server, 1)
	done := make(chan error, 1)
	go func() {
		done <- api.Serve(ctx, api.ServeOptions{Listen: "127.0.0.1:0", DataDir: data, Database: database,
			Limits: api.Limits{Rate: 1e9, Burst: 1 << 30, IPRate: 1e9, IPBurst: 1 << 30},
			Ready: func(addr, tok string) {
				t, _ := os.ReadFile(tok)
				ready <- &server{url: addr, admin: strings.TrimSpace(string(t))}
			}})
	}()
	b.Cleanup(func() { cancel(); <-done })
	select {
	case s := <-ready:
		return s
	case err := <-done:
		b.Fatal(err)
	}
	return nil
}

func run(b *testing.B, s *server, hosts int) {
	ctx := context.Background()
	admin, _ := api.NewClient(s.url, s.admin, "")
	enroll, err := admin.CreateToken(ctx, "enroll", "bench")
	if err != nil {
		b.Fatal(err)
	}
	reader, _ := admin.CreateToken(ctx, "reader", "bench")
	ts := templates(b)
	var st fleetsim.Stats
	var ms runtime.MemStats
	cpu0 := cpuTime()
	mem := sampleMemory(func() float64 { return float64(st.Reported.Load()) / float64(hosts) })
	start := time.Now()
	if err := fleetsim.Run(ctx, fleetsim.Options{Server: s.url, EnrollToken: enroll, Hosts: hosts, Workers: hostsFromEnv("VOUCH_BENCH_AGENTS", 64), Seed: 1, Templates: ts}, &st); err != nil {
		b.Fatal(err)
	}
	ingest := time.Since(start)
	m := mem()
	b.ReportMetric(m.startRSS, "MiB-rss-start")
	b.ReportMetric(m.peakRSS, "MiB-rss-peak")
	b.ReportMetric(m.endRSS, "MiB-rss-end")
	b.ReportMetric(m.peakHeap, "MiB-heap-peak")
	b.Logf("memory while %d reports streamed in: RSS start %.0f MiB, peak %.0f MiB, end %.0f MiB; heap in use start %.0f MiB, peak %.0f MiB, end %.0f MiB",
		hosts, m.startRSS, m.peakRSS, m.endRSS, m.startHeap, m.peakHeap, m.endHeap)
	b.Logf("RSS / heap in use / heap live after the last GC (MiB) at each tenth of the reports: %s", strings.Join(m.tenths, ", "))
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(cpu.Microseconds())/float64(hosts), "cpu-µs/host")
	runtime.ReadMemStats(&ms)
	b.ReportMetric(ingest.Seconds(), "s-ingest")
	b.ReportMetric(float64(hosts)/ingest.Seconds(), "hosts/s")
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "MiB-heap")
	rc, _ := api.NewClient(s.url, reader, "")
	timed := func(name string, f func() error) {
		t0, c0 := time.Now(), cpuTime()
		if err := f(); err != nil {
			b.Fatalf("%s: %v", name, err)
		}
		b.ReportMetric(float64(time.Since(t0).Milliseconds()), "ms-"+name)
		b.ReportMetric(float64((cpuTime() - c0).Milliseconds()), "cpu-ms-"+name)
	}
	timed("readiness", func() error { _, err := rc.Readiness(ctx, nil, fleet.Query{}); return err })
	timed("readiness-again", func() error { _, err := rc.Readiness(ctx, nil, fleet.Query{}); return err })
	timed("readiness-by-platform", func() error { _, err := rc.Readiness(ctx, []string{"platform"}, fleet.Query{}); return err })
	timed("canaries", func() error {
		_, err := rc.Canaries(ctx, fleet.CanaryOptions{Dims: []string{"platform", "model", "release", "lineage", "channel"}, Pairwise: true})
		return err
	})
	dbx, err := os.ReadFile(testfixtures.Data("secureboot", "dbx", "DBXUpdate-amd64.bin"))
	if err != nil {
		b.Fatal(err)
	}
	var w *fleet.WhatIf
	timed("whatif-dbx", func() error {
		var err error
		w, err = rc.WhatIf(ctx, fleet.ChangeRequest{DBXUpdate: dbx, DBXUpdateName: "DBXUpdate.bin"})
		return err
	})
	if w.Hosts != hosts {
		b.Fatalf("what-if saw %d hosts of %d", w.Hosts, hosts)
	}
	b.Logf("%d hosts from %d templates: ingest %s (%.0f hosts/s, %d blobs uploaded), %d distinct states",
		hosts, len(ts), ingest.Round(time.Millisecond), float64(hosts)/ingest.Seconds(), st.Uploaded.Load(), w.DistinctStates)
}

// cpuTime is the process's user and system CPU time: on a shared machine
// wall-clock figures depend on the neighbours, CPU per host does not.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkFleetSQLite(b *testing.B) {
	for i := 0; i < b.N; i++ {
		data := b.TempDir()
		if d := os.Getenv("VOUCH_BENCH_DATA"); d != "" {
			data = d // the last iteration's is kept
			if err := os.RemoveAll(data); err != nil {
				b.Fatal(err)
			}
		}
		s := serve(b, data, "")
		run(b, s, hostsFromEnv("VOUCH_BENCH_HOSTS", 100000))
		if info, err := os.Stat(filepath.Join(data, "vouch.db")); err == nil {
			b.ReportMetric(float64(info.Size())/(1<<20), "MiB-db")
		}
	}
}

func BenchmarkFleetPostgres(b *testing.B) {
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
		s := serve(b, b.TempDir(), u)
		run(b, s, hostsFromEnv("VOUCH_BENCH_PG_HOSTS", 100000))
	}
}

// BenchmarkQuestions times the fleet questions on a database a fleet
// benchmark (or a real server) filled: VOUCH_BENCH_DB is a SQLite file or a
// postgres:// URL; without it, a SQLite fleet of VOUCH_BENCH_HOSTS (default
// 10,000) is enrolled through the API first. Each question runs on a fresh
// service (cold: every distinct state is rebuilt and judged) and again (warm).
func BenchmarkQuestions(b *testing.B) {
	dsn := os.Getenv("VOUCH_BENCH_DB")
	if dsn == "" {
		data := b.TempDir()
		run(b, serve(b, data, ""), hostsFromEnv("VOUCH_BENCH_HOSTS", 10000))
		dsn = filepath.Join(data, "vouch.db")
		b.ResetTimer()
	}
	ctx := context.Background()
	st, err := store.Open(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	dbx, err := os.ReadFile(testfixtures.Data("secureboot", "dbx", "DBXUpdate-amd64.bin"))
	if err != nil {
		b.Fatal(err)
	}
	change, err := (&fleet.ChangeRequest{DBXUpdate: dbx, DBXUpdateName: "DBXUpdate.bin"}).Parse()
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		svc := fleet.NewService(st)
		timed := func(name string, f func() error) {
			t0, c0 := time.Now(), cpuTime()
			if err := f(); err != nil {
				b.Fatalf("%s: %v", name, err)
			}
			b.ReportMetric(float64(time.Since(t0).Milliseconds()), "ms-"+name)
			b.ReportMetric(float64((cpuTime() - c0).Milliseconds()), "cpu-ms-"+name)
		}
		var rd *fleet.Readiness
		timed("readiness-cold", func() error { var err error; rd, err = svc.Readiness(ctx, nil, fleet.Query{}); return err })
		timed("readiness", func() error { _, err := svc.Readiness(ctx, nil, fleet.Query{}); return err })
		timed("readiness-by-platform", func() error { _, err := svc.Readiness(ctx, []string{"platform"}, fleet.Query{}); return err })
		timed("hosts-only2011", func() error { _, err := svc.Hosts(ctx, fleet.Query{Status: "only2011"}); return err })
		timed("canaries-pairwise", func() error {
			_, err := svc.Canaries(ctx, fleet.CanaryOptions{Dims: []string{"platform", "model", "release", "lineage", "channel"}, Pairwise: true, SeenWithin: 365 * 24 * time.Hour})
			return err
		})
		timed("whatif-dbx", func() error { _, err := svc.WhatIf(ctx, change, fleet.Query{}); return err })
		b.ReportMetric(float64(rd.Total.Hosts), "hosts")
		b.ReportMetric(float64(rd.DistinctStates), "states")
	}
}

// memory is the process's resident set and Go heap in use (MiB) before,
// at most and after an ingest, and both at each tenth of it.
type memory struct {
	startRSS, peakRSS, endRSS, startHeap, peakHeap, endHeap float64
	tenths                                                  []string
}

// sampleMemory samples RSS (/proc/self/status) and the heap every 100 ms
// until the returned function is called; progress says which part of the
// ingest is done. The server and the simulated agents share the process;
// the agents hold one report per worker.
func sampleMemory(progress func() float64) func() memory {
	read := func() (rss, heap float64) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return vmRSS(), float64(ms.HeapInuse) / (1 << 20)
	}
	var m memory
	m.startRSS, m.startHeap = read()
	m.peakRSS, m.peakHeap = m.startRSS, m.startHeap
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		next := 1
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				rss, heap := read()
				m.peakRSS, m.peakHeap = max(m.peakRSS, rss), max(m.peakHeap, heap)
				for ; next < 10 && progress() >= float64(next)/10; next++ {
					m.tenths = append(m.tenths, fmt.Sprintf("%d%%: %.0f/%.0f/%.0f", next*10, rss, heap, liveHeap()))
				}
			}
		}
	}()
	return func() memory {
		close(stop)
		<-done
		m.endRSS, m.endHeap = read()
		m.peakRSS, m.peakHeap = max(m.peakRSS, m.endRSS), max(m.peakHeap, m.endHeap)
		m.tenths = append(m.tenths, fmt.Sprintf("100%%: %.0f/%.0f/%.0f", m.endRSS, m.endHeap, liveHeap()))
		return m
	}
}

// liveHeap is the heap the last garbage collection found live (MiB): what
// the process keeps, without the garbage between collections.
func liveHeap() float64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return float64(s[0].Value.Uint64()) / (1 << 20)
}

func vmRSS() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}
