package imagetest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vouch-dev/vouch/internal/testfixtures"
	"github.com/vouch-dev/vouch/internal/vm"
)

// End-to-end: the real cases on the real fixtures under QEMU (TCG: KVM guests
// hang on the test machines), with Debian's OVMF and Secure Boot on.

// noLeftovers checks that no QEMU process still runs with files under dir and
// that dir is empty: Run and RunMatrix must clean up on every path.
func noLeftovers(t *testing.T, dir string) {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if cmd := string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})); strings.Contains(cmd, dir) {
			t.Errorf("process left running: %s: %.200s", filepath.Dir(p), cmd)
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Errorf("temporary file left: %s", filepath.Join(dir, e.Name()))
	}
}

func statuses(rep *Report) map[string]Result {
	m := map[string]Result{}
	for _, r := range rep.Results {
		m[r.Name] = r
	}
	return m
}

func expectStatus(t *testing.T, got map[string]Result, want map[string]Status) {
	t.Helper()
	for name, st := range want {
		r, ok := got[name]
		if !ok {
			t.Errorf("%s did not run", name)
			continue
		}
		if r.Status != st {
			t.Errorf("%s: %s (%s), want %s\n  %s", name, r.Status, r.Message, st, strings.Join(r.Log, "\n  "))
		}
	}
}

