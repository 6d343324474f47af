// Package gate decides whether a new shim may be installed: whether the
// machine's firmware would start it under UEFI Secure Boot (db and dbx as
// edk2's DxeImageVerificationLib applies them), whether shim's own SBAT
// self-check passes the machine's SbatLevel, and whether the new shim would
// accept the GRUB and kernel it is going to load. It also finds the shims in
// Debian (.deb) and rpm packages, by content, so that package-manager hooks
// can refuse an update that would leave the machine unbootable before
// anything is unpacked: apt's DPkg::Pre-Install-Pkgs (apt.conf(5)), dpkg's
// pre-invoke hook (dpkg(1), DPKG_HOOK_ACTION), dnf's pre_transaction plugin
// hook (dnf 4 Python plugins) and libdnf5's actions plugin (libdnf5-actions(8)).
//
// The package does no I/O beyond reading what it is given; the command line
// (internal/cli) reads files, /proc and the firmware variables, and writes
// the hook configuration this package renders.
//
// The decisions themselves are internal/secureboot's: Firmware.Verify
// (edk2), ShimSelfCheck (shim's efi_main SBAT check of itself) and
// ShimVerifyWith (shim's verify_buffer for GRUB, shim_verify for the kernel
// GRUB hands over through the SHIM_LOCK protocol).
package gate

import (
	"cmp"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/vouch-dev/vouch/internal/authenticode"
	"github.com/vouch-dev/vouch/internal/secureboot"
	"github.com/vouch-dev/vouch/internal/target"
)

// Binary is an EFI binary to judge (the binary of a secureboot.Change).
type Binary = secureboot.Binary

// InputError is a file that is not what the gate needs (not a PE image, not
// a shim).
type InputError struct {
	File   string
	Reason string
}

func (e *InputError) Error() string { return fmt.Sprintf("gate: %s: %s", e.File, e.Reason) }

// ParseBinary parses b, the content of file name, as a PE/COFF image.
func ParseBinary(name string, b []byte) (*Binary, error) {
	img, err := authenticode.Parse(b)
	if err != nil {
		return nil, &InputError{File: name, Reason: fmt.Sprintf("not an EFI binary (PE/COFF image): %v", err)}
	}
	return &Binary{Name: name, Image: img}, nil
}

// ParseShim is ParseBinary that also requires the image to be shim.
func ParseShim(name string, b []byte) (*Binary, error) {
	bin, err := ParseBinary(name, b)
	if err != nil {
		return nil, err
	}
	if !secureboot.IsShim(bin.Image) {
		return nil, &InputError{File: name, Reason: "not a shim: the PE image has neither shim's .vendor_cert nor its .sbatlevel section"}
	}
	return bin, nil
}

// Outcomes.
const (
	// Safe: the machine would boot the new shim.
	Safe = "safe"
	// Refused: the machine would not boot it.
	Refused = "refused"
	// NotEnforced: Secure Boot is off or the firmware is in setup mode, so
	// nothing can refuse the shim.
	NotEnforced = "not-enforced"
	// NoFirmware: no firmware state (legacy BIOS, a container, or none
	// given), so nothing can refuse the shim.
	NoFirmware = "no-firmware"
)

// Request is what Judge decides on.
type Request struct {
	Shim *Binary
	// GRUB and Kernel are the next stages the new shim will load; nil when
	// unknown (not judged).
	GRUB, Kernel *Binary
	// Firmware is the machine's Secure Boot state; nil when there is none.
	Firmware *secureboot.Firmware
	// NoFirmware says why Firmware is nil, for the message.
	NoFirmware string
	SBATPolicy secureboot.SBATPolicy
}

// Check is one verifier's verdict on one stage.
type Check struct {
	// Step is "firmware → shim", "shim SBAT self-check", "shim → GRUB" or
	// "shim → kernel (SHIM_LOCK)".
	Step     string              `json:"step"`
	File     string              `json:"file"`
	Allowed  bool                `json:"allowed"`
	Decision secureboot.Decision `json:"decision"`
}

// Verdict is the gate's answer for one new shim.
type Verdict struct {
	Shim         string   `json:"shim"`
	ShimSignedBy []string `json:"shimSignedBy"`
	// Firmware is the firmware state's source, "" when there is none.
	Firmware       string   `json:"firmware,omitempty"`
	FirmwareTrusts []string `json:"firmwareTrusts"`
	SecureBoot     bool     `json:"secureBoot"`
	Outcome        string   `json:"outcome"`
	// Boots reports that installing the shim leaves the machine bootable
	// (true for NotEnforced and NoFirmware).
	Boots bool `json:"boots"`
	// Message is the verdict in words an administrator acts on.
	Message string `json:"message"`
	// Advice says what to do, "" when nothing is needed.
	Advice string  `json:"advice,omitempty"`
	Checks []Check `json:"checks"`
	// WhatIf is, when the firmware is unknown, whether the shim would boot
	// under each what-if profile (secureboot.Profiles).
	WhatIf map[string]bool `json:"whatIf,omitempty"`
	// Notes lists what was not judged and why.
	Notes []string `json:"notes,omitempty"`
}

