package agent_test

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vouch-dev/vouch/internal/agent"
	"github.com/vouch-dev/vouch/internal/api"
	"github.com/vouch-dev/vouch/internal/efi"
	"github.com/vouch-dev/vouch/internal/fleet"
	"github.com/vouch-dev/vouch/internal/secureboot"
	"github.com/vouch-dev/vouch/internal/store"
	"github.com/vouch-dev/vouch/internal/target"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// blobs serves a collection's blobs (and its state documents) to the
// evaluator, as the server's store would.
type blobs map[string][]byte

func (b blobs) Blob(_ context.Context, d string) (store.Blob, error) {
	if x, ok := b[d]; ok {
		return store.Blob{Digest: d, Data: x}, nil
	}
	return store.Blob{}, store.ErrNotFound
}

func rebuild(t *testing.T, col *agent.Collected) (*fleet.Evaluator, store.StatePair) {
	t.Helper()
	bs := blobs{}
	for d, b := range col.Blobs {
		bs[d] = b.Data
	}
	fwD, fwDoc, chD, chDoc := col.Report.StateDocs()
	if fwDoc != nil {
		bs[fwD] = fwDoc
	}
	bs[chD] = chDoc
	return fleet.NewEvaluator(bs), store.StatePair{FirmwareState: fwD, BootChain: chD}
}

