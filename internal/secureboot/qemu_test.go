package secureboot

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/vouch-dev/vouch/internal/testfixtures"
	"github.com/vouch-dev/vouch/internal/vm"
)

// What OVMF prints. GRUB reached: its banner or prompt (Debian's signed
// GRUB finds no grub.cfg on the test ESP and stops at "grub>"). Refused: the
// boot manager's "failed to load Boot0001 ... Access Denied", shim's
// "Security Violation", or OVMF giving up.
var (
	grubMarkers   = []string{"Welcome to GRUB!", "grub>", "GNU GRUB"}
	deniedMarkers = []string{"Access Denied", "Security Violation", "No bootable option", "Verification failed"}
)

type bootResult struct {
	reached bool
	marker  string
	elapsed time.Duration
	log     string
}

// bootOVMF boots an ESP under QEMU with OVMF (Secure Boot, SMM) and vars,
// stopping as soon as a marker shows on the serial console.
func bootOVMF(t *testing.T, dir string, esp, vars []byte) bootResult {
	t.Helper()
	testfixtures.Long(t, testfixtures.QEMU)
	qemu := tool(t, "qemu-system-x86_64", "qemu-system-x86")
	if _, err := os.Stat(ovmfCode); err != nil {
		t.Fatalf("%v: install the apt package ovmf", err)
	}
	espPath := filepath.Join(dir, "esp.img")
	varsPath := filepath.Join(dir, "vars.fd")
	serial := filepath.Join(dir, "serial.log")
	for p, b := range map[string][]byte{espPath: esp, varsPath: vars} {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The machine-wide budget of QEMU guests (internal/vm), shared with every
	// other test process; waiting for a slot counts against no boot.
	slot, err := vm.AcquireSlot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer slot.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// The command of the brief, with -nodefaults so that OVMF does not also
	// try a DVD drive and PXE (only the ESP is a boot option). Never KVM.
	cmd := exec.Command(qemu,
		"-nodefaults",
		"-machine", "q35,smm=on",
		"-global", "driver=cfi.pflash01,property=secure,value=on",
		"-drive", "if=pflash,format=raw,unit=0,file="+ovmfCode+",readonly=on",
		"-drive", "if=pflash,format=raw,unit=1,file="+varsPath,
		"-drive", "if=virtio,format=raw,file="+espPath,
		"-m", "256", "-serial", "file:"+serial, "-display", "none", "-monitor", "none",
		"-accel", "tcg", "-no-reboot")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL} // a killed test kills its guest
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	kill := func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			log, _ := os.ReadFile(serial)
			r := classify(log)
			if r.marker == "" {
				t.Fatalf("qemu exited (%v) before a marker appeared; stderr: %s; serial: %q", err, stderr.String(), tail(log))
			}
			r.elapsed = time.Since(start)
			return r
		case <-ctx.Done():
			kill()
			log, _ := os.ReadFile(serial)
			t.Fatalf("no marker after %v; serial: %q", time.Since(start), tail(log))
		case <-tick.C:
			log, _ := os.ReadFile(serial)
			if r := classify(log); r.marker != "" {
				kill()
				r.elapsed = time.Since(start)
				return r
			}
		}
	}
}

func classify(log []byte) bootResult {
	s := string(log)
	for _, m := range deniedMarkers {
		if strings.Contains(s, m) {
			return bootResult{reached: false, marker: m, log: s}
		}
	}
	for _, m := range grubMarkers {
		if strings.Contains(s, m) {
			return bootResult{reached: true, marker: m, log: s}
		}
	}
	return bootResult{log: s}
}

func tail(b []byte) string {
	if len(b) > 600 {
		b = b[len(b)-600:]
	}
	return string(b)
}