// Judge decides on r.
func Judge(r Request) *Verdict {
	v := &Verdict{Shim: r.Shim.Name, ShimSignedBy: nonNil(secureboot.SignedBy(r.Shim.Image)), FirmwareTrusts: []string{}, Checks: []Check{}}
	if r.GRUB == nil {
		v.Notes = append(v.Notes, "no GRUB given or found: the new shim's verdict on its second stage is not judged")
	}
	if r.Kernel == nil {
		v.Notes = append(v.Notes, "no kernel given or found: the new shim's verdict on the kernel is not judged")
	}
	fw := r.Firmware
	if fw == nil {
		v.Outcome, v.Boots = NoFirmware, true
		why := r.NoFirmware
		if why == "" {
			why = "no firmware state: no efivarfs here and none given (--vars, --efivars or --firmware)"
		}
		v.Message = fmt.Sprintf("%s; nothing can refuse %s, so it is allowed.", why, r.Shim.Name)
		v.WhatIf = map[string]bool{}
		var parts []string
		for _, name := range secureboot.Profiles() {
			pfw, _ := secureboot.FromProfile(name)
			checks := runChecks(r, pfw)
			ok := refusal(checks) < 0
			v.WhatIf[name] = ok
			parts = append(parts, fmt.Sprintf("%s: %s", name, map[bool]string{true: "boots", false: "would NOT boot"}[ok]))
		}
		v.Advice = "Under the what-if firmware profiles — " + strings.Join(parts, "; ") + ". Give the machine's firmware state (--vars, --efivars) for a verdict."
		return v
	}
	v.Firmware, v.FirmwareTrusts, v.SecureBoot = fw.Source, nonNil(fw.DBCAs), fw.SecureBoot
	v.Checks = runChecks(r, fw)
	if !fw.Enforcing() {
		v.Outcome, v.Boots = NotEnforced, true
		state := "Secure Boot is off on this firmware"
		if fw.SetupMode {
			state = "this firmware is in setup mode (no Platform Key)"
		}
		v.Message = fmt.Sprintf("%s: it checks no signatures, so installing %s cannot stop the machine booting.", state, r.Shim.Name)
		pol := *fw
		pol.SecureBoot, pol.SetupMode, pol.ShimValidationDisabled = true, false, false
		pc := runChecks(r, &pol)
		if i := refusal(pc); i >= 0 {
			msg, advice := explain(r, &pol, pc[i])
			v.Advice = "If Secure Boot is turned on with this db: " + msg + " " + advice
		} else {
			v.Advice = "If Secure Boot is turned on with this db, it still boots."
		}
		return v
	}
	if i := refusal(v.Checks); i >= 0 {
		v.Outcome = Refused
		v.Message, v.Advice = explain(r, fw, v.Checks[i])
		return v
	}
	v.Outcome, v.Boots = Safe, true
	fwc := v.Checks[0].Decision
	v.Message = fmt.Sprintf("%s boots on this firmware: %s", r.Shim.Name, cmp.Or(fwc.AuthorizedBy, fwc.Reason))
	var also []string
	for _, c := range v.Checks[1:] {
		switch {
		case strings.HasPrefix(c.Step, "shim SBAT"):
			also = append(also, "its own SBAT passes the machine's level")
		case c.Step == stepGRUB:
			also = append(also, "it accepts "+c.File)
		case c.Step == stepKernel:
			also = append(also, "it accepts the kernel "+c.File)
		}
	}
	if len(also) > 0 {
		v.Message += "; " + strings.Join(also, ", ")
	}
	v.Message += "."
	return v
}

const (
	stepFirmware = "firmware → shim"
	stepSelf     = "shim SBAT self-check"
	stepGRUB     = "shim → GRUB"
	stepKernel   = "shim → kernel (SHIM_LOCK)"
)

