package vm

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vouch-dev/vouch/internal/authenticode"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// TestStartErrors covers what fails before QEMU runs: each is an *Error with
// the Op and a reason naming the file or the package to install, and nothing is
// left in the work dir.
func TestStartErrors(t *testing.T) {
	needQEMU(t)
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.img")
	os.WriteFile(empty, nil, 0o644)
	gz := filepath.Join(dir, "image.raw.gz")
	os.WriteFile(gz, []byte("\x1f\x8b\x08\x00rest of a gzip file"), 0o644)
	vmdk := filepath.Join(dir, "disk.vmdk")
	os.WriteFile(vmdk, append([]byte("KDMV"), make([]byte, 1020)...), 0o644)
	smallVars := filepath.Join(dir, "vars-2m.fd")
	os.WriteFile(smallVars, make([]byte, 128<<10), 0o644)
	raw := filepath.Join(dir, "disk.raw")
	os.WriteFile(raw, make([]byte, 1<<20), 0o644)

	tests := []struct {
		name string
		cfg  Config
		op   string
		want string
	}{
		{"no image", Config{}, "image", "no image given"},
		{"missing image", Config{Image: filepath.Join(dir, "nope.qcow2")}, "image", "nope.qcow2"},
		{"empty image", Config{Image: empty}, "image", "file is empty"},
		{"directory", Config{Image: dir}, "image", "is a directory"},
		{"gzip", Config{Image: gz}, "image", "gzip-compressed"},
		{"vmdk", Config{Image: vmdk}, "image", "VMDK"},
		{"missing vars", Config{Image: raw, Firmware: Firmware{Vars: filepath.Join(dir, "no-vars.fd")}}, "firmware", "no-vars.fd"},
		{"vars of the 2M build", Config{Image: raw, Firmware: Firmware{Vars: smallVars}}, "firmware", "does not fit firmware"},
		{"bios with secure boot", Config{Image: raw, Firmware: Firmware{Boot: BIOS, SecureBoot: true}}, "firmware", "needs UEFI"},
		{"bad accel", Config{Image: raw, Accel: "hvf"}, "start", "unknown accelerator"},
		{"bad port", Config{Image: raw, SSHPort: 70000}, "start", "out of range"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wd := workDir(t)
			tc.cfg.WorkDir = wd
			tc.cfg.Accel = cmp(tc.cfg.Accel, "tcg")
			m, err := Start(context.Background(), tc.cfg)
			if err == nil {
				m.Close()
				t.Fatal("Start succeeded")
			}
			var e *Error
			if !errors.As(err, &e) || e.Op != tc.op || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Start = %v (%T), want *Error op %q containing %q", err, err, tc.op, tc.want)
			}
		})
	}
}

func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// TestQEMUMissing: with no QEMU on PATH, Start says which package to install.
func TestQEMUMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	raw := filepath.Join(t.TempDir(), "disk.raw")
	os.WriteFile(raw, make([]byte, 1<<20), 0o644)
	_, err := Start(context.Background(), Config{Image: raw, WorkDir: workDir(t)})
	var e *Error
	if !errors.As(err, &e) || e.Op != "start" || !strings.Contains(e.Reason, "qemu-system-x86") {
		t.Fatalf("Start without QEMU = %v, want *Error naming qemu-system-x86", err)
	}
}

// TestPortInUse: a forwarded port that is taken is reported as such, QEMU is
// gone and its files too.
func TestPortInUse(t *testing.T) {
	needQEMU(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	_, err = Start(context.Background(), Config{
		Image:   blankDisk(t),
		Accel:   "tcg",
		WorkDir: workDir(t),
		SSHPort: port,
	})
	var e *Error
	if !errors.As(err, &e) || !strings.Contains(e.Reason, "is in use") {
		t.Fatalf("Start on a taken port = %v, want *Error saying the port is in use", err)
	}
	t.Logf("%v", err)
}

// blankDisk is an empty 1 GiB qcow2: nothing to boot.
func blankDisk(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "blank.qcow2")
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", p, "1G")
	return p
}

