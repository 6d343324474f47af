package secureboot

import (
	"bytes"
	"crypto"
	"crypto/sha1"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/vouch-dev/vouch/internal/authenticode"
	"github.com/vouch-dev/vouch/internal/efi"
)

// Revocation is an update whose effect is judged before anyone applies it:
// dbx additions, a new SBAT level, or both.
type Revocation struct {
	DBX  *DBXUpdate
	SBAT *SBATUpdate
}

// RevocationImpact says what a revocation update would do to a target: for
// each binary on the ESP and each kernel, the verdict before and after, and
// what revokes it; for each boot path whether it still boots.
type RevocationImpact struct {
	// Firmware is the state the update is applied to.
	Firmware string `json:"firmware"`
	// FirmwareKnown is false when no firmware state was given: then the
	// stand-in is the microsoft-both profile with an empty dbx.
	FirmwareKnown bool        `json:"firmwareKnown"`
	DBX           *DBXImpact  `json:"dbx,omitempty"`
	SBAT          *SBATImpact `json:"sbatLevel,omitempty"`
	// Binaries are every EFI binary on the ESP and every kernel of the
	// root, in boot-path order, then the ones on no boot path.
	Binaries  []BinaryImpact `json:"binaries"`
	BootPaths []PathImpact   `json:"bootPaths"`
	// Revoked are the binaries the update newly refuses.
	Revoked     []string `json:"revoked"`
	BootsBefore bool     `json:"bootsBefore"`
	BootsAfter  bool     `json:"bootsAfter"`
	// WhatIf holds, when the firmware is unknown, the answer under each
	// profile (its dbx empty before the update).
	WhatIf  map[string]WhatIfImpact `json:"whatIf,omitempty"`
	Notes   []string                `json:"notes,omitempty"`
	Verdict string                  `json:"verdict"`
}

// DBXImpact describes the dbx update applied.
type DBXImpact struct {
	*DBXUpdate
	// Arch is the architecture whose list was applied (JSON form).
	Arch string `json:"arch,omitempty"`
	// Entries counts the update's entries by type; New those not already
	// in dbx.
	Entries map[string]int `json:"entries"`
	New     int            `json:"newEntries"`
	// Before and After count the dbx entries.
	Before int `json:"dbxEntriesBefore"`
	After  int `json:"dbxEntriesAfter"`
}

// SBATImpact describes the SBAT level change.
type SBATImpact struct {
	*SBATUpdate
	// Before and After are the levels shim enforces (see
	// EffectiveSBATLevel); nil when no shim is found.
	Before *SBATLevel `json:"levelBefore,omitempty"`
	After  *SBATLevel `json:"levelAfter,omitempty"`
}

// BinaryImpact is one binary's verdict before and after.
type BinaryImpact struct {
	Path     string `json:"path"`
	FS       string `json:"fs"`
	Role     string `json:"role"`
	LoadedBy string `json:"loadedBy"`
	// OnBootPath is false for binaries no boot path reaches (MokManager,
	// a spare GRUB): judged as their loader would judge them.
	OnBootPath bool `json:"onBootPath"`
	// Before and After are "allowed", "refused", "unknown" or "error".
	Before string `json:"before"`
	After  string `json:"after"`
	// Revoked: allowed before, refused after.
	Revoked bool `json:"revoked"`
	// RevokedBy are the update's entries that hit the binary (whether or
	// not its loader applies them); empty when none does.
	RevokedBy []Revoker `json:"revokedBy"`
	// Reason is the loader's reason after the update when it refuses.
	Reason string `json:"reason,omitempty"`
}

// Revoker is one entry of an update that hits a binary.
type Revoker struct {
	// Kind: "dbx image hash", "dbx certificate", "dbx certificate hash",
	// "SBAT".
	Kind  string `json:"kind"`
	Entry string `json:"entry"`
	// From the JSON list, when the update came in that form.
	Filename    string `json:"filename,omitempty"`
	Description string `json:"description,omitempty"`
	Date        string `json:"dateOfAddition,omitempty"`
	Company     string `json:"companyName,omitempty"`
}

