package secureboot

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"fmt"

	"github.com/vouch-dev/vouch/internal/authenticode"
	"github.com/vouch-dev/vouch/internal/efi"
)

// Verify returns the firmware's verdict on img as edk2's
// DxeImageVerificationHandler reaches it. When the firmware does not enforce
// Secure Boot the image is allowed and the decision says what the policy
// alone would have said.
func (fw *Firmware) Verify(img *authenticode.Image) Decision {
	d := fw.VerifyPolicy(img)
	switch {
	case fw.SetupMode:
		return notEnforced(d, "firmware is in setup mode (no PK): it does not check signatures")
	case !fw.SecureBoot:
		return notEnforced(d, "Secure Boot is off: the firmware does not check signatures")
	}
	return d
}

// VerifyPolicy applies db and dbx to img as if Secure Boot were enforced.
//
// The rules, from edk2's DxeImageVerificationHandler (SecurityPkg/Library/
// DxeImageVerificationLib, unchanged from edk2-stable202211, Debian 12's
// OVMF, to 2026):
//
//   - An image without a certificate table is allowed only by its hash in db
//     (vouch: SHA-256), and never when the hash is in dbx.
//   - Otherwise every WIN_CERTIFICATE entry is evaluated in order. Its digest
//     algorithm comes from the entry (HashPeImageByType); an unsupported one
//     skips the entry. A forbidden entry (IsForbiddenByDbx) rejects the image
//     at once, whatever earlier entries did. Until one entry is allowed, each
//     is tried against db (IsAllowedByDb). Then the image hash (with the
//     entry's algorithm) in dbx rejects; in db it allows.
//   - The entries must fill the table exactly.
//
// Where each dbx entry type is consulted:
//
//   - EFI_CERT_SHA256 (and SHA1/384/512 image hashes): the image's
//     Authenticode hash, for an unsigned image, and after each evaluated
//     signature (IsSignatureFoundInDatabase on dbx) — a hit rejects the image
//     even when a signature was already allowed.
//   - EFI_CERT_X509: IsForbiddenByDbx runs AuthenticodeVerify with each dbx
//     certificate as the only trusted certificate (Pkcs7Verify: partial chain,
//     no time or purpose check). The signature is forbidden when it verifies,
//     that is when the certificate is the signer, an embedded intermediate,
//     or the (embedded or not) issuer of a chain certificate: leaf,
//     intermediate and root alike.
//   - EFI_CERT_X509_SHA256/384/512 (IsCertHashFoundInDbx, the hash of the
//     TBSCertificate) is looked up twice, for two certificates only:
//     IsForbiddenByDbx takes the stack of Pkcs7GetSigners, which is OpenSSL's
//     PKCS7_get0_signers: the signer certificate of each SignerInfo, not the
//     embedded intermediates or root. A hit forbids the signature (and the
//     image); no signer found (Pkcs7GetSigners fails) forbids it too.
//     IsAllowedByDb looks up the db certificate the signature verified with
//     (the first that verifies decides; the others are not tried): a hit makes
//     this signature not allowed, but does not forbid the image, so a later
//     signature that db allows still lets it run. The hash of an embedded
//     intermediate that is neither the signer nor the db match, and of a root
//     that is not in db, is never consulted.
//   - The revocation time of an X509_SHA* entry: zero (IsTimeZero: year to
//     second) means always revoked; otherwise PassTimestampCheck lets the
//     signature through only when its RFC 3161 countersignature verifies with
//     an X509 certificate of dbt and its signing time is not later than the
//     revocation time. Without a timestamp, or without dbt, a non-zero time
//     revokes exactly as a zero one. vouch does not verify timestamps and
//     treats every non-zero time as revoking, which is exact for signatures
//     without a timestamp (Microsoft's UEFI CA signatures of shim carry none);
//     the explanation says when the signature does carry one.
//
// Verification is OpenSSL's with a partial chain, no time check and any
// purpose (authenticode.Signature.VerifiesWith). The table of
// TestQEMUDbxEntryTypes reproduces each case with a real OVMF boot.
func (fw *Firmware) VerifyPolicy(img *authenticode.Image) Decision {
	sigs := topLevel(img.Signatures())
	if len(sigs) == 0 && img.CertTableErr() == nil {
		return fw.verifyUnsigned(img)
	}
	return fw.verifySignatures(img, sigs, img.CertTableErr())
}

