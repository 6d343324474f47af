// Package secureboot decides whether UEFI Secure Boot lets an image or a host
// boot: the firmware's verdict on an EFI binary against db and dbx exactly as
// edk2's DxeImageVerificationLib makes it, the shim stage with shim's own rules
// (vendor certificate, vendor dbx, MokList/MokListX, SBAT against the SbatLevel
// policy), the boot paths of an EFI System Partition (removable-media path,
// vendor directories, fallback, NVRAM Boot#### entries) with the kernels of the
// root file system, and the verdict on the Microsoft 2011 → 2023 UEFI CA
// transition with plain-words advice.
//
// Firmware state comes from firmware variables (efivarfs on a live host, a
// directory of exported variables, an edk2 variable store) or from a named
// what-if profile (microsoft-2011, microsoft-2023, microsoft-both).
//
// References: edk2 SecurityPkg/Library/DxeImageVerificationLib/
// DxeImageVerificationLib.c (DxeImageVerificationHandler, IsForbiddenByDbx,
// IsAllowedByDb, IsCertHashFoundInDbx, IsSignatureFoundInDatabase) and
// SecurityPkg/Library/AuthVariableLib (SecureBoot and SetupMode); rhboot/shim
// shim.c (verify_buffer, verify_one_signature, check_denylist,
// check_allowlist, shim_verify), sbat.c, csv.c, sbat_var.S; UEFI 2.10 §32
// (Secure Boot and Driver Signing).
package secureboot

import (
	"crypto/x509"
	"fmt"
	"slices"
	"strings"

	"github.com/vouch-dev/vouch/internal/authenticode"
)

// Decision is the verdict of one verifier (the firmware or shim) on one image.
type Decision struct {
	// Allowed reports that the verifier lets the image run.
	Allowed bool `json:"allowed"`
	// Reason is the rule that decided, in one line.
	Reason string `json:"reason"`
	// AuthorizedBy names what allowed the image, e.g.
	// "db: Microsoft Corporation UEFI CA 2011 (microsoft-uefi-ca-2011)".
	AuthorizedBy string `json:"authorizedBy"`
	// DeniedBy names what refused it, e.g. "dbx: SHA-256 hash of the image".
	DeniedBy string `json:"deniedBy,omitempty"`
	// Signature is the 1-based WIN_CERTIFICATE entry that decided (as
	// sbverify numbers them), 0 when no signature decided (a hash entry, an
	// unsigned image, a malformed table).
	Signature int `json:"signature,omitempty"`
	// Enforced is false when the verifier does not check signatures at all
	// (Secure Boot off, setup mode, shim's MokSBState): the image runs
	// whatever its signatures.
	Enforced bool `json:"enforced"`
	// Explanation says in plain words what happened, signature by signature.
	Explanation string `json:"explanation,omitempty"`
}

func allow(sig int, by, reason string, steps []string) Decision {
	return Decision{Allowed: true, Enforced: true, Signature: sig, AuthorizedBy: by, Reason: reason, Explanation: joinSteps(steps)}
}

func deny(sig int, by, reason string, steps []string) Decision {
	return Decision{Allowed: false, Enforced: true, Signature: sig, DeniedBy: by, Reason: reason, Explanation: joinSteps(steps)}
}

// notEnforced wraps the policy decision d of a verifier that does not enforce.
func notEnforced(d Decision, why string) Decision {
	verdict := "would refuse"
	if d.Allowed {
		verdict = "would allow"
	}
	return Decision{
		Allowed:     true,
		Enforced:    false,
		Reason:      why,
		Explanation: why + ". With enforcement it " + verdict + " the image: " + d.Reason + ".",
	}
}

func joinSteps(steps []string) string {
	return strings.Join(steps, "; ")
}

// certName is a certificate's common name, or its whole subject when it has
// none.
func certName(c *x509.Certificate) string {
	if c == nil {
		return "(no certificate)"
	}
	if c.Subject.CommonName != "" {
		return c.Subject.CommonName
	}
	return c.Subject.String()
}

// describeCert names a certificate with its known-CA ID when it has one.
func describeCert(c *x509.Certificate) string {
	if k, ok := authenticode.IdentifyCA(c); ok {
		return fmt.Sprintf("%s (%s)", k.Name, k.ID)
	}
	return certName(c)
}

// topLevel returns the signatures firmware and shim evaluate: each
// WIN_CERTIFICATE entry's own signature, not the nested ones.
func topLevel(sigs []*authenticode.Signature) []*authenticode.Signature {
	out := make([]*authenticode.Signature, 0, len(sigs))
	for _, s := range sigs {
		if s.Nested == 0 {
			out = append(out, s)
		}
	}
	return out
}

// describeSignature says who made signature s: "signature 1 by Microsoft
// Windows UEFI Driver Publisher under Microsoft Corporation UEFI CA 2011".
func describeSignature(s *authenticode.Signature) string {
	n := s.Index + 1
	if s.Signer == nil {
		return fmt.Sprintf("signature %d", n)
	}
	out := fmt.Sprintf("signature %d by %s", n, certName(s.Signer))
	if ca := s.KnownCA(); ca != "" {
		out += " under " + CAName(ca)
	} else if top := s.Chain[len(s.Chain)-1]; top.Issuer.CommonName != "" {
		out += " issued by " + top.Issuer.CommonName
	}
	return out
}

// CAName is a known CA's certificate name ("Microsoft UEFI CA 2023"), the ID
// itself for another.
func CAName(id string) string {
	for _, k := range authenticode.KnownCAs() {
		if k.ID == id {
			return k.Name
		}
	}
	return id
}

// SignedBy returns the known-CA IDs of an image's signatures in order, one
// per top-level signature that has one (duplicates removed).
func SignedBy(img *authenticode.Image) []string {
	var out []string
	for _, s := range topLevel(img.Signatures()) {
		if id := s.KnownCA(); id != "" && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}
