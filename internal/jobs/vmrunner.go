package jobs

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/vouch-dev/vouch/internal/imagetest"
	"github.com/vouch-dev/vouch/internal/nvram"
	"github.com/vouch-dev/vouch/internal/vm"
)

// VMRunner runs cases under QEMU with the imagetest runner, as `vouch test`
// does.
type VMRunner struct {
	// CertDir holds the Microsoft certificates for firmware profiles and
	// the matrix.
	CertDir string
	WorkDir string
	// Accel overrides the job's accelerator when set (auto, kvm, tcg).
	Accel string
	// BootTimeout bounds each boot (0: imagetest's default).
	BootTimeout time.Duration
}

// firmware builds the job's firmware; cleanup removes a written store.
func (v VMRunner) firmware(spec Spec) (vm.Firmware, string, func(), error) {
	none := func() {}
	fp := spec.Properties.Firmware
	fw := vm.Firmware{Boot: vm.UEFI, SecureBoot: fp.SecureBoot == nil || *fp.SecureBoot}
	switch {
	case fp.Vars != "":
		if _, err := nvram.Open(fp.Vars); err != nil {
			return fw, "", none, fmt.Errorf("jobs: variable store %s: %w", fp.Vars, err)
		}
		fw.Vars = fp.Vars
		return fw, "variable store " + fp.Vars, none, nil
	case fp.Profile != "" && fp.Profile != FirmwareMatrix:
		if v.CertDir == "" {
			return fw, "", none, fmt.Errorf("jobs: firmware profile %s needs the Microsoft certificates: start the worker with --certs DIR", fp.Profile)
		}
		tmpl, err := os.ReadFile(filepath.Join(vm.OVMFDir, "OVMF_VARS_4M.ms.fd"))
		if err != nil {
			return fw, "", none, fmt.Errorf("jobs: %w (install the Debian package ovmf)", err)
		}
		st, err := nvram.ProfileStore(tmpl, fp.Profile, v.CertDir)
		if err != nil {
			return fw, "", none, fmt.Errorf("jobs: firmware %s: %w", fp.Profile, err)
		}
		dir, err := os.MkdirTemp(v.WorkDir, "vouch-job-vars-")
		if err != nil {
			return fw, "", none, fmt.Errorf("jobs: %w", err)
		}
		fw.Vars = filepath.Join(dir, fp.Profile+".fd")
		if err := os.WriteFile(fw.Vars, st, 0o600); err != nil {
			os.RemoveAll(dir)
			return fw, "", none, fmt.Errorf("jobs: %w", err)
		}
		return fw, "profile " + fp.Profile, func() { os.RemoveAll(dir) }, nil
	}
	return fw, "", none, nil
}

func (v VMRunner) accel(spec Spec) string {
	if v.Accel != "" {
		return v.Accel
	}
	return spec.Accel
}

// Cases runs cases with imagetest.Run in a work directory of their own,
// whose VM's serial log is followed and sent to out.Console as it grows.
func (v VMRunner) Cases(ctx context.Context, spec Spec, cases []imagetest.Case, obs imagetest.Observer, out Output) (*imagetest.Report, error) {
	fw, name, cleanup, err := v.firmware(spec)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	dir, err := os.MkdirTemp(v.WorkDir, "vouch-job-run-")
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	defer os.RemoveAll(dir)
	tail := followConsoles(dir, out.Console)
	rep, err := imagetest.Run(ctx, imagetest.Config{
		Image: spec.Image.Path, Firmware: fw, FirmwareName: name, Accel: v.accel(spec),
		CPUs: spec.CPUs, MemoryMiB: spec.MemoryMiB, WorkDir: dir, Log: out.Log, Observer: obs, BootTimeout: v.BootTimeout,
	}, cases)
	sent := tail.stop()
	// A VM too short-lived for the follower to open its serial log: the
	// console the run kept, at once.
	if rep != nil && sent == 0 && out.Console != nil {
		for _, l := range rep.Run.Console {
			fmt.Fprintln(out.Console, l)
		}
	}
	return rep, err
}

// Matrix boots the image on the three profiles with imagetest.RunMatrix.
func (v VMRunner) Matrix(ctx context.Context, spec Spec, log io.Writer) (*imagetest.Matrix, error) {
	if v.CertDir == "" {
		return nil, fmt.Errorf("jobs: the firmware matrix needs the Microsoft certificates: start the worker with --certs DIR")
	}
	return imagetest.RunMatrix(ctx, imagetest.MatrixConfig{Image: spec.Image.Path, CertDir: v.CertDir, Accel: v.accel(spec), WorkDir: v.WorkDir, Log: log,
		BootTimeout: v.BootTimeout})
}
