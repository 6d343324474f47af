package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vouch-dev/vouch/internal/api"
	"github.com/vouch-dev/vouch/internal/fleet"
	"github.com/vouch-dev/vouch/internal/fleetsim"
	"github.com/vouch-dev/vouch/internal/store"
)

// BenchmarkIngestSQLiteStore is the server's part of the ingest without
// HTTP or simulated agents: VOUCH_BENCH_HOSTS hosts (default 20000) built by
// fleetsim enrol and report through the store and fleet.Service.Ingest on
// SQLite, VOUCH_BENCH_AGENTS (default 64) at a time. The reports are encoded
// before the clock starts, so CPU per host is the server's: decoding,
// validating and the store's writes. Write and read calls per host (from
// /proc/self/io) do not depend on the neighbours.
func BenchmarkIngestSQLiteStore(b *testing.B) {
	n := hostsFromEnv("VOUCH_BENCH_HOSTS", 20000)
	agents := hostsFromEnv("VOUCH_BENCH_AGENTS", 64)
	ctx := context.Background()
	ts := templates(b)
	bodies := make([][]byte, n)
	for i := range bodies {
		r := rand.New(rand.NewPCG(1, uint64(i)))
		t := ts[r.IntN(len(ts))]
		bodies[i], _ = json.Marshal(fleetsim.Host(t, i, r))
	}
	for i := 0; i < b.N; i++ {
		st, err := store.Open(ctx, filepath.Join(b.TempDir(), "vouch.db"))
		if err != nil {
			b.Fatal(err)
		}
		svc := fleet.NewService(st)
		for _, t := range ts {
			for d, bl := range t.Col.Blobs {
				if err := st.PutBlob(ctx, store.Blob{Digest: d, Kind: bl.Kind, Data: bl.Data}); err != nil {
					b.Fatal(err)
				}
			}
		}
		jobs := make(chan int)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var ferr error
		io0 := procIO()
		cpu0, start := cpuTime(), time.Now()
		for w := 0; w < agents; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range jobs {
					secret, h := api.NewToken()
					id := fmt.Sprintf("h-%012x%016x", time.Now().UnixMilli(), rand.Uint64()) // as the API makes them
					err := st.Enroll(ctx, store.Host{ID: id, Hostname: secret[:8], EnrolledAt: time.Now()}, store.Token{Hash: h, CreatedAt: time.Now()})
					if err == nil {
						_, err = svc.Ingest(ctx, id, bodies[i])
					}
					if err != nil {
						mu.Lock()
						ferr = err
						mu.Unlock()
					}
				}
			}()
		}
		for i := 0; i < n; i++ {
			jobs <- i
		}
		close(jobs)
		wg.Wait()
		if ferr != nil {
			b.Fatal(ferr)
		}
		el, cpu := time.Since(start), cpuTime()-cpu0
		io := procIO()
		b.ReportMetric(float64(io["syscw"]-io0["syscw"])/float64(n), "writes/host")
		b.ReportMetric(float64(io["wchar"]-io0["wchar"])/float64(n), "B-written/host")
		b.ReportMetric(float64(io["syscr"]-io0["syscr"])/float64(n), "reads/host")
		b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/host")
		b.ReportMetric(float64(n)/el.Seconds(), "hosts/s")
		st.Close()
	}
}

// procIO is /proc/self/io: write and read calls and bytes, which do not
// depend on the neighbours.
func procIO() map[string]int64 {
	m := map[string]int64{}
	b, _ := os.ReadFile("/proc/self/io")
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ": "); ok {
			m[k], _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return m
}