func (r Revoker) String() string {
	s := r.Kind + " " + r.Entry
	var extra []string
	for _, x := range []string{r.Filename, r.Date, r.Description} {
		if x != "" {
			extra = append(extra, x)
		}
	}
	if len(extra) > 0 {
		s += " (" + strings.Join(extra, ", ") + ")"
	}
	return s
}

// PathImpact is one boot path before and after.
type PathImpact struct {
	Name         string `json:"name"`
	BootsBefore  *bool  `json:"bootsBefore"`
	BootsAfter   *bool  `json:"bootsAfter"`
	VerdictAfter string `json:"verdictAfter"`
}

// WhatIfImpact is the boot answer under one firmware profile.
type WhatIfImpact struct {
	BootsBefore bool `json:"bootsBefore"`
	BootsAfter  bool `json:"bootsAfter"`
}

// RevocationError is a revocation that cannot be judged on this target
// (--sbat-level latest with no shim carrying levels).
type RevocationError struct{ Reason string }

func (e *RevocationError) Error() string { return "secureboot: " + e.Reason }

// AnalyzeRevocation judges rev on a target: paths are its boot paths (from
// BootPaths; their verdicts are recomputed), esp its ESP for the binaries no
// path reaches, fw the firmware state (nil: unknown) and o today's options.
//
// The dbx update is applied as SetVariable(dbx, APPEND_WRITE) does in edk2's
// AuthVariableLib (AuthServiceInternalUpdateVariableWithTimeStamp with
// FilterSignatureList): entries already in dbx are dropped, the rest are
// appended; the firmware then refuses what DxeImageVerificationLib refuses,
// and shim, which checks dbx too for what it loads and verifies for GRUB,
// refuses what its rules refuse. The SBAT update sets the SbatLevel variable
// (a file) or shim's SbatPolicy (latest, automatic); shim then enforces what
// set_sbat_uefi_variable leaves, and checks itself and everything it loads.
func AnalyzeRevocation(esp fs.FS, paths []BootPath, fw *Firmware, o Options, rev Revocation) (*RevocationImpact, error) {
	imp := &RevocationImpact{FirmwareKnown: fw != nil, Binaries: []BinaryImpact{}, BootPaths: []PathImpact{}, Revoked: []string{}}
	base := fw
	if fw == nil {
		base, _ = FromProfile(ProfileMicrosoftBoth)
		imp.Notes = append(imp.Notes, "firmware unknown: judged as if it trusted the Microsoft CAs (profile microsoft-both) with an empty dbx and no SbatLevel variable; give --vars, --efivars or --firmware for this machine's answer")
	}
	imp.Firmware = base.Source
	if !base.Enforcing() {
		imp.Notes = append(imp.Notes, fmt.Sprintf("%s does not enforce Secure Boot (off or setup mode): nothing is refused before or after the update; the revokedBy entries say what it would refuse once Secure Boot is on", base.Source))
	}
	shim, _ := firstShim(paths)
	extras := looseBinaries(esp, paths)
	images := allImages(paths, extras)

	after, oAfter, err := applyRevocation(imp, base, o, rev, paths, shim, images)
	if err != nil {
		return nil, err
	}

	before := copyPaths(paths)
	Evaluate(before, base, o)
	afterPaths := copyPaths(paths)
	Evaluate(afterPaths, after, oAfter)

	hits := func(img *authenticode.Image, sbatApplies bool) []Revoker {
		return revokers(img, rev, imp, sbatApplies)
	}
	seen := map[string]bool{}
	add := func(b BinaryImpact, img *authenticode.Image, sbatApplies bool) {
		key := b.FS + ":" + strings.ToLower(b.Path) + ":" + b.LoadedBy
		if seen[key] {
			return
		}
		seen[key] = true
		b.Revoked = b.Before == "allowed" && b.After == "refused"
		b.RevokedBy = []Revoker{}
		if img != nil {
			b.RevokedBy = nonNilRevokers(hits(img, sbatApplies))
		}
		if b.Revoked {
			imp.Revoked = append(imp.Revoked, b.Path)
		}
		imp.Binaries = append(imp.Binaries, b)
	}
	for i := range paths {
		bp, ap := &before[i], &afterPaths[i]
		for j := range bp.Stages {
			bs, as := bp.Stages[j], ap.Stages[j]
			add(stageImpact(bs, as, true), bs.img, bs.LoadedBy == ByShim || bs.Role == RoleShim)
		}
		for j := range bp.Kernels {
			bs, as := bp.Kernels[j], ap.Kernels[j]
			add(stageImpact(bs, as, true), bs.img, true)
		}
		imp.BootPaths = append(imp.BootPaths, PathImpact{Name: bp.Name, BootsBefore: bp.Boots, BootsAfter: ap.Boots, VerdictAfter: ap.Verdict})
		imp.BootsBefore = imp.BootsBefore || bp.booted()
		imp.BootsAfter = imp.BootsAfter || ap.booted()
	}
	for _, x := range extras {
		b := judgeLoose(x, base, o)
		a := judgeLoose(x, after, oAfter)
		add(stageImpact(b, a, false), x.img, x.loader != nil || x.role == RoleShim)
	}

	if fw == nil {
		imp.WhatIf = map[string]WhatIfImpact{}
		for _, name := range Profiles() {
			pfw, _ := FromProfile(name)
			pAfter, pO, err := applyRevocation(&RevocationImpact{}, pfw, o, rev, paths, shim, images)
			if err != nil {
				return nil, err
			}
			b, a := copyPaths(paths), copyPaths(paths)
			Evaluate(b, pfw, o)
			Evaluate(a, pAfter, pO)
			imp.WhatIf[name] = WhatIfImpact{BootsBefore: anyBoots(b), BootsAfter: anyBoots(a)}
		}
	}
	imp.Verdict = revocationVerdict(imp, afterPaths)
	return imp, nil
}