func selectOrFatal(t *testing.T, rules ...Selection) []Case {
	t.Helper()
	cs, err := Select(All(), rules)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// The P0–P1 run on the cloud-init fixture: SSH cases run, the reboots come
// back, the offline cloud-image cases agree with `vouch scan --suite
// cloud-image` on the same image (its baked host keys and sshd defaults fail).
func TestE2ECloudP0P1(t *testing.T) {
	testfixtures.Long(t, testfixtures.Fixtures, testfixtures.QEMU, testfixtures.OVMF)
	img := testfixtures.Path(t, "debian-cloud.qcow2")
	work := t.TempDir()
	cases := selectOrFatal(t, Selection{Priorities: []int{0, 1}})
	var progress bytes.Buffer
	tw := NewTableWriter(&progress, cases)
	start := time.Now()
	rep, err := Run(context.Background(), Config{
		Image: img, Firmware: vm.Firmware{Boot: vm.UEFI, SecureBoot: true}, Accel: "tcg", WorkDir: work,
		BootTimeout: 8 * time.Minute, Timeout: 30 * time.Minute, Log: &progress, Observer: tw,
	}, cases)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	tw.Summary(rep)
	t.Logf("P0-P1 on debian-cloud.qcow2 took %s (boot %s):\n%s", took.Round(time.Second), rep.Run.BootTime.Round(time.Second), progress.String())
	noLeftovers(t, work)
	if !rep.Run.Booted || !rep.Run.SSH || !rep.Run.ExpectSecureBoot || rep.Run.Accel != "tcg" {
		t.Errorf("run record %+v", rep.Run)
	}
	got := statuses(rep)
	expectStatus(t, got, map[string]Status{
		"boot.multi-user":         Passed,
		"secureboot.state":        Passed,
		"kernel.log-clean":        Passed,
		"console.serial-console":  Passed,
		"provisioning.ssh-login":  Passed,
		"storage.root-read-write": Passed,
		"storage.fstab-root-uuid": Passed,
		"network.dhcp":            Passed,
		"network.sshd-running":    Passed,
		"time.sync-active":        Passed,
		"boot.reboot-guest":       Passed,
		"boot.reboot-qmp":         Passed,
		// The fixture is a plain Debian system with cloud-init added: the
		// offline rules find what `vouch scan --suite cloud-image` finds.
		"cloud-image.no-ssh-host-keys":             Failed,
		"cloud-image.sshd-permit-root-login":       Failed,
		"cloud-image.sshd-password-authentication": Failed,
		"cloud-image.provisioning-agent":           Passed,
		"cloud-image.dhcp-networking":              Passed,
	})
	// DNS goes through the host's resolver: it passes, or is skipped only
	// when the host cannot resolve the name either.
	if r := got["network.dns"]; r.Status != Passed && !(r.Status == Skipped && strings.Contains(r.Message, "the host cannot resolve")) {
		t.Errorf("network.dns: %s (%s)", r.Status, r.Message)
	}
	// cloud-init and the units it runs: whatever the fixture's cloud-init
	// does, the two cases must agree and a failure must carry cloud-init's
	// own words.
	ci, units := got["provisioning.cloud-init"], got["systemd.no-failed-units"]
	if ci.Status == Failed && !strings.Contains(ci.Message, "cloud-init status is") && !strings.Contains(ci.Message, "error(s)") {
		t.Errorf("provisioning.cloud-init failed without cloud-init's reason: %s", ci.Message)
	}
	if ci.Status == Failed && units.Status == Passed {
		t.Errorf("cloud-init failed (%s) but no unit failed", ci.Message)
	}
	for _, r := range rep.Results {
		if r.Priority > 1 {
			t.Errorf("%s (P%d) ran in a P0-P1 selection", r.Name, r.Priority)
		}
		if !r.Status.Final() {
			t.Errorf("%s ended %s", r.Name, r.Status)
		}
	}
}

// The console-only image: no cloud-init, so the SSH cases are SKIPPED with the
// reason and the console cases decide.
func TestE2EConsoleOnly(t *testing.T) {
	testfixtures.Long(t, testfixtures.Fixtures, testfixtures.QEMU, testfixtures.OVMF)
	img := testfixtures.Path(t, "debian.raw")
	work := t.TempDir()
	consoleLog := filepath.Join(t.TempDir(), "console.log")
	cases := selectOrFatal(t,
		Selection{Priorities: []int{0, 1, 2}},
		Selection{Names: []string{"cloud-image.*", "boot.reboot-qmp"}, Action: Exclude})
	start := time.Now()
	rep, err := Run(context.Background(), Config{
		Image: img, Firmware: vm.Firmware{Boot: vm.UEFI, SecureBoot: true}, Accel: "tcg", WorkDir: work,
		ConsoleLog: consoleLog, BootTimeout: 6 * time.Minute,
	}, cases)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("console-only run took %s (boot %s)", time.Since(start).Round(time.Second), rep.Run.BootTime.Round(time.Second))
	noLeftovers(t, work)
	got := statuses(rep)
	expectStatus(t, got, map[string]Status{
		"boot.multi-user":         Passed,
		"secureboot.state":        Passed,
		"kernel.log-clean":        Passed,
		"console.serial-console":  Passed,
		"kernel.cmdline-console":  Passed,
		"storage.fstab-root-uuid": Passed,
		"provisioning.ssh-login":  Skipped,
		"network.dhcp":            Skipped,
		"systemd.no-failed-units": Skipped,
		"boot.reboot-guest":       Skipped,
	})
	for _, name := range []string{"provisioning.ssh-login", "network.dhcp", "boot.reboot-guest"} {
		if m := got[name].Message; !strings.Contains(m, "no cloud-init") {
			t.Errorf("%s skipped without the reason: %q", name, m)
		}
	}
	if m := got["secureboot.state"].Message; !strings.Contains(m, "Secure Boot enabled") || !strings.Contains(m, "kernel log") {
		t.Errorf("secureboot.state: %q", m)
	}
	if rep.Run.SSH || rep.Run.CloudInit || !rep.Run.Booted {
		t.Errorf("run record %+v", rep.Run)
	}
	b, err := os.ReadFile(consoleLog)
	if err != nil || !bytes.Contains(b, []byte("secureboot: Secure boot enabled")) || rep.Run.ConsoleLog != consoleLog {
		t.Errorf("console log not saved (%v, %d bytes, %q)", err, len(b), rep.Run.ConsoleLog)
	}
	if len(rep.Run.Console) == 0 {
		t.Error("the run record has no console for the HTML report")
	}
}

// Debian's shim is signed by both Microsoft UEFI CAs, so debian.raw boots on
// every profile, as vouch secureboot predicts.
func TestE2EFirmwareMatrix(t *testing.T) {
	testfixtures.Long(t, testfixtures.Fixtures, testfixtures.QEMU, testfixtures.OVMF)
	img := testfixtures.Path(t, "debian.raw")
	work := t.TempDir()
	var rows []string
	mx, err := RunMatrix(context.Background(), MatrixConfig{
		Image: img, Accel: "tcg", WorkDir: work,
		BootTimeout: 4 * time.Minute,
		Observer:    func(r MatrixRow) { rows = append(rows, r.Profile+": "+r.Outcome) },
	})
	if err != nil {
		t.Fatal(err)
	}
	noLeftovers(t, work)
	var out bytes.Buffer
	if err := WriteMatrixTable(&out, mx); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", out.String())
	if len(mx.Rows) != 3 || len(rows) != 3 {
		t.Fatalf("%d rows, observer saw %v", len(mx.Rows), rows)
	}
	for i, r := range mx.Rows {
		if r.Profile != MatrixProfiles[i] {
			t.Errorf("row %d is %s, want %s", i, r.Profile, MatrixProfiles[i])
		}
		if !r.Booted || r.Predicted == nil || !*r.Predicted || !r.Agrees {
			t.Errorf("%s: booted %v (%s: %s), predicted %v (%s), agrees %v", r.Profile, r.Booted, r.Reason, r.Line, r.Predicted, r.Prediction, r.Agrees)
		}
	}
	if !mx.OK() || !strings.Contains(out.String(), "All 3 boots agree") {
		t.Errorf("matrix not OK:\n%s", out.String())
	}
}

// Cancelling the run (Ctrl-C in the CLI) kills the VM at once: the report
// comes back with the unfinished cases SKIPPED, the error is the context's,
// and nothing is left behind.
func TestE2EInterrupted(t *testing.T) {
	testfixtures.Long(t, testfixtures.Fixtures, testfixtures.QEMU, testfixtures.OVMF)
	img := testfixtures.Path(t, "debian.raw")
	work := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cases := selectOrFatal(t, Selection{Names: []string{"boot.multi-user", "storage.fstab-root-uuid", "boot.reboot-qmp"}})
	// Limits far beyond any boot: a run the cancel did not stop would only
	// end at go test's -timeout, which is how this test would fail.
	rep, err := Run(ctx, Config{
		Image: img, Firmware: vm.Firmware{Boot: vm.UEFI, SecureBoot: true}, Accel: "tcg", WorkDir: work,
		BootTimeout: 24 * time.Hour, Timeout: 24 * time.Hour,
		// The offline case runs once the VM has started: interrupt there.
		Observer: ObserverFunc(func(r Result) {
			if r.Name == "storage.fstab-root-uuid" && r.Status == Running {
				cancel()
			}
		}),
	}, cases)
	if err == nil || ctx.Err() == nil || rep == nil {
		t.Fatalf("Run = %v, %v; want the report and context.Canceled", rep, err)
	}
	noLeftovers(t, work)
	for _, r := range rep.Results {
		if r.Name != "storage.fstab-root-uuid" && r.Status != Skipped && r.Status != Failed {
			t.Errorf("%s: %s after the interrupt", r.Name, r.Status)
		}
		if r.Name == "boot.reboot-qmp" && !strings.Contains(r.Message, "interrupted") {
			t.Errorf("%s: %q", r.Name, r.Message)
		}
	}
}
