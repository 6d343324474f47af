package fleet_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vouch-dev/vouch/internal/fleet"
	"github.com/vouch-dev/vouch/internal/fleetsim"
	"github.com/vouch-dev/vouch/internal/pgtest"
	"github.com/vouch-dev/vouch/internal/secureboot"
	"github.com/vouch-dev/vouch/internal/store"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// TestAnswersFromAllHosts: on a small real fleetsim fleet (the fixture image
// under every firmware state the benchmarks use, hosts reported through
// Ingest with many sharing a report time), canaries and a dbx what-if, as the
// service computes them from grouped reads, equal the straightforward answer
// computed here from every host row: each host's state judged, each
// combination's hosts sorted by (newest, ID), the same greedy cover. On
// SQLite and on PostgreSQL.
func TestAnswersFromAllHosts(t *testing.T) {
	testfixtures.Long(t, testfixtures.Fixtures, testfixtures.Services)
	ctx := context.Background()
	img := testfixtures.Path(t, "debian.raw")
	certs := testfixtures.Data("secureboot", "certs")
	ovmf := "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"
	ts, err := fleetsim.Templates(ctx, []string{img}, []fleetsim.FirmwareSource{
		{Name: "ami-0", Dir: testfixtures.Data("secureboot", "efivars-shim-test-data-0")},
		{Name: "ami-1", Dir: testfixtures.Data("secureboot", "efivars-shim-test-data-1")},
		{Name: "ovmf-ms", Store: ovmf},
		{Name: "ovmf-2011", Store: ovmf, Profile: "microsoft-2011", CertDir: certs},
		{Name: "ovmf-both", Store: ovmf, Profile: "microsoft-both", CertDir: certs},
	}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dbx, err := os.ReadFile(testfixtures.Data("secureboot", "dbx", "DBXUpdate-amd64.bin"))
	if err != nil {
		t.Fatal(err)
	}
	// Microsoft's dbx update (no host stops) and an SBAT level revoking
	// Debian's GRUB generation (the hosts enforcing Secure Boot stop).
	var changes []*secureboot.Change
	for _, r := range []fleet.ChangeRequest{{DBXUpdate: dbx, DBXUpdateName: "DBXUpdate.bin"},
		{SBATLevel: []byte("sbat,1,2026010100\nshim,4\ngrub,6\n"), SBATLevelName: "grub6.txt"}} {
		c, err := r.Parse()
		if err != nil {
			t.Fatal(err)
		}
		changes = append(changes, c)
	}
	pg := pgtest.Start(t)
	for _, driver := range []string{"sqlite", "postgres"} {
		t.Run(driver, func(t *testing.T) {
			dsn := filepath.Join(t.TempDir(), "v.db")
			if driver == "postgres" {
				dsn = pg.NewDatabase(t)
			}
			st, err := store.Open(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			s := fleet.NewService(st)
			for _, tm := range ts {
				for d, b := range tm.Col.Blobs {
					if err := st.PutBlob(ctx, store.Blob{Digest: d, Kind: b.Kind, Data: b.Data}); err != nil {
						t.Fatal(err)
					}
				}
			}
			const n = 400
			for i := 0; i < n; i++ {
				r := rand.New(rand.NewPCG(7, uint64(i)))
				rep := fleetsim.Host(ts[r.IntN(len(ts))], i, r)
				// IDs not in report order, a few report times shared by
				// many hosts (ties go to the smaller ID), some hosts
				// older than a week (not canaries).
				id := fmt.Sprintf("h-%03d", (i*149)%n)
				at := now.Add(-time.Duration(i%9) * time.Minute)
				if i%23 == 0 {
					at = now.Add(-8 * 24 * time.Hour)
				}
				s.Now = func() time.Time { return at }
				if err := st.Enroll(ctx, store.Host{ID: id, Hostname: rep.Hostname, EnrolledAt: at}, store.Token{Hash: []byte(id), CreatedAt: at}); err != nil {
					t.Fatal(err)
				}
				body, _ := json.Marshal(rep)
				if _, err := s.Ingest(ctx, id, body); err != nil {
					t.Fatal(err)
				}
			}
			s.Now = func() time.Time { return now }
			all, err := st.Hosts(ctx, store.Filter{Reported: true})
			if err != nil || len(all) != n {
				t.Fatalf("%d hosts, %v", len(all), err)
			}

			dims := []string{"platform", "model", "release", "lineage", "channel"}
			for _, o := range []fleet.CanaryOptions{
				{Dims: dims}, {Dims: dims, Pairwise: true}, {Dims: dims, PerGroup: 2}, {Dims: dims, Pairwise: true, PerGroup: 3},
				{Dims: []string{"label"}}, {Dims: []string{"platform", "firmware"}, Query: fleet.Query{Dims: map[string]string{"release": all[0].Dims["release"]}}},
			} {
				got, err := s.Canaries(ctx, o)
				if err != nil {
					t.Fatal(err)
				}
				want := canariesFromAllHosts(all, o, now.Add(-7*24*time.Hour))
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("canaries %+v:\n got %+v\nwant %+v", o, got, want)
				}
				if len(got.Hosts) == 0 {
					t.Fatalf("canaries %+v: none", o)
				}
			}

			for _, c := range changes {
				got, err := s.WhatIf(ctx, c, fleet.Query{})
				if err != nil {
					t.Fatal(err)
				}
				want := whatIfFromAllHosts(t, st, all, c)
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("what-if:\n got %+v\nwant %+v", got, want)
				}
				t.Logf("what-if: %d hosts, %d distinct states, %d stop, %d keep, %d already not booting, %d unknown, %d groups",
					got.Hosts, got.DistinctStates, len(got.StopBooting), got.KeepBooting, len(got.AlreadyBroken), len(got.Unknown), len(got.Groups))
				if len(got.Unknown) == 0 || got.KeepBooting == 0 || len(got.Groups) < 2 {
					t.Fatalf("what-if on the simulated fleet is too uniform to compare: %+v", got)
				}
			}
		})
	}
}

