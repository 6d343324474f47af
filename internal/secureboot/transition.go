package secureboot

import (
	"fmt"
	"slices"
	"strings"

	"github.com/vouch-dev/vouch/internal/authenticode"
)

// Transition is the verdict on the Microsoft UEFI CA 2011 → 2023 transition
// for one target, from the compatibility table
//
//	firmware db \ shim   2011-only    2023-only    dual
//	2011 only            boots        no boot      boots
//	2023 only            no boot      boots        boots
//	both                 boots        boots        boots
//
// plus what the table leaves out: dbx, SBAT, Secure Boot off, setup mode.
type Transition struct {
	// ShimSignedBy are the known CAs of the installed shim's signatures.
	ShimSignedBy []string `json:"shimSignedBy"`
	// FirmwareTrusts are the known Microsoft CAs in db.
	FirmwareTrusts    []string `json:"firmwareTrusts"`
	SecureBootEnabled bool     `json:"secureBootEnabled"`
	SetupMode         bool     `json:"setupMode"`
	// BootsToday: some boot path starts today.
	BootsToday bool `json:"bootsToday"`
	// BootsWith2023OnlyShim: it still starts once the shim is replaced by
	// one signed only by the Microsoft UEFI CA 2023.
	BootsWith2023OnlyShim bool   `json:"bootsWith2023OnlyShim"`
	Advice                string `json:"advice"`

	// FirmwareKnown is false when no firmware state was given; then
	// BootsToday and BootsWith2023OnlyShim are false and WhatIf holds the
	// answers under each profile.
	FirmwareKnown bool              `json:"firmwareKnown"`
	Shim          string            `json:"shim,omitempty"`
	WhatIf        map[string]WhatIf `json:"whatIf,omitempty"`
}

// WhatIf is the transition verdict under one firmware profile.
type WhatIf struct {
	BootsToday            bool `json:"bootsToday"`
	BootsWith2023OnlyShim bool `json:"bootsWith2023OnlyShim"`
}

func transition(paths []BootPath, fw *Firmware, o Options) Transition {
	shim, _ := firstShim(paths)
	t := Transition{ShimSignedBy: []string{}, FirmwareTrusts: []string{}}
	if shim != nil {
		t.Shim = shim.Path
		t.ShimSignedBy = nonNil(SignedBy(shim.img))
	}
	if fw == nil {
		t.WhatIf = map[string]WhatIf{}
		var parts []string
		for _, name := range Profiles() {
			pfw, _ := FromProfile(name)
			cp := copyPaths(paths)
			Evaluate(cp, pfw, o)
			today, with2023, _ := verdict(cp, pfw)
			t.WhatIf[name] = WhatIf{BootsToday: today, BootsWith2023OnlyShim: with2023}
			parts = append(parts, fmt.Sprintf("%s: %s", name, yesNo(today, with2023)))
		}
		t.Advice = "Firmware state unknown (give --efivars, --vars or --firmware): " + shimWords(shim) + ". Under the what-if profiles — " + strings.Join(parts, "; ") + "."
		return t
	}
	t.FirmwareKnown = true
	t.FirmwareTrusts = nonNil(fw.DBCAs)
	t.SecureBootEnabled = fw.SecureBoot
	t.SetupMode = fw.SetupMode
	var detail string
	t.BootsToday, t.BootsWith2023OnlyShim, detail = verdict(paths, fw)
	t.Advice = advice(paths, fw, shim, t, detail, o)
	return t
}

func yesNo(today, with2023 bool) string {
	w := func(b bool) string {
		if b {
			return "boots"
		}
		return "does not boot"
	}
	return w(today) + " today, " + w(with2023) + " with a 2023-only shim"
}

func shimWords(shim *Stage) string {
	if shim == nil {
		return "no shim found on this target"
	}
	ids := SignedBy(shim.img)
	if len(ids) == 0 {
		return fmt.Sprintf("the shim %s carries no Microsoft signature", shim.Path)
	}
	names := make([]string, len(ids))
	for i, id := range ids {
		names[i] = CAName(id)
	}
	return fmt.Sprintf("the shim %s is signed by %s", shim.Path, stringsJoinAnd(names))
}

func copyPaths(paths []BootPath) []BootPath {
	out := make([]BootPath, len(paths))
	for i, bp := range paths {
		out[i] = bp
		out[i].Stages = append([]Stage(nil), bp.Stages...)
		out[i].Kernels = append([]Stage(nil), bp.Kernels...)
	}
	return out
}

// verdict computes BootsToday and BootsWith2023OnlyShim on evaluated paths.
func verdict(paths []BootPath, fw *Firmware) (today, with2023 bool, detail string) {
	for _, bp := range paths {
		if bp.booted() {
			today = true
		}
	}
	shim, sp := firstShim(paths)
	fwOK, detail := fw.allows2023Shim(shim)
	if shim == nil || sp == nil {
		return today, fwOK, detail
	}
	// The rest of the chain does not depend on the shim's signatures.
	rest := *sp
	rest.Stages = nil
	for _, st := range sp.Stages {
		if st.Role == RoleShim && st.LoadedBy == ByFirmware && st.Path == shim.Path {
			st.Decision = &Decision{Allowed: true}
		}
		rest.Stages = append(rest.Stages, st)
	}
	b, _ := outcome(&rest)
	return today, fwOK && b != nil && *b, detail
}

