package secureboot

import (
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/vouch-dev/vouch/internal/authenticode"
	"github.com/vouch-dev/vouch/internal/efi"
)

// oidModuleSigning is the kernel module-signing extended key usage; shim
// refuses to trust a db or MokList certificate that carries it
// (verify_eku).
var oidModuleSigning = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 2312, 16, 1, 2}

// VendorCert is the content of shim's .vendor_cert section: the certificate
// (or, in VENDOR_DB_FILE builds, a signature database) shim trusts for its
// second stages, and the vendor's own deny list.
type VendorCert struct {
	// Cert is the vendor certificate, nil when the authorized part is a
	// signature database or empty.
	Cert *x509.Certificate
	// DB is the vendor db (VENDOR_DB_FILE builds).
	DB []efi.SignatureList
	// DBX is the vendor dbx (VENDOR_DBX_FILE), usually SHA-256 hashes of
	// revoked GRUB and kernel builds.
	DBX []efi.SignatureList
}

// VendorCertError is a .vendor_cert section that does not parse.
type VendorCertError struct {
	Offset int
	Reason string
}

func (e *VendorCertError) Error() string {
	return fmt.Sprintf("secureboot: .vendor_cert: %s (section offset 0x%x)", e.Reason, e.Offset)
}

// ParseVendorCert parses a .vendor_cert section: shim's cert_table of four
// little-endian uint32 (vendor_authorized_size, vendor_deauthorized_size,
// vendor_authorized_offset, vendor_deauthorized_offset; offsets from the
// start of the table, which is the start of the section), the authorized
// data (a DER certificate, or EFI_SIGNATURE_LISTs), and the deauthorized
// EFI_SIGNATURE_LISTs.
func ParseVendorCert(b []byte) (*VendorCert, error) {
	const hdr = 16
	if len(b) < hdr {
		return nil, &VendorCertError{Offset: 0, Reason: fmt.Sprintf("section of %d bytes is shorter than the %d-byte cert_table", len(b), hdr)}
	}
	le := binary.LittleEndian
	authSize, deauthSize := uint64(le.Uint32(b[0:])), uint64(le.Uint32(b[4:]))
	authOff, deauthOff := uint64(le.Uint32(b[8:])), uint64(le.Uint32(b[12:]))
	region := func(off, size uint64, name string, field int) ([]byte, error) {
		if size == 0 {
			return nil, nil
		}
		if off+size > uint64(len(b)) {
			return nil, &VendorCertError{Offset: field, Reason: fmt.Sprintf("%s data at 0x%x, %d bytes, extends past the %d-byte section", name, off, size, len(b))}
		}
		return b[off : off+size : off+size], nil
	}
	auth, err := region(authOff, authSize, "authorized", 8)
	if err != nil {
		return nil, err
	}
	deauth, err := region(deauthOff, deauthSize, "deauthorized", 12)
	if err != nil {
		return nil, err
	}
	vc := &VendorCert{}
	if len(auth) > 0 {
		if len(auth) >= 2 && auth[0] == 0x30 {
			c, err := x509.ParseCertificate(auth)
			if err != nil {
				return nil, &VendorCertError{Offset: int(authOff), Reason: fmt.Sprintf("vendor certificate: %v", err)}
			}
			vc.Cert = c
		} else {
			l, err := efi.ParseSignatureLists(auth)
			if err != nil {
				return nil, &VendorCertError{Offset: int(authOff), Reason: fmt.Sprintf("vendor db: %v", err)}
			}
			vc.DB = l
		}
	}
	if len(deauth) > 0 {
		l, err := efi.ParseSignatureLists(deauth)
		if err != nil {
			return nil, &VendorCertError{Offset: int(deauthOff), Reason: fmt.Sprintf("vendor dbx: %v", err)}
		}
		vc.DBX = l
	}
	return vc, nil
}

// IsShim reports whether img is shim itself: it has a .vendor_cert or
// .sbatlevel section. (Fallback and MokManager come from shim's build and
// carry its "shim" SBAT component, but neither section.)
func IsShim(img *authenticode.Image) bool {
	if _, ok := img.SectionData(".vendor_cert"); ok {
		return true
	}
	_, ok := img.SectionData(".sbatlevel")
	return ok
}