func nonNilRevokers(r []Revoker) []Revoker {
	if r == nil {
		return []Revoker{}
	}
	return r
}

func anyBoots(paths []BootPath) bool {
	for _, bp := range paths {
		if bp.booted() {
			return true
		}
	}
	return false
}

// applyRevocation returns the firmware and options after rev, and fills
// imp's DBX and SBAT sections.
func applyRevocation(imp *RevocationImpact, base *Firmware, o Options, rev Revocation, paths []BootPath, shim *Stage, images []*authenticode.Image) (*Firmware, Options, error) {
	after := base.clone()
	oAfter := o
	if u := rev.DBX; u != nil {
		arch := jsonArch(paths)
		lists := u.Lists(arch)
		for _, c := range u.certs {
			if c.der != nil {
				continue
			}
			if der := findCertByThumbprint(images, c.thumbprint); der != nil {
				lists = append(lists, certList(der))
				u.info[entryKey(efi.CertX509GUID, der)] = c.info
				imp.Notes = append(imp.Notes, fmt.Sprintf("dbx certificate entry %q: its file %s is not beside the list; the certificate with thumbprint %s was taken from a signature on the target", c.subject, c.file, c.thumbprint))
			} else {
				imp.Notes = append(imp.Notes, fmt.Sprintf("dbx certificate entry %q (SHA-1 thumbprint %s) not applied: its file %s is not beside the list and no binary on the target carries that certificate%s", c.subject, c.thumbprint, c.file, issuedUnder(images, c.subject)))
			}
		}
		d := &DBXImpact{DBXUpdate: u, Entries: map[string]int{}, Before: countEntries(base.DBX)}
		if u.Form == FormJSON {
			d.Arch = arch
			if len(u.arches[arch]) == 0 {
				imp.Notes = append(imp.Notes, fmt.Sprintf("the JSON list has no image hashes for %s", arch))
			}
		}
		for _, l := range lists {
			d.Entries[l.TypeName()] += len(l.Signatures)
		}
		d.New = after.appendDBX(lists)
		d.After = countEntries(after.DBX)
		if !base.hasDBX {
			imp.Notes = append(imp.Notes, fmt.Sprintf("%s has no dbx: the update was applied to an empty dbx (a real machine's dbx usually holds earlier revocations too)", base.Source))
		}
		if u.Form == FormAuthVar {
			imp.Notes = append(imp.Notes, "the update's signature is not verified against KEK: vouch judges what the update would do once the firmware accepts it")
		}
		imp.DBX = d
	}
	if u := rev.SBAT; u != nil {
		if shim == nil {
			if u.Keyword != "" {
				return nil, o, &RevocationError{Reason: fmt.Sprintf("--sbat-level %s names a level the target's shim carries, but the target has no shim", u.Keyword)}
			}
			imp.Notes = append(imp.Notes, "no shim on the target: the SbatLevel is enforced by shim, so it changes nothing here")
		} else if _, ok := shim.img.SectionData(".sbatlevel"); !ok && u.Keyword != "" {
			return nil, o, &RevocationError{Reason: fmt.Sprintf("--sbat-level %s: the shim %s carries no .sbatlevel section (shim before 15.7)", u.Keyword, shim.Path)}
		}
		if u.Keyword != "" {
			oAfter.SBATPolicy = u.Policy
		} else {
			after.SbatLevel = []byte(u.Payload)
			after.SbatLevelName = "SbatLevel"
			// NV|BS, as SbatLevel_Variable.txt says it is written.
			after.SbatLevelAttrs = efi.NonVolatile | efi.BootServiceAccess
		}
		s := &SBATImpact{SBATUpdate: u}
		if shim != nil {
			var err error
			if s.Before, err = EffectiveSBATLevel(base, shim.img, o.SBATPolicy); err != nil {
				return nil, o, &RevocationError{Reason: fmt.Sprintf("the SBAT level before the update cannot be parsed: %v", err)}
			}
			if s.After, err = EffectiveSBATLevel(after, shim.img, oAfter.SBATPolicy); err != nil {
				return nil, o, &RevocationError{Reason: fmt.Sprintf("the SBAT level after the update cannot be parsed: %v", err)}
			}
			if u.Keyword == "" && strings.TrimRight(s.After.Text, "\n") != strings.TrimRight(u.Payload, "\n") {
				imp.Notes = append(imp.Notes, fmt.Sprintf("the shim %s carries a newer level than %s and replaces it at boot (shim's preserve_sbat_uefi_variable keeps only a level at least as new): shim enforces %s", shim.Path, u.Source, levelName(s.After)))
			}
		}
		imp.SBAT = s
	}
	return after, oAfter, nil
}