// verifySignatures runs the signed-image part of the decision over sigs, as
// if they were the image's whole certificate table; tableErr is the table's
// fault, if any.
func (fw *Firmware) verifySignatures(img *authenticode.Image, sigs []*authenticode.Signature, tableErr error) Decision {
	var (
		steps    []string
		verified bool
		allowed  Decision
	)
	for _, s := range sigs {
		n := s.Index + 1
		desc := describeSignature(s)
		alg := s.DigestAlgorithm
		digest := img.Digest(alg)
		if alg == 0 || digest == nil {
			steps = append(steps, fmt.Sprintf("%s skipped: digest algorithm %s is not one edk2 hashes images with", desc, algName(s)))
			continue
		}
		if by, why, forbidden := fw.forbiddenByDbx(s); forbidden {
			steps = append(steps, fmt.Sprintf("%s is forbidden: %s", desc, why))
			return deny(n, by, fmt.Sprintf("signature %d is revoked by dbx", n), steps)
		}
		if !verified {
			if e, revoked, ok := fw.allowedByDb(s); ok {
				verified = true
				allowed = allow(n, e.String(), fmt.Sprintf("signature %d verifies with a db certificate", n), nil)
				steps = append(steps, fmt.Sprintf("%s verifies with %s", desc, e))
			} else if revoked != "" {
				steps = append(steps, fmt.Sprintf("%s verifies with %s", desc, revoked))
			} else {
				steps = append(steps, fmt.Sprintf("%s %s", desc, whyNotDB(s)))
			}
		}
		ct := certTypeForHash(alg)
		if hashIn(fw.DBX, ct, digest) {
			steps = append(steps, fmt.Sprintf("the image's %s hash %s is in dbx", hashName(alg), hexShort(digest)))
			return deny(0, "dbx: "+hashName(alg)+" hash of the image", "the image's hash is in dbx", steps)
		}
		if !verified && hashIn(fw.DB, ct, digest) {
			verified = true
			allowed = allow(0, "db: "+hashName(alg)+" hash of the image", "the image's hash is in db", nil)
			steps = append(steps, fmt.Sprintf("the image's %s hash is in db", hashName(alg)))
		}
	}
	if tableErr != nil {
		steps = append(steps, fmt.Sprintf("the certificate table is malformed (%v), which rejects the image", tableErr))
		return deny(0, "certificate table", "the certificate table is malformed", steps)
	}
	if verified {
		allowed.Explanation = joinSteps(steps)
		return allowed
	}
	if len(steps) == 0 {
		steps = append(steps, "the certificate table holds no signature edk2 evaluates")
	}
	return deny(0, "", "no signature verifies with a db certificate and the image's hash is not in db", steps)
}

func (fw *Firmware) verifyUnsigned(img *authenticode.Image) Decision {
	d := img.Digest(crypto.SHA256)
	if d == nil {
		return deny(0, "", "the image is unsigned and cannot be hashed", []string{"edk2 cannot hash the image (headers or sections past the end of the file)"})
	}
	steps := []string{"the image is unsigned, so only its SHA-256 hash " + hexShort(d) + " can allow it"}
	if hashIn(fw.DBX, efi.CertSHA256GUID, d) {
		return deny(0, "dbx: SHA-256 hash of the image", "the unsigned image's hash is in dbx", append(steps, "the hash is in dbx"))
	}
	if hashIn(fw.DB, efi.CertSHA256GUID, d) {
		return allow(0, "db: SHA-256 hash of the image", "the unsigned image's hash is in db", append(steps, "the hash is in db"))
	}
	return deny(0, "", "the image is unsigned and its hash is not in db", append(steps, "the hash is not in db"))
}

// forbiddenByDbx is IsForbiddenByDbx: by names the dbx entry.
func (fw *Firmware) forbiddenByDbx(s *authenticode.Signature) (by, why string, forbidden bool) {
	if !fw.hasDBX {
		return "", "", false
	}
	for _, e := range fw.dbx509 {
		if s.VerifiesWith(e.cert) {
			return "dbx: " + describeCert(e.cert), "it verifies with the dbx certificate " + describeCert(e.cert), true
		}
	}
	// Pkcs7GetSigners failing (no parsable signed data, or no embedded
	// certificate matching the SignerInfo) counts as revoked.
	if s.Signer == nil {
		why := "it carries no signer certificate edk2 can read"
		if len(s.Certificates) > 0 {
			why = "its signer certificate is not embedded"
		}
		if s.Err != nil {
			why += fmt.Sprintf(" (%v)", s.Err)
		}
		return "dbx: unreadable signature", why + ", which edk2 treats as revoked while dbx exists", true
	}
	// Only the signer: Pkcs7GetSigners is PKCS7_get0_signers, not the
	// embedded certificates.
	if hit, zero := tbsInDbx(fw.DBX, s.Signer); hit {
		why := fmt.Sprintf("its signer certificate %s is revoked by its TBS hash in dbx", describeCert(s.Signer))
		if !zero {
			why += revocationTimeNote(s)
		}
		return "dbx: TBS hash of " + describeCert(s.Signer), why, true
	}
	return "", "", false
}

