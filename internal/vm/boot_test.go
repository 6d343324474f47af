package vm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// The fixtures' layout (scripts/build-fixtures.sh): the ESP is 256 MiB at 1 MiB.
const (
	espOffset = 1 << 20
	espSize   = 256 << 20
)

// TestBootConsoleSecureBoot boots the console-only fixture (no cloud-init) with
// Secure Boot on and the Microsoft 2011 store, under TCG, to a login prompt.
func TestBootConsoleSecureBoot(t *testing.T) {
	needQEMU(t)
	img := testfixtures.Path(t, "debian.raw")
	before := imageStamp(t, img, [2]int64{0, espOffset + espSize})
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	m := start(t, ctx, Config{
		Image:    img,
		Firmware: Firmware{Boot: UEFI, SecureBoot: true, Vars: filepath.Join(OVMFDir, "OVMF_VARS_4M.ms.fd")},
		Accel:    "tcg",
		Timeout:  7 * time.Minute,
		WorkDir:  workDir(t),
	})
	if m.Accel() != "tcg" {
		t.Errorf("Accel() = %q, want tcg", m.Accel())
	}
	st, err := m.QMP().Status(ctx)
	if err != nil || st != "running" {
		t.Errorf("QMP status = %q, %v; want running", st, err)
	}
	took, err := m.WaitBoot(ctx)
	if err != nil {
		var be *BootError
		if errors.As(err, &be) {
			t.Fatalf("WaitBoot: %v\n%s", err, tailText(be.Tail))
		}
		t.Fatalf("WaitBoot: %v", err)
	}
	t.Logf("console-only Secure Boot boot: %.1f s to multi-user.target (TCG)", took.Seconds())
	if _, err := m.Console().Wait(ctx, regexp.MustCompile(`^vouch-fixture login: $`)); err != nil {
		t.Fatalf("no login prompt: %v", err)
	}
	t.Logf("login prompt after %.1f s", time.Since(m.bootStart).Seconds())
	lines := m.Console().Lines()
	joined := strings.Join(lines, "\n")
	for _, want := range []string{"Secure boot enabled", "Reached target multi-user.target"} {
		if !strings.Contains(joined, want) {
			t.Errorf("console lacks %q", want)
		}
	}
	// The first boot went through shim's fallback (fbx64.efi) and its reset.
	resets := 0
	for _, ev := range m.QMP().Events() {
		if ev.Name == "RESET" {
			resets++
		}
	}
	t.Logf("resets during the first boot: %d", resets)
	for _, l := range lines {
		if strings.ContainsAny(l, "\r\x1b") {
			t.Errorf("console line keeps control characters: %q", l)
			break
		}
	}
	if _, err := os.Stat(m.Console().Path()); err != nil {
		t.Errorf("serial log: %v", err)
	}
	dir := filepath.Dir(m.Console().Path())
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("VM dir %s still exists after Close: %v", dir, err)
	}
	if _, err := m.Console().Wait(ctx, regexp.MustCompile("never")); !errors.Is(err, ErrExited) {
		t.Errorf("Console.Wait after Close = %v, want ErrExited", err)
	}
	if after := imageStamp(t, img, [2]int64{0, espOffset + espSize}); after != before {
		t.Errorf("image changed by the run:\n before %s\n after  %s", before, after)
	}
}
