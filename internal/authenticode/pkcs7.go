package authenticode

// A small PKCS#7 SignedData reader (RFC 2315 section 9, with Authenticode's
// content type) on encoding/asn1.
//
// github.com/smallstep/pkcs7 (DESIGN.md's choice, not used) does not fit Authenticode
// verification: its Parse discards the error of unmarshalling the SignedData
// itself, rewrites BER to DER before parsing (so the bytes it keeps are not the
// ones that were signed), keeps signer infos in an unexported type and
// re-marshals the authenticated attributes instead of keeping their encoding,
// and gives no access to the raw digestAlgorithms or content, which edk2's
// algorithm selection and messageDigest check work on. This reader keeps the
// original encodings and checks every length.

import (
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
)

var (
	oidSignedData             = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidSpcIndirectDataContent = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 4}
	oidMessageDigest          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	oidNestedSignature        = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 4, 1}
	oidRSASSAPSS              = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
)

// signedData is a parsed PKCS#7 SignedData.
type signedData struct {
	raw              []byte // the ContentInfo (or bare SignedData) encoding, trailing bytes cut
	digestAlgorithms []asn1.ObjectIdentifier
	contentType      asn1.ObjectIdentifier
	content          *asn1.RawValue // the element inside contentInfo's [0] EXPLICIT, nil when absent
	certificates     [][]byte       // the certificates' DER, in order
	signerInfos      []signerInfo
}

type signerInfo struct {
	issuer           []byte // issuerAndSerialNumber.issuer, DER
	serial           *big.Int
	digestAlgorithm  asn1.ObjectIdentifier
	authAttrs        []byte // the [0] IMPLICIT authenticatedAttributes encoding, nil when absent
	authAttributes   []attribute
	sigAlgorithm     asn1.ObjectIdentifier
	signature        []byte
	unauthAttributes []attribute
}

type attribute struct {
	oid    asn1.ObjectIdentifier
	values []asn1.RawValue
}

// ASN.1 classes and tags used below.
const (
	classUniversal = asn1.ClassUniversal
	classContext   = asn1.ClassContextSpecific
)

func errSignedData(format string, args ...any) error {
	return fmt.Errorf("authenticode: signed data: "+format, args...)
}

// elements splits the contents of a constructed value into its elements.
func elements(b []byte) ([]asn1.RawValue, error) {
	var out []asn1.RawValue
	for len(b) > 0 {
		var v asn1.RawValue
		rest, err := asn1.Unmarshal(b, &v)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		b = rest
	}
	return out, nil
}

func is(v asn1.RawValue, class, tag int, compound bool) bool {
	return v.Class == class && v.Tag == tag && v.IsCompound == compound
}

func parseOID(v asn1.RawValue) (asn1.ObjectIdentifier, error) {
	if !is(v, classUniversal, asn1.TagOID, false) {
		return nil, errors.New("not an OBJECT IDENTIFIER")
	}
	var oid asn1.ObjectIdentifier
	if _, err := asn1.Unmarshal(v.FullBytes, &oid); err != nil {
		return nil, err
	}
	return oid, nil
}

// parseAlgorithm returns the OID of an AlgorithmIdentifier.
func parseAlgorithm(v asn1.RawValue) (asn1.ObjectIdentifier, error) {
	if !is(v, classUniversal, asn1.TagSequence, true) {
		return nil, errors.New("algorithm identifier is not a SEQUENCE")
	}
	els, err := elements(v.Bytes)
	if err != nil {
		return nil, err
	}
	if len(els) == 0 || len(els) > 2 {
		return nil, fmt.Errorf("algorithm identifier has %d elements", len(els))
	}
	return parseOID(els[0])
}