// oidRFC3161Countersignature is Authenticode's unauthenticated attribute
// holding an RFC 3161 timestamp token (szOID_RFC3161_counterSign), the one
// edk2's ImageTimestampVerify reads.
var oidRFC3161Countersignature = []byte{0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x03, 0x03, 0x01}

// revocationTimeNote explains a non-zero revocation time (PassTimestampCheck).
func revocationTimeNote(s *authenticode.Signature) string {
	if bytes.Contains(s.PKCS7, oidRFC3161Countersignature) {
		return " (from a revocation time; the signature carries an RFC 3161 timestamp, which edk2 would accept if it verified with a dbt certificate and predated that time: vouch does not verify timestamps and counts it as revoked)"
	}
	return " (from a revocation time; the signature carries no RFC 3161 timestamp, so edk2's timestamp check fails whatever dbt holds)"
}

// allowedByDb is IsAllowedByDb: the first db certificate the signature
// verifies with decides; it is then looked up in dbx. revoked describes a
// matching but revoked db entry.
func (fw *Firmware) allowedByDb(s *authenticode.Signature) (e dbEntry, revoked string, ok bool) {
	if !fw.hasDB {
		return dbEntry{}, "", false
	}
	for _, e := range fw.db {
		anchor, verifies := e.verifies(s)
		if !verifies {
			continue
		}
		if fw.hasDBX {
			if hit, zero := tbsInDbx(fw.DBX, anchor); hit {
				why := e.String() + ", but that db certificate is revoked by its TBS hash in dbx, so this signature is not allowed (the image is not forbidden: a later signature may still allow it)"
				if !zero {
					why += revocationTimeNote(s)
				}
				return dbEntry{}, why, false
			}
		}
		return e, "", true
	}
	return dbEntry{}, "", false
}

// verifies reports whether s verifies with the db entry, and the certificate
// that anchored it.
func (e dbEntry) verifies(s *authenticode.Signature) (*x509.Certificate, bool) {
	return e.cert, s.VerifiesWith(e.cert)
}

// tbsInDbx is IsCertHashFoundInDbx: the TBSCertificate hash of c in an
// X509_SHA256/384/512 list. zero reports a zero revocation time ("always").
func tbsInDbx(dbx []efi.SignatureList, c *x509.Certificate) (hit, zero bool) {
	for _, l := range dbx {
		var h crypto.Hash
		switch l.Type {
		case efi.CertX509SHA256GUID:
			h = crypto.SHA256
		case efi.CertX509SHA384GUID:
			h = crypto.SHA384
		case efi.CertX509SHA512GUID:
			h = crypto.SHA512
		default:
			continue
		}
		d := authenticode.TBSHash(c, h)
		for _, s := range l.Signatures {
			if len(s.Data) < len(d)+16 || string(s.Data[:len(d)]) != string(d) {
				continue
			}
			t := s.Data[len(d) : len(d)+16]
			// IsTimeZero looks at year, month, day, hour, minute, second.
			zero := t[0] == 0 && t[1] == 0 && t[2] == 0 && t[3] == 0 && t[4] == 0 && t[5] == 0 && t[6] == 0
			return true, zero
		}
	}
	return false, false
}

func whyNotDB(s *authenticode.Signature) string {
	switch {
	case s.Err != nil && !s.SignatureValid:
		return fmt.Sprintf("does not verify (%v)", s.Err)
	case !s.DigestMatches:
		return "does not match the image (digest mismatch)"
	}
	return "verifies with no db certificate"
}

func certTypeForHash(h crypto.Hash) efi.GUID {
	switch h {
	case crypto.SHA1:
		return efi.CertSHA1GUID
	case crypto.SHA384:
		return efi.CertSHA384GUID
	case crypto.SHA512:
		return efi.CertSHA512GUID
	}
	return efi.CertSHA256GUID
}

func hashName(h crypto.Hash) string {
	switch h {
	case crypto.SHA1:
		return "SHA-1"
	case crypto.SHA256:
		return "SHA-256"
	case crypto.SHA384:
		return "SHA-384"
	case crypto.SHA512:
		return "SHA-512"
	}
	return h.String()
}

func algName(s *authenticode.Signature) string {
	if s.DigestAlgorithmName != "" {
		return s.DigestAlgorithmName
	}
	return "unknown"
}
