// Package storetest is the conformance suite every store driver passes (as
// riverqueue/river's riverdrivertest is for its drivers): the same calls, the
// same answers, on SQLite and on PostgreSQL.
package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vouch-dev/vouch/internal/store"
)

// Open returns a new, empty, migrated store for one subtest.
type Open func(t *testing.T) store.Store

func digest(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func hash(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func enroll(t *testing.T, s store.Store, id, name string) {
	t.Helper()
	err := s.Enroll(context.Background(), store.Host{ID: id, Hostname: name, EnrolledAt: t0},
		store.Token{Hash: hash("cred-" + id), CreatedAt: t0})
	if err != nil {
		t.Fatal(err)
	}
}

func report(id string, n int, fw, chain string, dims map[string]string) store.Report {
	return store.Report{HostID: id, Hostname: "host-" + id, Digest: fmt.Sprintf("r-%s-%d", id, n),
		ReceivedAt: t0.Add(time.Duration(n) * time.Minute), FirmwareState: fw, BootChain: chain, Dims: dims,
		Facts: []byte(fmt.Sprintf(`{"n":%d}`, n))}
}

// Run runs the suite.
func Run(t *testing.T, open Open) {
	ctx := context.Background()
	t.Run("Migrate twice", func(t *testing.T) {
		// Open already migrated; the driver's migrate must be idempotent,
		// which the second Open of the same database in each driver's own
		// test checks. Here: the schema answers.
		s := open(t)
		if _, err := s.Hosts(ctx, store.Filter{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("Tokens", func(t *testing.T) {
		s := open(t)
		tok := store.Token{Hash: hash("secret"), Role: store.RoleReader, Note: "ops", CreatedAt: t0}
		if err := s.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateToken(ctx, tok); !errors.Is(err, store.ErrExists) {
			t.Fatalf("duplicate token: %v, want ErrExists", err)
		}
		got, err := s.Token(ctx, hash("secret"))
		if err != nil || got.Role != store.RoleReader || got.Note != "ops" || !got.CreatedAt.Equal(t0) {
			t.Fatalf("Token = %+v, %v", got, err)
		}
		if _, err := s.Token(ctx, hash("other")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown token: %v", err)
		}
	})
	t.Run("Enroll", func(t *testing.T) {
		s := open(t)
		enroll(t, s, "h1", "alpha")
		tok, err := s.Token(ctx, hash("cred-h1"))
		if err != nil || tok.Role != store.RoleHost || tok.HostID != "h1" {
			t.Fatalf("credential = %+v, %v", tok, err)
		}
		// A second host with the same ID: nothing of it is stored.
		err = s.Enroll(ctx, store.Host{ID: "h1", Hostname: "beta", EnrolledAt: t0}, store.Token{Hash: hash("cred-x"), CreatedAt: t0})
		if !errors.Is(err, store.ErrExists) {
			t.Fatalf("duplicate host: %v", err)
		}
		if _, err := s.Token(ctx, hash("cred-x")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("half an enrolment was stored: %v", err)
		}
		h, err := s.Host(ctx, "h1")
		if err != nil || h.Hostname != "alpha" || !h.LastSeen.IsZero() || h.ReportDigest != "" {
			t.Fatalf("Host = %+v, %v", h, err)
		}
	})
	t.Run("Blobs", func(t *testing.T) {
		s := open(t)
		a, b := []byte("db contents"), []byte("dbx contents")
		if err := s.PutBlob(ctx, store.Blob{Digest: digest(a), Kind: "var", Data: a}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutBlob(ctx, store.Blob{Digest: digest(a), Kind: "var", Data: a}); err != nil {
			t.Fatalf("storing a blob twice: %v", err)
		}
		miss, err := s.MissingBlobs(ctx, []string{digest(a), digest(b), digest(b)})
		if err != nil || !reflect.DeepEqual(miss, []string{digest(b)}) {
			t.Fatalf("MissingBlobs = %v, %v", miss, err)
		}
		got, err := s.Blob(ctx, digest(a))
		if err != nil || string(got.Data) != string(a) || got.Kind != "var" {
			t.Fatalf("Blob = %+v, %v", got, err)
		}
		if _, err := s.Blob(ctx, digest(b)); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("missing blob: %v", err)
		}
		// Many digests at once (past one query's chunk).
		var many []string
		for i := 0; i < 1200; i++ {
			many = append(many, digest([]byte(fmt.Sprint(i))))
		}
		miss, err = s.MissingBlobs(ctx, many)
		if err != nil || len(miss) != 1200 {
			t.Fatalf("MissingBlobs(1200) = %d, %v", len(miss), err)
		}
	})
	t.Run("Reports", func(t *testing.T) {
		s := open(t)
		enroll(t, s, "h1", "alpha")
		fwDoc := []byte(`{"vars":[]}`)
		r := report("h1", 1, digest(fwDoc), "chain-a", map[string]string{store.DimPlatform: "qemu", store.DimRelease: "debian-12"})
		r.Blobs = []store.Blob{{Digest: digest(fwDoc), Kind: "firmware-state", Data: fwDoc}}
		r.Needs = []string{digest([]byte("shim"))}
		r.PCR7Sealed = true
		var mb *store.MissingBlobsError
		if err := s.PutReport(ctx, r); !errors.As(err, &mb) || len(mb.Digests) != 1 {
			t.Fatalf("report naming a missing blob: %v", err)
		}
		// Nothing of it was stored: not the host row, not its blobs.
		if h, _ := s.Host(ctx, "h1"); h.ReportDigest != "" {
			t.Fatalf("half a report stored: %+v", h)
		}
		if miss, _ := s.MissingBlobs(ctx, []string{digest(fwDoc)}); len(miss) != 1 {
			t.Fatal("the report's blobs were stored although the report was refused")
		}
		if err := s.PutBlob(ctx, store.Blob{Digest: digest([]byte("shim")), Kind: "efi", Data: []byte("shim")}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutReport(ctx, r); err != nil {
			t.Fatal(err)
		}
		h, err := s.Host(ctx, "h1")
		if err != nil || h.ReportDigest != "r-h1-1" || h.FirmwareState != digest(fwDoc) || h.Dims[store.DimPlatform] != "qemu" ||
			!h.PCR7Sealed || string(h.Facts) != `{"n":1}` || !h.LastSeen.Equal(r.ReceivedAt) {
			t.Fatalf("Host = %+v, %v", h, err)
		}
		if err := s.PutReport(ctx, report("nobody", 1, "f", "c", nil)); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("report for an unknown host: %v", err)
		}
		// Same report again: no new history; a changed one: history grows.
		if err := s.PutReport(ctx, r); err != nil {
			t.Fatal(err)
		}
		if err := s.PutReport(ctx, report("h1", 2, "fw-b", "chain-a", nil)); err != nil {
			t.Fatal(err)
		}
		hist, err := s.History(ctx, "h1", 10)
		if err != nil || len(hist) != 2 || hist[0].Digest != "r-h1-2" || hist[1].Digest != "r-h1-1" {
			t.Fatalf("History = %+v, %v", hist, err)
		}
		// Heartbeats.
		if err := s.Seen(ctx, "h1", "r-h1-2", t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if h, _ := s.Host(ctx, "h1"); !h.LastSeen.Equal(t0.Add(time.Hour)) {
			t.Fatalf("Seen did not move last_seen: %v", h.LastSeen)
		}
		if err := s.Seen(ctx, "h1", "r-h1-1", t0); !errors.Is(err, store.ErrStale) {
			t.Fatalf("stale heartbeat: %v", err)
		}
		if err := s.Seen(ctx, "nobody", "x", t0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("heartbeat of an unknown host: %v", err)
		}
	})
	t.Run("HostsAndGroups", func(t *testing.T) {
		s := open(t)
		plat := []string{"qemu", "qemu", "azure", "aws", "azure"}
		for i, p := range plat {
			id := fmt.Sprintf("h%d", i)
			enroll(t, s, id, "name-"+id)
			if i == 4 {
				continue // enrolled, never reported
			}
			r := report(id, i, "fw"+fmt.Sprint(i%2), "c", map[string]string{store.DimPlatform: p, store.DimModel: "m"})
			r.PCR7Sealed = i == 0
			if err := s.PutReport(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		all, err := s.Hosts(ctx, store.Filter{})
		if err != nil || len(all) != 5 || all[0].ID != "h0" || all[4].ID != "h4" {
			t.Fatalf("Hosts = %d, %v", len(all), err)
		}
		page, _ := s.Hosts(ctx, store.Filter{After: "h1", Limit: 2})
		if len(page) != 2 || page[0].ID != "h2" {
			t.Fatalf("page = %+v", page)
		}
		q, _ := s.Hosts(ctx, store.Filter{Dims: map[string]string{store.DimPlatform: "qemu"}})
		if len(q) != 2 {
			t.Fatalf("qemu hosts = %d", len(q))
		}
		st, _ := s.Hosts(ctx, store.Filter{States: []store.StatePair{{FirmwareState: "fw1", BootChain: "c"}}})
		if len(st) != 2 || st[0].ID != "h1" || st[1].ID != "h3" {
			t.Fatalf("state hosts = %+v", st)
		}
		narrow, _ := s.Hosts(ctx, store.Filter{States: []store.StatePair{{FirmwareState: "fw1", BootChain: "c"}}, Narrow: true})
		if len(narrow) != 2 || narrow[1].ID != "h3" || narrow[1].BootChain != "c" || narrow[1].Hostname != "" {
			t.Fatalf("narrow state hosts = %+v", narrow)
		}
		un, _ := s.Hosts(ctx, store.Filter{States: []store.StatePair{{FirmwareState: "fw1", BootChain: "c"}}, Narrow: true, Unordered: true})
		sort.Slice(un, func(i, j int) bool { return un[i].ID < un[j].ID })
		if !reflect.DeepEqual(un, narrow) {
			t.Fatalf("unordered state hosts = %+v", un)
		}
		rec, _ := s.Hosts(ctx, store.Filter{Recent: true, Limit: 1, Reported: true})
		if len(rec) != 1 || rec[0].ID != "h3" {
			t.Fatalf("most recent = %+v", rec)
		}
		since, _ := s.Hosts(ctx, store.Filter{SeenSince: t0.Add(2 * time.Minute)})
		if len(since) != 2 {
			t.Fatalf("seen since = %d", len(since))
		}
		byName, _ := s.Hosts(ctx, store.Filter{Hostname: "h2"})
		if len(byName) != 1 {
			t.Fatalf("by hostname = %d", len(byName))
		}
		if _, err := s.Hosts(ctx, store.Filter{Dims: map[string]string{"nope": "x"}}); err == nil {
			t.Fatal("unknown dimension accepted")
		}
		top, err := s.RecentByGroup(ctx, []string{store.DimPlatform}, store.Filter{Reported: true}, 1)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, h := range top {
			ids = append(ids, h.ID)
		}
		if strings.Join(ids, ",") != "h3,h2,h1" { // aws h3, azure h2, qemu h1 (newer than h0)
			t.Fatalf("RecentByGroup = %v", ids)
		}
		if top, _ := s.RecentByGroup(ctx, []string{store.DimPlatform}, store.Filter{Reported: true}, 2); len(top) != 4 {
			t.Fatalf("RecentByGroup(2) = %d hosts", len(top))
		}
		g, err := s.Groups(ctx, []string{store.DimPlatform}, store.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		want := []store.Group{
			{Values: []string{"aws"}, State: store.StatePair{FirmwareState: "fw1", BootChain: "c"}, Hosts: 1},
			{Values: []string{"azure"}, State: store.StatePair{FirmwareState: "fw0", BootChain: "c"}, Hosts: 1},
			{Values: []string{"qemu"}, State: store.StatePair{FirmwareState: "fw0", BootChain: "c"}, Hosts: 1, PCR7Sealed: 1},
			{Values: []string{"qemu"}, State: store.StatePair{FirmwareState: "fw1", BootChain: "c"}, Hosts: 1},
		}
		if !reflect.DeepEqual(g, want) {
			t.Fatalf("Groups = %+v\nwant %+v", g, want)
		}
		g, _ = s.Groups(ctx, nil, store.Filter{})
		if len(g) != 2 || g[0].Hosts+g[1].Hosts != 4 {
			t.Fatalf("Groups() = %+v", g)
		}
		// The materialised counts (a dimensions-only filter) follow hosts
		// that move between groups, stop being sealed, or report again
		// unchanged; they equal a count over the hosts themselves.
		moves := []store.Report{
			report("h0", 10, "fw1", "c", map[string]string{store.DimPlatform: "aws", store.DimModel: "m"}),
			report("h4", 11, "fw0", "c", map[string]string{store.DimPlatform: "azure", store.DimModel: "m"}),
			report("h2", 12, "fw0", "c", map[string]string{store.DimPlatform: "azure", store.DimModel: "m"}),
		}
		moves[2].Digest = "r-h2-2" // the same digest as before, now sealed
		moves[2].PCR7Sealed = true
		for _, r := range moves {
			if err := s.PutReport(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		azure := map[string]string{store.DimPlatform: "azure"}
		for _, c := range []struct {
			dims  []string
			where map[string]string
		}{{nil, nil}, {[]string{store.DimPlatform}, nil}, {[]string{store.DimModel}, nil}, {[]string{store.DimLabel}, nil},
			{nil, azure}, {[]string{store.DimPlatform}, azure}, {[]string{store.DimModel}, azure}, {[]string{store.DimModel, store.DimPlatform}, nil}} {
			counted, err := s.Groups(ctx, c.dims, store.Filter{Dims: c.where})
			if err != nil {
				t.Fatal(err)
			}
			scanned, err := s.Groups(ctx, c.dims, store.Filter{Dims: c.where, SeenSince: time.Unix(1, 0)}) // a filter the counts cannot answer
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(counted, scanned) {
				t.Fatalf("Groups(%v, %v) from the counts = %+v\nfrom the hosts = %+v", c.dims, c.where, counted, scanned)
			}
		}
		if g, _ := s.Groups(ctx, nil, store.Filter{Dims: map[string]string{store.DimPlatform: "azure"}}); len(g) != 1 || g[0].Hosts != 2 || g[0].PCR7Sealed != 1 {
			t.Fatalf("azure groups = %+v", g)
		}
	})
	t.Run("CrossingReports", func(t *testing.T) {
		// Hosts moving between two state pairs in opposite directions at
		// once (as two servers sharing a database see them): the
		// materialised counts of both pairs change in every report, and
		// no report may fail (a deadlock between the count updates), nor
		// may the counts drift from the hosts.
		s := open(t)
		const n = 16
		for i := 0; i < n; i++ {
			enroll(t, s, fmt.Sprintf("x%02d", i), "x")
		}
		states := [2]string{"fw-a", "fw-b"}
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				id := fmt.Sprintf("x%02d", i)
				dims := map[string]string{store.DimPlatform: fmt.Sprintf("p%d", i%3), store.DimLabel: "l"}
				for k := 0; k < 12; k++ {
					r := report(id, k, states[(i+k)%2], "c", dims)
					r.PCR7Sealed = k%3 == 0
					if err := s.PutReport(ctx, r); err != nil {
						errs <- fmt.Errorf("host %s report %d: %w", id, k, err)
						return
					}
				}
			}(i)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for _, dims := range [][]string{nil, {store.DimPlatform}, {store.DimLabel}} {
			counted, err := s.Groups(ctx, dims, store.Filter{})
			if err != nil {
				t.Fatal(err)
			}
			scanned, err := s.Groups(ctx, dims, store.Filter{SeenSince: time.Unix(1, 0)})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(counted, scanned) {
				t.Fatalf("Groups(%v) from the counts = %+v\nfrom the hosts = %+v", dims, counted, scanned)
			}
		}
	})
	t.Run("Combos", func(t *testing.T) {
		// Combos equals the straightforward answer from every host: counts
		// per combination, and its newest hosts, ties broken by ID.
		s := open(t)
		for i := 0; i < 60; i++ {
			id := fmt.Sprintf("k%02d", (i*37)%60) // IDs not in report order
			enroll(t, s, id, "k")
			r := report(id, i%7, "fw", "c", map[string]string{store.DimPlatform: fmt.Sprintf("p%d", i%3), store.DimModel: fmt.Sprintf("m%d", i%4)})
			if i == 59 {
				continue // never reported
			}
			if err := s.PutReport(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		dims := []string{store.DimPlatform, store.DimModel}
		for _, f := range []store.Filter{{}, {SeenSince: t0.Add(3 * time.Minute)}, {Dims: map[string]string{store.DimModel: "m1"}}} {
			for _, per := range []int{1, 2, 5} {
				got, err := s.Combos(ctx, dims, f, per)
				if err != nil {
					t.Fatal(err)
				}
				all, err := s.Hosts(ctx, store.Filter{Reported: true, SeenSince: f.SeenSince, Dims: f.Dims})
				if err != nil {
					t.Fatal(err)
				}
				sort.SliceStable(all, func(i, j int) bool {
					a, b := all[i], all[j]
					if !a.LastSeen.Equal(b.LastSeen) {
						return a.LastSeen.After(b.LastSeen)
					}
					return a.ID < b.ID
				})
				byKey := map[string]*store.Combo{}
				var want []store.Combo
				var keys []string
				for _, h := range all {
					v := []string{h.Dims[store.DimPlatform], h.Dims[store.DimModel]}
					k := strings.Join(v, "\x00")
					c := byKey[k]
					if c == nil {
						c = &store.Combo{Values: v, Recent: []store.Host{}}
						byKey[k] = c
						keys = append(keys, k)
					}
					c.Hosts++
					if len(c.Recent) < per {
						c.Recent = append(c.Recent, h)
					}
				}
				sort.Strings(keys)
				for _, k := range keys {
					want = append(want, *byKey[k])
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("Combos(%+v, %d) =\n%+v\nwant\n%+v", f, per, got, want)
				}
			}
		}
		if _, err := s.Combos(ctx, nil, store.Filter{}, 1); err == nil {
			t.Fatal("Combos with no dimension accepted")
		}
	})
	t.Run("ConcurrentReports", func(t *testing.T) {
		// Many hosts writing at once: every report lands, none mixed.
		s := open(t)
		const n = 40
		for i := 0; i < n; i++ {
			enroll(t, s, fmt.Sprintf("c%02d", i), "x")
		}
		var wg sync.WaitGroup
		errs := make(chan error, n*3)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				id := fmt.Sprintf("c%02d", i)
				for k := 1; k <= 3; k++ {
					if err := s.PutReport(ctx, report(id, k, "fw-"+id, "chain-"+id, nil)); err != nil {
						errs <- err
					}
				}
			}(i)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		hosts, _ := s.Hosts(ctx, store.Filter{WithFacts: true})
		for _, h := range hosts {
			if h.ReportDigest != "r-"+h.ID+"-3" || h.FirmwareState != "fw-"+h.ID || string(h.Facts) != `{"n":3}` {
				t.Fatalf("host %s = %+v", h.ID, h)
			}
		}
	})
	t.Run("ConcurrentFailures", func(t *testing.T) {
		// Writes that fail half-way (the host row inserted, then its
		// credential refused as a duplicate), reports naming a blob never
		// uploaded and reports of unknown hosts, among good writes at
		// once (SQLite commits them together): each failing write leaves
		// nothing, every other one lands.
		s := open(t)
		enroll(t, s, "taken", "x")
		const n = 30
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				id := fmt.Sprintf("f%02d", i)
				switch i % 3 {
				case 0:
					errs[i] = s.Enroll(ctx, store.Host{ID: id, Hostname: id, EnrolledAt: t0}, store.Token{Hash: hash("cred-taken"), CreatedAt: t0})
				case 1:
					r := report("taken", i, "fw", "chain", nil)
					r.Needs = []string{digest([]byte(id))}
					errs[i] = s.PutReport(ctx, r)
				default:
					if errs[i] = s.Enroll(ctx, store.Host{ID: id, Hostname: id, EnrolledAt: t0}, store.Token{Hash: hash("cred-" + id), CreatedAt: t0}); errs[i] == nil {
						errs[i] = s.PutReport(ctx, report(id, 1, "fw", "chain", nil))
					}
				}
			}(i)
		}
		wg.Wait()
		var mb *store.MissingBlobsError
		for i, err := range errs {
			switch i % 3 {
			case 0:
				if !errors.Is(err, store.ErrExists) {
					t.Errorf("enrol with a taken credential: %v, want ErrExists", err)
				}
			case 1:
				if !errors.As(err, &mb) {
					t.Errorf("report naming a missing blob: %v, want MissingBlobsError", err)
				}
			default:
				if err != nil {
					t.Errorf("good write %d: %v", i, err)
				}
			}
		}
		if err := s.PutReport(ctx, report("nobody", 1, "fw", "chain", nil)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("report of an unknown host: %v, want ErrNotFound", err)
		}
		hosts, err := s.Hosts(ctx, store.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, h := range hosts {
			got[h.ID] = h.ReportDigest
		}
		if len(got) != 1+n/3 || got["taken"] != "" {
			t.Fatalf("hosts after the failures = %v", got)
		}
		for i := 2; i < n; i += 3 {
			if id := fmt.Sprintf("f%02d", i); got[id] != "r-"+id+"-1" {
				t.Errorf("host %s: report %q", id, got[id])
			}
		}
		if g, _ := s.Groups(ctx, nil, store.Filter{}); len(g) != 1 || g[0].Hosts != n/3 {
			t.Errorf("groups = %+v, want the %d good hosts", g, n/3)
		}
	})
}
