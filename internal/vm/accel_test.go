package vm

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedLog collects a VM's progress lines.
type lockedLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) lines(prefix string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, s := range strings.Split(l.b.String(), "\n") {
		if strings.HasPrefix(s, prefix) {
			out = append(out, s)
		}
	}
	return out
}

// forgetProbes empties the probe cache for a test and afterwards.
func forgetProbes(t *testing.T) {
	kvmProbe.mu.Lock()
	kvmProbe.results = nil
	kvmProbe.mu.Unlock()
	t.Cleanup(func() {
		kvmProbe.mu.Lock()
		kvmProbe.results = nil
		kvmProbe.mu.Unlock()
	})
}

// emptyDisk is a blank raw disk: OVMF finds nothing to boot on it.
func emptyDisk(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "empty.raw")
	if err := os.WriteFile(p, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAutoAccel starts the Secure Boot OVMF with Accel "auto" and checks that
// the accelerator chosen runs the firmware to its boot manager. On a host
// whose KVM cannot run OVMF (none, or nested without SMM, as on the CI
// machines) the choice is TCG with one log line naming what failed; where
// KVM works it is KVM.
func TestAutoAccel(t *testing.T) {
	needQEMU(t)
	forgetProbes(t)
	fw := Firmware{Boot: UEFI, SecureBoot: true}
	var log lockedLog
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	m, err := Start(ctx, Config{Image: emptyDisk(t), Firmware: fw, MemoryMiB: 256, Log: &log, WorkDir: workDir(t), Timeout: 3 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	choice := log.lines("vm: accelerator ")
	if len(choice) != 1 {
		t.Fatalf("want one line saying which accelerator and why, got %q", choice)
	}
	t.Log(choice[0])
	r := ProbeKVM(ctx, fw, t.TempDir()) // remembered: no second probe
	if r.Accel != m.Accel() || !strings.Contains(choice[0], r.Reason) {
		t.Errorf("VM accel %s, remembered probe %+v, logged %q", m.Accel(), r, choice[0])
	}
	if _, err := os.Stat("/dev/kvm"); err != nil {
		if m.Accel() != "tcg" || !strings.Contains(choice[0], "KVM not usable") {
			t.Errorf("no /dev/kvm: accel %s, line %q", m.Accel(), choice[0])
		}
	} else if m.Accel() == "tcg" && !regexp.MustCompile(`KVM cannot run the OVMF Secure Boot \(SMM\) guest \(.+\); using TCG`).MatchString(choice[0]) {
		t.Errorf("fallback line does not say why: %q", choice[0])
	}
	// Whatever was chosen runs the firmware.
	if _, err := m.Console().Wait(ctx, regexp.MustCompile(`BdsDxe: `)); err != nil {
		t.Fatalf("the firmware did not reach its boot manager under %s: %v\n%s", m.Accel(), err, strings.Join(m.Console().Tail(20), "\n"))
	}
	// The plain OVMF build and a BIOS guest are probed on their own.
	for _, f := range []Firmware{{Boot: UEFI}, {Boot: BIOS}} {
		r := ProbeKVM(ctx, f, t.TempDir())
		t.Logf("%v: %s: %s (%s)", f.Boot, r.Accel, r.Reason, r.Took.Round(time.Millisecond))
		if r.Reason == "" || r.Accel != "kvm" && r.Accel != "tcg" {
			t.Errorf("probe %+v", r)
		}
	}
}

// TestProbeCancelled: a probe whose context has ended says so and is not
// remembered; the next probe runs.
func TestProbeCancelled(t *testing.T) {
	needQEMU(t)
	forgetProbes(t)
	fw := Firmware{Boot: BIOS}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := ProbeKVM(ctx, fw, t.TempDir())
	if r.Accel != "tcg" || !strings.Contains(r.Reason, "cancelled") {
		t.Errorf("cancelled probe: %+v", r)
	}
	again := ProbeKVM(context.Background(), fw, t.TempDir())
	if strings.Contains(again.Reason, "cancelled") {
		t.Errorf("the cancelled probe was remembered: %+v", again)
	}
	if third := ProbeKVM(context.Background(), fw, t.TempDir()); third != again {
		t.Errorf("a completed probe is remembered: %+v then %+v", again, third)
	}
}

// TestKVMStartFallback: when KVM passed the probe (here: remembered as
// passed) but QEMU cannot start the VM with it, Start falls back to TCG with
// one line saying why. Where KVM really runs the Secure Boot OVMF the VM
// simply starts under KVM.
func TestKVMStartFallback(t *testing.T) {
	needQEMU(t)
	forgetProbes(t)
	fw := Firmware{Boot: UEFI, SecureBoot: true}
	sp, err := specOf(fw)
	if err != nil {
		t.Fatal(err)
	}
	kvmProbe.mu.Lock()
	kvmProbe.results = map[probeSpec]ProbeResult{sp.key(): {Accel: "kvm", Reason: "assumed by the test"}}
	kvmProbe.mu.Unlock()
	var log lockedLog
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m, err := Start(ctx, Config{Image: emptyDisk(t), Firmware: fw, MemoryMiB: 256, Log: &log, WorkDir: workDir(t), Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	lines := log.lines("vm: accelerator ")
	t.Logf("accel %s, %q", m.Accel(), lines)
	if m.Accel() == "kvm" {
		if len(lines) != 0 {
			t.Errorf("KVM started, yet %q", lines)
		}
		return
	}
	if len(lines) != 1 || !strings.Contains(lines[0], "KVM passed the probe but QEMU failed to start the VM with it") || !strings.Contains(lines[0], "using TCG") {
		t.Errorf("fallback lines %q", lines)
	}
	if r := ProbeKVM(ctx, fw, t.TempDir()); r.Accel != "tcg" {
		t.Errorf("the failed KVM start is not remembered: %+v", r)
	}
}