// parseSignedData parses a PKCS#7 ContentInfo holding SignedData, or a bare
// SignedData (as in EFI_VARIABLE_AUTHENTICATION_2; edk2's WrapPkcs7Data accepts
// both). Bytes after the outer value are ignored, as OpenSSL's d2i does.
func parseSignedData(der []byte) (*signedData, error) {
	var top asn1.RawValue
	rest, err := asn1.Unmarshal(der, &top)
	if err != nil {
		return nil, errSignedData("%v", err)
	}
	if !is(top, classUniversal, asn1.TagSequence, true) {
		return nil, errSignedData("not a SEQUENCE")
	}
	sd := &signedData{raw: der[:len(der)-len(rest)]}
	els, err := elements(top.Bytes)
	if err != nil {
		return nil, errSignedData("%v", err)
	}
	if len(els) > 0 && is(els[0], classUniversal, asn1.TagOID, false) {
		// ContentInfo ::= SEQUENCE { contentType, [0] EXPLICIT content }
		oid, err := parseOID(els[0])
		if err != nil {
			return nil, errSignedData("content type: %v", err)
		}
		if !oid.Equal(oidSignedData) {
			return nil, errSignedData("content type %v is not signedData", oid)
		}
		if len(els) != 2 || !is(els[1], classContext, 0, true) {
			return nil, errSignedData("content info has no [0] content")
		}
		inner, err := elements(els[1].Bytes)
		if err != nil {
			return nil, errSignedData("%v", err)
		}
		if len(inner) != 1 || !is(inner[0], classUniversal, asn1.TagSequence, true) {
			return nil, errSignedData("content is not a SignedData SEQUENCE")
		}
		if els, err = elements(inner[0].Bytes); err != nil {
			return nil, errSignedData("%v", err)
		}
	}
	if err := sd.parseBody(els); err != nil {
		return nil, err
	}
	return sd, nil
}

// parseBody parses the elements of SignedData ::= SEQUENCE { version,
// digestAlgorithms, contentInfo, [0] certificates OPTIONAL, [1] crls OPTIONAL,
// signerInfos }.
func (sd *signedData) parseBody(els []asn1.RawValue) error {
	if len(els) < 4 {
		return errSignedData("SignedData has %d elements", len(els))
	}
	if !is(els[0], classUniversal, asn1.TagInteger, false) {
		return errSignedData("version is not an INTEGER")
	}
	if !is(els[1], classUniversal, asn1.TagSet, true) {
		return errSignedData("digestAlgorithms is not a SET")
	}
	algs, err := elements(els[1].Bytes)
	if err != nil {
		return errSignedData("digestAlgorithms: %v", err)
	}
	for _, a := range algs {
		oid, err := parseAlgorithm(a)
		if err != nil {
			return errSignedData("digestAlgorithms: %v", err)
		}
		sd.digestAlgorithms = append(sd.digestAlgorithms, oid)
	}

	if !is(els[2], classUniversal, asn1.TagSequence, true) {
		return errSignedData("contentInfo is not a SEQUENCE")
	}
	ci, err := elements(els[2].Bytes)
	if err != nil {
		return errSignedData("contentInfo: %v", err)
	}
	if len(ci) == 0 || len(ci) > 2 {
		return errSignedData("contentInfo has %d elements", len(ci))
	}
	if sd.contentType, err = parseOID(ci[0]); err != nil {
		return errSignedData("contentInfo type: %v", err)
	}
	if len(ci) == 2 {
		if !is(ci[1], classContext, 0, true) {
			return errSignedData("contentInfo content is not [0] EXPLICIT")
		}
		inner, err := elements(ci[1].Bytes)
		if err != nil {
			return errSignedData("contentInfo content: %v", err)
		}
		if len(inner) != 1 {
			return errSignedData("contentInfo content has %d elements", len(inner))
		}
		sd.content = &inner[0]
	}

	i := 3
	if i < len(els) && is(els[i], classContext, 0, true) {
		certs, err := elements(els[i].Bytes)
		if err != nil {
			return errSignedData("certificates: %v", err)
		}
		for _, c := range certs {
			// CertificateChoices: only plain X.509 certificates (SEQUENCE)
			// are used; extended and attribute certificates are skipped.
			if is(c, classUniversal, asn1.TagSequence, true) {
				sd.certificates = append(sd.certificates, c.FullBytes)
			}
		}
		i++
	}
	if i < len(els) && is(els[i], classContext, 1, true) {
		i++ // CRLs are not used by Authenticode verification
	}
	if i != len(els)-1 || !is(els[i], classUniversal, asn1.TagSet, true) {
		return errSignedData("signerInfos missing or followed by unexpected data")
	}
	sis, err := elements(els[i].Bytes)
	if err != nil {
		return errSignedData("signerInfos: %v", err)
	}
	for n, v := range sis {
		si, err := parseSignerInfo(v)
		if err != nil {
			return errSignedData("signer info %d: %v", n, err)
		}
		sd.signerInfos = append(sd.signerInfos, si)
	}
	return nil
}

