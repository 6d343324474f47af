package nvram

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/vouch-dev/vouch/internal/authenticode"
	"github.com/vouch-dev/vouch/internal/efi"
)

// Verification is the result of checking a signed update's PKCS#7 signature
// the way edk2's AuthVariableLib does in user mode (ProcessVarWithPk, then
// ProcessVarWithKek for db, dbx and dbt; PK only for KEK).
type Verification struct {
	Verified bool `json:"verified"`
	// By names the store entry that verified it, e.g. "KEK: Microsoft
	// Corporation KEK CA 2011 (microsoft-kek-ca-2011)".
	By string `json:"by,omitempty"`
	// Signer is the certificate that signed the update.
	Signer string `json:"signer,omitempty"`
	// SignedAttributes are the SetVariable attributes the signature covers
	// ("NV|BS|RT|AT|AP" for an append such as DBXUpdate.bin).
	SignedAttributes string `json:"signed_attributes,omitempty"`
	// Reason says why it did not verify.
	Reason string `json:"reason,omitempty"`
}

func (v *Verification) String() string {
	if v.Verified {
		return fmt.Sprintf("signature verified by %s (signer %s, attributes %s)", v.By, v.Signer, v.SignedAttributes)
	}
	return "signature NOT verified: " + v.Reason
}

// Update is a parsed signed variable update file.
type Update struct {
	Auth  *efi.AuthVar2
	Time  []byte // the raw EFI_TIME of the descriptor
	Lists []efi.SignatureList
}

// ParseUpdate parses an EFI_VARIABLE_AUTHENTICATION_2 update whose payload is
// signature lists, and checks the payload the way edk2's
// CheckSignatureListFormat (AuthVariableLib/AuthService.c) does before it
// writes db, dbx or KEK: only signature types the spec defines, with their
// fixed sizes and no header, the lists exactly filling the payload, and the
// first certificate of each X509 list holding an RSA public key.
func ParseUpdate(b []byte, source string) (*Update, error) {
	a, err := efi.ParseAuthVar2(b)
	if err != nil {
		return nil, fmt.Errorf("nvram: %s: not a signed variable update (EFI_VARIABLE_AUTHENTICATION_2): %w", source, err)
	}
	u := &Update{Auth: a, Time: b[:16]}
	if len(a.Payload) == 0 {
		return nil, fmt.Errorf("nvram: %s: the update carries no signature lists (an empty authenticated write deletes a variable; vouch only appends)", source)
	}
	if u.Lists, err = efi.ParseSignatureLists(a.Payload); err != nil {
		return nil, fmt.Errorf("nvram: %s: malformed signature lists in the update: %w", source, err)
	}
	for i, l := range u.Lists {
		if l.TypeName() == "unknown" {
			return nil, fmt.Errorf("nvram: %s: signature list %d has type %s, which the UEFI specification does not define (firmware refuses the update)", source, i, l.Type)
		}
		if l.Type == efi.CertX509GUID && len(l.Signatures) > 0 {
			c, err := x509.ParseCertificate(trimDER(l.Signatures[0].Data))
			if err != nil {
				return nil, fmt.Errorf("nvram: %s: signature list %d: X509 entry is not a certificate: %v", source, i, err)
			}
			if _, ok := c.PublicKey.(*rsa.PublicKey); !ok {
				return nil, fmt.Errorf("nvram: %s: signature list %d: X509 entry has a %T key; edk2 needs RSA", source, i, c.PublicKey)
			}
		}
	}
	return u, nil
}

// Entries counts the update's EFI_SIGNATURE_DATA entries.
func (u *Update) Entries() int {
	n := 0
	for _, l := range u.Lists {
		n += len(l.Signatures)
	}
	return n
}

// Apply appends a signed update's signature lists to db, dbx or KEK (name)
// with EFI_VARIABLE_APPEND_WRITE semantics: entries already present are not
// added again, and the variable's timestamp becomes the update's when that
// is later. The update's signature is checked against the store's KEK (db,
// dbx) or PK (KEK) and the result reported in Change.Verification; an update
// that does not verify is still applied (offline, vouch acts as the platform
// owner would in setup or custom mode), the report says so.
func (s *Store) Apply(update []byte, source, name string) (Change, error) {
	if _, err := varGUID(name); err != nil {
		return Change{}, err
	}
	u, err := ParseUpdate(update, source)
	if err != nil {
		return Change{}, err
	}
	v := s.Verify(u, name)
	c, err := s.appendLists(name, u.Auth.Payload, u.Time)
	if err != nil {
		return Change{}, err
	}
	c.Verification = v
	c.Summary = fmt.Sprintf("%s: applied %s: added %d of %d entries%s; %d entries now; %s", name, source, c.Added, u.Entries(), presentNote(c.Present), c.Entries, v)
	return c, nil
}

