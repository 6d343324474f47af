package authenticode

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
)

// DetachedSignature is a PKCS#7 SignedData whose signed content travels beside
// it rather than inside it: the signature of an EFI_VARIABLE_AUTHENTICATION_2
// descriptor (UEFI 2.10 §8.2.2), which signs VariableName, VendorGuid,
// Attributes, TimeStamp and the new data. edk2 checks it with
// BaseCryptLib's Pkcs7Verify (CryptoPkg/Library/BaseCryptLib/Pk/CryptPkcs7VerifyCommon.c):
// the SignedData may lack its ContentInfo wrapper (WrapPkcs7Data adds it), the
// signer's chain may end at any trusted certificate (X509_V_FLAG_PARTIAL_CHAIN),
// and neither validity periods nor purposes are checked.
type DetachedSignature struct {
	Signer       *x509.Certificate   // the certificate named by the SignerInfo, nil when not embedded
	Certificates []*x509.Certificate // every embedded certificate that parses, in order
	Chain        []*x509.Certificate // the signer, then each issuer found among Certificates
	// SignatureValid reports that the SignerInfo's signature verifies with
	// the signer's key over the content (or over the authenticated
	// attributes, whose messageDigest must then be the content's hash).
	SignatureValid bool
	// Err says why the signature could not be parsed or does not verify.
	Err error
}

// VerifyDetached parses a PKCS#7 SignedData (with or without its ContentInfo
// wrapper) and checks its one SignerInfo against content. It never fails: a
// signature that does not parse or verify has Err set and SignatureValid
// false.
func VerifyDetached(p7, content []byte) *DetachedSignature {
	d := &DetachedSignature{}
	fail := func(err error) {
		if d.Err == nil {
			d.Err = err
		}
	}
	sd, err := parseSignedData(p7)
	if err != nil {
		fail(err)
		return d
	}
	for _, raw := range sd.certificates {
		c, err := x509.ParseCertificate(raw)
		if err != nil {
			fail(fmt.Errorf("authenticode: embedded certificate: %w", err))
			continue
		}
		d.Certificates = append(d.Certificates, c)
	}
	// OpenSSL's PKCS7_verify requires every SignerInfo to verify; signed
	// variable updates carry exactly one, and so do we.
	if len(sd.signerInfos) != 1 {
		fail(fmt.Errorf("authenticode: signed data has %d signer infos, want 1", len(sd.signerInfos)))
		return d
	}
	si := sd.signerInfos[0]
	for _, c := range d.Certificates {
		if c.SerialNumber != nil && c.SerialNumber.Cmp(si.serial) == 0 && sameName(c.RawIssuer, si.issuer) {
			d.Signer = c
			break
		}
	}
	if d.Signer == nil {
		fail(errors.New("authenticode: signer certificate is not embedded"))
		return d
	}
	d.Chain = buildChain(d.Signer, d.Certificates)
	if err := verifySignerInfo(si, d.Signer, content); err != nil {
		fail(err)
		return d
	}
	d.SignatureValid = true
	// A faulty extra certificate does not matter once the signature holds.
	d.Err = nil
	return d
}

// VerifiesWith reports whether Pkcs7Verify would accept the signature with
// anchor as its trusted certificate: the SignerInfo verifies, and anchor is
// one of the chain's certificates or the issuer (by name and key) of one.
func (d *DetachedSignature) VerifiesWith(anchor *x509.Certificate) bool {
	if d == nil || anchor == nil || !d.SignatureValid {
		return false
	}
	for _, c := range d.Chain {
		if bytes.Equal(c.Raw, anchor.Raw) {
			return true
		}
	}
	for _, c := range d.Chain {
		if sameName(c.RawIssuer, anchor.RawSubject) && issuedBy(c, anchor) {
			return true
		}
	}
	return false
}

// SignedDataCertificates returns the certificates embedded in a PKCS#7
// SignedData, bare as EFI_VARIABLE_AUTHENTICATION_2 carries it or wrapped in
// a ContentInfo (edk2's Pkcs7Verify accepts both), in order. A SignedData or
// certificate that does not parse is an error.
func SignedDataCertificates(p7 []byte) ([]*x509.Certificate, error) {
	sd, err := parseSignedData(p7)
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for _, raw := range sd.certificates {
		c, err := x509.ParseCertificate(raw)
		if err != nil {
			return nil, fmt.Errorf("authenticode: embedded certificate: %w", err)
		}
		out = append(out, c)
	}
	return out, nil
}