// makeESP builds a FAT image with files at the given paths.
func makeESP(t *testing.T, dir string, files map[string][]byte) []byte {
	t.Helper()
	mkfs := tool(t, "mkfs.vfat", "dosfstools")
	mmd := tool(t, "mmd", "mtools")
	mcopy := tool(t, "mcopy", "mtools")
	img := filepath.Join(dir, "build-esp.img")
	run := func(name string, args ...string) {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v: %s", name, args, err, out)
		}
	}
	_ = os.Remove(img)
	run(mkfs, "-C", img, "16384")
	made := map[string]bool{}
	for p, b := range files {
		parts := strings.Split(p, "/")
		for i := 1; i < len(parts); i++ {
			d := strings.Join(parts[:i], "/")
			if !made[d] {
				run(mmd, "-i", img, "::/"+d)
				made[d] = true
			}
		}
		src := filepath.Join(dir, "src-"+strings.ReplaceAll(p, "/", "_"))
		if err := os.WriteFile(src, b, 0o644); err != nil {
			t.Fatal(err)
		}
		run(mcopy, "-i", img, src, "::/"+p)
	}
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestQEMUOracle boots Debian's shim (dual-signed, and with either signature
// removed) and signed GRUB under OVMF with Secure Boot on, with variable
// stores that trust the 2011 CAs, the 2023 CAs, both, and both with the
// shim's hash in dbx, and checks that vouch's verdict on the removable-media
// boot path is what the real firmware did.
func TestQEMUOracle(t *testing.T) {
	testfixtures.Long(t, testfixtures.Fixtures, testfixtures.QEMU, testfixtures.OVMF)
	sh := debianShims(t)
	grub := deb(t, grubRel)
	digest := shimDigest(t, sh.dual)
	shimVariants := []struct {
		name string
		b    []byte
	}{{"2011-only", sh.only2011}, {"2023-only", sh.only2023}, {"dual", sh.dual}}
	want := map[string]map[string]bool{ // the compatibility table
		store2011:    {"2011-only": true, "2023-only": false, "dual": true},
		store2023:    {"2011-only": false, "2023-only": true, "dual": true},
		storeBoth:    {"2011-only": true, "2023-only": true, "dual": true},
		storeBothDbx: {"2011-only": false, "2023-only": false, "dual": false},
	}

	type row struct {
		store, shim  string
		vouch, ovmf  bool
		marker, why  string
		elapsed      time.Duration
		authorizedBy string
	}
	var (
		mu   sync.Mutex
		rows []row
	)
	sem := make(chan struct{}, 2) // two cores: two guests at a time
	start := time.Now()
	t.Run("cases", func(t *testing.T) {
		for _, store := range storeNames {
			vars := deriveStore(t, store, digest)
			for _, sv := range shimVariants {
				t.Run(store+"/"+sv.name, func(t *testing.T) {
					t.Parallel()
					// vouch's verdict: the removable path of this ESP.
					fw := firmwareFromStore(t, vars)
					esp := fstest.MapFS{
						"EFI/BOOT/BOOTX64.EFI": {Data: sv.b},
						"EFI/BOOT/grubx64.efi": {Data: grub},
					}
					paths := BootPaths(esp, nil, nil)
					if len(paths) != 1 {
						t.Fatalf("%d boot paths, want 1", len(paths))
					}
					Evaluate(paths, fw, Options{})
					bp := paths[0]
					vouch := bp.Boots != nil && *bp.Boots
					if vouch != want[store][sv.name] {
						t.Errorf("vouch says %v, the compatibility table %v: %s", vouch, want[store][sv.name], bp.Verdict)
					}

					sem <- struct{}{}
					defer func() { <-sem }()
					dir := t.TempDir()
					img := makeESP(t, dir, map[string][]byte{"EFI/BOOT/BOOTX64.EFI": sv.b, "EFI/BOOT/grubx64.efi": grub})
					r := bootOVMF(t, dir, img, vars)
					if r.reached != vouch {
						t.Errorf("OVMF %s (marker %q after %v), vouch says allowed=%v: %s\nserial: %q",
							map[bool]string{true: "reached GRUB", false: "refused"}[r.reached], r.marker, r.elapsed.Round(time.Second), vouch, bp.Verdict, tail([]byte(r.log)))
					}
					by := ""
					if d := bp.Stages[0].Decision; d != nil {
						by = d.AuthorizedBy + d.DeniedBy
					}
					mu.Lock()
					rows = append(rows, row{store, sv.name, vouch, r.reached, r.marker, bp.Verdict, r.elapsed, by})
					mu.Unlock()
				})
			}
		}
	})
	var sb strings.Builder
	fmt.Fprintf(&sb, "QEMU+OVMF vs vouch, %d cases in %v:\n", len(rows), time.Since(start).Round(time.Second))
	fmt.Fprintf(&sb, "%-9s %-10s %-6s %-6s %-20s %s\n", "db", "shim", "OVMF", "vouch", "OVMF marker", "vouch: firmware stage decided by")
	for _, store := range storeNames {
		for _, sv := range shimVariants {
			for _, r := range rows {
				if r.store == store && r.shim == sv.name {
					fmt.Fprintf(&sb, "%-9s %-10s %-6s %-6s %-20s %s\n", r.store, r.shim, boots(r.ovmf), boots(r.vouch), fmt.Sprintf("%q %ds", r.marker, int(r.elapsed.Seconds())), r.authorizedBy)
				}
			}
		}
	}
	t.Log(sb.String())
}

func boots(b bool) string {
	if b {
		return "boots"
	}
	return "denied"
}
