package target

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func write(t *testing.T, root, p, content string) {
	t.Helper()
	full := filepath.Join(root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDirectoryTarget(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "usr/lib/os-release", "ID=debian\n")
	os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	os.Symlink("/usr/lib/os-release", filepath.Join(dir, "etc/os-release"))
	write(t, dir, "boot/efi/EFI/debian/shimx64.efi", "shim")
	tg, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	if tg.Kind != KindDirectory || tg.Root == nil || tg.ESP == nil || tg.ESPPath != "boot/efi" || tg.Image != nil {
		t.Fatalf("target %+v", tg)
	}
	if b, err := fs.ReadFile(tg.ESP, "EFI/debian/shimx64.efi"); err != nil || string(b) != "shim" {
		t.Errorf("ESP read: %q %v", b, err)
	}
	// The absolute symlink resolves inside the target, not on the host.
	if b, err := fs.ReadFile(tg.Root, "etc/os-release"); err != nil || string(b) != "ID=debian\n" {
		t.Errorf("os-release: %q %v", b, err)
	}
}

func TestESPOnlyDirectory(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "EFI/BOOT/BOOTX64.EFI", "x")
	tg, err := Open(dir, Options{})
	if err != nil || tg.Root != nil || tg.ESP == nil || tg.ESPPath != "." {
		t.Fatalf("%+v %v", tg, err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{filepath.Join(dir, "missing"), dir} {
		_, err := Open(p, Options{})
		var te *Error
		if !errors.As(err, &te) || te.Path != p {
			t.Errorf("Open(%s): %v", p, err)
		}
	}
}

func TestLive(t *testing.T) {
	tg, err := Open("", Options{Live: true})
	if err != nil {
		t.Fatal(err)
	}
	if tg.Kind != KindLive || tg.Root == nil {
		t.Fatalf("%+v", tg)
	}
	_, statErr := os.Stat("/sys/firmware/efi")
	if tg.HasUEFI() != (statErr == nil) {
		t.Errorf("HasUEFI %v, /sys/firmware/efi: %v", tg.HasUEFI(), statErr)
	}
	if (tg.EFIVars != nil) != (statErr == nil) {
		t.Errorf("EFIVars %v without UEFI", tg.EFIVars)
	}
}
