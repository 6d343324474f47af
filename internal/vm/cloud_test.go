package vm

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vouch-dev/vouch/internal/testfixtures"
)

func waitBoot(t *testing.T, ctx context.Context, m *Machine, what string) time.Duration {
	t.Helper()
	took, err := m.WaitBoot(ctx)
	if err != nil {
		var be *BootError
		if errors.As(err, &be) {
			t.Fatalf("%s: %v\n%s", what, err, tailText(be.Tail))
		}
		t.Fatalf("%s: %v", what, err)
	}
	t.Logf("%s: %.1f s", what, took.Seconds())
	return took
}

func mustRun(t *testing.T, ctx context.Context, g *Guest, cmd string) Result {
	t.Helper()
	start := time.Now()
	res, err := g.Run(ctx, cmd)
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	t.Logf("$ %s  (exit %d, %.1f s)\n%s%s", cmd, res.ExitCode, time.Since(start).Seconds(), res.Stdout, res.Stderr)
	return res
}

// TestCloudInitSSH boots the cloud fixture with a NoCloud seed: SSH with the
// ephemeral key, cloud-init and systemd settle, commands keep their exit
// status and streams. Reboots (Machine.Reboot, from the guest and through
// QMP) are exercised once, by imagetest's TestE2ECloudP0P1 (boot.reboot-guest
// and boot.reboot-qmp, which also check SSH and a new boot ID afterwards):
// each costs a Secure Boot boot under TCG, and the suite has a boot budget.
func TestCloudInitSSH(t *testing.T) {
	needQEMU(t)
	img := testfixtures.Path(t, "debian-cloud.qcow2")
	before := imageStamp(t, img, [2]int64{0, 8 << 20})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	m := start(t, ctx, Config{
		Image:     img,
		Firmware:  Firmware{Boot: UEFI, SecureBoot: true},
		Accel:     "tcg",
		Timeout:   14 * time.Minute,
		WorkDir:   workDir(t),
		CloudInit: true,
	})
	waitBoot(t, ctx, m, "cloud-init first boot (login prompt or multi-user.target)")

	sshStart := time.Now()
	g, err := m.SSH(ctx)
	if err != nil {
		t.Fatalf("SSH: %v", err)
	}
	defer g.Close()
	t.Logf("SSH login %.1f s after the boot; host key %s", time.Since(sshStart).Seconds(), g.HostKey())
	if !strings.HasPrefix(g.HostKey(), "SHA256:") || m.HostKey() != g.HostKey() {
		t.Errorf("host key fingerprint %q (machine %q)", g.HostKey(), m.HostKey())
	}
	if res := mustRun(t, ctx, g, "id -un; sudo -n id -u"); res.Stdout != GuestUser+"\n0\n" || res.ExitCode != 0 {
		t.Errorf("id: %q exit %d, want %q and passwordless sudo", res.Stdout, res.ExitCode, GuestUser+"\n0\n")
	}
	if res := mustRun(t, ctx, g, "cloud-init status --wait"); res.ExitCode != 0 || !strings.Contains(res.Stdout, "status: done") {
		t.Errorf("cloud-init status --wait: exit %d, %q", res.ExitCode, res.Stdout)
	}
	res := mustRun(t, ctx, g, "systemctl is-system-running --wait")
	if state := strings.TrimSpace(res.Stdout); state != "running" {
		failed := mustRun(t, ctx, g, "systemctl --failed --no-legend")
		t.Errorf("is-system-running = %q (exit %d); failed units:\n%s", state, res.ExitCode, failed.Stdout)
	}
	// A non-zero exit is a result, not an error; stderr is kept apart.
	if res := mustRun(t, ctx, g, "echo out; echo err >&2; exit 3"); res.ExitCode != 3 || res.Stdout != "out\n" || res.Stderr != "err\n" {
		t.Errorf("exit status/streams: %+v", res)
	}
	// The network cloud-init brought up: DHCP from QEMU's user network.
	if res := mustRun(t, ctx, g, "networkctl status --no-pager 2>/dev/null | head -20; ls /run/systemd/network /etc/netplan"); res.ExitCode != 0 {
		t.Errorf("network status exit %d", res.ExitCode)
	}
	g.Close()

	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if after := imageStamp(t, img, [2]int64{0, 8 << 20}); after != before {
		t.Errorf("image changed by the run:\n before %s\n after  %s", before, after)
	}
}