func countEntries(lists []efi.SignatureList) int {
	n := 0
	for _, l := range lists {
		n += len(l.Signatures)
	}
	return n
}

// jsonArch is the JSON list's architecture of the target's boot loaders.
func jsonArch(paths []BootPath) string {
	for _, bp := range paths {
		if len(bp.Stages) > 0 && arch(bp.Stages[0].Path) == "aa64" {
			return "aarch64"
		}
	}
	return "x64"
}

// clone copies the firmware state so an update can change it.
func (fw *Firmware) clone() *Firmware {
	c := *fw
	c.DBX = append([]efi.SignatureList(nil), fw.DBX...)
	c.dbx509 = append([]dbEntry(nil), fw.dbx509...)
	c.SbatLevel = append([]byte(nil), fw.SbatLevel...)
	if fw.SbatLevel == nil {
		c.SbatLevel = nil
	}
	return &c
}

// appendDBX appends lists to dbx the way edk2's FilterSignatureList prepares
// an append write to a signature database: entries already present (same
// type and data) are dropped, and lists left empty vanish. It returns the
// number of entries added.
func (fw *Firmware) appendDBX(lists []efi.SignatureList) int {
	have := map[string]bool{}
	for _, l := range fw.DBX {
		for _, s := range l.Signatures {
			have[entryKey(l.Type, s.Data)] = true
		}
	}
	n := 0
	for _, l := range lists {
		var fresh []efi.SignatureData
		for _, s := range l.Signatures {
			k := entryKey(l.Type, s.Data)
			if have[k] {
				continue
			}
			have[k] = true
			fresh = append(fresh, s)
		}
		if len(fresh) == 0 {
			continue
		}
		nl := l
		nl.Signatures = fresh
		fw.DBX = append(fw.DBX, nl)
		fw.dbx509 = append(fw.dbx509, x509Entries([]efi.SignatureList{nl}, "dbx")...)
		n += len(fresh)
	}
	fw.hasDBX = true
	return n
}

