package measure

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

// SealedDisk is a disk the TPM unlocks: a crypttab(5) entry with
// tpm2-device=, or a LUKS2 token that binds a key to the TPM (then one
// SealedDisk per token).
type SealedDisk struct {
	Name   string `json:"name"`
	Device string `json:"device"`
	// PCRs are the PCRs the key is sealed to: the token's, crypttab's
	// tpm2-pcrs=, else systemd-cryptenroll's default (7), PCRsKnown false.
	PCRs      []int `json:"pcrs"`
	PCRsKnown bool  `json:"pcrsKnown"`
	Line      int   `json:"line,omitempty"`
	// Source says where the PCRs come from (crypttab, or which LUKS2
	// token); empty for crypttab.
	Source string `json:"source,omitempty"`
	// Fallback says how the disk unlocks when the TPM will not (a Clevis
	// sss pin whose other pins meet its threshold).
	Fallback string `json:"fallback,omitempty"`
}

// SealVerdict says whether a sealed disk unlocks after a change.
type SealVerdict struct {
	Disk    SealedDisk `json:"disk"`
	Unlocks bool       `json:"unlocks"`
	Verdict string     `json:"verdict"`
}

// CrypttabPath is where crypttab lives under a root.
const CrypttabPath = "etc/crypttab"

// SealedDisks reads etc/crypttab under root and returns the entries with a
// tpm2-device= option. No crypttab is no sealed disk. Clevis tpm2 pins and
// systemd-tpm2 tokens live in the LUKS2 headers: Sealed reads those too.
func SealedDisks(root fs.FS) ([]SealedDisk, error) {
	entries, err := crypttab(root)
	var out []SealedDisk
	for _, e := range entries {
		if e.tpm {
			out = append(out, e.disk)
		}
	}
	return out, err
}

// crypttabEntry is one line of crypttab: the disk as sealed by crypttab's
// options, its device field, and whether it names tpm2-device=.
type crypttabEntry struct {
	disk   SealedDisk
	device string
	tpm    bool
}

func crypttab(root fs.FS) ([]crypttabEntry, error) {
	b, err := fs.ReadFile(root, CrypttabPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("measure: %s: %w", CrypttabPath, err)
	}
	var out []crypttabEntry
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		d := SealedDisk{Name: f[0], Device: f[1], Line: n}
		tpm := false
		opts := ""
		if len(f) >= 4 {
			opts = f[3]
		}
		for _, o := range strings.Split(opts, ",") {
			k, v, _ := strings.Cut(o, "=")
			switch k {
			case "tpm2-device":
				tpm = true
			case "tpm2-pcrs":
				d.PCRsKnown = true
				for _, p := range strings.FieldsFunc(v, func(r rune) bool { return r == '+' || r == ',' }) {
					// "7" or "7:sha256" or a name such as "secure-boot-policy".
					p, _, _ = strings.Cut(p, ":")
					if i, err := strconv.Atoi(p); err == nil && i >= 0 && i < NumPCRs {
						d.PCRs = append(d.PCRs, i)
					} else if i, ok := pcrNames[p]; ok {
						d.PCRs = append(d.PCRs, i)
					}
				}
			}
		}
		if !d.PCRsKnown {
			d.PCRs = []int{7}
		}
		sort.Ints(d.PCRs)
		out = append(out, crypttabEntry{disk: d, device: f[1], tpm: tpm})
	}
	return out, sc.Err()
}

// pcrNames are systemd's PCR names (systemd-cryptenroll(1)).
var pcrNames = map[string]int{
	"platform-code": 0, "platform-config": 1, "external-code": 2, "external-config": 3,
	"boot-loader-code": 4, "boot-loader-config": 5, "secure-boot-policy": 7,
	"kernel-initrd": 9, "ima": 10, "kernel-boot": 11, "kernel-config": 12,
	"sysexts": 13, "shim-policy": 14, "system-identity": 15,
}