// Verify checks the update's signature as edk2's VerifyTimeBasedPayload does
// for variable name: the PKCS#7 SignedData must verify over VariableName
// (UTF-16, no NUL) ‖ VendorGuid ‖ Attributes ‖ TimeStamp ‖ Data (UEFI 2.10
// §8.2.2) with a trusted certificate from PK, or, for db and dbx, from KEK.
// The attributes the publisher signed are not in the file; both the append
// (NV|BS|RT|AT|AP, as Microsoft signs dbx updates) and the plain write are
// tried.
func (s *Store) Verify(u *Update, name string) *Verification {
	guid, err := varGUID(name)
	if err != nil {
		return &Verification{Reason: err.Error()}
	}
	// edk2 rejects a descriptor whose EFI_TIME has Pad1, Nanosecond,
	// TimeZone, Daylight or Pad2 set.
	t := u.Time
	if t[7] != 0 || binary.LittleEndian.Uint32(t[8:]) != 0 || binary.LittleEndian.Uint16(t[12:]) != 0 || t[14] != 0 || t[15] != 0 {
		return &Verification{Reason: "the update's timestamp has non-zero Pad1, Nanosecond, TimeZone, Daylight or Pad2 fields, which firmware refuses"}
	}
	type anchor struct {
		cert  *x509.Certificate
		label string
	}
	var anchors []anchor
	var notes []string
	add := func(v string) {
		lists, err := s.Vars().SignatureLists(v, efi.GlobalVariableGUID)
		if err != nil {
			notes = append(notes, fmt.Sprintf("the store has no usable %s", v))
			return
		}
		for _, l := range lists {
			if l.Type != efi.CertX509GUID {
				continue
			}
			for _, e := range l.Signatures {
				c, err := x509.ParseCertificate(trimDER(e.Data))
				if err != nil {
					continue
				}
				anchors = append(anchors, anchor{c, v + ": " + describeAnchor(c)})
			}
		}
	}
	add("PK")
	if name != VarKEK {
		add("KEK")
	}
	d := (*authenticode.DetachedSignature)(nil)
	for _, attrs := range []efi.Attributes{dbAttrs | efi.AppendWrite, dbAttrs} {
		msg := signedData(name, guid, attrs, u.Time, u.Auth.Payload)
		d = authenticode.VerifyDetached(u.Auth.PKCS7, msg)
		if !d.SignatureValid {
			continue
		}
		for _, a := range anchors {
			if d.VerifiesWith(a.cert) {
				return &Verification{Verified: true, By: a.label, Signer: signerLabel(d), SignedAttributes: attrs.String()}
			}
		}
		trusted := "PK"
		if name != VarKEK {
			trusted = "PK or KEK"
		}
		reason := fmt.Sprintf("the signer %s chains to no certificate of the store's %s", signerLabel(d), trusted)
		if len(notes) > 0 {
			reason += " (" + strings.Join(notes, "; ") + ")"
		}
		return &Verification{Signer: signerLabel(d), SignedAttributes: attrs.String(), Reason: reason}
	}
	reason := fmt.Sprintf("the PKCS#7 signature does not cover %s's name, GUID, attributes (NV|BS|RT|AT with or without AP), timestamp and data", name)
	if d != nil && d.Err != nil {
		reason += ": " + d.Err.Error()
	}
	return &Verification{Signer: signerLabel(d), Reason: reason}
}

// signedData is what an authenticated write's signature covers.
func signedData(name string, guid efi.GUID, attrs efi.Attributes, ts, payload []byte) []byte {
	var b []byte
	b = append(b, utf16Name(name)...)
	b = append(b, guid[:]...)
	b = binary.LittleEndian.AppendUint32(b, uint32(attrs))
	b = append(b, ts...)
	return append(b, payload...)
}

func describeAnchor(c *x509.Certificate) string {
	if k, ok := authenticode.IdentifyCA(c); ok {
		return k.Name + " (" + k.ID + ")"
	}
	return c.Subject.String()
}

func signerLabel(d *authenticode.DetachedSignature) string {
	if d == nil || d.Signer == nil {
		return ""
	}
	if d.Signer.Subject.CommonName != "" {
		return d.Signer.Subject.CommonName
	}
	return d.Signer.Subject.String()
}