// TestBootFailures: images that do not boot end WaitBoot with a *BootError
// saying why, with the console tail, quickly (not at the timeout).
func TestBootFailures(t *testing.T) {
	needQEMU(t)
	tests := []struct {
		name   string
		image  func(t *testing.T) string
		fw     Firmware
		reason string
	}{
		// OVMF ends with its built-in shell, which the Secure Boot build then
		// refuses to start: both say that nothing else was bootable.
		{"blank disk, UEFI", blankDisk, Firmware{Boot: UEFI}, "firmware found no bootable device (only its UEFI shell was left)"},
		{"blank disk, UEFI Secure Boot", blankDisk, Firmware{Boot: UEFI, SecureBoot: true}, "firmware found no bootable device (only its UEFI shell was left)"},
		// There is no shim signed only by the 2023 UEFI CA to download; Debian's
		// shim with its Microsoft 2011 signature removed stands in for it: on a
		// 2011-only store both are images whose signature db does not trust.
		{"unsigned shim on the Microsoft 2011 store", unsignedShimDisk, Firmware{Boot: UEFI, SecureBoot: true}, "firmware refused the image (Secure Boot: Access Denied)"},
		// The "kernel that panics": Debian's signed kernel, booted by
		// the signed shim and GRUB, with no initramfs (so no virtio_blk) and a
		// root that does not exist, panic=1.
		{"kernel panic: no root", panicDisk, Firmware{Boot: UEFI, SecureBoot: true}, "kernel panic"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img := tc.image(t)
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			m := start(t, ctx, Config{Image: img, Firmware: tc.fw, Accel: "tcg", Timeout: 4 * time.Minute, WorkDir: workDir(t)})
			took, err := m.WaitBoot(ctx)
			var be *BootError
			if !errors.As(err, &be) {
				t.Fatalf("WaitBoot = %v, want *BootError", err)
			}
			t.Logf("after %.1f s: %v\n%s", took.Seconds(), err, tailText(be.Tail))
			if be.Reason != tc.reason || be.Line == "" || len(be.Tail) == 0 {
				t.Errorf("BootError{Reason %q, Line %q, %d tail lines}, want reason %q with the line and tail", be.Reason, be.Line, len(be.Tail), tc.reason)
			}
		})
	}
}

// unsignedShimDisk is a GPT disk holding a copy of the fixture's ESP whose shim
// (both EFI/BOOT/BOOTX64.EFI and EFI/debian/shimx64.efi) has no signature.
func unsignedShimDisk(t *testing.T) string {
	t.Helper()
	needTool(t, "mcopy", "mtools")
	needTool(t, "sgdisk", "gdisk")
	dir := t.TempDir()
	signed, err := os.ReadFile(testfixtures.Deb(t, "shim-signed/usr/lib/shim/shimx64.efi.signed"))
	if err != nil {
		t.Fatal(err)
	}
	unsigned, err := authenticode.RemoveSignature(signed, 0)
	if err != nil {
		t.Fatal(err)
	}
	shim := filepath.Join(dir, "shimx64.efi")
	if err := os.WriteFile(shim, unsigned, 0o644); err != nil {
		t.Fatal(err)
	}
	esp := filepath.Join(dir, "esp.img")
	run(t, "cp", "--sparse=always", testfixtures.Path(t, "esp.img"), esp)
	for _, dst := range []string{"::/EFI/BOOT/BOOTX64.EFI", "::/EFI/debian/shimx64.efi"} {
		run(t, "env", "MTOOLS_SKIP_CHECK=1", "mcopy", "-o", "-i", esp, shim, dst)
	}
	disk := filepath.Join(dir, "disk.raw")
	f, err := os.Create(disk)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(espOffset + espSize + 1<<20)
	f.Close()
	run(t, "sgdisk", "-o", "-n", "1:2048:+256M", "-t", "1:C12A7328-F81F-11D2-BA4B-00A0C93EC93B", disk)
	run(t, "dd", "if="+esp, "of="+disk, "bs=1M", "seek=1", "conv=notrunc,sparse", "status=none")
	return disk
}