// ShimOptions adjust the shim stage.
type ShimOptions struct {
	// Protocol says the image is verified through shim's SHIM_LOCK
	// protocol (GRUB checking a kernel) rather than loaded by shim itself:
	// then a missing .sbat is accepted (verify_sbat_section returns success
	// when in_protocol is set).
	Protocol bool
	// SBATPolicy chooses shim's embedded level when it applies one.
	SBATPolicy SBATPolicy
}

// ShimVerify returns shim's verdict on next, the second stage it loads
// (GRUB, fallback, MokManager), under firmware fw. fw may be nil when the
// firmware is unknown: then only what shim carries (vendor certificate,
// vendor dbx, embedded SBAT level) is applied.
func ShimVerify(shim *authenticode.Image, fw *Firmware, next *authenticode.Image) Decision {
	return ShimVerifyWith(shim, fw, next, ShimOptions{})
}

// ShimVerifyWith is ShimVerify with options.
//
// shim's rules (shim.c verify_buffer and verify_one_signature; sbat.c):
//
//   - SBAT first: the image's .sbat against the effective SbatLevel (see
//     EffectiveSBATLevel); a missing .sbat is refused unless verified through
//     the protocol; a .sbat that does not parse is refused.
//   - Then hashes, with SHA-256 and SHA-1 of the image: vendor dbx, system
//     dbx and MokListX deny; db (unless MokIgnoreDB), vendor db and MokList
//     allow.
//   - Then each WIN_CERTIFICATE entry: the vendor dbx, dbx and MokListX X509
//     entries deny that entry (X509_SHA* entries are ignored); otherwise db
//     (unless MokIgnoreDB), vendor db, MokList and the vendor certificate
//     allow it. Only the first certificate of each X509 list is tried, it
//     must be DER with an exact two-byte length, and a db or MokList
//     certificate with the module-signing EKU is not trusted. Verification
//     is edk2's AuthenticodeVerify with the SHA-256 image hash, so only
//     SHA-256 signatures can verify. One allowed entry suffices: a dbx hit
//     on another entry does not undo it (unlike edk2). When none is allowed
//     and one was forbidden, the first forbidding entry is reported (shim
//     prints "Binary is forbidden").
//
// Where each list and entry type is consulted (verify.c: check_denylist,
// check_allowlist, check_db_cert_in_ram): EFI_CERT_SHA256 in vendor dbx,
// dbx and MokListX denies, in db, vendor db and MokList allows; EFI_CERT_SHA1
// only in vendor dbx, dbx and db; EFI_CERT_X509 in all six, first entry of
// each list, the signature verified with it as the trust anchor (so leaf,
// intermediate or root alike); EFI_CERT_X509_SHA256/384/512 nowhere (shim
// has no revocation-time or dbt logic). MokList and MokListX are read as the
// boot-services variables shim mirrors into MokListRT and MokListXRT.
func ShimVerifyWith(shim *authenticode.Image, fw *Firmware, next *authenticode.Image, o ShimOptions) Decision {
	d := shimPolicy(shim, fw, next, o)
	if fw != nil {
		switch {
		case !fw.Enforcing():
			return notEnforced(d, "Secure Boot is not enforced, so shim does not verify")
		case fw.ShimValidationDisabled:
			return notEnforced(d, "shim validation is disabled (MokSBState), so shim does not verify")
		}
	}
	return d
}