// runChecks applies each verifier in boot order.
func runChecks(r Request, fw *secureboot.Firmware) []Check {
	shim := r.Shim.Image
	d := fw.Verify(shim)
	out := []Check{{Step: stepFirmware, File: r.Shim.Name, Allowed: d.Allowed, Decision: d}}
	if fw.Enforcing() && !fw.ShimValidationDisabled {
		d := secureboot.ShimSelfCheck(shim, fw, r.SBATPolicy)
		out = append(out, Check{Step: stepSelf, File: r.Shim.Name, Allowed: d.Allowed, Decision: d})
	}
	if r.GRUB != nil {
		d := secureboot.ShimVerifyWith(shim, fw, r.GRUB.Image, secureboot.ShimOptions{SBATPolicy: r.SBATPolicy})
		out = append(out, Check{Step: stepGRUB, File: r.GRUB.Name, Allowed: d.Allowed, Decision: d})
	}
	if r.Kernel != nil {
		d := secureboot.ShimVerifyWith(shim, fw, r.Kernel.Image, secureboot.ShimOptions{Protocol: true, SBATPolicy: r.SBATPolicy})
		out = append(out, Check{Step: stepKernel, File: r.Kernel.Name, Allowed: d.Allowed, Decision: d})
	}
	return out
}

// refusal is the index of the first refused check, -1 when none.
func refusal(checks []Check) int {
	for i, c := range checks {
		if !c.Allowed {
			return i
		}
	}
	return -1
}

// explain words a refusal: what happens and what to do.
func explain(r Request, fw *secureboot.Firmware, c Check) (msg, advice string) {
	name := r.Shim.Name
	d := c.Decision
	const unbootable = "installing it would leave the machine unbootable"
	switch c.Step {
	case stepFirmware:
		shimCAs := secureboot.SignedBy(r.Shim.Image)
		switch {
		case strings.HasPrefix(d.DeniedBy, "dbx"):
			return fmt.Sprintf("this firmware's dbx revokes %s (%s): %s.", name, d.DeniedBy, unbootable),
				"This shim build is revoked: install a newer shim release from your distribution (one its dbx does not list), and keep the current shim until then."
		case len(shimCAs) > 0 && !anyIn(shimCAs, fw.DBCAs):
			msg = fmt.Sprintf("%s; %s is signed %s%s: %s.", dbWords(fw), name, onlyWord(shimCAs), caList(shimCAs), unbootable)
			switch {
			case slices.Contains(shimCAs, secureboot.CAUEFI2023) && !fw.TrustsCA(secureboot.CAUEFI2023):
				advice = UpdateDBAdvice
			case slices.Contains(shimCAs, secureboot.CAUEFI2011) && !fw.TrustsCA(secureboot.CAUEFI2011):
				advice = "Install a shim signed by the Microsoft UEFI CA 2023 instead (a dual-signed build boots on firmware that trusts either CA), or add the Microsoft Corporation UEFI CA 2011 to db."
			default:
				advice = "Add the CA that signed the shim to db, or install a shim signed by a CA this db holds."
			}
			return msg, advice
		}
		return fmt.Sprintf("the firmware would refuse %s (%s): %s.", name, d.Reason, unbootable),
			"Install a shim signed by a CA this firmware's db holds (the Microsoft UEFI CA 2011 or 2023), or enroll its signer in db."
	case stepSelf:
		return fmt.Sprintf("%s's own SBAT is revoked by this machine's SBAT level (%s): shim checks itself at start-up and stops, so %s.", name, strings.TrimPrefix(d.Reason, "shim's SBAT self-check fails: "), unbootable),
			"Install a newer shim build whose shim generation the SbatLevel allows (your distribution's current shim-signed / shim-x64)."
	case stepGRUB:
		return fmt.Sprintf("%s would refuse its second stage %s (%s): %s.", name, c.File, d.Reason, unbootable),
			"Install the GRUB build signed for the new shim in the same update (grub-efi-*-signed / grub2-efi-*), or keep the current shim."
	case stepKernel:
		return fmt.Sprintf("%s would refuse the kernel %s that GRUB hands it (%s): %s.", name, c.File, d.Reason, unbootable),
			"Install a kernel signed with a key the new shim trusts in the same update, or keep the current shim."
	}
	return fmt.Sprintf("%s: %s: %s.", name, d.Reason, unbootable), ""
}

// UpdateDBAdvice says how to get the Microsoft UEFI CA 2023 into db.
const UpdateDBAdvice = "Update the firmware db first: apply the Microsoft UEFI CA 2023 db update — on physical machines from the machine vendor's firmware update or through fwupd (`fwupdmgr refresh && fwupdmgr update`, which ships the KEK-signed db update), on cloud VMs from the provider's updated NVRAM template, and for a VM whose variable store you manage with `vouch firmware vars VARS.fd db add db-microsoft-uefi-ca-2023.der`. Then run the gate again; keep the current dual-signed or 2011-signed shim until it passes."

