package secureboot_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vouch-dev/vouch/internal/secureboot"
	"github.com/vouch-dev/vouch/internal/target"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// TestLoadFirmware resolves each source, refuses two, and says why there is
// none on a directory target.
func TestLoadFirmware(t *testing.T) {
	efivars := testfixtures.Data("secureboot", "efivars-shim-test-data-1")
	fw, why, err := secureboot.LoadFirmware(secureboot.FirmwareSource{EFIVars: efivars}, nil)
	if err != nil || fw == nil || why != "" || !fw.TrustsCA(secureboot.CAUEFI2011) {
		t.Fatalf("--efivars: %v %q %v", fw, why, err)
	}
	if fw, _, err := secureboot.LoadFirmware(secureboot.FirmwareSource{Profile: "microsoft-2023"}, nil); err != nil || !fw.TrustsCA(secureboot.CAUEFI2023) {
		t.Errorf("--firmware: %v", err)
	}
	var ue *secureboot.FirmwareUsageError
	if _, _, err := secureboot.LoadFirmware(secureboot.FirmwareSource{Profile: "microsoft-1999"}, nil); !errors.As(err, &ue) {
		t.Errorf("unknown profile: %v", err)
	}
	if _, _, err := secureboot.LoadFirmware(secureboot.FirmwareSource{Profile: "microsoft-2011", EFIVars: efivars}, nil); !errors.As(err, &ue) {
		t.Errorf("two sources: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "VARS.fd")
	os.WriteFile(bad, []byte("not a store"), 0o644)
	if _, _, err := secureboot.LoadFirmware(secureboot.FirmwareSource{Vars: bad}, nil); err == nil || errors.As(err, &ue) || !strings.Contains(err.Error(), bad) {
		t.Errorf("bad store: %v", err)
	}
	if _, _, err := secureboot.LoadFirmware(secureboot.FirmwareSource{EFIVars: bad}, nil); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("--efivars on a file: %v", err)
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	os.WriteFile(filepath.Join(dir, "etc", "os-release"), []byte("ID=debian\n"), 0o644)
	tg, err := target.Open(dir, target.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	if fw, why, err := secureboot.LoadFirmware(secureboot.FirmwareSource{}, tg); fw != nil || err != nil || !strings.Contains(why, "root directory") {
		t.Errorf("directory target: %v %q %v", fw, why, err)
	}
	if fw, _, err := secureboot.LoadFirmware(secureboot.FirmwareSource{Profile: "microsoft-both"}, tg); fw == nil || err != nil {
		t.Errorf("directory target with a profile: %v", err)
	}
}