// looseBinary is an EFI binary of the ESP no boot path reaches.
type looseBinary struct {
	path, role string
	img        *authenticode.Image
	err        error
	loader     *authenticode.Image // the shim beside it, nil: the firmware
}

// looseBinaries lists the .efi files of the ESP's EFI directory that no
// boot path reaches: MokManager, fallback beside the vendor shim, a spare
// GRUB. Each is judged as its loader would: the shim in the same directory
// (shim starts MokManager and its second stage from its own directory), else
// the firmware.
func looseBinaries(esp fs.FS, paths []BootPath) []looseBinary {
	if esp == nil {
		return nil
	}
	onPath := map[string]bool{}
	for _, bp := range paths {
		for _, st := range bp.Stages {
			if st.FS == "esp" {
				onPath[strings.ToLower(st.Path)] = true
			}
		}
	}
	efiDir, ok := resolveDirFold(esp, "EFI")
	if !ok {
		return nil
	}
	var files []string
	_ = fs.WalkDir(esp, efiDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // unreadable directories hold nothing we can judge
		}
		if d.IsDir() && strings.Count(p, "/") > 3 {
			return fs.SkipDir
		}
		if !d.IsDir() && strings.EqualFold(path.Ext(p), ".efi") && !onPath[strings.ToLower(p)] {
			files = append(files, p)
		}
		return nil
	})
	sort.Strings(files)
	var out []looseBinary
	shims := map[string]*authenticode.Image{} // directory → shim
	for _, p := range files {
		x := looseBinary{path: p}
		b, err := fs.ReadFile(esp, p)
		if err == nil {
			x.img, err = authenticode.Parse(b)
		}
		x.err = err
		x.role = RoleLoader
		if x.img != nil {
			x.role = roleOf(p, x.img)
		}
		if strings.HasPrefix(strings.ToLower(path.Base(p)), "mm") {
			x.role = "mokmanager"
		}
		out = append(out, x)
	}
	// Shims, on a path or not, by directory.
	for _, bp := range paths {
		for _, st := range bp.Stages {
			if st.Role == RoleShim && st.img != nil && st.FS == "esp" {
				dir := strings.ToLower(path.Dir(st.Path))
				if shims[dir] == nil {
					shims[dir] = st.img
				}
			}
		}
	}
	for _, x := range out {
		if x.role == RoleShim && x.img != nil {
			dir := strings.ToLower(path.Dir(x.path))
			if shims[dir] == nil {
				shims[dir] = x.img
			}
		}
	}
	for i := range out {
		if out[i].role != RoleShim {
			out[i].loader = shims[strings.ToLower(path.Dir(out[i].path))]
		}
	}
	return out
}

// judgeLoose judges a binary no boot path reaches, as a stage.
func judgeLoose(x looseBinary, fw *Firmware, o Options) Stage {
	st := Stage{Role: x.role, Path: x.path, FS: "esp", LoadedBy: ByFirmware, img: x.img}
	if x.loader != nil {
		st.LoadedBy = ByShim
	}
	if x.err != nil {
		st.Error = x.err.Error()
		return st
	}
	var d Decision
	if x.loader != nil {
		d = ShimVerifyWith(x.loader, fw, x.img, ShimOptions{SBATPolicy: o.SBATPolicy})
	} else {
		d = fw.Verify(x.img)
	}
	st.Decision = &d
	if x.role == RoleShim && fw.Enforcing() && !fw.ShimValidationDisabled {
		sc := ShimSelfCheck(x.img, fw, o.SBATPolicy)
		st.SelfCheck = &sc
	}
	return st
}

func stageImpact(b, a Stage, onPath bool) BinaryImpact {
	bi := BinaryImpact{Path: b.Path, FS: b.FS, Role: b.Role, LoadedBy: b.LoadedBy, OnBootPath: onPath, Before: stageState(b), After: stageState(a)}
	if bi.Role == RoleLoader && strings.HasPrefix(strings.ToLower(path.Base(b.Path)), "mm") {
		bi.Role = "mokmanager"
	}
	if bi.After == "refused" || bi.After == "error" {
		bi.Reason = strings.TrimPrefix(stageFailure(a), "does not boot: ")
	}
	return bi
}