func dbWords(fw *secureboot.Firmware) string {
	if len(fw.DBCAs) == 0 {
		return "this firmware's db holds no Microsoft CA"
	}
	return "this firmware's db trusts only the " + caList(fw.DBCAs)
}

func onlyWord(ids []string) string {
	if len(ids) == 1 {
		return "only by the "
	}
	return "by the "
}

// caList names known CAs: "Microsoft Corporation UEFI CA 2011 and the
// Microsoft UEFI CA 2023".
func caList(ids []string) string {
	names := make([]string, len(ids))
	for i, id := range ids {
		names[i] = secureboot.CAName(id)
	}
	switch len(names) {
	case 0:
		return ""
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", the ") + " and the " + names[len(names)-1]
}

// Stages are the next stages a new shim will load.
type Stages struct {
	GRUB, Kernel *Binary
}

// TargetStages finds, on a target's ESP and root, the GRUB behind the shim
// the firmware boots and the newest kernel, as secureboot.BootPaths walks
// them; without an ESP (or a shim on it), the signed GRUB the distribution
// package installed under usr/lib/grub and the newest boot/vmlinuz-*. esp
// and root may be nil; label prefixes the names.
func TargetStages(esp, root fs.FS, label string) Stages {
	var s Stages
	for _, bp := range secureboot.BootPaths(esp, root, nil) {
		sawShim := false
		for i := range bp.Stages {
			st := &bp.Stages[i]
			if st.Role == secureboot.RoleShim {
				sawShim = true
				continue
			}
			if sawShim && st.Role == secureboot.RoleGRUB && st.Image() != nil && s.GRUB == nil {
				s.GRUB = &Binary{Name: label + "ESP:" + st.Path, Image: st.Image()}
			}
		}
		if sawShim && s.Kernel == nil {
			for i := range bp.Kernels {
				k := &bp.Kernels[i]
				if k.Image() != nil {
					s.Kernel = &Binary{Name: label + k.Path, Image: k.Image()}
					break
				}
			}
		}
		if s.GRUB != nil && s.Kernel != nil {
			break
		}
	}
	if root != nil {
		fallbackStages(root, label, &s)
	}
	return s
}

// signedGRUBs are where Debian's grub-efi-*-signed packages keep the GRUB
// that grub-install copies to the ESP beside shim: the GRUB the new shim
// will load when the ESP is not mounted (a chroot, a container build).
var signedGRUBs = []string{
	"usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed",
	"usr/lib/grub/arm64-efi-signed/grubaa64.efi.signed",
	"usr/lib/grub/i386-efi-signed/grubia32.efi.signed",
}

// fallbackStages fills what the ESP did not give: the signed GRUB a
// package installed in the root, and the newest boot/vmlinuz-*.
func fallbackStages(root fs.FS, label string, s *Stages) {
	if s.GRUB == nil {
		for _, p := range signedGRUBs {
			if b, err := fs.ReadFile(root, p); err == nil {
				if img, err := authenticode.Parse(b); err == nil {
					s.GRUB = &Binary{Name: label + p, Image: img}
					break
				}
			}
		}
	}
	if s.Kernel == nil {
		for _, p := range target.Kernels(root) {
			if b, err := fs.ReadFile(root, p); err == nil {
				if img, err := authenticode.Parse(b); err == nil {
					s.Kernel = &Binary{Name: label + p, Image: img}
					return
				}
			}
		}
	}
}

// PackageStages returns the GRUB and kernel that packages of the same
// transaction install, over base (what the target has now).
func PackageStages(pkgs []*Package, base Stages) Stages {
	s := base
	var grub, kernel *Binary
	for _, p := range pkgs {
		for _, f := range p.EFI {
			switch {
			case f.Role == RoleGRUB && f.Signed && grub == nil:
				grub = p.Binary(f)
			case f.Role == RoleKernel && kernel == nil:
				kernel = p.Binary(f)
			}
		}
	}
	if grub != nil {
		s.GRUB = grub
	}
	if kernel != nil {
		s.Kernel = kernel
	}
	return s
}

// Binary names an EFI file of the package for messages:
// "usr/lib/shim/shimx64.efi.signed from shim-signed 1.52".
func (p *Package) Binary(f *EFIFile) *Binary {
	from := p.File
	if p.Name != "" {
		from = strings.TrimSpace(p.Name + " " + p.Version)
	}
	return &Binary{Name: f.Path + " from " + from, Image: f.img}
}

func anyIn(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
