package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/vouch-dev/vouch/internal/agent"
	"github.com/vouch-dev/vouch/internal/api"
	"github.com/vouch-dev/vouch/internal/fleet"
	"github.com/vouch-dev/vouch/internal/pgtest"
	"github.com/vouch-dev/vouch/internal/store"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// TestTwoServersOnePostgres: two `vouch serve` processes behind a load
// balancer share one PostgreSQL database. Both start at once on an empty
// database (the migrations run once, under the advisory lock), agents enrol
// on one and report to either, and both servers give the same answers.
func TestTwoServersOnePostgres(t *testing.T) {
	testfixtures.Long(t, testfixtures.Services)
	ctx := context.Background()
	c := pgtest.Start(t)
	u := c.NewDatabase(t)

	// Start both together: each Serve opens the store and migrates.
	type started struct {
		s   *server
		err error
	}
	ch := make(chan started, 2)
	var cancels []context.CancelFunc
	var dones []chan error
	for i := 0; i < 2; i++ {
		sctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		cancels, dones = append(cancels, cancel), append(dones, done)
		data := t.TempDir()
		go func() {
			done <- api.Serve(sctx, api.ServeOptions{Listen: "127.0.0.1:0", DataDir: data, Database: u,
				Ready: func(addr, tok string) {
					b, err := os.ReadFile(tok)
					ch <- started{&server{URL: addr, Admin: strings.TrimSpace(string(b)), Data: data}, err}
				}})
		}()
	}
	t.Cleanup(func() {
		for i, cancel := range cancels {
			cancel()
			if err := <-dones[i]; err != nil {
				t.Errorf("serve %d: %v", i, err)
			}
		}
	})
	var srv []*server
	for len(srv) < 2 {
		select {
		case st := <-ch:
			if st.err != nil {
				t.Fatal(st.err)
			}
			srv = append(srv, st.s)
		case err := <-dones[0]:
			t.Fatalf("server 0 ended: %v", err)
		case err := <-dones[1]:
			t.Fatalf("server 1 ended: %v", err)
		}
	}
	// Each migration is recorded once.
	st, err := store.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg, err := pgx.ParseConfig(u)
	if err != nil {
		t.Fatal(err)
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	var n, distinct int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*), COUNT(DISTINCT version) FROM schema_migrations`).Scan(&n, &distinct); err != nil || n != distinct || n < 3 {
		t.Fatalf("schema_migrations: %d rows, %d versions, %v", n, distinct, err)
	}

	// A token made on one server works on the other.
	admin := client(t, srv[0], srv[0].Admin)
	enroll, err := admin.CreateToken(ctx, store.RoleEnroll, "fleet")
	if err != nil {
		t.Fatal(err)
	}
	reader, err := client(t, srv[1], srv[1].Admin).CreateToken(ctx, store.RoleReader, "people")
	if err != nil {
		t.Fatal(err)
	}
	// Six agents at once, each reporting to one server then the other
	// (a load balancer's choice), with a changed fact the second time.
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := 0; i < 6; i++ {
		root := hostRoot(t, "QEMU", fmt.Sprintf("pc-%d", i))
		state := t.TempDir()
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			src := agent.Source{Root: root, EFIVars: amiVars(i % 2), Hostname: fmt.Sprintf("lb-%d", i)}
			for round := 0; round < 2; round++ {
				if round == 1 {
					src.Config.Label = "second"
				}
				s := srv[(i+round)%2]
				if _, err := agent.Run(ctx, agent.Options{Server: s.URL, EnrollToken: enroll, StateDir: state, Source: src, Once: true, Attempts: 2}); err != nil {
					errs <- fmt.Errorf("agent %d round %d on %s: %w", i, round, s.URL, err)
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
	var answers [][]byte
	for _, s := range srv {
		rc := client(t, s, reader)
		rd, err := rc.Readiness(ctx, []string{"label", "platform"}, fleet.Query{})
		if err != nil {
			t.Fatal(err)
		}
		if rd.Total.Hosts != 6 || len(rd.Groups) != 1 || rd.Groups[0].By["label"] != "second" {
			t.Fatalf("readiness from %s: %+v", s.URL, rd)
		}
		hs, err := rc.Hosts(ctx, fleet.Query{})
		if err != nil || len(hs.Hosts) != 6 {
			t.Fatalf("hosts from %s: %d, %v", s.URL, len(hs.Hosts), err)
		}
		b, _ := json.Marshal(struct {
			R *fleet.Readiness
			H *api.HostsResponse
		}{rd, hs})
		answers = append(answers, b)
	}
	if string(answers[0]) != string(answers[1]) {
		t.Fatalf("the servers answer differently:\n%s\n%s", answers[0], answers[1])
	}
	// Each host reported twice (once per server): two history entries.
	hs, _ := st.Hosts(ctx, store.Filter{})
	for _, h := range hs {
		hist, err := st.History(ctx, h.ID, 10)
		if err != nil || len(hist) != 2 {
			t.Fatalf("history of %s: %d entries, %v", h.Hostname, len(hist), err)
		}
	}
}