// canariesFromAllHosts is Canaries computed from every host row: the
// combinations of the hosts seen since, each with its hosts newest first
// (then by ID), and the greedy cover as documented on Service.Canaries.
func canariesFromAllHosts(all []store.Host, o fleet.CanaryOptions, since time.Time) *fleet.Canaries {
	per := max(o.PerGroup, 1)
	type combo struct {
		values []string
		hosts  []store.Host
		elems  []string
	}
	byKey := map[string]*combo{}
	var combos []*combo
	for _, h := range all {
		if h.LastSeen.Before(since) {
			continue
		}
		match := true
		for d, v := range o.Query.Dims {
			match = match && h.Dims[d] == v
		}
		if !match {
			continue
		}
		vals := make([]string, len(o.Dims))
		for i, d := range o.Dims {
			vals[i] = h.Dims[d]
		}
		k := strings.Join(vals, "\x00")
		if byKey[k] == nil {
			byKey[k] = &combo{values: vals}
			combos = append(combos, byKey[k])
		}
		byKey[k].hosts = append(byKey[k].hosts, h)
	}
	sort.Slice(combos, func(i, j int) bool {
		return strings.Join(combos[i].values, "\x00") < strings.Join(combos[j].values, "\x00")
	})
	var total int64
	supply := map[string]int{}
	for _, c := range combos {
		sort.Slice(c.hosts, func(i, j int) bool {
			a, b := c.hosts[i], c.hosts[j]
			if !a.LastSeen.Equal(b.LastSeen) {
				return a.LastSeen.After(b.LastSeen)
			}
			return a.ID < b.ID
		})
		total += int64(len(c.hosts))
		if !o.Pairwise || len(c.values) == 1 {
			if len(c.values) == 1 {
				c.elems = []string{"0=" + c.values[0]}
			} else {
				c.elems = []string{"all=" + strings.Join(c.values, "\x00")}
			}
		} else {
			for i := range c.values {
				for j := i + 1; j < len(c.values); j++ {
					c.elems = append(c.elems, fmt.Sprintf("%c%c=%s\x00%s", 'a'+i, 'a'+j, c.values[i], c.values[j]))
				}
			}
		}
		for _, e := range c.elems {
			supply[e] += len(c.hosts)
		}
	}
	demand := map[string]int{}
	perKind := map[string]int{}
	for e, n := range supply {
		demand[e] = min(per, n)
		k, _, _ := strings.Cut(e, "=")
		perKind[k] += demand[e]
	}
	lower := 0
	for _, v := range perKind {
		lower = max(lower, v)
	}
	picks := map[*combo]int{}
	var order []*combo
	for {
		var best *combo
		bestGain := 0
		for _, c := range combos {
			if picks[c] >= len(c.hosts) {
				continue
			}
			gain := 0
			for _, e := range c.elems {
				if demand[e] > 0 {
					gain++
				}
			}
			if gain > bestGain {
				best, bestGain = c, gain
			}
		}
		if best == nil {
			break
		}
		if picks[best] == 0 {
			order = append(order, best)
		}
		picks[best]++
		for _, e := range best.elems {
			if demand[e] > 0 {
				demand[e]--
			}
		}
	}
	out := &fleet.Canaries{Hosts: []fleet.Canary{}, Dims: o.Dims, Pairwise: o.Pairwise, PerGroup: per, Elements: len(supply), Candidates: total, LowerBound: lower}
	for _, c := range order {
		for _, h := range c.hosts[:picks[c]] {
			d := map[string]string{}
			for _, k := range o.Dims {
				d[k] = h.Dims[k]
			}
			out.Hosts = append(out.Hosts, fleet.Canary{ID: h.ID, Hostname: h.Hostname, Dims: d, LastSeen: h.LastSeen})
		}
	}
	out.Gap = len(out.Hosts) - lower
	return out
}

