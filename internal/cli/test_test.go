package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vouch-dev/vouch/internal/authenticode"
	"github.com/vouch-dev/vouch/internal/imagetest"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

func TestTestHelpAndList(t *testing.T) {
	code, out, _ := run(t, "test", "--help")
	if code != 0 {
		t.Fatalf("--help: exit %d", code)
	}
	for _, want := range []string{"vouch test --firmware-matrix debian.raw", "QUEUED, ASSIGNED, RUNNING", "ATTEMPTED", "--secure-boot=off", "Exit codes", "cloud-init"} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q", want)
		}
	}
	code, out, errs := run(t, "test", "--list", "--priority", "0")
	if code != 0 {
		t.Fatalf("--list: exit %d: %s", code, errs)
	}
	for _, want := range []string{"boot.multi-user", "secureboot.state", "kernel.log-clean"} {
		if !strings.Contains(out, want) {
			t.Errorf("--list --priority 0 lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "network.dhcp") {
		t.Errorf("--list --priority 0 lists a P1 case:\n%s", out)
	}
	code, out, _ = run(t, "test", "--list", "--format", "json", "--area", "network", "--exclude", "network.dns")
	var list []imagetest.CaseInfo
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) != 2 {
		t.Fatalf("--list json: exit %d, %d cases:\n%s", code, len(list), out)
	}
	if list[0].Area != "network" || len(list[0].Requires) == 0 || list[0].Timeout <= 0 {
		t.Errorf("case info %+v", list[0])
	}
}

func TestTestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "disk.raw")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"test"}, "name one disk image"},
		{[]string{"test", "a", "b"}, "name one disk image"},
		{[]string{"test", "--format", "sarif", img}, `unknown format "sarif"`},
		{[]string{"test", "--accel", "hvf", img}, `unknown accelerator "hvf"`},
		{[]string{"test", "--secure-boot", "maybe", img}, "--secure-boot is on or off"},
		{[]string{"test", "--area", "nope", img}, `unknown area "nope"`},
		{[]string{"test", "--case", "boot.multiuser", img}, `no case named "boot.multiuser"`},
		{[]string{"test", "--priority", "9", img}, "priority 9 out of range"},
		{[]string{"test", "--vars", img, "--firmware", "microsoft-2023", img}, "give --vars or --firmware, not both"},
		{[]string{"test", "--firmware", "microsoft-2099", "--certs", dir, img}, "--firmware:"},
		{[]string{"test", "--bios", "--firmware", "microsoft-2011", img}, "--bios boots without UEFI"},
		{[]string{"test", "--vars", img, img}, "--vars: efi: " + img},
		{[]string{"test", "--output", filepath.Join(dir, "no", "such", "r.json"), img}, "does not exist"},
		{[]string{"test", filepath.Join(dir, "missing.qcow2")}, "missing.qcow2"},
		{[]string{"test", dir}, "is a directory"},
		{[]string{"test", "--firmware-matrix", "--certs", dir, "--vars", img, img}, "--firmware-matrix chooses the firmware itself"},
		{[]string{"test", "--firmware-matrix", "--certs", dir, "--format", "html", img}, "--firmware-matrix writes table or json"},
		{[]string{"test", "--list", "--format", "html"}, "--list writes table or json"},
	}
	for _, tc := range tests {
		code, out, errs := run(t, tc.args...)
		if code != ExitError || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q", tc.args, code, errs, tc.want)
		}
		if out != "" {
			t.Errorf("%v: wrote to stdout on error: %q", tc.args, out)
		}
	}
}

// unsignedShimDisk is a GPT disk with a copy of the fixtures' ESP whose shim
// has no signature: it stands in for a shim signed only by the Microsoft UEFI CA
// 2023 on firmware that trusts only the 2011 CAs (none is published to
// download), both being an image the firmware's db does not trust.
func unsignedShimDisk(t *testing.T) string {
	t.Helper()
	need(t, "mcopy", "sgdisk", "dd")
	dir := t.TempDir()
	signed, err := os.ReadFile(testfixtures.Deb(t, "shim-signed/usr/lib/shim/shimx64.efi.signed"))
	if err != nil {
		t.Fatal(err)
	}
	unsigned, err := authenticode.RemoveSignature(signed, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "shimx64.efi"), unsigned, 0o644); err != nil {
		t.Fatal(err)
	}
	sh(t, dir, `
cp --sparse=always `+testfixtures.Path(t, "esp.img")+` esp.img
for dst in ::/EFI/BOOT/BOOTX64.EFI ::/EFI/debian/shimx64.efi; do MTOOLS_SKIP_CHECK=1 mcopy -o -i esp.img shimx64.efi "$dst"; done
truncate -s 258M disk.raw
sgdisk -o -n 1:2048:+256M -t 1:C12A7328-F81F-11D2-BA4B-00A0C93EC93B disk.raw >/dev/null
dd if=esp.img of=disk.raw bs=1M seek=1 conv=notrunc,sparse status=none
`)
	return filepath.Join(dir, "disk.raw")
}

