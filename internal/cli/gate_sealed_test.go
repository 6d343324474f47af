package cli

import (
	"github.com/vouch-dev/vouch/internal/testfixtures"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGateSealedDisks judges shims for a machine with TPM-sealed disks,
// predicting from the real OVMF+swtpm log (2011-only db, Debian's
// dual-signed shim): the same shim again leaves PCR 4 and 7 alone; a
// 2023-only shim does not boot there at all, which the sealed-disk verdict
// says too; --sealed refuse turns a locked disk into exit 1; without a log
// the gate cannot promise PCR 4 or 7.
func TestGateSealedDisks(t *testing.T) {
	testfixtures.Long(t, testfixtures.Fixtures)
	f := newGateFiles(t)
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc", "os-release"), []byte("ID=debian\nVERSION_ID=\"12\"\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc", "crypttab"), []byte("cryptroot UUID=1 none luks,tpm2-device=auto,tpm2-pcrs=7\ncryptdata UUID=2 none tpm2-device=auto,tpm2-pcrs=0\n"), 0o644)
	gateArgs := func(extra ...string) []string {
		return append([]string{"gate", "shim", "--vars", f.store2011, "--grub", f.grub, "--target", root}, extra...)
	}

	code, out, errs := run(t, gateArgs("--tpm-log", measureLog, "--sealed", "refuse", f.dual)...)
	if code != 0 || !strings.Contains(out, "TPM-sealed disk cryptroot: still unlocks: sealed to PCR 7") {
		t.Errorf("same shim: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = run(t, gateArgs("--tpm-log", measureLog, "--force", f.shim2023)...)
	if code != 0 || !strings.Contains(out, "TPM-sealed disk cryptroot: the machine the log measured would not boot the change at all") {
		t.Errorf("2023-only shim, warn: exit %d\n%s%s", code, out, errs)
	}
	code, _, errs = run(t, gateArgs("--tpm-log", measureLog, "--sealed", "refuse", f.shim2023)...)
	if code != 1 || !strings.Contains(errs, "a TPM-sealed disk would not unlock") {
		t.Errorf("2023-only shim, refuse: exit %d, %q", code, errs)
	}
	code, out, _ = run(t, gateArgs(f.dual)...)
	if code != 0 || !strings.Contains(out, "cryptroot: may not unlock from the TPM") || !strings.Contains(out, "cryptdata: still unlocks") {
		t.Errorf("no log: exit %d\n%s", code, out)
	}
	if code, _, errs := run(t, "gate", "shim", "--sealed", "maybe", "--vars", f.store2011, f.dual); code != 2 || !strings.Contains(errs, "want warn or refuse") {
		t.Errorf("bad --sealed: exit %d %q", code, errs)
	}
}