// panicDisk is a sparse copy of the fixture image whose ESP grub.cfg boots the
// kernel without its initramfs, with root=/dev/vdz and panic=1: the kernel
// cannot mount a root and panics ("VFS: Unable to mount root fs").
func panicDisk(t *testing.T) string {
	t.Helper()
	needTool(t, "mcopy", "mtools")
	dir := t.TempDir()
	disk := filepath.Join(dir, "panic.raw")
	run(t, "cp", "--sparse=always", testfixtures.Path(t, "debian.raw"), disk)
	kernels, _ := filepath.Glob(filepath.Join(testfixtures.Path(t, "rootfs"), "boot", "vmlinuz-*"))
	if len(kernels) == 0 {
		t.Fatal("no boot/vmlinuz-* in the rootfs fixture")
	}
	cfg := filepath.Join(dir, "grub.cfg")
	menu := `set timeout=0
set default=0
search --no-floppy --fs-uuid --set=root 6a1f5c3e-2b7d-4e0a-9c1b-5d3e7f9a0b21
menuentry 'panic' {
	linux /boot/` + filepath.Base(kernels[len(kernels)-1]) + ` root=/dev/vdz ro panic=1 console=ttyS0,115200
}
`
	if err := os.WriteFile(cfg, []byte(menu), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "env", "MTOOLS_SKIP_CHECK=1", "mcopy", "-o", "-i", disk+"@@1M", cfg, "::/EFI/debian/grub.cfg")
	return disk
}

// TestKilledVM: the context given to Start and Config.Timeout each kill the VM;
// waits end with the reason, and Close still cleans up.
func TestKilledVM(t *testing.T) {
	needQEMU(t)
	img := blankDisk(t)
	t.Run("context cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		// BIOS: SeaBIOS prints nothing on the serial port, so nothing ends the
		// boot but the kill.
		m := start(t, ctx, Config{Image: img, Firmware: Firmware{Boot: BIOS}, Accel: "tcg", WorkDir: workDir(t)})
		time.AfterFunc(500*time.Millisecond, cancel)
		_, err := m.WaitBoot(context.Background())
		var be *BootError
		if !errors.As(err, &be) || !strings.Contains(be.Reason, "cancelled") {
			t.Errorf("WaitBoot = %v, want a BootError saying the VM was cancelled", err)
		}
		select {
		case <-m.Done():
		case <-time.After(5 * time.Second):
			t.Error("QEMU still running after cancel")
		}
	})
	t.Run("time limit", func(t *testing.T) {
		m := start(t, context.Background(), Config{Image: img, Firmware: Firmware{Boot: BIOS}, Accel: "tcg", WorkDir: workDir(t), Timeout: 2 * time.Second})
		began := time.Now()
		_, err := m.WaitBoot(context.Background())
		var be *BootError
		if !errors.As(err, &be) || !strings.Contains(be.Reason, "time limit") {
			t.Errorf("WaitBoot = %v, want a BootError naming the time limit", err)
		}
		if d := time.Since(began); d > 10*time.Second {
			t.Errorf("killed after %s, limit 2s", d)
		}
	})
	t.Run("wait timeout leaves the VM running", func(t *testing.T) {
		m := start(t, context.Background(), Config{Image: img, Firmware: Firmware{Boot: BIOS}, Accel: "tcg", WorkDir: workDir(t)})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := m.WaitBoot(ctx)
		var be *BootError
		if !errors.As(err, &be) || !strings.HasPrefix(be.Reason, "timeout") {
			t.Errorf("WaitBoot = %v, want a timeout BootError", err)
		}
		if st, err := m.QMP().Status(context.Background()); err != nil || st != "running" {
			t.Errorf("status after a wait timeout = %q, %v", st, err)
		}
		if _, err := m.SSH(context.Background()); err == nil || !strings.Contains(err.Error(), "no cloud-init seed") {
			t.Errorf("SSH without a seed = %v", err)
		}
	})
}

// TestProbe: the probe guests show they run under TCG (so a silent KVM
// guest means KVM cannot run it, not a broken probe); a silent guest is
// caught at the deadline.
func TestProbe(t *testing.T) {
	needQEMU(t)
	bios := probeSpec{boot: BIOS}
	began := time.Now()
	if err := probeBoot(context.Background(), "qemu-system-x86_64", t.TempDir(), bios, "tcg", 20*time.Second); err != nil {
		t.Fatalf("probe guest under TCG: %v", err)
	}
	t.Logf("probe guest under TCG printed after %s", time.Since(began).Round(time.Millisecond))
	// A guest that stays silent (here: not given the time to print) is
	// detected at the probe's deadline and QEMU is killed.
	wd := workDir(t)
	if err := probeBoot(context.Background(), "qemu-system-x86_64", wd, bios, "tcg", time.Millisecond); err == nil || !strings.Contains(err.Error(), "showed nothing") {
		t.Errorf("silent probe guest: %v, want a timeout", err)
	}
}
