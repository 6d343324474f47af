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

// TestCloudInitSSHAndReboots boots the cloud fixture with a NoCloud seed: SSH
// with the ephemeral key, cloud-init and systemd settle, then a reboot through
// QMP and one from the guest both come back.
func TestCloudInitSSHAndReboots(t *testing.T) {
	needQEMU(t)
	img := testfixtures.Path(t, "debian-cloud.qcow2")
	before := imageStamp(t, img, [2]int64{0, 8 << 20})
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	m := start(t, ctx, Config{
		Image:     img,
		Firmware:  Firmware{Boot: UEFI, SecureBoot: true},
		Accel:     "tcg",
		Timeout:   24 * time.Minute,
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

	// The clean reboot first: a hard reset right after the first boot can
	// lose what cloud-init wrote seconds before (ext4 commits every 5 s), e.g.
	// the SSH host keys it regenerates, and sshd then never answers. That is
	// the guest's behaviour on real hardware too; vouch test orders its
	// reboot cases the same way.
	if err := m.Reboot(ctx, ViaGuest); err != nil {
		t.Fatalf("Reboot(ViaGuest): %v", err)
	}
	waitBoot(t, ctx, m, "boot after systemctl reboot in the guest")
	if err := m.Reboot(ctx, ViaQMP); err != nil {
		t.Fatalf("Reboot(ViaQMP): %v", err)
	}
	waitBoot(t, ctx, m, "boot after QMP system_reset")
	g2, err := m.SSH(ctx)
	if err != nil {
		t.Fatalf("SSH after reboots: %v", err)
	}
	defer g2.Close()
	if res := mustRun(t, ctx, g2, "cat /proc/sys/kernel/random/boot_id; uptime"); res.ExitCode != 0 {
		t.Errorf("after reboot: exit %d", res.ExitCode)
	}
	if g2.HostKey() != g.HostKey() {
		t.Errorf("host key changed across reboots: %s then %s", g.HostKey(), g2.HostKey())
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if after := imageStamp(t, img, [2]int64{0, 8 << 20}); after != before {
		t.Errorf("image changed by the run:\n before %s\n after  %s", before, after)
	}
}
