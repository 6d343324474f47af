package measure_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vouch-dev/vouch/internal/authenticode"
	"github.com/vouch-dev/vouch/internal/efi"
	"github.com/vouch-dev/vouch/internal/gate/gatetest"
	"github.com/vouch-dev/vouch/internal/measure"
	"github.com/vouch-dev/vouch/internal/mscerts"
	"github.com/vouch-dev/vouch/internal/nvram"
	"github.com/vouch-dev/vouch/internal/testfixtures"
	"github.com/vouch-dev/vouch/internal/vm"
)

// measured is one boot's log and the TPM's PCRs, read in the guest.
type measured struct {
	raw []byte
	log *measure.Log
	tpm measure.PCRs
}

// readMeasurements reads the event log and every PCR bank through SSH.
func readMeasurements(t *testing.T, ctx context.Context, m *vm.Machine, tag string) measured {
	t.Helper()
	g, err := m.SSH(ctx)
	if err != nil {
		t.Fatalf("%s: SSH: %v", tag, err)
	}
	defer g.Close()
	res, err := g.Run(ctx, "sudo base64 -w0 /"+measure.LogPath)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("%s: read the event log: %v %s", tag, err, res.Stderr)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(res.Stdout))
	if err != nil {
		t.Fatalf("%s: %v", tag, err)
	}
	res, err = g.Run(ctx, `cd /sys/class/tpm/tpm0 && for d in pcr-*; do for i in $(seq 0 23); do echo "${d#pcr-} $i $(cat $d/$i)"; done; done`)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("%s: read the PCRs: %v %s", tag, err, res.Stderr)
	}
	tpm, err := measure.ParsePCRs([]byte(res.Stdout), tag+" sysfs")
	if err != nil {
		t.Fatal(err)
	}
	lg, err := measure.Parse(raw, tag)
	if err != nil {
		t.Fatalf("%s: %v", tag, err)
	}
	if dir := os.Getenv("VOUCH_MEASURE_KEEP"); dir != "" {
		os.WriteFile(filepath.Join(dir, tag+".log"), raw, 0o644)
		os.WriteFile(filepath.Join(dir, tag+".pcrs"), []byte(res.Stdout), 0o644)
	}
	// The replay must equal the TPM in every bank and PCR.
	mm, verr := lg.Compare(tpm)
	for _, x := range mm {
		t.Errorf("%s: %s", tag, x)
	}
	if verr != nil {
		t.Errorf("%s: go-attestation: %v", tag, verr)
	}
	for _, f := range lg.Findings {
		t.Errorf("%s: finding on a real log: %s", tag, f)
	}
	t.Logf("%s: %d events, banks %v, replay equals the TPM's PCRs: %v", tag, len(lg.Events), lg.Banks, len(mm) == 0 && verr == nil)
	return measured{raw: raw, log: lg, tpm: tpm}
}

// row is one line of the closing table.
type row struct {
	change       string
	pcr          int
	old, pred, m measure.Digest
}

// compare checks a prediction against the next boot's TPM, every bank of
// PCR 4 and 7, and records the SHA-256 values for the table.
func compare(t *testing.T, name string, p *measure.Prediction, got measured, rows *[]row) {
	t.Helper()
	if p.Refused != "" {
		t.Errorf("%s: predicted a refused boot (%s), yet it booted", name, p.Refused)
	}
	for _, v := range p.PCRs {
		tpm := got.tpm[v.Bank][v.PCR]
		if !bytes.Equal(v.New, tpm) {
			t.Errorf("%s: PCR %d (%s): predicted %s, measured %s (was %s)\n changes: %+v\n notes: %v", name, v.PCR, v.Bank, v.New, measure.Digest(tpm), v.Old, p.Changes, p.Notes)
		}
		if v.Bank == measure.SHA256 {
			*rows = append(*rows, row{name, v.PCR, v.Old, v.New, tpm})
		}
	}
	if len(p.PCRs) == 0 {
		t.Errorf("%s: no PCR 4 or 7 predicted", name)
	}
}