// TestTestFailingBoot boots a disk whose shim the firmware does not trust: the
// boot case FAILS with the firmware's reason and the console tail, the cases
// that need a booted guest are SKIPPED saying so, the offline cases run on the
// image, exit 1, and the VM and its files are gone.
func TestTestFailingBoot(t *testing.T) {
	testfixtures.Long(t, testfixtures.Fixtures, testfixtures.QEMU, testfixtures.OVMF)
	img := unsignedShimDisk(t)
	work := t.TempDir()
	outDir := t.TempDir()
	report := filepath.Join(outDir, "report.json")
	html := filepath.Join(outDir, "report.html")
	code, out, errs := run(t, "test", "--accel", "tcg", "--work-dir", work, "--boot-timeout", "4m",
		"--format", "json", "--output", report, img)
	if code != ExitFindings {
		t.Fatalf("exit %d, want 1\nstdout: %s\nstderr: %s", code, out, errs)
	}
	if out != "" {
		t.Errorf("--output given but stdout has %q", out)
	}
	// The progress table went to stderr, one line per case.
	if !strings.Contains(errs, "FAILED    P0  boot") {
		t.Errorf("no progress line for the boot case on stderr:\n%s", errs)
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var rep imagetest.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	byName := map[string]imagetest.Result{}
	for _, r := range rep.Results {
		byName[r.Name] = r
	}
	const reason = "firmware refused the image (Secure Boot: Access Denied)"
	boot := byName["boot.multi-user"]
	if boot.Status != imagetest.Failed || boot.Message != "boot failed: "+reason || len(boot.Log) < 3 ||
		!strings.Contains(boot.Log[0], "Access Denied") {
		t.Errorf("boot.multi-user: %s %q, log %q", boot.Status, boot.Message, boot.Log)
	}
	t.Logf("boot.multi-user: %s\n  %s", boot.Message, strings.Join(boot.Log, "\n  "))
	for _, name := range []string{"network.dhcp", "boot.reboot-qmp", "console.serial-console", "provisioning.ssh-login", "kernel.cmdline-console"} {
		if r := byName[name]; r.Status != imagetest.Skipped || r.Message != "the VM did not boot: "+reason {
			t.Errorf("%s: %s %q, want SKIPPED because the VM did not boot", name, r.Status, r.Message)
		}
	}
	for _, name := range []string{"secureboot.state", "kernel.log-clean"} {
		if r := byName[name]; r.Status != imagetest.Skipped || !strings.Contains(r.Message, "did not boot") {
			t.Errorf("%s: %s %q, want SKIPPED: nothing reached the kernel", name, r.Status, r.Message)
		}
	}
	// The offline cases read the image itself: it has an ESP and no root.
	for _, name := range []string{"storage.fstab-root-uuid", "cloud-image.64-bit"} {
		if r := byName[name]; r.Status != imagetest.Skipped {
			t.Errorf("%s: %s %q, want SKIPPED (no root file system)", name, r.Status, r.Message)
		}
	}
	if rep.Run.Booted || rep.Run.BootError != reason || rep.Run.Accel != "tcg" || rep.Summary.Failed != 1 {
		t.Errorf("run record %+v summary %+v", rep.Run, rep.Summary)
	}
	ents, _ := os.ReadDir(work)
	for _, e := range ents {
		t.Errorf("left in the work directory: %s", e.Name())
	}
	ents, _ = os.ReadDir(outDir)
	if len(ents) != 1 {
		t.Errorf("output directory holds %d files, want the report only", len(ents))
	}

	// The same boot as HTML: one page with the console embedded.
	code, _, errs = run(t, "test", "--accel", "tcg", "--work-dir", work, "--case", "boot.multi-user",
		"--format", "html", "--output", html, img)
	if code != ExitFindings {
		t.Fatalf("html run: exit %d: %s", code, errs)
	}
	page, err := os.ReadFile(html)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(page, []byte("Access Denied")) || !bytes.Contains(page, []byte(`<span class="st failed">FAILED</span>`)) {
		t.Errorf("HTML report lacks the console or the failed case")
	}
}