// TestCollectParity collects the fixture image with the real AMI variable
// dumps, rebuilds the host from its blobs as the server does, and checks
// that the server's verdict equals `vouch secureboot`'s offline answer for
// the same image and variables.
func TestCollectParity(t *testing.T) {
	testfixtures.Long(t, testfixtures.Fixtures)
	for _, tc := range []struct{ root, vars string }{
		{testfixtures.Path(t, "debian.raw"), "efivars-shim-test-data-1"},
		{testfixtures.Path(t, "debian.raw"), "efivars-shim-test-data-0"},
		{testfixtures.Path(t, "debian.qcow2"), "efivars-shim-test-data-1"},
	} {
		t.Run(filepath.Base(tc.root)+"/"+tc.vars, func(t *testing.T) {
			vars := testfixtures.Data("secureboot", tc.vars)
			col, err := agent.Collect(context.Background(), agent.Source{Root: tc.root, EFIVars: vars, Hostname: "fixture"})
			if err != nil {
				t.Fatal(err)
			}
			r := col.Report
			if err := r.Validate(); err != nil {
				t.Fatalf("collected report does not validate: %v", err)
			}
			paths := map[string]bool{}
			for _, f := range r.ESP {
				paths[f.Path] = true
			}
			for _, p := range []string{"EFI/BOOT/BOOTX64.EFI", "EFI/debian/shimx64.efi", "EFI/debian/grubx64.efi", "EFI/debian/BOOTX64.CSV"} {
				if !paths[p] {
					t.Errorf("ESP file %s not collected (have %v)", p, paths)
				}
			}
			if len(r.Root) == 0 || !strings.HasPrefix(r.Root[0].Path, "boot/vmlinuz-") {
				t.Errorf("kernels = %+v", r.Root)
			}
			roles := map[string]bool{}
			for _, p := range r.Packages {
				roles[p.Role] = true
			}
			if !roles["shim"] || !roles["grub"] || !roles["kernel"] {
				t.Errorf("boot packages = %+v", r.Packages)
			}
			if r.OS.Release() != "debian-12" || !strings.Contains(r.Channel, "bookworm") {
				t.Errorf("os %+v channel %q", r.OS, r.Channel)
			}
			// Only Secure Boot variables: the AMI vendor ones stay home.
			for _, v := range r.Firmware.Vars {
				if strings.HasPrefix(v.Name, "AMD_") || strings.HasPrefix(v.Name, "AMI") {
					t.Errorf("vendor variable %s collected", v.Name)
				}
			}

			ev, pair := rebuild(t, col)
			st := ev.State(context.Background(), pair)
			if st.Err != "" {
				t.Fatal(st.Err)
			}
			// The offline answer.
			tg, err := target.Open(tc.root, target.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer tg.Close()
			vs, err := efi.ReadVarDir(os.DirFS(vars), vars)
			if err != nil {
				t.Fatal(err)
			}
			fw, err := secureboot.FromVars(vs)
			if err != nil {
				t.Fatal(err)
			}
			want := secureboot.AnalyzeTarget(tg, fw, secureboot.Options{})
			got := st.Report
			wt, gt := want.Transition, got.Transition
			wt.Advice, gt.Advice = "", "" // names the variable source
			if a, b := js(t, wt), js(t, gt); a != b {
				t.Errorf("transition differs:\nserver  %s\noffline %s", b, a)
			}
			if len(got.BootPaths) != len(want.BootPaths) {
				t.Fatalf("%d boot paths, offline %d", len(got.BootPaths), len(want.BootPaths))
			}
			for i := range want.BootPaths {
				w, g := want.BootPaths[i], got.BootPaths[i]
				if w.Name != g.Name || js(t, w.Boots) != js(t, g.Boots) || w.Verdict != g.Verdict || len(w.Stages) != len(g.Stages) {
					t.Errorf("boot path %d: server %s %v %q, offline %s %v %q", i, g.Name, g.Boots, g.Verdict, w.Name, w.Boots, w.Verdict)
				}
			}
		})
	}
}

func js(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func smallRoot(t *testing.T) string {
	r := t.TempDir()
	for p, s := range map[string]string{
		"etc/os-release":              "ID=debian\nVERSION_ID=12\n",
		"etc/hostname":                "small\n",
		"boot/efi/EFI/BOOT/notes.txt": "x",
	} {
		os.MkdirAll(filepath.Join(r, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(r, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

type srv struct {
	url, admin string
	stop       func()
}

func serve(t *testing.T, data, listen string) *srv {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *srv, 1)
	done := make(chan error, 1)
	go func() {
		done <- api.Serve(ctx, api.ServeOptions{Listen: listen, DataDir: data, Ready: func(addr, tok string) {
			b, _ := os.ReadFile(tok)
			ready <- &srv{url: addr, admin: strings.TrimSpace(string(b))}
		}})
	}()
	select {
	case s := <-ready:
		once := false
		s.stop = func() {
			if !once {
				once = true
				cancel()
				<-done
			}
		}
		t.Cleanup(s.stop)
		return s
	case err := <-done:
		cancel()
		t.Fatal(err)
	}
	return nil
}

// TestSpool: while the server is away the report is spooled; the next run
// delivers it first.
func TestSpool(t *testing.T) {
	ctx := context.Background()
	data, state := t.TempDir(), t.TempDir()
	s := serve(t, data, "127.0.0.1:0")
	c, _ := api.NewClient(s.url, s.admin, "")
	enroll, err := c.CreateToken(ctx, "enroll", "")
	if err != nil {
		t.Fatal(err)
	}
	src := agent.Source{Root: smallRoot(t), EFIVars: testfixtures.Data("secureboot", "efivars-shim-test-data-1")}
	o := agent.Options{Server: s.url, EnrollToken: enroll, StateDir: state, Source: src, Once: true, Attempts: 2, BackoffBase: 1}
	r, err := agent.Run(ctx, o)
	if err != nil || !r.Sent {
		t.Fatalf("first run: %+v %v", r, err)
	}
	addr := strings.TrimPrefix(s.url, "http://")
	s.stop()
	// The server is away: a changed report is spooled.
	o.Source.Config.Label = "canary-ring-1"
	r, err = agent.Run(ctx, o)
	if err == nil || r == nil || !r.Spooled {
		t.Fatalf("run with the server away: %+v %v", r, err)
	}
	if ents, _ := os.ReadDir(filepath.Join(state, "spool")); len(ents) != 1 {
		t.Fatalf("spool holds %d entries", len(ents))
	}
	// Back on the same address and data: the spooled report goes first,
	// then the current facts, unchanged since, as a heartbeat.
	if ln, err := net.Listen("tcp", addr); err == nil {
		ln.Close()
	}
	s = serve(t, data, addr)
	r, err = agent.Run(ctx, o)
	if err != nil || r.FromSpool != 1 || r.Sent {
		t.Fatalf("run after the server came back: %+v %v", r, err)
	}
	if ents, _ := os.ReadDir(filepath.Join(state, "spool")); len(ents) != 0 {
		t.Fatalf("spool not emptied: %d", len(ents))
	}
	reader, _ := c.CreateToken(ctx, "reader", "")
	rc, _ := api.NewClient(s.url, reader, "")
	h, err := rc.Hosts(ctx, fleet.Query{Dims: map[string]string{"label": "canary-ring-1"}})
	if err != nil || len(h.Hosts) != 1 || h.Hosts[0].Hostname != "small" {
		t.Fatalf("spooled report not stored: %+v %v", h, err)
	}
}

func TestConfig(t *testing.T) {
	p := filepath.Join(t.TempDir(), "agent.conf")
	os.WriteFile(p, []byte("# ring\nlabel = ring-1\nlineage=\"golden-2026.11\"\nchannel=stable\n"), 0o644)
	c, err := agent.ReadConfig(p)
	if err != nil || c != (agent.Config{Label: "ring-1", Lineage: "golden-2026.11", Channel: "stable"}) {
		t.Fatalf("ReadConfig = %+v, %v", c, err)
	}
	os.WriteFile(p, []byte("colour=blue\n"), 0o644)
	if _, err := agent.ReadConfig(p); err == nil || !strings.Contains(err.Error(), "unknown key") {
		t.Fatalf("unknown key: %v", err)
	}
	if c, err := agent.ReadConfig(filepath.Join(t.TempDir(), "none")); err != nil || c != (agent.Config{}) {
		t.Fatalf("missing config: %+v %v", c, err)
	}
}
