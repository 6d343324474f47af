package fleet_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vouch-dev/vouch/internal/agent"
	"github.com/vouch-dev/vouch/internal/fleet"
	"github.com/vouch-dev/vouch/internal/gate/gatetest"
	"github.com/vouch-dev/vouch/internal/store"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func newService(t *testing.T) *fleet.Service {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "v.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s := fleet.NewService(st)
	s.Now = func() time.Time { return now }
	return s
}

// addHost enrols a host and stores a report with these dimensions and no
// firmware or boot chain.
func addHost(t *testing.T, s *fleet.Service, id string, seen time.Time, dims map[string]string) {
	t.Helper()
	ctx := context.Background()
	if err := s.Store.Enroll(ctx, store.Host{ID: id, Hostname: "n-" + id, EnrolledAt: seen}, store.Token{Hash: []byte("h" + id), CreatedAt: seen}); err != nil {
		t.Fatal(err)
	}
	if err := s.Store.PutReport(ctx, store.Report{HostID: id, Hostname: "n-" + id, Digest: "d" + id, ReceivedAt: seen, Dims: dims, Facts: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
}

func TestCanariesPairwise(t *testing.T) {
	s := newService(t)
	// Every combination of three two-valued facts, two hosts each: 8
	// combinations; every pair of values is covered by 4 hosts at best.
	n := 0
	for _, p := range []string{"aws", "azure"} {
		for _, m := range []string{"m1", "m2"} {
			for _, r := range []string{"debian-12", "debian-13"} {
				for k := 0; k < 2; k++ {
					n++
					addHost(t, s, fmt.Sprintf("h%02d", n), now.Add(-time.Duration(n)*time.Minute), map[string]string{"platform": p, "model": m, "release": r})
				}
			}
		}
	}
	addHost(t, s, "stale", now.Add(-30*24*time.Hour), map[string]string{"platform": "gcp", "model": "m9", "release": "debian-11"})
	ctx := context.Background()
	dims := []string{"platform", "model", "release"}

	all, err := s.Canaries(ctx, fleet.CanaryOptions{Dims: dims})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Hosts) != 8 || all.LowerBound != 8 || all.Gap != 0 || all.Elements != 8 {
		t.Fatalf("combinations: %d hosts, bound %d, gap %d, elements %d", len(all.Hosts), all.LowerBound, all.Gap, all.Elements)
	}
	for _, h := range all.Hosts {
		if h.ID == "stale" {
			t.Fatal("a host not seen for 30 days was picked")
		}
	}

	pw, err := s.Canaries(ctx, fleet.CanaryOptions{Dims: dims, Pairwise: true})
	if err != nil {
		t.Fatal(err)
	}
	if pw.LowerBound != 4 || len(pw.Hosts) < 4 || len(pw.Hosts) > 6 || pw.Gap != len(pw.Hosts)-4 {
		t.Fatalf("pairwise: %d hosts, bound %d, gap %d", len(pw.Hosts), pw.LowerBound, pw.Gap)
	}
	covered := map[string]bool{}
	for _, h := range pw.Hosts {
		for i, a := range dims {
			for _, b := range dims[i+1:] {
				covered[a+"="+h.Dims[a]+","+b+"="+h.Dims[b]] = true
			}
		}
	}
	if len(covered) != 12 {
		t.Fatalf("pairwise set covers %d of 12 pairs: %v", len(covered), covered)
	}
	again, _ := s.Canaries(ctx, fleet.CanaryOptions{Dims: dims, Pairwise: true})
	if !reflect.DeepEqual(pw, again) {
		t.Fatal("canaries are not deterministic")
	}
	// Two per combination; the most recently seen host first.
	two, _ := s.Canaries(ctx, fleet.CanaryOptions{Dims: []string{"platform"}, PerGroup: 2})
	if len(two.Hosts) != 4 || two.LowerBound != 4 || two.Hosts[0].ID != "h01" {
		t.Fatalf("per-group 2: %+v", two)
	}
	// A wider window brings the stale host in.
	wide, _ := s.Canaries(ctx, fleet.CanaryOptions{Dims: []string{"platform"}, SeenWithin: 60 * 24 * time.Hour})
	if len(wide.Hosts) != 3 {
		t.Fatalf("60-day window: %+v", wide.Hosts)
	}
	if _, err := s.Canaries(ctx, fleet.CanaryOptions{Dims: []string{"colour"}}); err == nil {
		t.Fatal("unknown dimension accepted")
	}
}

func TestParseSelector(t *testing.T) {
	q, err := fleet.ParseSelector("platform=azure, release=debian-12,status=only2011,id=h1,id=h2,hostname=web")
	if err != nil || q.Dims["platform"] != "azure" || q.Dims["release"] != "debian-12" || q.Status != "only2011" || len(q.IDs) != 2 || q.Hostname != "web" {
		t.Fatalf("ParseSelector = %+v, %v", q, err)
	}
	for _, bad := range []string{"platform", "colour=red"} {
		if _, err := fleet.ParseSelector(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// ingest collects a host with the agent and stores its report through the
// service, as the API does.
func ingest(t *testing.T, s *fleet.Service, id string, src agent.Source) {
	t.Helper()
	ctx := context.Background()
	col, err := agent.Collect(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	for d, b := range col.Blobs {
		if err := s.Store.PutBlob(ctx, store.Blob{Digest: d, Kind: b.Kind, Data: b.Data}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Store.Enroll(ctx, store.Host{ID: id, Hostname: src.Hostname, EnrolledAt: now}, store.Token{Hash: []byte(id), CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(col.Report)
	if _, err := s.Ingest(ctx, id, body); err != nil {
		t.Fatal(err)
	}
}

// TestWhatIfFixture: the fixture image under the real AMI variables, on a
// few hosts each: an SBAT level that revokes Debian's GRUB generation stops
// the hosts with Secure Boot on and spares those with it off; Debian's own
// dual-signed shim package stops none; the 2023 CA added to db stops none.
func TestWhatIfFixture(t *testing.T) {
	testfixtures.Long(t, testfixtures.Fixtures)
	img := testfixtures.Path(t, "debian.raw")
	s := newService(t)
	for i := 0; i < 3; i++ {
		ingest(t, s, fmt.Sprintf("on%d", i), agent.Source{Root: img, EFIVars: testfixtures.Data("secureboot", "efivars-shim-test-data-1"), Hostname: fmt.Sprintf("on%d", i)})
	}
	ingest(t, s, "off0", agent.Source{Root: img, EFIVars: testfixtures.Data("secureboot", "efivars-shim-test-data-0"), Hostname: "off0"})
	ingest(t, s, "nofw", agent.Source{Root: img, Hostname: "nofw"})
	ctx := context.Background()

	rd, err := s.Readiness(ctx, nil, fleet.Query{})
	if err != nil || rd.Total.Hosts != 5 || rd.DistinctStates != 3 || rd.Total.UnknownFirmware != 1 || rd.Total.SecureBootOff != 1 || rd.Total.Only2011 != 4 {
		t.Fatalf("readiness = %+v, %v", rd, err)
	}

	req := fleet.ChangeRequest{SBATLevel: []byte("sbat,1,2026010100\nshim,4\ngrub,6\n"), SBATLevelName: "grub6.txt"}
	c, err := req.Parse()
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.WhatIf(ctx, c, fleet.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(w.StopBooting, " ") != "on0 on1 on2" || w.KeepBooting != 1 || strings.Join(w.Unknown, " ") != "nofw" || w.DistinctStates != 3 {
		t.Fatalf("grub,6: %+v", w)
	}
	if !w.Groups[0].Stop || w.Groups[0].Hosts != 3 || !strings.Contains(w.Groups[0].Reason, "grubx64.efi") {
		t.Fatalf("grub,6 groups: %+v", w.Groups)
	}
	// A selector narrows it.
	w, _ = s.WhatIf(ctx, c, fleet.Query{IDs: []string{"on1", "off0"}})
	if strings.Join(w.StopBooting, " ") != "on1" || w.Hosts != 2 {
		t.Fatalf("grub,6 on two hosts: %+v", w)
	}

	debs, _ := filepath.Glob(filepath.Join(testfixtures.Repo(), ".cache", "debs", "shim-signed_*.deb"))
	if len(debs) == 0 {
		testfixtures.Deb(t, "shim-signed")
		debs, _ = filepath.Glob(filepath.Join(testfixtures.Repo(), ".cache", "debs", "shim-signed_*.deb"))
	}
	if len(debs) == 0 {
		t.Fatal("no shim-signed .deb under .cache/debs (scripts/fetch-debs.sh)")
	}
	deb, err := os.ReadFile(debs[0])
	if err != nil {
		t.Fatal(err)
	}
	c, err = (&fleet.ChangeRequest{ShimPackage: deb, ShimPackageName: filepath.Base(debs[0])}).Parse()
	if err != nil {
		t.Fatal(err)
	}
	w, err = s.WhatIf(ctx, c, fleet.Query{})
	if err != nil || len(w.StopBooting) != 0 || w.KeepBooting != 4 || len(w.Unknown) != 1 {
		t.Fatalf("Debian's shim package: %+v, %v", w, err)
	}

	// Every boot stage a package installs is judged, not only its first
	// shim: Debian's shim (twice, as an rpm installs it) with Debian's own
	// MokManager and fallback stops none; the same with a fallback whose
	// bytes no longer match its signature stops the hosts whose firmware
	// enforces, naming the fallback.
	shim := gatetest.ReadDebFile(t, "shim-signed/usr/lib/shim/shimx64.efi.signed")
	mm := gatetest.ReadDebFile(t, "shim-helpers-amd64-signed/usr/lib/shim/mmx64.efi.signed")
	fb := gatetest.ReadDebFile(t, "shim-helpers-amd64-signed/usr/lib/shim/fbx64.efi.signed")
	bad := append([]byte(nil), fb...)
	bad[len(bad)/2] ^= 0xff
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		fb   []byte
		stop string
	}{{"boot-stages-good", fb, ""}, {"boot-stages-bad-fallback", bad, "on0 on1 on2"}} {
		files := map[string][]byte{"usr/lib/shim/shimx64.efi.signed": shim, "boot/efi/EFI/BOOT/BOOTX64.EFI": shim,
			"usr/lib/shim/mmx64.efi.signed": mm, "usr/lib/shim/fbx64.efi.signed": tc.fb}
		b, err := os.ReadFile(gatetest.PlainDeb(t, dir, tc.name, files, true))
		if err != nil {
			t.Fatal(err)
		}
		c, err := (&fleet.ChangeRequest{ShimPackage: b, ShimPackageName: tc.name + ".deb"}).Parse()
		if err != nil {
			t.Fatal(err)
		}
		if len(c.ShimsAlso) != 1 || len(c.Helpers) != 2 {
			t.Fatalf("%s: shims also %d, helpers %d", tc.name, len(c.ShimsAlso), len(c.Helpers))
		}
		w, err := s.WhatIf(ctx, c, fleet.Query{})
		if err != nil || strings.Join(w.StopBooting, " ") != tc.stop {
			t.Fatalf("%s: stop %v, %v", tc.name, w.StopBooting, err)
		}
		if tc.stop != "" && (!w.Groups[0].Stop || !strings.Contains(w.Groups[0].Reason, "fbx64.efi.signed") || strings.Contains(w.Groups[0].Reason, "mmx64")) {
			t.Fatalf("%s: groups %+v", tc.name, w.Groups)
		}
	}

	cert, err := os.ReadFile(testfixtures.Data("secureboot", "certs", "db-microsoft-uefi-ca-2023.der"))
	if err != nil {
		t.Fatal(err)
	}
	c, err = (&fleet.ChangeRequest{DBAdd: [][]byte{cert}, DBAddNames: []string{"db-microsoft-uefi-ca-2023.der"}}).Parse()
	if err != nil {
		t.Fatal(err)
	}
	w, err = s.WhatIf(ctx, c, fleet.Query{})
	if err != nil || len(w.StopBooting) != 0 || w.KeepBooting != 4 {
		t.Fatalf("2023 CA added to db: %+v, %v", w, err)
	}
	// Hosts behind a count.
	hs, err := s.Hosts(ctx, fleet.Query{Status: "stopsWith2023OnlyShim"})
	if err != nil || len(hs) != 3 {
		t.Fatalf("stopsWith2023OnlyShim = %+v, %v", hs, err)
	}
}