// JudgeSealed says, for each sealed disk, whether the predicted PCRs still
// match what it is sealed to (the PCRs it uses unchanged in every bank).
func JudgeSealed(disks []SealedDisk, p *Prediction) []SealVerdict {
	var out []SealVerdict
	for _, d := range disks {
		v := SealVerdict{Disk: d, Unlocks: true}
		var moved []string
		for _, i := range d.PCRs {
			if p.Changed(i) {
				moved = append(moved, strconv.Itoa(i))
			}
		}
		src := "crypttab tpm2-pcrs="
		switch {
		case d.Source != "":
			src = d.Source
		case !d.PCRsKnown:
			src = "systemd-cryptenroll's default, as crypttab gives no tpm2-pcrs="
		}
		switch {
		case p.Refused != "":
			v.Unlocks = false
			v.Verdict = "the machine the log measured would not boot the change at all: " + p.Refused
		case len(moved) > 0 && d.Fallback != "":
			v.Verdict = fmt.Sprintf("its TPM binding breaks: sealed to PCR %s (%s) and the change moves PCR %s; it still unlocks, as %s", joinInts(d.PCRs), src, strings.Join(moved, ", "), d.Fallback)
		case len(moved) > 0:
			v.Unlocks = false
			v.Verdict = fmt.Sprintf("will not unlock from the TPM: sealed to PCR %s (%s) and the change moves PCR %s; re-enrol after the change or keep a recovery key at hand", joinInts(d.PCRs), src, strings.Join(moved, ", "))
		default:
			v.Verdict = fmt.Sprintf("still unlocks: sealed to PCR %s (%s), which the change leaves alone", joinInts(d.PCRs), src)
		}
		out = append(out, v)
	}
	return out
}

func joinInts(is []int) string {
	s := make([]string, len(is))
	for i, v := range is {
		s[i] = strconv.Itoa(v)
	}
	return strings.Join(s, "+")
}

// SealedPolicy is what the gate does about a disk a change would lock.
type SealedPolicy string

// The policies.
const (
	SealedWarn   SealedPolicy = "warn"
	SealedRefuse SealedPolicy = "refuse"
)

// ParseSealedPolicy reads --sealed.
func ParseSealedPolicy(s string) (SealedPolicy, error) {
	switch SealedPolicy(s) {
	case SealedWarn, SealedRefuse:
		return SealedPolicy(s), nil
	}
	return "", fmt.Errorf("measure: --sealed %q: want warn or refuse", s)
}

// GateSealed judges a boot-chain change for the TPM-sealed disks of a
// machine: with the machine's event log, by predicting PCR 4 and 7; without
// it, a new boot application is known to change PCR 4 and may change PCR 7
// (its authority), so disks sealed to either cannot be promised to unlock.
// blocks reports that some disk would not unlock (or cannot be shown to).
func GateSealed(disks []SealedDisk, lg *Log, ch Change, inst Installed) (verdicts []SealVerdict, blocks bool, err error) {
	if len(disks) == 0 {
		return nil, false, nil
	}
	if lg != nil {
		p, err := Predict(lg, ch, inst)
		if err != nil {
			return nil, false, err
		}
		verdicts = JudgeSealed(disks, p)
	} else {
		for _, d := range disks {
			v := SealVerdict{Disk: d, Unlocks: true, Verdict: fmt.Sprintf("still unlocks: sealed to PCR %s, which a new shim, GRUB or kernel leaves alone", joinInts(d.PCRs))}
			for _, p := range d.PCRs {
				if (p == 4 || p == 7) && d.Fallback == "" {
					v.Unlocks = false
					v.Verdict = fmt.Sprintf("may not unlock from the TPM: sealed to PCR %s, and a new boot application changes PCR 4 and may change PCR 7 (no TPM event log to predict from: give one, or keep a recovery key at hand)", joinInts(d.PCRs))
				}
			}
			verdicts = append(verdicts, v)
		}
	}
	for _, v := range verdicts {
		blocks = blocks || !v.Unlocks
	}
	return verdicts, blocks, nil
}