// allows2023Shim reports whether the firmware would start a shim signed only
// by the Microsoft UEFI CA 2023. With the installed shim's own 2023
// signature at hand it runs the edk2 decision on that signature alone (what
// the image with the other signatures removed gets; the Authenticode digest
// does not change); otherwise it asks whether db holds the CA unrevoked.
func (fw *Firmware) allows2023Shim(shim *Stage) (bool, string) {
	if !fw.Enforcing() {
		return true, "Secure Boot is not enforced"
	}
	if shim != nil {
		var only []*authenticode.Signature
		for _, s := range topLevel(shim.img.Signatures()) {
			if s.KnownCA() == CAUEFI2023 {
				only = append(only, s)
			}
		}
		if len(only) > 0 {
			d := fw.verifySignatures(shim.img, only, nil)
			return d.Allowed, d.Reason
		}
	}
	for _, e := range fw.dbx509 {
		if e.ca == CAUEFI2023 {
			return false, "dbx revokes the Microsoft UEFI CA 2023"
		}
	}
	for _, e := range fw.db {
		if e.ca != CAUEFI2023 {
			continue
		}
		if e.cert != nil && fw.hasDBX {
			if hit, _ := tbsInDbx(fw.DBX, e.cert); hit {
				return false, "the Microsoft UEFI CA 2023 in db is revoked by dbx"
			}
		}
		return true, "db holds the Microsoft UEFI CA 2023"
	}
	return false, "db does not hold the Microsoft UEFI CA 2023"
}

func advice(paths []BootPath, fw *Firmware, shim *Stage, t Transition, detail string, o Options) string {
	var out []string
	shimIDs := t.ShimSignedBy
	has := func(id string) bool { return slices.Contains(shimIDs, id) }
	trusts2011, trusts2023 := fw.TrustsCA(CAUEFI2011), fw.TrustsCA(CAUEFI2023)
	switch {
	case fw.SetupMode:
		out = append(out, "The firmware is in setup mode (no Platform Key), so it checks no signatures and the CA transition cannot stop this machine booting. Enroll PK, KEK and a db holding the Microsoft UEFI CA 2023 (and the 2011 CA while 2011-only shims remain) to get Secure Boot protection.")
		return strings.Join(out, " ")
	case !fw.SecureBoot:
		out = append(out, "Secure Boot is off, so the firmware starts any shim and the CA transition cannot stop this machine booting.")
		pol := *fw
		pol.SecureBoot, pol.SetupMode, pol.ShimValidationDisabled = true, false, false
		cp := copyPaths(paths)
		Evaluate(cp, &pol, o)
		today, with2023, _ := verdict(cp, &pol)
		out = append(out, fmt.Sprintf("If you turn it on with this db: it %s.", yesNo(today, with2023)))
		if !with2023 && !trusts2023 {
			out = append(out, "Add the Microsoft UEFI CA 2023 to db before turning Secure Boot on.")
		}
		return strings.Join(out, " ")
	}
	if shim == nil {
		out = append(out, "No shim found on this target, so the Microsoft CA transition does not concern its boot loader directly.")
	}
	switch {
	case t.BootsToday && t.BootsWith2023OnlyShim:
		out = append(out, "Ready: it boots today and will still boot with a shim signed only by the Microsoft UEFI CA 2023.")
		if shim != nil && has(CAUEFI2011) && !has(CAUEFI2023) {
			out = append(out, "The installed shim carries only the 2011 signature; it boots while db trusts the Microsoft Corporation UEFI CA 2011 — install your distribution's dual-signed or 2023-signed shim.")
		}
	case t.BootsToday && !t.BootsWith2023OnlyShim:
		why := detail
		if !trusts2023 {
			why = "db does not hold the Microsoft UEFI CA 2023"
		}
		out = append(out, fmt.Sprintf("Boots today, but a shim signed only by the Microsoft UEFI CA 2023 will be refused (%s). Add the Microsoft UEFI CA 2023 to db — a db update signed by a KEK this firmware trusts, from the machine or cloud vendor (fwupd, Windows Update or the hypervisor's NVRAM template) — before a 2023-only shim is installed; keep a 2011-signed or dual-signed shim until then.", why))
	default:
		out = append(out, "Does not boot today under Secure Boot.")
		if shim != nil {
			if d := shim.Decision; d != nil && !d.Allowed {
				switch {
				case strings.HasPrefix(d.DeniedBy, "dbx"):
					out = append(out, fmt.Sprintf("The firmware refuses the shim: %s (%s). This shim build is revoked; install the current shim package.", d.Reason, d.DeniedBy))
				case len(shimIDs) > 0:
					out = append(out, fmt.Sprintf("The firmware refuses the shim: it is signed by %s but db trusts %s.", idList(shimIDs), idList(t.FirmwareTrusts)))
					switch {
					case has(CAUEFI2011) && !has(CAUEFI2023) && trusts2023 && !trusts2011:
						out = append(out, "Install a shim signed by the Microsoft UEFI CA 2023 (a dual-signed shim boots on both kinds of firmware).")
					case has(CAUEFI2023) && !has(CAUEFI2011) && !trusts2023:
						out = append(out, "Add the Microsoft UEFI CA 2023 to db, or go back to a dual-signed shim.")
					}
				default:
					out = append(out, "The firmware refuses the shim: "+d.Reason+".")
				}
			}
		}
		for _, f := range failures(paths) {
			if strings.Contains(f, "SBAT") {
				out = append(out, "SBAT: "+f+" — update that component's signed package (shim-signed, grub-efi-*-signed) to a generation the SbatLevel allows.")
				break
			}
		}
	}
	if shim != nil && !t.BootsToday {
		if fs := failures(paths); len(fs) > 0 {
			out = append(out, "First failure: "+fs[0]+".")
		}
	}
	return strings.Join(out, " ")
}

func idList(ids []string) string {
	if len(ids) == 0 {
		return "no Microsoft CA"
	}
	return strings.Join(ids, ", ")
}