// parseSignerInfo parses SignerInfo ::= SEQUENCE { version,
// issuerAndSerialNumber, digestAlgorithm, [0] IMPLICIT authenticatedAttributes
// OPTIONAL, digestEncryptionAlgorithm, encryptedDigest, [1] IMPLICIT
// unauthenticatedAttributes OPTIONAL }.
func parseSignerInfo(v asn1.RawValue) (signerInfo, error) {
	var si signerInfo
	if !is(v, classUniversal, asn1.TagSequence, true) {
		return si, errors.New("not a SEQUENCE")
	}
	els, err := elements(v.Bytes)
	if err != nil {
		return si, err
	}
	if len(els) < 5 {
		return si, fmt.Errorf("%d elements", len(els))
	}
	if !is(els[0], classUniversal, asn1.TagInteger, false) {
		return si, errors.New("version is not an INTEGER")
	}
	if !is(els[1], classUniversal, asn1.TagSequence, true) {
		// PKCS#7 (and OpenSSL's PKCS7 code, which edk2 uses) identify the
		// signer only by issuer and serial number.
		return si, errors.New("signer is not identified by issuer and serial number")
	}
	ias, err := elements(els[1].Bytes)
	if err != nil {
		return si, err
	}
	if len(ias) != 2 || !is(ias[0], classUniversal, asn1.TagSequence, true) || !is(ias[1], classUniversal, asn1.TagInteger, false) {
		return si, errors.New("malformed issuerAndSerialNumber")
	}
	si.issuer = ias[0].FullBytes
	if si.serial = parseInteger(ias[1].Bytes); si.serial == nil {
		return si, errors.New("empty serial number")
	}
	if si.digestAlgorithm, err = parseAlgorithm(els[2]); err != nil {
		return si, fmt.Errorf("digest algorithm: %v", err)
	}
	i := 3
	if is(els[i], classContext, 0, true) {
		si.authAttrs = els[i].FullBytes
		if si.authAttributes, err = parseAttributes(els[i].Bytes); err != nil {
			return si, fmt.Errorf("authenticated attributes: %v", err)
		}
		i++
	}
	if i+2 > len(els) {
		return si, errors.New("missing signature")
	}
	if si.sigAlgorithm, err = parseAlgorithm(els[i]); err != nil {
		return si, fmt.Errorf("signature algorithm: %v", err)
	}
	if !is(els[i+1], classUniversal, asn1.TagOctetString, false) {
		return si, errors.New("signature is not an OCTET STRING")
	}
	si.signature = els[i+1].Bytes
	i += 2
	if i < len(els) && is(els[i], classContext, 1, true) {
		if si.unauthAttributes, err = parseAttributes(els[i].Bytes); err != nil {
			return si, fmt.Errorf("unauthenticated attributes: %v", err)
		}
		i++
	}
	if i != len(els) {
		return si, errors.New("unexpected data after the signature")
	}
	return si, nil
}

// parseAttributes parses the contents of a SET OF Attribute, Attribute ::=
// SEQUENCE { type OBJECT IDENTIFIER, values SET OF ANY }.
func parseAttributes(b []byte) ([]attribute, error) {
	els, err := elements(b)
	if err != nil {
		return nil, err
	}
	attrs := make([]attribute, 0, len(els))
	for _, e := range els {
		if !is(e, classUniversal, asn1.TagSequence, true) {
			return nil, errors.New("attribute is not a SEQUENCE")
		}
		parts, err := elements(e.Bytes)
		if err != nil {
			return nil, err
		}
		if len(parts) != 2 || !is(parts[1], classUniversal, asn1.TagSet, true) {
			return nil, errors.New("malformed attribute")
		}
		var a attribute
		if a.oid, err = parseOID(parts[0]); err != nil {
			return nil, err
		}
		if a.values, err = elements(parts[1].Bytes); err != nil {
			return nil, err
		}
		attrs = append(attrs, a)
	}
	return attrs, nil
}

// find returns the values of the first attribute with the given type.
func find(attrs []attribute, oid asn1.ObjectIdentifier) ([]asn1.RawValue, bool) {
	for _, a := range attrs {
		if a.oid.Equal(oid) {
			return a.values, true
		}
	}
	return nil, false
}

// parseInteger decodes a two's complement INTEGER body without insisting on
// the minimal encoding (serial numbers in the wild are not always minimal).
func parseInteger(b []byte) *big.Int {
	if len(b) == 0 {
		return nil
	}
	n := new(big.Int).SetBytes(b)
	if b[0]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(len(b))*8))
	}
	return n
}
