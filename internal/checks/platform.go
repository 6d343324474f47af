package checks

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/vouch-dev/vouch/internal/check"
	"github.com/vouch-dev/vouch/internal/disk"
	"github.com/vouch-dev/vouch/internal/finding"
	"github.com/vouch-dev/vouch/internal/osrelease"
	"github.com/vouch-dev/vouch/internal/target"
)

// platformChecks need only what the target layer knows: the ESP, the OS release
// and the file systems of an image.
func platformChecks() []check.Check {
	return []check.Check{
		{
			ID:          "secureboot.esp-present",
			Suite:       SuiteSecureBoot,
			Title:       "Target has an EFI System Partition",
			Severity:    finding.High,
			Needs:       check.NeedImage,
			Remediation: "Create a FAT32 EFI System Partition (type C12A7328-F81F-11D2-BA4B-00A0C93EC93B) holding the boot loader; UEFI (Generation 2) VMs and Secure Boot need one.",
			References:  []string{"UEFI 2.10 §13.3 (EFI System Partition)"},
			Run:         espPresent,
		},
		{
			ID:          "baseline.os-supported",
			Suite:       SuiteBaseline,
			Title:       "Operating system release is supported by its vendor",
			Severity:    finding.High,
			Needs:       check.NeedRoot,
			Remediation: "Rebuild the image on a supported release; an unsupported release receives no security updates.",
			Run:         osSupported(time.Now),
		},
		{
			ID:          "cloud-image.root-fs-type",
			Suite:       SuiteCloudImage,
			Title:       "Root file system type is accepted by the major clouds",
			Severity:    finding.Medium,
			Needs:       check.NeedImage | check.NeedRoot,
			Remediation: "Use ext4 or XFS for the root file system of a cloud image.",
			References:  []string{"Azure: Prepare a Linux VHD (supported file systems)", "AWS VM Import: supported file systems"},
			Run:         rootFSType,
		},
	}
}

func espPresent(_ context.Context, env *check.Env) []check.Result {
	t := env.Target
	if t.ESP == nil {
		return check.Fail("no EFI System Partition found; the image can only boot through legacy BIOS")
	}
	var loaders []string
	for _, p := range []string{"EFI/BOOT/BOOTX64.EFI", "EFI/BOOT/BOOTAA64.EFI"} {
		if _, err := fs.Stat(t.ESP, p); err == nil {
			loaders = append(loaders, p)
		}
	}
	if len(loaders) == 0 {
		return []check.Result{{Status: finding.Pass,
			Message:  fmt.Sprintf("EFI System Partition at %s (no removable-media loader EFI/BOOT/BOOT*.EFI; firmware needs an NVRAM boot entry)", t.ESPPath),
			Evidence: []string{t.ESPPath}}}
	}
	return check.Pass(fmt.Sprintf("EFI System Partition at %s with %v", t.ESPPath, loaders), t.ESPPath)
}

func osSupported(now func() time.Time) func(context.Context, *check.Env) []check.Result {
	return func(_ context.Context, env *check.Env) []check.Result {
		info, err := osrelease.Read(env.Target.Root)
		if errors.Is(err, osrelease.ErrNotFound) {
			return check.NA("no os-release file in the root file system")
		}
		if err != nil {
			return check.Errorf("%v", err)
		}
		s, ok := osrelease.Lookup(info)
		if !ok {
			return check.NA(fmt.Sprintf("%s is not in vouch's support table (as of %s)", info, osrelease.LifecycleAsOf()))
		}
		ev := []string{info.Path + ": ID=" + info.ID + " VERSION_ID=" + info.VersionID, "end of support " + s.EndOfLife + " (" + s.Source + ")"}
		if !s.Supported(now()) {
			return check.Fail(fmt.Sprintf("%s reached end of support on %s", s.Name, s.EndOfLife), ev...)
		}
		return check.Pass(fmt.Sprintf("%s is supported until %s", s.Name, s.EndOfLife), ev...)
	}
}

func rootFSType(_ context.Context, env *check.Env) []check.Result {
	for _, f := range env.Target.Image.Filesystems {
		if f.Role != target.RoleRoot {
			continue
		}
		ev := fmt.Sprintf("partition %d: %s", f.Partition, f.Type)
		switch f.Type {
		case disk.FSExt4, disk.FSXFS:
			return check.Pass("root file system is "+f.Type, ev)
		case disk.FSExt2, disk.FSExt3:
			return check.Fail("root file system is "+f.Type+"; clouds expect ext4 or XFS", ev)
		}
		return check.Fail("root file system is "+f.Type, ev)
	}
	return check.NA("no root file system identified in the image")
}
