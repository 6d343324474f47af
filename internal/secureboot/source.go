package secureboot

import (
	"fmt"
	"os"

	"github.com/vouch-dev/vouch/internal/efi"
	"github.com/vouch-dev/vouch/internal/target"
)

// FirmwareSource names where a firmware state comes from: an edk2/OVMF
// variable store file (--vars), a directory of variables (--efivars: an
// efivarfs or exported Name-GUID files) or a what-if profile (--firmware).
// At most one is given; none means the target's own (the live host's
// efivarfs).
type FirmwareSource struct {
	Vars, EFIVars, Profile string
}

// Given reports whether a source was named.
func (s FirmwareSource) Given() bool { return s.Vars != "" || s.EFIVars != "" || s.Profile != "" }

// FirmwareUsageError is a firmware source named wrongly (two at once, an
// unknown profile): the caller's mistake rather than a file's.
type FirmwareUsageError struct{ Reason string }

func (e *FirmwareUsageError) Error() string { return "secureboot: " + e.Reason }

// LoadFirmware is the one place a firmware state is resolved, for every
// command and the agent: the named source, else the target's own firmware
// variables (a live UEFI host's efivarfs). t may be nil (no target). When
// there is no firmware state it returns nil and says why in words (a disk
// image or directory with no source named, a host booted without UEFI); an
// unreadable source is an error naming it.
func LoadFirmware(src FirmwareSource, t *target.Target) (*Firmware, string, error) {
	n := 0
	for _, s := range []string{src.Vars, src.EFIVars, src.Profile} {
		if s != "" {
			n++
		}
	}
	if n > 1 {
		return nil, "", &FirmwareUsageError{Reason: "give one of --vars, --efivars and --firmware"}
	}
	switch {
	case src.Vars != "":
		s, err := efi.ReadVarStoreFile(src.Vars)
		if err != nil {
			return nil, "", fmt.Errorf("secureboot: --vars: %w", err)
		}
		fw, err := FromVars(s.Vars())
		if err != nil {
			return nil, "", fmt.Errorf("secureboot: --vars %s: %w", src.Vars, err)
		}
		return fw, "", nil
	case src.EFIVars != "":
		if info, err := os.Stat(src.EFIVars); err != nil || !info.IsDir() {
			return nil, "", fmt.Errorf("secureboot: %s: not a directory of firmware variables", src.EFIVars)
		}
		vs, err := efi.ReadVarDir(os.DirFS(src.EFIVars), src.EFIVars)
		if err != nil {
			return nil, "", fmt.Errorf("secureboot: --efivars: %w", err)
		}
		fw, err := FromVars(vs)
		if err != nil {
			return nil, "", fmt.Errorf("secureboot: --efivars %s: %w", src.EFIVars, err)
		}
		return fw, "", nil
	case src.Profile != "":
		fw, err := FromProfile(src.Profile)
		if err != nil {
			return nil, "", &FirmwareUsageError{Reason: "--firmware: " + err.Error()}
		}
		return fw, "", nil
	}
	switch {
	case t == nil:
		return nil, "firmware state unknown: no --vars, --efivars or --firmware was given", nil
	case t.Kind != target.KindLive:
		kind := "root directory"
		if t.Kind == target.KindImage {
			kind = "disk image"
		}
		return nil, fmt.Sprintf("firmware state unknown: %s is a %s and no --vars, --efivars or --firmware was given", t.Path, kind), nil
	case t.EFIVars == nil:
		return nil, "no UEFI here: there is no efivarfs (/sys/firmware/efi/efivars), so this system booted through legacy BIOS or runs in a container or chroot without it, and no --vars, --efivars or --firmware was given", nil
	}
	fw, err := TargetFirmware(t)
	if err != nil {
		return nil, "", fmt.Errorf("secureboot: reading firmware variables: %w", err)
	}
	return fw, "", nil
}