func shimPolicy(shim *authenticode.Image, fw *Firmware, next *authenticode.Image, o ShimOptions) Decision {
	var steps []string
	if fw == nil {
		fw = &Firmware{Source: "unknown firmware"}
		steps = append(steps, "firmware unknown: only shim's own vendor certificate, vendor dbx and SBAT level are applied")
	}
	vc, vcErr := shimVendorCert(shim)
	if vcErr != nil {
		steps = append(steps, fmt.Sprintf("shim's .vendor_cert is unreadable (%v); no vendor certificate applies", vcErr))
		vc = &VendorCert{}
	}

	// SBAT.
	level, err := EffectiveSBATLevel(fw, shim, o.SBATPolicy)
	if err != nil {
		return deny(0, "SbatLevel", fmt.Sprintf("shim cannot parse its SBAT level: %v", err), steps)
	}
	if dec, ok := sbatVerdict(next, level, o.Protocol); !ok {
		return deny(0, dec.DeniedBy, dec.Reason, append(steps, dec.Explanation))
	} else if dec.Explanation != "" {
		steps = append(steps, dec.Explanation)
	}

	sha256 := next.Digest(crypto.SHA256)
	// shim hashes with SHA-1 too; compute it only when a list could match
	// it (the digests are the same image bytes, so when one can be computed
	// so can the other).
	var sha1 []byte
	if hasType(efi.CertSHA1GUID, vc.DBX, fw.DBX, fw.DB) {
		sha1 = next.Digest(crypto.SHA1)
	}
	if sha256 == nil {
		return deny(0, "", "shim cannot hash the image", steps)
	}
	type hashRule struct {
		name  string
		lists []efi.SignatureList
		t     efi.GUID
		h     []byte
	}
	for _, r := range []hashRule{
		{"vendor dbx", vc.DBX, efi.CertSHA256GUID, sha256},
		{"vendor dbx", vc.DBX, efi.CertSHA1GUID, sha1},
		{"dbx", fw.DBX, efi.CertSHA256GUID, sha256},
		{"dbx", fw.DBX, efi.CertSHA1GUID, sha1},
		{"MokListX", fw.MokListX, efi.CertSHA256GUID, sha256},
	} {
		if hashIn(r.lists, r.t, r.h) {
			alg := "SHA-256"
			if r.t == efi.CertSHA1GUID {
				alg = "SHA-1"
			}
			return deny(0, r.name+": "+alg+" hash of the image", "the image's hash is in "+r.name, append(steps, "the image's "+alg+" hash "+hexShort(r.h)+" is in "+r.name))
		}
	}
	var allowHash []hashRule
	if !fw.MokIgnoreDB {
		allowHash = append(allowHash, hashRule{"db", fw.DB, efi.CertSHA256GUID, sha256}, hashRule{"db", fw.DB, efi.CertSHA1GUID, sha1})
	}
	allowHash = append(allowHash, hashRule{"vendor db", vc.DB, efi.CertSHA256GUID, sha256}, hashRule{"MokList", fw.MokList, efi.CertSHA256GUID, sha256})
	for _, r := range allowHash {
		if hashIn(r.lists, r.t, r.h) {
			return allow(0, r.name+": hash of the image", "the image's hash is in "+r.name, append(steps, "the image's hash is in "+r.name))
		}
	}

	sigs := topLevel(next.Signatures())
	if len(sigs) == 0 {
		if err := next.CertTableErr(); err != nil {
			return deny(0, "certificate table", "the certificate table is malformed", append(steps, err.Error()))
		}
		return deny(0, "", "the image is unsigned and its hash is in neither db nor MokList", steps)
	}
	deny509 := []struct {
		name    string
		entries []dbEntry
	}{
		{"vendor dbx", shimFirsts(x509Entries(vc.DBX, "vendor dbx"))},
		{"dbx", shimFirsts(fw.dbx509)},
		{"MokListX", shimFirsts(x509Entries(fw.MokListX, "MokListX"))},
	}
	var allow509 []dbEntry
	if !fw.MokIgnoreDB {
		allow509 = append(allow509, shimFirsts(fw.db)...)
	}
	allow509 = append(allow509, shimFirsts(x509Entries(vc.DB, "vendor db"))...)
	allow509 = append(allow509, shimFirsts(x509Entries(fw.MokList, "MokList"))...)
	if vc.Cert != nil {
		allow509 = append(allow509, dbEntry{cert: vc.Cert, origin: "shim vendor certificate", strict: true, first: true})
	}

	var first, forbiddenBy *Decision
	for _, s := range sigs {
		n := s.Index + 1
		desc := describeSignature(s)
		if s.DigestAlgorithm != crypto.SHA256 {
			steps = append(steps, fmt.Sprintf("%s uses %s; shim verifies SHA-256 signatures only", desc, algName(s)))
			continue
		}
		forbidden := false
		for _, rule := range deny509 {
			for _, e := range rule.entries {
				if _, ok := e.verifies(s); ok {
					steps = append(steps, fmt.Sprintf("%s is forbidden by %s", desc, e))
					forbidden = true
					if forbiddenBy == nil {
						// shim: "Binary is forbidden" (check_denylist,
						// "cert sha256hash found in <list>").
						d := deny(n, e.String(), fmt.Sprintf("signature %d is forbidden by %s and no other signature is allowed", n, rule.name), nil)
						forbiddenBy = &d
					}
					break
				}
			}
			if forbidden {
				break
			}
		}
		if forbidden {
			continue
		}
		matched := false
		for _, e := range allow509 {
			if _, ok := e.verifies(s); ok {
				steps = append(steps, fmt.Sprintf("%s verifies with %s", desc, e))
				if first == nil {
					d := allow(n, e.String(), fmt.Sprintf("signature %d verifies with %s", n, e.origin), nil)
					first = &d
				}
				matched = true
				break
			}
		}
		if !matched {
			steps = append(steps, fmt.Sprintf("%s %s", desc, whyNotShim(s)))
		}
	}
	if first != nil {
		first.Explanation = joinSteps(steps)
		return *first
	}
	if forbiddenBy != nil {
		forbiddenBy.Explanation = joinSteps(steps)
		return *forbiddenBy
	}
	return deny(0, "", "no signature verifies with db, MokList or shim's vendor certificate", steps)
}