func stageState(s Stage) string {
	if s.Error != "" && !s.Absent {
		return "error"
	}
	switch s.allowed() {
	case 1:
		return "allowed"
	case 0:
		return "refused"
	}
	return "unknown"
}

// allImages lists every parsed binary of the target.
func allImages(paths []BootPath, extras []looseBinary) []*authenticode.Image {
	var out []*authenticode.Image
	for _, bp := range paths {
		for _, st := range append(append([]Stage(nil), bp.Stages...), bp.Kernels...) {
			if st.img != nil {
				out = append(out, st.img)
			}
		}
	}
	for _, x := range extras {
		if x.img != nil {
			out = append(out, x.img)
		}
	}
	return out
}

func findCertByThumbprint(images []*authenticode.Image, thumbprint string) []byte {
	for _, img := range images {
		for _, s := range img.Signatures() {
			for _, c := range s.Certificates {
				sum := sha1.Sum(c.Raw)
				if hex.EncodeToString(sum[:]) == thumbprint {
					return c.Raw
				}
			}
		}
	}
	return nil
}

// issuedUnder warns when a binary carries a certificate issued by a CA of
// that name (the JSON gives "CN = Name"): without the CA's own certificate
// vouch cannot tell whether the revoked certificate is that issuer.
func issuedUnder(images []*authenticode.Image, subject string) string {
	cn := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(subject), "CN ="))
	cn = strings.TrimSpace(strings.TrimPrefix(cn, "CN="))
	if cn == "" {
		return ""
	}
	for _, img := range images {
		for _, s := range topLevel(img.Signatures()) {
			for _, c := range s.Chain {
				if c.Issuer.CommonName == cn {
					return fmt.Sprintf("; but a signature on the target chains to an issuer named %q: put the certificate file beside the list to judge it", cn)
				}
			}
		}
	}
	return ""
}

// revokers lists the update's entries that hit img: its image hash, a
// signature verifying with a dbx certificate, the TBS hash of a certificate
// it carries, or (sbatApplies: shim checks the binary's SBAT) a component
// below the new SBAT level.
func revokers(img *authenticode.Image, rev Revocation, imp *RevocationImpact, sbatApplies bool) []Revoker {
	var out []Revoker
	if u, d := rev.DBX, imp.DBX; u != nil && d != nil {
		lists := u.Lists(d.Arch)
		for _, c := range u.certs {
			if c.der == nil {
				if der := findCertByThumbprint([]*authenticode.Image{img}, c.thumbprint); der != nil {
					lists = append(lists, certList(der))
				}
			}
		}
		info := func(t efi.GUID, data []byte, r Revoker) Revoker {
			if e, ok := u.info[entryKey(t, data)]; ok {
				r.Filename, r.Description, r.Date, r.Company = e.Filename, e.Description, e.Date, e.Company
			}
			return r
		}
		digests := map[efi.GUID][]byte{} // image digests, computed once per type
		sigs := topLevel(img.Signatures())
		for _, l := range lists {
			switch l.Type {
			case efi.CertSHA1GUID, efi.CertSHA256GUID, efi.CertSHA384GUID, efi.CertSHA512GUID:
				h := hashForCertType(l.Type)
				if digests[l.Type] == nil {
					digests[l.Type] = img.Digest(h)
				}
				dg := digests[l.Type]
				for _, s := range l.Signatures {
					if dg != nil && bytes.Equal(s.Data, dg) {
						out = append(out, info(l.Type, s.Data, Revoker{Kind: "dbx image hash", Entry: hashName(h) + " " + hex.EncodeToString(dg)}))
					}
				}
			case efi.CertX509GUID:
				for _, s := range l.Signatures {
					c, err := x509.ParseCertificate(s.Data)
					if err != nil {
						continue
					}
					for _, sig := range sigs {
						if sig.VerifiesWith(c) {
							out = append(out, info(l.Type, s.Data, Revoker{Kind: "dbx certificate", Entry: describeCert(c) + fmt.Sprintf(" (signature %d)", sig.Index+1)}))
							break
						}
					}
				}
			case efi.CertX509SHA256GUID, efi.CertX509SHA384GUID, efi.CertX509SHA512GUID:
				// edk2 looks up the signer's TBS hash, and that of the db
				// certificate the signature verifies with (which can be a
				// chain certificate); see VerifyPolicy.
				for _, sig := range sigs {
					for i, c := range sig.Chain {
						if hit, _ := tbsInDbx([]efi.SignatureList{l}, c); hit {
							role := "signer"
							if i > 0 {
								role = "chain certificate; it counts when it is the db certificate the signature verifies with"
							}
							out = append(out, Revoker{Kind: "dbx certificate hash", Entry: "TBS hash of " + describeCert(c) + fmt.Sprintf(" (signature %d, %s)", sig.Index+1, role)})
						}
					}
				}
			}
		}
	}
	if s := imp.SBAT; s != nil && s.After != nil && sbatApplies {
		if b, ok := img.SectionData(".sbat"); ok {
			entries, _ := ParseSBAT(b)
			for _, r := range sbatBelow(s.After, entries) {
				out = append(out, Revoker{Kind: "SBAT", Entry: fmt.Sprintf("%s,%d in %s (the binary has %s,%d)", r.Component, r.Level, levelName(s.After), r.Component, r.Generation)})
			}
		}
	}
	return out
}

