package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vouch-dev/vouch/internal/agent"
	"github.com/vouch-dev/vouch/internal/api"
	"github.com/vouch-dev/vouch/internal/fleet"
	"github.com/vouch-dev/vouch/internal/pgtest"
	"github.com/vouch-dev/vouch/internal/store"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// server is a real vouch server on 127.0.0.1.
type server struct {
	URL, Admin, Data string
	stop             func()
}

func startServer(t *testing.T, data, database string, lim api.Limits) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *server, 1)
	done := make(chan error, 1)
	go func() {
		done <- api.Serve(ctx, api.ServeOptions{Listen: "127.0.0.1:0", DataDir: data, Database: database, Limits: lim,
			Ready: func(addr, tok string) {
				b, err := os.ReadFile(tok)
				if err != nil {
					panic(err)
				}
				ready <- &server{URL: addr, Admin: strings.TrimSpace(string(b)), Data: data}
			}})
	}()
	var s *server
	select {
	case s = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v", err)
	}
	stopped := false
	s.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}
	t.Cleanup(s.stop)
	return s
}

func client(t *testing.T, s *server, token string) *api.Client {
	t.Helper()
	c, err := api.NewClient(s.URL, token, "")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// hostRoot makes a small offline host: os-release, DMI, an ESP directory
// and apt sources; firmware variables come from the real AMI dumps.
func hostRoot(t *testing.T, vendor, product string) string {
	t.Helper()
	r := t.TempDir()
	files := map[string]string{
		"etc/os-release":                 "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
		"etc/apt/sources.list":           "deb http://deb.debian.org/debian bookworm main\ndeb http://deb.debian.org/debian-security bookworm-security main\n",
		"etc/crypttab":                   "root UUID=1234 none luks,tpm2-device=auto,tpm2-pcrs=7+11\n",
		"sys/class/dmi/id/sys_vendor":    vendor + "\n",
		"sys/class/dmi/id/product_name":  product + "\n",
		"sys/class/dmi/id/bios_vendor":   "EDK II\n",
		"sys/class/dmi/id/bios_version":  "1.0\n",
		"boot/efi/EFI/BOOT/README.txt":   "not an EFI binary\n",
		"sys/class/dmi/id/board_name":    "board\n",
		"sys/class/dmi/id/chassis_asset": "\n",
	}
	for p, s := range files {
		if err := os.MkdirAll(filepath.Join(r, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(r, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func amiVars(n int) string {
	return testfixtures.Data("secureboot", fmt.Sprintf("efivars-shim-test-data-%d", n))
}

func runAgent(t *testing.T, s *server, enroll, state string, src agent.Source) *agent.Result {
	t.Helper()
	res, err := agent.Run(context.Background(), agent.Options{Server: s.URL, EnrollToken: enroll, StateDir: state, Source: src, Once: true, Attempts: 2})
	if err != nil {
		t.Fatalf("agent: %v", err)
	}
	return res
}

func TestServerSQLite(t *testing.T) {
	data := t.TempDir()
	suite(t, func(t *testing.T) *server { return startServer(t, data, "", api.Limits{}) })
	// admin.token is written once, mode 0600.
	info, err := os.Stat(filepath.Join(data, "admin.token"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("admin.token: %v %v", info, err)
	}
}

func TestServerPostgres(t *testing.T) {
	testfixtures.Long(t, testfixtures.Services)
	c := pgtest.Start(t)
	u := c.NewDatabase(t)
	data := t.TempDir()
	suite(t, func(t *testing.T) *server { return startServer(t, data, u, api.Limits{}) })
}

// TestDatabaseGone: PostgreSQL stops while hosts report. The server answers
// a clear 5xx, the agent retries and spools, and once the database is back
// the spooled report arrives; nothing is lost or mixed.
func TestDatabaseGone(t *testing.T) {
	testfixtures.Long(t, testfixtures.Services)
	ctx := context.Background()
	c := pgtest.Start(t)
	s := startServer(t, t.TempDir(), c.NewDatabase(t), api.Limits{})
	admin := client(t, s, s.Admin)
	enroll, _ := admin.CreateToken(ctx, store.RoleEnroll, "")
	reader, _ := admin.CreateToken(ctx, store.RoleReader, "")
	state := t.TempDir()
	src := agent.Source{Root: hostRoot(t, "QEMU", "pc"), EFIVars: amiVars(1), Hostname: "db-gone"}
	runAgent(t, s, enroll, state, src)

	if err := c.Halt(); err != nil {
		t.Fatal(err)
	}
	if _, err := client(t, s, reader).Hosts(ctx, fleet.Query{}); status(err) != http.StatusInternalServerError {
		t.Fatalf("query while the database is gone: %v", err)
	}
	src.Config.Label = "after-outage"
	res, err := agent.Run(ctx, agent.Options{Server: s.URL, StateDir: state, Source: src, Once: true, Attempts: 3, BackoffBase: time.Millisecond})
	if err == nil || !res.Spooled {
		t.Fatalf("agent while the database is gone: %+v %v", res, err)
	}
	if err := c.Resume(); err != nil {
		t.Fatal(err)
	}
	res, err = agent.Run(ctx, agent.Options{Server: s.URL, StateDir: state, Source: src, Once: true, Attempts: 5, BackoffBase: 10 * time.Millisecond})
	if err != nil || res.FromSpool != 1 {
		t.Fatalf("agent after the database came back: %+v %v", res, err)
	}
	h, err := client(t, s, reader).Hosts(ctx, fleet.Query{Dims: map[string]string{"label": "after-outage"}})
	if err != nil || len(h.Hosts) != 1 || h.Hosts[0].Hostname != "db-gone" {
		t.Fatalf("spooled report after the outage: %+v %v", h, err)
	}
}

// suite runs the API's behaviour against a server start function (called
// again to restart on the same data).
func suite(t *testing.T, start func(*testing.T) *server) {
	ctx := context.Background()
	s := start(t)
	admin := client(t, s, s.Admin)
	enroll, err := admin.CreateToken(ctx, store.RoleEnroll, "test")
	if err != nil {
		t.Fatal(err)
	}
	reader, _ := admin.CreateToken(ctx, store.RoleReader, "")

	// Two hosts: AMI dump 1 (Secure Boot on, 2011 CAs, a KEK) and dump 0.
	st1, st2 := t.TempDir(), t.TempDir()
	r1 := runAgent(t, s, enroll, st1, agent.Source{Root: hostRoot(t, "QEMU", "Standard PC (Q35 + ICH9, 2009)"), EFIVars: amiVars(1), Hostname: "one"})
	r2 := runAgent(t, s, enroll, st2, agent.Source{Root: hostRoot(t, "Microsoft Corporation", "Virtual Machine"), EFIVars: amiVars(0), Hostname: "two"})
	if !r1.Sent || r1.Uploaded == 0 || !r2.Sent {
		t.Fatalf("first reports: %+v %+v", r1, r2)
	}
	// Again, unchanged: a heartbeat, nothing uploaded.
	if r := runAgent(t, s, "", st1, agent.Source{Root: hostRoot(t, "QEMU", "Standard PC (Q35 + ICH9, 2009)"), EFIVars: amiVars(1), Hostname: "one"}); r.Sent || r.Uploaded != 0 {
		t.Fatalf("unchanged facts were sent again: %+v", r)
	}

	t.Run("Roles", func(t *testing.T) {
		rc := client(t, s, reader)
		if _, err := rc.CreateToken(ctx, store.RoleAdmin, ""); status(err) != http.StatusForbidden {
			t.Fatalf("reader created a token: %v", err)
		}
		ec := client(t, s, enroll)
		if _, err := ec.Hosts(ctx, fleet.Query{}); status(err) != http.StatusForbidden {
			t.Fatalf("enrolment token read hosts: %v", err)
		}
		forged := client(t, s, "vch_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
		if _, err := forged.Report(ctx, []byte(`{}`)); status(err) != http.StatusUnauthorized {
			t.Fatalf("forged credential: %v", err)
		}
		if _, err := client(t, s, "").Hosts(ctx, fleet.Query{}); status(err) != http.StatusUnauthorized {
			t.Fatalf("no token: %v", err)
		}
		if _, err := admin.CreateToken(ctx, "root", ""); status(err) != http.StatusBadRequest {
			t.Fatalf("unknown role: %v", err)
		}
	})

	hosts, err := client(t, s, reader).Hosts(ctx, fleet.Query{})
	if err != nil || len(hosts.Hosts) != 2 {
		t.Fatalf("hosts = %+v, %v", hosts, err)
	}
	if hosts.Next != "" {
		t.Fatalf("an unpaged list has a next cursor %q", hosts.Next)
	}
	t.Run("Paging", func(t *testing.T) {
		rc := client(t, s, reader)
		p1, err := rc.HostsPage(ctx, fleet.Query{}, fleet.Page{Limit: 1})
		if err != nil || len(p1.Hosts) != 1 || p1.Hosts[0].ID != hosts.Hosts[0].ID || p1.Next != hosts.Hosts[0].ID {
			t.Fatalf("page 1 = %+v, %v", p1, err)
		}
		p2, err := rc.HostsPage(ctx, fleet.Query{}, fleet.Page{Limit: 1, After: p1.Next})
		if err != nil || len(p2.Hosts) != 1 || p2.Hosts[0].ID != hosts.Hosts[1].ID || p2.Next == "" {
			t.Fatalf("page 2 = %+v, %v", p2, err)
		}
		p3, err := rc.HostsPage(ctx, fleet.Query{}, fleet.Page{Limit: 1, After: p2.Next})
		if err != nil || len(p3.Hosts) != 0 || p3.Next != "" {
			t.Fatalf("page 3 = %+v, %v", p3, err)
		}
		// A selection pages too; the contract keeps "hosts" an array.
		p, err := rc.HostsPage(ctx, fleet.Query{Status: "secureBootOff"}, fleet.Page{Limit: 5})
		if err != nil || len(p.Hosts) != 1 || p.Hosts[0].Hostname != "two" || p.Next != "" {
			t.Fatalf("secureBootOff page = %+v, %v", p, err)
		}
		for _, bad := range []string{"0", "-1", "x", "10001"} {
			req, _ := http.NewRequest(http.MethodGet, s.URL+"/v1/hosts?limit="+bad, nil)
			req.Header.Set("Authorization", "Bearer "+reader)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("limit=%s: %d, want 400", bad, resp.StatusCode)
			}
		}
	})
	byName := map[string]fleet.HostAnswer{}
	for _, h := range hosts.Hosts {
		byName[h.Hostname] = h
	}
	one, two := byName["one"], byName["two"]
	if one.ID != r1.HostID || !one.SecureBootEnabled || !one.PCR7Sealed || one.Dims["platform"] != "qemu" || two.Dims["platform"] != "hyperv" || two.SecureBootEnabled {
		t.Fatalf("host answers: %+v / %+v", one, two)
	}
	if strings.Join(one.FirmwareTrusts, ",") != "microsoft-uefi-ca-2011,microsoft-windows-production-pca-2011" {
		t.Fatalf("firmwareTrusts = %v", one.FirmwareTrusts)
	}

	t.Run("ForeignReport", func(t *testing.T) {
		c1 := client(t, s, credential(t, st1))
		body := reportBody(t, agent.Source{Root: hostRoot(t, "x", "y"), EFIVars: amiVars(0), Hostname: "evil"}, two.ID)
		if _, err := c1.Report(ctx, body); status(err) != http.StatusForbidden {
			t.Fatalf("report for another host: %v", err)
		}
		h, _ := client(t, s, reader).Hosts(ctx, fleet.Query{IDs: []string{two.ID}})
		if len(h.Hosts) != 1 || h.Hosts[0].Hostname != "two" {
			t.Fatalf("host two was changed: %+v", h.Hosts)
		}
	})
	t.Run("MalformedReports", func(t *testing.T) {
		c1 := client(t, s, credential(t, st1))
		good := reportBody(t, agent.Source{Root: hostRoot(t, "QEMU", "pc"), EFIVars: amiVars(1), Hostname: "one"}, "")
		for name, body := range map[string][]byte{
			"truncated":     good[:len(good)/2],
			"trailing":      append(append([]byte{}, good...), []byte(`{}`)...),
			"unknown field": []byte(`{"hostname":"one","bogus":1}`),
			"no hostname":   []byte(`{"hostname":""}`),
			"bad digest":    []byte(`{"hostname":"one","esp":[{"path":"EFI/x.efi","digest":"zz","size":1}]}`),
			"bad path":      []byte(`{"hostname":"one","esp":[{"path":"../etc/passwd","digest":"` + strings.Repeat("a", 64) + `","size":1}]}`),
			"missing blob":  []byte(`{"hostname":"one","esp":[{"path":"EFI/x.efi","digest":"` + strings.Repeat("a", 64) + `","size":1}]}`),
		} {
			_, err := c1.Report(ctx, body)
			var se *api.StatusError
			if !errors.As(err, &se) || se.Code != http.StatusBadRequest || se.Message == "" {
				t.Errorf("%s: %v, want 400 with a reason", name, err)
			}
		}
		h, _ := client(t, s, reader).Hosts(ctx, fleet.Query{IDs: []string{one.ID}})
		if h.Hosts[0].Hostname != "one" || !h.Hosts[0].SecureBootEnabled {
			t.Fatalf("a refused report changed the host: %+v", h.Hosts[0])
		}
	})
	t.Run("BlobDigestMismatch", func(t *testing.T) {
		c1 := client(t, s, credential(t, st1))
		err := c1.PutBlob(ctx, fleet.Digest([]byte("a")), "file", []byte("b"))
		if status(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "digest mismatch") {
			t.Fatalf("digest mismatch: %v", err)
		}
		miss, _ := c1.MissingBlobs(ctx, []string{fleet.Digest([]byte("a")), fleet.Digest([]byte("b"))})
		if len(miss) != 2 {
			t.Fatalf("a mismatched blob was stored: %v", miss)
		}
	})
	t.Run("HugeBody", func(t *testing.T) {
		// 1 GB of report: refused with 413 once the limit is read, not
		// buffered.
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/reports", io.LimitReader(zeros{}, 1<<30))
		req.Header.Set("Authorization", "Bearer "+credential(t, st1))
		req.ContentLength = 1 << 30
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("1 GB body: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("1 GB body: %d", resp.StatusCode)
		}
	})
	t.Run("OpenAPI", func(t *testing.T) {
		resp, err := http.Get(s.URL + "/openapi.json")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var doc struct {
			Paths map[string]map[string]any `json:"paths"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"/v1/tokens", "/v1/enroll", "/v1/blobs/missing", "/v1/blobs/{digest}", "/v1/reports", "/v1/seen", "/v1/hosts", "/v1/hosts/{id}", "/v1/readiness", "/v1/whatif", "/v1/canaries"} {
			if doc.Paths[p] == nil {
				t.Errorf("openapi.json lacks %s", p)
			}
		}
	})
	t.Run("Questions", func(t *testing.T) {
		rc := client(t, s, reader)
		rd, err := rc.Readiness(ctx, []string{"platform"}, fleet.Query{})
		if err != nil || rd.Total.Hosts != 2 || rd.Total.SecureBootOff != 1 || rd.Total.Only2011 != 2 || rd.Total.PCR7Sealed != 2 || len(rd.Groups) != 2 || rd.Total.CanAcceptDBUpdate != 1 {
			t.Fatalf("readiness = %+v, %v", rd, err)
		}
		h, err := rc.Hosts(ctx, fleet.Query{Status: "secureBootOff"})
		if err != nil || len(h.Hosts) != 1 || h.Hosts[0].ID != two.ID {
			t.Fatalf("secureBootOff hosts = %+v, %v", h, err)
		}
		if _, err := rc.Hosts(ctx, fleet.Query{Status: "nope"}); status(err) != http.StatusBadRequest {
			t.Fatalf("unknown status: %v", err)
		}
		cn, err := rc.Canaries(ctx, fleet.CanaryOptions{Dims: []string{"platform", "release"}})
		if err != nil || len(cn.Hosts) != 2 || cn.LowerBound != 2 || cn.Gap != 0 {
			t.Fatalf("canaries = %+v, %v", cn, err)
		}
		dbx, err := os.ReadFile(testfixtures.Data("secureboot", "dbx", "DBXUpdate-amd64.bin"))
		if err != nil {
			t.Fatal(err)
		}
		w, err := rc.WhatIf(ctx, fleet.ChangeRequest{DBXUpdate: dbx, DBXUpdateName: "DBXUpdate.bin"})
		if err != nil || w.Hosts != 2 || w.DistinctStates != 2 {
			t.Fatalf("whatif = %+v, %v", w, err)
		}
		if _, err := rc.WhatIf(ctx, fleet.ChangeRequest{DBXUpdate: []byte("garbage")}); status(err) != http.StatusBadRequest {
			t.Fatalf("garbage dbx update: %v", err)
		}
	})
	t.Run("RestartDuringIngest", func(t *testing.T) {
		// Hosts report concurrently while the server stops; after a
		// restart every acknowledged report is there and no host's data
		// is mixed with another's.
		const n = 12
		acks := make(chan *fleet.Ack, n)
		var wg sync.WaitGroup
		ec := client(t, s, enroll)
		bodies := make([][]byte, n)
		creds := make([]string, n)
		for i := 0; i < n; i++ {
			e, err := ec.Enroll(ctx, fmt.Sprintf("r%02d", i))
			if err != nil {
				t.Fatal(err)
			}
			creds[i] = e.Credential
			bodies[i] = reportBody(t, agent.Source{Root: hostRoot(t, "QEMU", fmt.Sprintf("m%d", i)), Hostname: fmt.Sprintf("r%02d", i)}, e.HostID)
		}
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				if a, err := client(t, s, creds[i]).Report(ctx, bodies[i]); err == nil {
					acks <- a
				}
			}(i)
			if i == n/2 {
				s.stop()
			}
		}
		wg.Wait()
		close(acks)
		s = start(t)
		rc := client(t, s, reader)
		for a := range acks {
			h, err := rc.Hosts(ctx, fleet.Query{IDs: []string{a.HostID}})
			if err != nil || len(h.Hosts) != 1 {
				t.Fatalf("acknowledged report of %s lost: %v", a.HostID, err)
			}
			var i int
			fmt.Sscanf(h.Hosts[0].Hostname, "r%d", &i)
			if got, want := h.Hosts[0].Dims["model"], fmt.Sprintf("QEMU m%d", i); got != want {
				t.Fatalf("host %s has model %q, want %q: data mixed", h.Hosts[0].Hostname, got, want)
			}
		}
	})
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func status(err error) int {
	var se *api.StatusError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

func credential(t *testing.T, stateDir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(stateDir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Credential string `json:"credential"`
	}
	json.Unmarshal(b, &st)
	return st.Credential
}

func reportBody(t *testing.T, src agent.Source, hostID string) []byte {
	t.Helper()
	col, err := agent.Collect(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	col.Report.HostID = hostID
	b, _ := json.Marshal(col.Report)
	return bytes.Clone(b)
}