func hasType(t efi.GUID, dbs ...[]efi.SignatureList) bool {
	for _, db := range dbs {
		for _, l := range db {
			if l.Type == t {
				return true
			}
		}
	}
	return false
}

// shimFirsts keeps the entries shim's check_db_cert_in_ram tries: the first
// of each X509 list, exact DER (verify_x509), no module-signing EKU
// (verify_eku). Both apply to allow and deny lists alike.
func shimFirsts(entries []dbEntry) []dbEntry {
	var out []dbEntry
	for _, e := range entries {
		if !e.first || !e.strict {
			continue
		}
		if e.cert != nil && hasModuleSigningEKU(e.cert) {
			continue
		}
		out = append(out, e)
	}
	return out
}

func hasModuleSigningEKU(c *x509.Certificate) bool {
	for _, u := range c.UnknownExtKeyUsage {
		if u.Equal(oidModuleSigning) {
			return true
		}
	}
	return false
}

func whyNotShim(s *authenticode.Signature) string {
	switch {
	case s.Err != nil && !s.SignatureValid:
		return fmt.Sprintf("does not verify (%v)", s.Err)
	case !s.DigestMatches:
		return "does not match the image (digest mismatch)"
	}
	return "verifies with no db, MokList or vendor certificate"
}

func shimVendorCert(shim *authenticode.Image) (*VendorCert, error) {
	b, ok := shim.SectionData(".vendor_cert")
	if !ok {
		return &VendorCert{}, nil
	}
	return ParseVendorCert(b)
}

