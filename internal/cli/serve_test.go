package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/vouch-dev/vouch/internal/agent"
	"github.com/vouch-dev/vouch/internal/api"
	"github.com/vouch-dev/vouch/internal/fleet"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// serveProcess runs `vouch serve` as its own process (this test binary).
func serveProcess(t *testing.T, listen, data string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "serve", "--listen", listen, "--data", data)
	cmd.Env = append(os.Environ(), "VOUCH_TEST_RUN_CLI=1")
	log, err := os.Create(filepath.Join(t.TempDir(), "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + listen + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return cmd
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(log.Name())
			t.Fatalf("vouch serve did not answer on %s: %v\n%s", listen, err, b)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func offlineRoot(t *testing.T, model string) string {
	t.Helper()
	r := t.TempDir()
	for p, s := range map[string]string{
		"etc/os-release":                "ID=debian\nVERSION_ID=12\n",
		"sys/class/dmi/id/sys_vendor":   "QEMU\n",
		"sys/class/dmi/id/product_name": model + "\n",
		"boot/efi/EFI/BOOT/readme.txt":  "x",
	} {
		os.MkdirAll(filepath.Join(r, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(r, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// TestServeContract runs the commands exactly as the contract names
// them, then kills the server with SIGKILL in the middle of ingestion and
// checks that every acknowledged report survived.
func TestServeContract(t *testing.T) {
	data, addr := t.TempDir(), freeAddr(t)
	srv := serveProcess(t, addr, data)
	url := "http://" + addr
	info, err := os.Stat(filepath.Join(data, "admin.token"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("admin.token: %v, %v", info, err)
	}
	b, _ := os.ReadFile(filepath.Join(data, "admin.token"))
	admin := strings.TrimSpace(string(b))

	tok := func(role string) string {
		code, out, errs := run(t, "token", "create", "--role", role, "--server", url, "--token", admin)
		if code != 0 || !strings.HasPrefix(out, "vch_") {
			t.Fatalf("token create --role %s: %d %q %q", role, code, out, errs)
		}
		return strings.TrimSpace(out)
	}
	enroll, reader := tok("enroll"), tok("reader")
	tok("admin")
	tok("worker")
	if code, _, _ := run(t, "token", "create", "--role", "god", "--server", url, "--token", admin); code != ExitError {
		t.Errorf("unknown role: exit %d", code)
	}

	state := t.TempDir()
	vars := testfixtures.Data("secureboot", "efivars-shim-test-data-1")
	args := []string{"agent", "--server", url, "--enroll", enroll, "--state", state, "--root", offlineRoot(t, "pc"), "--efivars", vars, "--hostname", "h1", "--config", filepath.Join(state, "none.conf"), "--once"}
	if code, _, errs := run(t, args...); code != 0 {
		t.Fatalf("agent: exit %d: %s", code, errs)
	}
	if code, _, errs := run(t, args...); code != 0 || !strings.Contains(errs, "unchanged") {
		t.Fatalf("agent again: exit %d: %s", code, errs)
	}

	code, out, errs := run(t, "fleet", "hosts", "--server", url, "--token", reader, "--format", "json")
	var hosts struct {
		Hosts []map[string]json.RawMessage `json:"hosts"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &hosts) != nil || len(hosts.Hosts) != 1 {
		t.Fatalf("fleet hosts: %d %s %s", code, out, errs)
	}
	for _, k := range []string{"id", "hostname", "secureBootEnabled", "bootsToday", "bootsWith2023OnlyShim", "firmwareTrusts"} {
		if _, ok := hosts.Hosts[0][k]; !ok {
			t.Errorf("fleet hosts JSON lacks %q: %s", k, out)
		}
	}
	var trusts []string
	json.Unmarshal(hosts.Hosts[0]["firmwareTrusts"], &trusts)
	if strings.Join(trusts, ",") != "microsoft-uefi-ca-2011,microsoft-windows-production-pca-2011" {
		t.Errorf("firmwareTrusts = %s", hosts.Hosts[0]["firmwareTrusts"])
	}
	code, out, _ = run(t, "fleet", "canaries", "--server", url, "--token", reader, "--dims", "platform,model,release", "--pairwise", "-o", "json")
	var can map[string]json.RawMessage
	if code != 0 || json.Unmarshal([]byte(out), &can) != nil || can["hosts"] == nil || strings.TrimSpace(string(can["lowerBound"])) != "1" {
		t.Errorf("fleet canaries: %d %s", code, out)
	}
	code, out, _ = run(t, "fleet", "whatif", "--server", url, "--token", reader, "--dbx-update", testfixtures.Data("secureboot", "dbx", "DBXUpdate-amd64.bin"), "--format", "json")
	var wi map[string]json.RawMessage
	if code != 0 || json.Unmarshal([]byte(out), &wi) != nil || strings.Join(strings.Fields(string(wi["stopBooting"])), "") != "[]" {
		t.Errorf("fleet whatif: %d %s", code, out)
	}
	code, out, _ = run(t, "fleet", "readiness", "--server", url, "--token", reader, "--by", "platform")
	if code != 0 || !strings.Contains(out, "qemu") || !strings.Contains(out, "total") {
		t.Errorf("fleet readiness: %d\n%s", code, out)
	}
	if code, _, errs := run(t, "fleet", "hosts", "--server", url, "--token", enroll); code != ExitError || !strings.Contains(errs, "403") {
		t.Errorf("fleet hosts with an enrolment token: %d %s", code, errs)
	}

	// kill -9 during ingestion.
	ctx := context.Background()
	ec, _ := api.NewClient(url, enroll, "")
	const n = 40
	type host struct{ id, cred string }
	hs := make([]host, n)
	bodies := make([][]byte, n)
	for i := range hs {
		e, err := ec.Enroll(ctx, fmt.Sprintf("k%02d", i))
		if err != nil {
			t.Fatal(err)
		}
		hs[i] = host{e.HostID, e.Credential}
		col, err := agent.Collect(ctx, agent.Source{Root: offlineRoot(t, fmt.Sprintf("model-%02d", i)), Hostname: fmt.Sprintf("k%02d", i)})
		if err != nil {
			t.Fatal(err)
		}
		col.Report.HostID = e.HostID
		bodies[i], _ = json.Marshal(col.Report)
	}
	var mu sync.Mutex
	var acked []int
	var count atomic.Int32
	killed := make(chan struct{})
	var wg sync.WaitGroup
	for i := range hs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, _ := api.NewClient(url, hs[i].cred, "")
			if _, err := c.Report(ctx, bodies[i]); err == nil {
				mu.Lock()
				acked = append(acked, i)
				mu.Unlock()
				if count.Add(1) == n/3 {
					srv.Process.Kill() // SIGKILL
					close(killed)
				}
			}
		}(i)
	}
	wg.Wait()
	select {
	case <-killed:
	default:
		srv.Process.Kill()
	}
	srv.Wait()
	serveProcess(t, addr, data)
	rc, _ := api.NewClient(url, reader, "")
	sort.Ints(acked)
	if len(acked) < n/3 {
		t.Fatalf("only %d reports acknowledged before the kill", len(acked))
	}
	for _, i := range acked {
		r, err := rc.Hosts(ctx, fleet.Query{IDs: []string{hs[i].id}})
		if err != nil || len(r.Hosts) != 1 || r.Hosts[0].Dims["model"] != fmt.Sprintf("QEMU model-%02d", i) {
			t.Fatalf("acknowledged report %d lost or mixed after kill -9: %+v %v", i, r, err)
		}
	}
	t.Logf("%d of %d reports acknowledged before SIGKILL; all present after restart", len(acked), n)
}

// TestSystemdUnits: the unit files in dist/systemd run commands with flags
// that exist.
func TestSystemdUnits(t *testing.T) {
	for file, cmd := range map[string]func() *cobra.Command{"vouch-agent.service": newAgentCmd, "vouch-serve.service": newServeCmd} {
		b, err := os.ReadFile(filepath.Join(testfixtures.Repo(), "dist", "systemd", file))
		if err != nil {
			t.Fatal(err)
		}
		var exec string
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "ExecStart="); ok {
				exec = v
			}
		}
		f := strings.Fields(strings.NewReplacer("${VOUCH_SERVER}", "http://127.0.0.1:1", "${VOUCH_LISTEN}", "127.0.0.1:1", "$VOUCH_SERVE_ARGS", "").Replace(exec))
		if len(f) < 3 || f[0] != "/usr/local/bin/vouch" {
			t.Fatalf("%s: ExecStart=%q", file, exec)
		}
		c := cmd()
		if err := c.ParseFlags(f[2:]); err != nil {
			t.Errorf("%s: %v", file, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(testfixtures.Repo(), "dist", "systemd", "vouch-agent.timer")); err != nil || !strings.Contains(string(b), "RandomizedDelaySec") {
		t.Errorf("vouch-agent.timer: %v", err)
	}
}