// whatIfFromAllHosts is WhatIf computed host by host: each host's state
// judged (by a fresh evaluator), the lists in ID order, each reason's hosts
// counted and its ten first IDs sampled.
func whatIfFromAllHosts(t *testing.T, st store.Store, all []store.Host, c *secureboot.Change) *fleet.WhatIf {
	t.Helper()
	ev := fleet.NewEvaluator(st)
	judged := map[store.StatePair]fleet.Outcome{}
	w := &fleet.WhatIf{StopBooting: []string{}, AlreadyBroken: []string{}, Unknown: []string{}, Groups: []fleet.WhatIfGroup{}}
	groups := map[string]*fleet.WhatIfGroup{}
	sorted := append([]store.Host(nil), all...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].ID < sorted[j].ID })
	for _, h := range sorted {
		p := store.StatePair{FirmwareState: h.FirmwareState, BootChain: h.BootChain}
		o, ok := judged[p]
		if !ok {
			m, err := ev.Machine(context.Background(), p)
			if err != nil {
				t.Fatal(err)
			}
			o = ev.Judge(m, c)
			judged[p] = o
		}
		w.Hosts++
		switch {
		case !o.Known:
			w.Unknown = append(w.Unknown, h.ID)
		case !o.BootsBefore:
			w.AlreadyBroken = append(w.AlreadyBroken, h.ID)
		case !o.BootsAfter:
			w.StopBooting = append(w.StopBooting, h.ID)
		default:
			w.KeepBooting++
		}
		g := groups[o.Reason]
		if g == nil {
			g = &fleet.WhatIfGroup{Reason: o.Reason, Stop: o.Known && o.BootsBefore && !o.BootsAfter, Sample: []string{}}
			groups[o.Reason] = g
		}
		g.Hosts++
		if len(g.Sample) < 10 {
			g.Sample = append(g.Sample, h.ID)
		}
	}
	w.DistinctStates = len(judged)
	for _, g := range groups {
		w.Groups = append(w.Groups, *g)
	}
	sort.Slice(w.Groups, func(i, j int) bool {
		a, b := w.Groups[i], w.Groups[j]
		if a.Stop != b.Stop {
			return a.Stop
		}
		if a.Hosts != b.Hosts {
			return a.Hosts > b.Hosts
		}
		return a.Sample[0] < b.Sample[0]
	})
	return w
}
