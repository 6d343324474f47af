package measure

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/vouch-dev/vouch/internal/luks"
	"github.com/vouch-dev/vouch/internal/target"
)

// Volume is a LUKS2 volume whose header was read, and where it is.
type Volume struct {
	// Where names it: "partition 3" of an image, a device or file path.
	Where  string
	Header *luks.Header
}

// ReadVolume reads the LUKS2 header of a block device or a file.
func ReadVolume(p string) (Volume, error) {
	f, err := os.Open(p)
	if err != nil {
		return Volume{}, fmt.Errorf("measure: %w", err)
	}
	defer f.Close()
	size, err := f.Seek(0, 2) // a block device's size, as for a file
	if err != nil {
		return Volume{}, fmt.Errorf("measure: %s: %w", p, err)
	}
	h, err := luks.Read(f, size, p)
	if err != nil {
		return Volume{}, fmt.Errorf("measure: %w", err)
	}
	return Volume{Where: p, Header: h}, nil
}

// Sealed returns the disks of a target that the TPM unlocks: crypttab's
// tpm2-device= entries, and the LUKS2 volumes whose tokens bind a key to
// the TPM (Clevis tpm2 pins, systemd-cryptenroll's systemd-tpm2 tokens),
// read from the image's partitions or, on the running system, from the
// devices crypttab names. A token's PCRs replace crypttab's tpm2-pcrs=
// (systemd-cryptsetup uses the token's). Notes say which volumes could
// not be read.
func Sealed(t *target.Target) (disks []SealedDisk, notes []string, err error) {
	var root fs.FS
	if t.Root != nil {
		root = t.Root
	}
	var vols []Volume
	switch {
	case t.Image != nil:
		for _, v := range t.Image.LUKS {
			if v.Err != nil {
				notes = append(notes, v.Err.Error())
				continue
			}
			vols = append(vols, Volume{Where: fmt.Sprintf("partition %d", v.Partition), Header: v.Header})
		}
	case t.Kind == target.KindLive && root != nil:
		entries, err := crypttab(root)
		if err != nil {
			return nil, nil, err
		}
		for _, e := range entries {
			p := devicePath(e.device)
			if p == "" {
				continue
			}
			v, err := ReadVolume(p)
			if err != nil {
				// A device that is not there (not plugged in, or named by
				// a link udev has not made) or not LUKS has no token.
				if !errors.Is(err, luks.ErrNotLUKS) && !errors.Is(err, fs.ErrNotExist) {
					notes = append(notes, err.Error())
				}
				continue
			}
			vols = append(vols, v)
		}
	}
	disks, err = SealedFrom(root, vols)
	return disks, notes, err
}

// SealedFrom merges crypttab (under root; nil for none) with LUKS2 volumes:
// one SealedDisk per token that binds a key to the TPM, named after the
// crypttab entry of its volume when there is one, and the crypttab
// tpm2-device= entries whose volume was not read.
func SealedFrom(root fs.FS, vols []Volume) ([]SealedDisk, error) {
	var entries []crypttabEntry
	if root != nil {
		var err error
		if entries, err = crypttab(root); err != nil {
			return nil, err
		}
	}
	var out []SealedDisk
	matched := map[int]bool{}
	for _, v := range vols {
		name, device, line := "luks-"+v.Header.UUID, v.Where, 0
		for i, e := range entries {
			if e.matches(v) {
				name, device, line = e.disk.Name, e.disk.Device, e.disk.Line
				matched[i] = true
			}
		}
		for _, tk := range v.Header.Tokens {
			for _, b := range tk.TPM2 {
				d := SealedDisk{Name: name, Device: device, Line: line, PCRs: b.PCRs, PCRsKnown: true,
					Source: tokenSource(tk, b, v)}
				if !tk.TPM2Required {
					d.Fallback = "its Clevis " + tk.Pin + " pin unlocks without the TPM"
				}
				out = append(out, d)
			}
		}
	}
	for i, e := range entries {
		if !matched[i] && e.tpm {
			out = append(out, e.disk)
		}
	}
	return out, nil
}

func tokenSource(tk luks.Token, b luks.TPM2Binding, v Volume) string {
	what := "Clevis " + tk.Pin + " pin"
	if tk.Type == luks.TypeSystemdTPM2 {
		what = "systemd-cryptenroll's systemd-tpm2 token"
	}
	s := fmt.Sprintf("%s (LUKS2 token %d of %s, %s bank)", what, tk.ID, v.Where, b.Bank)
	if len(b.SignedPCRs) > 0 {
		s += fmt.Sprintf("; PCR %s through a signed policy", joinInts(b.SignedPCRs))
	}
	return s
}

// matches reports whether a crypttab entry names the volume: UUID=, a
// /dev/disk/by-uuid/ path, or the volume's own path.
func (e crypttabEntry) matches(v Volume) bool {
	dev := e.device
	uuid := v.Header.UUID
	switch {
	case uuid != "" && strings.EqualFold(strings.TrimPrefix(dev, "UUID="), uuid) && strings.HasPrefix(dev, "UUID="):
		return true
	case uuid != "" && path.Base(dev) == uuid && strings.HasPrefix(dev, "/dev/disk/by-uuid/"):
		return true
	}
	return dev == v.Where || devicePath(dev) == v.Where
}

// devicePath is the running system's path of a crypttab device field:
// UUID=, PARTUUID=, LABEL=, PARTLABEL= as udev's /dev/disk links, or an
// absolute path; "" for anything else.
func devicePath(dev string) string {
	for k, dir := range map[string]string{"UUID=": "by-uuid", "PARTUUID=": "by-partuuid", "LABEL=": "by-label", "PARTLABEL=": "by-partlabel"} {
		if v, ok := strings.CutPrefix(dev, k); ok && v != "" && !strings.Contains(v, "/") {
			return "/dev/disk/" + dir + "/" + v
		}
	}
	if path.IsAbs(dev) {
		return dev // a device, or a file cryptsetup attaches to a loop device
	}
	return ""
}
