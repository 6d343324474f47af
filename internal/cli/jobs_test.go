package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vouch-dev/vouch/internal/api"
	"github.com/vouch-dev/vouch/internal/jobs"
	"github.com/vouch-dev/vouch/internal/pgtest"
	"github.com/vouch-dev/vouch/internal/store"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// proc runs this test binary as vouch with args; its output goes to a log
// file shown when the test fails.
type proc struct {
	cmd *exec.Cmd
	log string
	out bytes.Buffer
}

func startVouch(t *testing.T, name string, stdout bool, args ...string) *proc {
	t.Helper()
	p := &proc{log: filepath.Join(t.TempDir(), name+".log")}
	p.cmd = exec.Command(os.Args[0], args...)
	p.cmd.Env = append(os.Environ(), "VOUCH_TEST_RUN_CLI=1")
	f, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = f
	p.cmd.Stdout = f
	if stdout {
		p.cmd.Stdout = &p.out
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		p.cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			t.Logf("--- %s log:\n%s", name, b)
		}
	})
	return p
}

// jobServe starts vouch serve and waits for it to answer.
func jobServe(t *testing.T, listen, data string, extra ...string) *proc {
	t.Helper()
	p := startVouch(t, "serve", false, append([]string{"serve", "--listen", listen, "--data", data, "--rate", "1000", "--burst", "2000"}, extra...)...)
	waitFor(t, 60*time.Second, "vouch serve answering", func() bool {
		resp, err := http.Get("http://" + listen + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return p
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond) // polling a condition with a deadline
	}
}

type jobSetup struct {
	url, admin, worker string
	cl                 *api.Client
	serve              *proc
}

func setupJobServer(t *testing.T, extra ...string) (jobSetup, func() *proc) {
	listen, data := freeAddr(t), t.TempDir()
	start := func() *proc { return jobServe(t, listen, data, extra...) }
	first := start()
	b, err := os.ReadFile(filepath.Join(data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	s := jobSetup{url: "http://" + listen, admin: strings.TrimSpace(string(b)), serve: first}
	code, out, errs := run(t, "token", "create", "--role", "worker", "--server", s.url, "--token", s.admin)
	if code != 0 {
		t.Fatalf("token create --role worker: %d %s", code, errs)
	}
	s.worker = strings.TrimSpace(out)
	s.cl, _ = api.NewClient(s.url, s.admin, "")
	return s, start
}

// TestJobCommands drives the CLI contract against a real server and a real
// `vouch worker` running an offline case of the fixture image (no VM).
func TestJobCommands(t *testing.T) {
	testfixtures.Long(t, testfixtures.Fixtures)
	img := testfixtures.Path(t, "debian-cloud.qcow2")
	s, _ := setupJobServer(t)
	base := []string{"--server", s.url, "--token", s.admin}
	tmpl := filepath.Join(t.TempDir(), "offline.json")
	os.WriteFile(tmpl, []byte(`{"properties":{"selections":[{"caseName":["storage.fstab-root-uuid"]}],"retryCount":1}}`), 0o600)
	if code, out, errs := run(t, append([]string{"template", "create", "offline", "--file", tmpl, "-o", "json"}, base...)...); code != 0 || !strings.Contains(out, `"retryCount": 1`) {
		t.Fatalf("template create: %d %s %s", code, out, errs)
	}
	if code, out, _ := run(t, append([]string{"template", "list", "--query", "[].name"}, base...)...); code != 0 || strings.Join(strings.Fields(out), "") != `["offline"]` {
		t.Errorf("template list --query: %d %q", code, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"properties":{"selections":[{"caseName":["no.such-case"]}]}}`), 0o600)
	if code, _, errs := run(t, append([]string{"template", "create", "bad", "--file", bad}, base...)...); code != ExitError || !strings.Contains(errs, `no case named "no.such-case"`) {
		t.Errorf("bad template: %d %s", code, errs)
	}
	// A worker token is refused as an admin's.
	if code, _, errs := run(t, "job", "create", "--server", s.url, "--token", s.worker, "--image", img, "--priority", "0"); code != ExitError || !strings.Contains(errs, "403") {
		t.Errorf("job create with a worker token: %d %s", code, errs)
	}
	startVouch(t, "worker", false, "worker", "--server", s.url, "--token", s.worker, "--name", "w1", "--accel", "tcg", "--poll", "200ms")
	code, out, errs := run(t, append([]string{"job", "create", "--template", "offline", "--image", img, "--wait", "-o", "json", "--name", "offline-1"}, base...)...)
	var j jobs.Job
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		t.Fatalf("job create --wait -o json: %d %v\n%s\n%s", code, err, out, errs)
	}
	p := j.Properties
	if j.Name != "offline-1" || len(p.Results) != 1 || p.Results[0].TestName != "storage.fstab-root-uuid" || p.Worker != "w1" {
		t.Fatalf("job: %+v", j)
	}
	want := 0
	if p.ProvisioningState != store.JobSucceeded {
		want = ExitFindings
	}
	if code != want || !store.JobFinal(p.ProvisioningState) {
		t.Errorf("exit %d for a %s job (%s)", code, p.ProvisioningState, errs)
	}
	t.Logf("offline job: %s, %s %s", p.ProvisioningState, p.Results[0].Status, p.Results[0].Message)
	code, out, _ = run(t, append([]string{"job", "get", "offline-1", "--query", "length(properties.results[?status=='PASSED' || status=='FAILED'])"}, base...)...)
	if code != 0 || strings.TrimSpace(out) != "1" {
		t.Errorf("job get --query: %d %q", code, out)
	}
	if code, out, _ = run(t, append([]string{"job", "list"}, base...)...); code != 0 || !strings.Contains(out, "offline-1") {
		t.Errorf("job list: %d %s", code, out)
	}
	if code, out, _ = run(t, append([]string{"job", "logs", "offline-1", "--case", "storage.fstab-root-uuid"}, base...)...); code != 0 || !strings.Contains(out, p.Results[0].Message) {
		t.Errorf("job logs: %d %q", code, out)
	}
	// Following an ended job prints its log and its final state, and ends.
	if code, out, errs := run(t, append([]string{"job", "logs", "--follow", "offline-1"}, base...)...); code != 0 ||
		!strings.Contains(out, "[storage.fstab-root-uuid] "+string(p.Results[0].Status)) || !strings.Contains(errs, "job offline-1: "+p.ProvisioningState) {
		t.Errorf("job logs --follow: %d %q %q", code, out, errs)
	}
	if code, _, _ = run(t, append([]string{"job", "delete", "offline-1"}, base...)...); code != 0 {
		t.Errorf("job delete: %d", code)
	}
	if code, _, errs = run(t, append([]string{"job", "get", "offline-1"}, base...)...); code != ExitError || !strings.Contains(errs, "404") {
		t.Errorf("deleted job: %d %s", code, errs)
	}
	if code, _, errs = run(t, append([]string{"job", "list", "--query", "[?"}, base...)...); code != ExitError || !strings.Contains(errs, "--query") {
		t.Errorf("bad --query: %d %s", code, errs)
	}
}

func TestJobEndToEndSQLite(t *testing.T) { jobEndToEnd(t) }

func TestJobEndToEndPostgres(t *testing.T) {
	testfixtures.Long(t, testfixtures.QEMU)
	c := pgtest.Start(t)
	jobEndToEnd(t, "--database", c.NewDatabase(t))
}

// jobEndToEnd runs a real job (priority 0 cases: boot, Secure Boot, kernel
// log) on the fixture image through the API with two `vouch worker`
// processes: the first is killed with SIGKILL mid-job, its lease expires and
// the second takes the job over; the server is killed and restarted while
// the second runs it. The job ends (never stays Running) and `vouch job
// create --wait -o json` prints it and exits by its state.
func jobEndToEnd(t *testing.T, serveArgs ...string) {
	testfixtures.Long(t, testfixtures.QEMU)
	need(t, "qemu-system-x86_64")
	// The console-only image: its priority 0 cases (boot, Secure Boot,
	// kernel log) read the serial console, and it boots without
	// cloud-init's first-boot work, so each attempt costs one short boot.
	img := testfixtures.Path(t, "debian.raw")
	s, restart := setupJobServer(t, append([]string{"--job-lease", "15s"}, serveArgs...)...)
	ctx := context.Background()
	workerArgs := func(name string) []string {
		return []string{"worker", "--server", s.url, "--token", s.worker, "--name", name, "--accel", "tcg", "--poll", "200ms", "--boot-timeout", "15m"}
	}
	a := startVouch(t, "worker-a", false, workerArgs("worker-a")...)
	client := startVouch(t, "job-create", true, "job", "create", "--server", s.url, "--token", s.admin, "--image", img,
		"--priority", "0", "--wait", "-o", "json", "--name", "e2e")
	job := func() jobs.Job {
		j, err := s.cl.Job(ctx, "e2e")
		if err != nil {
			return jobs.Job{}
		}
		return j
	}
	// Kill worker A once its VM is starting (the cases ASSIGNED).
	active := func(j jobs.Job) bool {
		st := j.Properties.ProvisioningState
		return (st == store.JobProvisioning || st == store.JobRunning) && len(j.Properties.Results) > 0 &&
			j.Properties.Results[0].Status != "QUEUED"
	}
	waitFor(t, 10*time.Minute, "worker-a starting the job's VM", func() bool {
		j := job()
		return j.Properties.Worker == "worker-a" && active(j)
	})
	a.cmd.Process.Signal(syscall.SIGKILL)
	a.cmd.Wait()
	t.Logf("worker-a killed with SIGKILL while the job was %s", job().Properties.ProvisioningState)
	startVouch(t, "worker-b", false, workerArgs("worker-b")...)
	waitFor(t, 5*time.Minute, "worker-b taking the job over", func() bool {
		j := job()
		return j.Properties.Worker == "worker-b" && j.Properties.Attempt == 2 && active(j)
	})
	// Restart the server mid-job (SIGKILL, then the same database).
	s.serve.cmd.Process.Signal(syscall.SIGKILL)
	s.serve.cmd.Wait()
	restart()
	t.Logf("server killed with SIGKILL and restarted while worker-b ran the job")
	deadline := time.Now().Add(30 * time.Minute)
	done := make(chan error, 1)
	go func() { done <- client.cmd.Wait() }()
	var werr error
	select {
	case werr = <-done:
	case <-time.After(time.Until(deadline)):
		t.Fatalf("job create --wait did not return; job: %+v", job().Properties)
	}
	code := 0
	if ee, ok := werr.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	var j jobs.Job
	if err := json.Unmarshal(client.out.Bytes(), &j); err != nil {
		t.Fatalf("job create --wait -o json printed no job (exit %d): %v\n%s", code, err, client.out.String())
	}
	p := j.Properties
	if !store.JobFinal(p.ProvisioningState) {
		t.Fatalf("job %s", p.ProvisioningState)
	}
	if (p.ProvisioningState == store.JobSucceeded) != (code == 0) {
		t.Errorf("exit %d for a %s job", code, p.ProvisioningState)
	}
	ev, err := s.cl.JobEvents(ctx, "e2e")
	if err != nil {
		t.Fatal(err)
	}
	var evs []string
	for _, e := range ev {
		evs = append(evs, e.State)
		if e.Note != "" {
			t.Logf("event %s: %s", e.State, e.Note)
		}
	}
	if !strings.Contains(strings.Join(evs, ","), "Scheduling,Provisioning,Queued,Scheduling,Provisioning") {
		t.Errorf("events: %v", evs)
	}
	var tbl bytes.Buffer
	jobTable(&tbl, j)
	t.Logf("events %s\n%s", strings.Join(evs, " > "), tbl.String())
	lines, _, err := s.cl.JobLog(ctx, "e2e", "console", 0)
	if err != nil || len(lines) == 0 {
		t.Errorf("no console log kept: %v", err)
	}
	// The console-only image passes its priority 0 cases (imagetest's
	// TestE2EConsoleOnly on the same image): the job must succeed despite
	// the killed worker and the restarted server, every case PASSED.
	if p.ProvisioningState != store.JobSucceeded || code != 0 {
		t.Errorf("job %s (exit %d), want Succeeded", p.ProvisioningState, code)
	}
	for _, r := range p.Results {
		if r.Status != "PASSED" {
			t.Errorf("%s %s: %s", r.TestName, r.Status, r.Message)
		}
	}
}