// sbatVerdict applies level to the image's .sbat. ok false means refused,
// with DeniedBy, Reason and Explanation set.
func sbatVerdict(img *authenticode.Image, level *SBATLevel, protocol bool) (Decision, bool) {
	n := 0
	var data []byte
	for _, s := range img.Sections() {
		if s.Name == ".sbat" {
			n++
		}
	}
	if n > 1 {
		return Decision{DeniedBy: "SBAT", Reason: "the image has several .sbat sections", Explanation: "shim refuses an image with more than one .sbat section"}, false
	}
	if n == 1 {
		data, _ = img.SectionData(".sbat")
	}
	if len(data) == 0 {
		if protocol {
			return Decision{Explanation: "the image has no .sbat section, which shim accepts for images verified through its protocol"}, true
		}
		return Decision{DeniedBy: "SBAT: no .sbat section", Reason: "the image has no .sbat section", Explanation: "shim refuses binaries it loads that carry no SBAT data"}, false
	}
	entries, err := ParseSBAT(data)
	if err != nil {
		return Decision{DeniedBy: "SBAT: malformed .sbat", Reason: "shim cannot parse the image's .sbat section", Explanation: err.Error()}, false
	}
	if r := level.Check(entries); r != nil {
		return Decision{
			DeniedBy:    fmt.Sprintf("SBAT: %s,%d in %s", r.Component, r.Level, levelName(level)),
			Reason:      "SBAT revokes the image: " + r.String(),
			Explanation: fmt.Sprintf("the image's .sbat has %s,%d but %s requires %s,%d", r.Component, r.Generation, levelName(level), r.Component, r.Level),
		}, false
	}
	return Decision{Explanation: fmt.Sprintf("SBAT %s passes %s", sbatSummary(entries), levelName(level))}, true
}

func levelName(l *SBATLevel) string {
	if l.Datestamp != "" {
		return fmt.Sprintf("SbatLevel %s (%s)", l.Datestamp, l.Source)
	}
	return "SbatLevel (" + l.Source + ")"
}

func sbatSummary(entries []SBATEntry) string {
	parts := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.Component == "sbat" {
			continue
		}
		parts = append(parts, e.Component+","+e.Generation)
	}
	return strings.Join(parts, " ")
}

// EffectiveSBATLevel is the level shim enforces under fw, as its
// set_sbat_uefi_variable leaves it: shim's embedded payload (automatic, or
// latest when asked) replaces the SbatLevel variable unless the variable is
// at least as new; the SbatLevelRT mirror an efivarfs shows counts as the
// variable. A shim without .sbatlevel (before 15.7) carried its level as a
// string vouch cannot find; then the variable, or the original empty level,
// applies. fw may be nil (firmware unknown: no variable).
func EffectiveSBATLevel(fw *Firmware, shim *authenticode.Image, p SBATPolicy) (*SBATLevel, error) {
	var candidate, source string
	if b, ok := shim.SectionData(".sbatlevel"); ok {
		e, err := ParseSBATLevelSection(b)
		if err != nil {
			return nil, err
		}
		candidate, source = e.Previous, "shim .sbatlevel, automatic"
		if p == SBATLatest {
			candidate, source = e.Latest, "shim .sbatlevel, latest"
		}
	}
	if fw != nil && fw.SbatLevel != nil {
		rt := fw.SbatLevelName == "SbatLevelRT"
		if candidate == "" || preserveLevel(fw.SbatLevel, uint32(fw.SbatLevelAttrs), rt, candidate) {
			l, err := ParseSBATLevel(fw.SbatLevel)
			if err != nil {
				return nil, err
			}
			l.Source = fw.SbatLevelName + " variable"
			return l, nil
		}
	}
	if candidate == "" {
		candidate, source = sbatOriginal, "no revocations: shim carries no .sbatlevel and there is no SbatLevel variable"
	}
	l, err := ParseSBATLevel([]byte(candidate))
	if err != nil {
		return nil, err
	}
	l.Source = source
	return l, nil
}

// ShimSelfCheck is shim's own SBAT check at start-up (efi_main verifies its
// .sbat against the level it just applied): a shim revoked by the level
// stops the boot.
func ShimSelfCheck(shim *authenticode.Image, fw *Firmware, p SBATPolicy) Decision {
	level, err := EffectiveSBATLevel(fw, shim, p)
	if err != nil {
		return deny(0, "SbatLevel", fmt.Sprintf("shim cannot parse its SBAT level: %v", err), nil)
	}
	if dec, ok := sbatVerdict(shim, level, false); !ok {
		return deny(0, dec.DeniedBy, "shim's SBAT self-check fails: "+dec.Reason, []string{dec.Explanation})
	} else {
		return allow(0, levelName(level), "shim's own SBAT passes its level", []string{dec.Explanation})
	}
}