// sbatBelow lists every component of entries below the level, compared the
// way Check compares them (the first level entry of the same name).
func sbatBelow(l *SBATLevel, entries []SBATEntry) []SBATRevocation {
	var out []SBATRevocation
	for _, e := range entries {
		for _, v := range l.Entries {
			if e.Component != v.Component {
				continue
			}
			if g, min := atoi(e.Generation), atoi(v.Generation); g < min {
				out = append(out, SBATRevocation{Component: e.Component, Generation: g, Level: min})
			}
			break
		}
	}
	return out
}

func hashForCertType(t efi.GUID) crypto.Hash {
	switch t {
	case efi.CertSHA1GUID:
		return crypto.SHA1
	case efi.CertSHA384GUID:
		return crypto.SHA384
	case efi.CertSHA512GUID:
		return crypto.SHA512
	}
	return crypto.SHA256
}

// revocationVerdict says in plain words what the update does.
func revocationVerdict(imp *RevocationImpact, after []BootPath) string {
	what := "the update"
	switch {
	case imp.DBX != nil && imp.SBAT != nil:
		what = "the dbx and SBAT updates"
	case imp.DBX != nil:
		what = "the dbx update"
	case imp.SBAT != nil:
		what = "the SBAT level " + imp.SBAT.Source
	}
	var s string
	n := 0
	for _, p := range after {
		if p.booted() {
			n++
		}
	}
	switch {
	case len(after) == 0:
		s = fmt.Sprintf("No boot path found: %s has nothing to revoke on this target.", what)
	case imp.BootsBefore && imp.BootsAfter:
		s = fmt.Sprintf("Still boots after %s (%d of %d boot paths).", what, n, len(after))
	case imp.BootsBefore && !imp.BootsAfter:
		s = fmt.Sprintf("Does NOT boot after %s: every boot path is refused.", what)
		for _, p := range after {
			if p.Boots != nil && !*p.Boots {
				s += " First failure: " + strings.TrimPrefix(p.Verdict, "does not boot: ") + "."
				break
			}
		}
		s += " Install fixed packages (shim-signed, grub-efi-*-signed, the signed kernel) before applying it."
	case !imp.BootsBefore && !imp.BootsAfter:
		s = fmt.Sprintf("Does not boot today under %s, nor after %s.", imp.Firmware, what)
	default:
		s = fmt.Sprintf("Boots after %s.", what)
	}
	if len(imp.Revoked) > 0 {
		s += " Newly refused: " + strings.Join(imp.Revoked, ", ") + "."
	} else if len(after) > 0 {
		s += " Nothing on the target is revoked by it."
	}
	return s
}