func startVM(t *testing.T, ctx context.Context, img, vars, varsOut, overlay string) *vm.Machine {
	t.Helper()
	m, err := vm.Start(ctx, vm.Config{
		Image:     img,
		Firmware:  vm.Firmware{Boot: vm.UEFI, SecureBoot: true, Vars: vars, VarsOut: varsOut},
		Accel:     "tcg",
		CPUs:      2,
		MemoryMiB: 2048,
		Timeout:   40 * time.Minute,
		WorkDir:   t.TempDir(),
		CloudInit: true,
		TPM:       true,
		Overlay:   overlay,
		Log:       testLog{t},
	})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func waitBoot(t *testing.T, ctx context.Context, m *vm.Machine, what string) {
	t.Helper()
	took, err := m.WaitBoot(ctx)
	if err != nil {
		var be *vm.BootError
		if errors.As(err, &be) {
			t.Fatalf("%s: %v\n%s", what, err, strings.Join(be.Tail, "\n"))
		}
		t.Fatalf("%s: %v", what, err)
	}
	t.Logf("%s: booted in %.0f s", what, took.Seconds())
}

func run(t *testing.T, ctx context.Context, m *vm.Machine, cmd string) string {
	t.Helper()
	g, err := m.SSH(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	res, err := g.Run(ctx, cmd)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("%s: exit %d: %v\n%s%s", cmd, res.ExitCode, err, res.Stdout, res.Stderr)
	}
	return res.Stdout
}

func upload(t *testing.T, ctx context.Context, m *vm.Machine, path string, data []byte) {
	t.Helper()
	g, err := m.SSH(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.Upload(ctx, path, bytes.NewReader(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// editStore applies edit to the store file in place.
func editStore(t *testing.T, path string, edit func(*nvram.Store)) {
	t.Helper()
	s, err := nvram.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	edit(s)
	if err := s.Save(nvram.SaveOptions{NoBackup: true}); err != nil {
		t.Fatal(err)
	}
}

func parsePE(t *testing.T, b []byte) *authenticode.Image {
	t.Helper()
	img, err := authenticode.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestSwtpmOracle boots the cloud fixture under OVMF with Secure Boot and a
// software TPM, and checks vouch against the TPM: every boot's log replays
// to the TPM's PCRs (all banks), and for a chain of changes (db gains the
// Microsoft UEFI CA 2023; Microsoft's dbx update; a newer SbatLevel; shim
// replaced by its 2023-only variant; a new kernel) the PCR 4 and PCR 7
// predicted from boot N-1's log equal what boot N measures.
func TestSwtpmOracle(t *testing.T) {
	testfixtures.Long(t, testfixtures.QEMU)
	for _, tool := range [][2]string{{"qemu-system-x86_64", "qemu-system-x86"}, {"swtpm", "swtpm"}, {"tpm2_eventlog", "tpm2-tools"}} {
		if _, err := exec.LookPath(tool[0]); err != nil {
			t.Fatalf("%s not found: install the Debian package %s (scripts/deps.sh)", tool[0], tool[1])
		}
	}
	img := testfixtures.Path(t, "debian-cloud.qcow2")
	dualShim := gatetest.DualShim(t)
	shim2023 := gatetest.Shim2023Only(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Minute)
	defer cancel()
	dir := t.TempDir()
	var rows []row
	inst := measure.Installed{Shim: parsePE(t, dualShim)}

	// Every boot is a new VM on the same variable store and disk overlay:
	// what one boot (or an offline store edit, or a change made in the
	// guest before poweroff) writes, the next one sees. Boot 1's log comes
	// after shim's fallback has created the boot entry and reset, with
	// SbatLevel written: PCR 4 and 7 are already what a settled boot
	// measures, which the first prediction checks.
	vars := filepath.Join(dir, "vars.fd")
	ovl := filepath.Join(dir, "overlay.qcow2")
	m := startVM(t, ctx, img, "", vars, ovl)
	waitBoot(t, ctx, m, "boot1")
	cur := readMeasurements(t, ctx, m, "boot1")
	peerEventlog(t, dir, cur)
	checkExplain(t, cur.log, dualShim)
	stop(t, ctx, m)

	// Change 1: db gains the Microsoft UEFI CA 2023.
	ca2023, err := mscerts.Read("microsoft-uefi-ca-2023")
	if err != nil {
		t.Fatal(err)
	}
	p, err := measure.Predict(cur.log, measure.Change{DBAdd: []*x509.Certificate{ca2023}}, inst)
	if err != nil {
		t.Fatal(err)
	}
	editStore(t, vars, func(s *nvram.Store) {
		if _, err := s.AddCerts(nvram.VarDB, []*x509.Certificate{ca2023}); err != nil {
			t.Fatal(err)
		}
	})
	m, cur = bootAndMeasure(t, ctx, img, vars, ovl, "boot2-db")
	compare(t, "db += Microsoft UEFI CA 2023", p, cur, &rows)
	stop(t, ctx, m)

	// Change 2: Microsoft's signed dbx update.
	upd, err := os.ReadFile(testfixtures.Data("secureboot", "dbx", "DBXUpdate-amd64.bin"))
	if err != nil {
		t.Fatal(err)
	}
	u, err := nvram.ParseUpdate(upd, "DBXUpdate-amd64.bin")
	if err != nil {
		t.Fatal(err)
	}
	if p, err = measure.Predict(cur.log, measure.Change{DBXUpdate: u.Auth.Payload}, inst); err != nil {
		t.Fatal(err)
	}
	editStore(t, vars, func(s *nvram.Store) {
		if _, err := s.Apply(upd, "DBXUpdate-amd64.bin", nvram.VarDBX); err != nil {
			t.Fatal(err)
		}
	})
	m, cur = bootAndMeasure(t, ctx, img, vars, ovl, "boot3-dbx")
	compare(t, "dbx update", p, cur, &rows)
	stop(t, ctx, m)

	// Change 3: a newer SbatLevel (the latest published level), written to
	// the store as shim would find it.
	level := latestSbatLevel(t)
	if p, err = measure.Predict(cur.log, measure.Change{SBATLevel: level}, inst); err != nil {
		t.Fatal(err)
	}
	editStore(t, vars, func(s *nvram.Store) {
		old, ok := s.Vars().Get("SbatLevel", efi.ShimLockGUID)
		if !ok {
			t.Fatal("the settled store has no SbatLevel")
		}
		if err := s.VarStore().Set(efi.Variable{Name: "SbatLevel", GUID: efi.ShimLockGUID, Attributes: old.Attributes, Data: level}); err != nil {
			t.Fatal(err)
		}
	})
	m, cur = bootAndMeasure(t, ctx, img, vars, ovl, "boot4-sbat")
	compare(t, "SbatLevel "+firstLine(level), p, cur, &rows)

	// Change 4: shim replaced by its 2023-only variant (db trusts both CAs
	// since change 1), copied onto the ESP in the guest.
	if p, err = measure.Predict(cur.log, measure.Change{Shim: parsePE(t, shim2023)}, inst); err != nil {
		t.Fatal(err)
	}
	upload(t, ctx, m, "/tmp/shimx64.efi", shim2023)
	run(t, ctx, m, "findmnt /boot/efi >/dev/null || sudo mount /dev/vda1 /boot/efi; sudo cp /tmp/shimx64.efi /boot/efi/EFI/debian/shimx64.efi && sync")
	stop(t, ctx, m)
	m, cur = bootAndMeasure(t, ctx, img, vars, ovl, "boot5-shim2023")
	compare(t, "shim -> 2023-only shim", p, cur, &rows)

	// Change 5: a new kernel (Debian's signed kernel one ABI older than the
	// image's), installed in the running guest and made GRUB's entry. Its
	// prediction starts from the package, as vouch measure predict --kernel
	// does; shim verifies it with the certificate it already measured for
	// GRUB, so PCR 7 stays and PCR 4 changes.
	k := prevKernel(t)
	peerKernelDigest(t, k)
	if p, err = measure.Predict(cur.log, measure.Change{Kernel: k.img}, measure.Installed{Shim: parsePE(t, shim2023)}); err != nil {
		t.Fatal(err)
	}
	installKernel(t, ctx, m, k)
	stop(t, ctx, m)
	m, cur = bootAndMeasure(t, ctx, img, vars, ovl, "boot6-kernel")
	if got := strings.TrimSpace(run(t, ctx, m, "uname -r")); got != k.kver {
		t.Errorf("the guest runs kernel %s, want %s", got, k.kver)
	}
	compare(t, "kernel -> one ABI older", p, cur, &rows)
	stop(t, ctx, m)

	var tb strings.Builder
	fmt.Fprintf(&tb, "%-34s %-4s %-16s %-16s %-16s %s\n", "change", "PCR", "old (sha256)", "predicted", "measured", "")
	for _, r := range rows {
		ok := "ok"
		if !bytes.Equal(r.pred, r.m) {
			ok = "MISMATCH"
		}
		fmt.Fprintf(&tb, "%-34s %-4d %-16.16s %-16.16s %-16.16s %s\n", r.change, r.pcr, r.old.String(), r.pred.String(), measure.Digest(r.m).String(), ok)
	}
	t.Logf("closing table:\n%s", tb.String())
}

// bootAndMeasure boots a new VM on the store and overlay and reads its
// measurements; the VM keeps running for changes made in the guest.
func bootAndMeasure(t *testing.T, ctx context.Context, img, vars, ovl, tag string) (*vm.Machine, measured) {
	t.Helper()
	m := startVM(t, ctx, img, vars, vars, ovl)
	waitBoot(t, ctx, m, tag)
	return m, readMeasurements(t, ctx, m, tag)
}

// stop powers the guest off cleanly (the store and the overlay are then
// complete) and closes the VM, which saves the store.
func stop(t *testing.T, ctx context.Context, m *vm.Machine) {
	t.Helper()
	if err := m.Poweroff(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
}
