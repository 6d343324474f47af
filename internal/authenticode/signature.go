package authenticode

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
)

// Signature is one Authenticode signature of an image: a WIN_CERTIFICATE
// entry's PKCS#7 SignedData, or a signature nested inside one.
type Signature struct {
	// Index is the WIN_CERTIFICATE entry (0-based, counting every entry of
	// the table); Nested is 0 for the entry's own signature and the nesting
	// depth for signatures found in its unauthenticated attribute
	// 1.3.6.1.4.1.311.2.4.1. edk2 and shim evaluate only Nested == 0.
	Index, Nested int

	// DigestAlgorithm is the algorithm edk2 hashes the image with for this
	// entry (HashPeImageByType: the first digestAlgorithms OID of the
	// SignedData, read at its fixed offset), 0 when edk2 does not support it
	// and skips the entry. For a well-formed signature it is the algorithm of
	// SpcIndirectDataContent's DigestInfo; when the two differ, DigestMatches
	// is false. SHA-1 is reported as crypto.SHA1: edk2 releases since 2024
	// no longer accept it; that policy is the caller's.
	DigestAlgorithm crypto.Hash
	// DigestAlgorithmName names DigestInfo's algorithm: "sha1", "sha256",
	// "sha384", "sha512", or the dotted OID.
	DigestAlgorithmName string
	// ImageDigest is the digest the signature claims (DigestInfo.digest).
	ImageDigest []byte
	// DigestMatches reports ImageDigest == im.Digest(DigestAlgorithm), with
	// DigestAlgorithm supported and equal to DigestInfo's algorithm, and the
	// digest ending the SpcIndirectDataContent as edk2's AuthenticodeVerify
	// requires.
	DigestMatches bool

	Signer       *x509.Certificate   // the certificate named by the SignerInfo, nil when not embedded
	Certificates []*x509.Certificate // every embedded certificate that parses, in order
	// Chain is the signer, then each issuer found among Certificates (by
	// name and signature, see VerifiesWith), until none is found.
	Chain []*x509.Certificate

	// SignatureValid reports that the SignerInfo's signature verifies with
	// the signer's key over the authenticated attributes and that their
	// messageDigest equals the hash of SpcIndirectDataContent's contents (the
	// DER without its outer SEQUENCE tag and length, per Authenticode; edk2
	// passes exactly those bytes to Pkcs7Verify).
	SignatureValid bool

	// Err says why the entry could not be parsed or verified, if so. It may be
	// set alongside SignatureValid when only part of the entry is faulty (an
	// embedded certificate that does not parse, say).
	Err error

	// PKCS7 is the raw DER of the ContentInfo.
	PKCS7 []byte

	// nested signatures' encodings, evaluated by the caller
	nested [][]byte
}

// maxNesting bounds the depth of nested signatures followed.
const maxNesting = 4

// Signatures returns one Signature per WIN_CERTIFICATE entry that edk2
// evaluates (WIN_CERT_TYPE_PKCS_SIGNED_DATA, and WIN_CERT_TYPE_EFI_GUID with
// EFI_CERT_TYPE_PKCS7_GUID), in table order, each followed by its nested
// signatures (Nested > 0). Entries after a fault in the table (see
// CertTableErr) are not included. The Signatures are shared; callers must not
// modify them.
func (im *Image) Signatures() []*Signature {
	im.sigOnce.Do(func() {
		for _, e := range im.entries {
			if e.data != nil {
				im.sigs = appendSignature(im.sigs, e.index, 0, e.data, im.Digest)
			}
		}
	})
	return append([]*Signature(nil), im.sigs...)
}

func appendSignature(list []*Signature, index, depth int, data []byte, digest func(crypto.Hash) []byte) []*Signature {
	s := evaluate(index, depth, data, digest)
	list = append(list, s)
	if depth < maxNesting {
		for _, n := range s.nested {
			list = appendSignature(list, index, depth+1, n, digest)
		}
	}
	s.nested = nil
	return list
}

// evaluate parses and verifies one PKCS#7 SignedData against the image digest
// function.
func evaluate(index, depth int, data []byte, digest func(crypto.Hash) []byte) *Signature {
	s := &Signature{Index: index, Nested: depth, PKCS7: data}
	s.DigestAlgorithm = edk2DigestAlgorithm(data)
	fail := func(err error) {
		if s.Err == nil {
			s.Err = err
		}
	}
	sd, err := parseSignedData(data)
	if err != nil {
		fail(err)
		return s
	}
	s.PKCS7 = sd.raw

	// SpcIndirectDataContent ::= SEQUENCE { data SpcAttributeTypeAndOptionalValue,
	// messageDigest DigestInfo }; DigestInfo ::= SEQUENCE { AlgorithmIdentifier, OCTET STRING }.
	var content []byte
	if !sd.contentType.Equal(oidSpcIndirectDataContent) {
		fail(fmt.Errorf("authenticode: content type %v is not SpcIndirectDataContent", sd.contentType))
	} else if sd.content == nil || !is(*sd.content, classUniversal, asn1.TagSequence, true) {
		fail(errors.New("authenticode: SpcIndirectDataContent is missing or not a SEQUENCE"))
	} else {
		content = sd.content.Bytes
		if err := s.parseIndirectData(content, digest); err != nil {
			fail(err)
		}
	}

	for _, raw := range sd.certificates {
		c, err := x509.ParseCertificate(raw)
		if err != nil {
			fail(fmt.Errorf("authenticode: embedded certificate: %w", err))
			continue
		}
		s.Certificates = append(s.Certificates, c)
	}

	// Authenticode requires exactly one SignerInfo. (OpenSSL's PKCS7_verify
	// would require every one of several to verify.)
	if len(sd.signerInfos) != 1 {
		fail(fmt.Errorf("authenticode: signed data has %d signer infos, want 1", len(sd.signerInfos)))
		return s
	}
	si := sd.signerInfos[0]
	for _, c := range s.Certificates {
		if c.SerialNumber != nil && c.SerialNumber.Cmp(si.serial) == 0 && sameName(c.RawIssuer, si.issuer) {
			s.Signer = c
			break
		}
	}
	for _, a := range si.unauthAttributes {
		if a.oid.Equal(oidNestedSignature) {
			for _, v := range a.values {
				s.nested = append(s.nested, v.FullBytes)
			}
		}
	}
	if s.Signer == nil {
		fail(errors.New("authenticode: signer certificate is not embedded"))
		return s
	}
	s.Chain = buildChain(s.Signer, s.Certificates)
	if content == nil {
		return s
	}
	if err := verifySignerInfo(si, s.Signer, content); err != nil {
		fail(err)
		return s
	}
	s.SignatureValid = true
	return s
}

// parseIndirectData reads the DigestInfo of SpcIndirectDataContent's contents
// and compares it with the image digest.
func (s *Signature) parseIndirectData(content []byte, digest func(crypto.Hash) []byte) error {
	els, err := elements(content)
	if err != nil {
		return fmt.Errorf("authenticode: SpcIndirectDataContent: %w", err)
	}
	if len(els) < 2 || !is(els[1], classUniversal, asn1.TagSequence, true) {
		return errors.New("authenticode: SpcIndirectDataContent has no DigestInfo")
	}
	di, err := elements(els[1].Bytes)
	if err != nil {
		return fmt.Errorf("authenticode: DigestInfo: %w", err)
	}
	if len(di) != 2 || !is(di[1], classUniversal, asn1.TagOctetString, false) {
		return errors.New("authenticode: malformed DigestInfo")
	}
	oid, err := parseAlgorithm(di[0])
	if err != nil {
		return fmt.Errorf("authenticode: DigestInfo algorithm: %w", err)
	}
	s.DigestAlgorithmName = hashName(oid)
	s.ImageDigest = di[1].Bytes
	h, _ := hashByOID(oid)
	switch {
	case s.DigestAlgorithm == 0:
		return fmt.Errorf("authenticode: digest algorithm %s is not supported by edk2 (entry skipped)", s.DigestAlgorithmName)
	case h != s.DigestAlgorithm:
		return fmt.Errorf("authenticode: signed data digest algorithm %s differs from DigestInfo's %s", hashLabel(s.DigestAlgorithm), s.DigestAlgorithmName)
	}
	d := digest(h)
	if d == nil {
		return fmt.Errorf("authenticode: the image cannot be hashed with %s", s.DigestAlgorithmName)
	}
	if !bytes.Equal(d, s.ImageDigest) {
		return fmt.Errorf("authenticode: image %s digest %x does not match the signed digest %x", s.DigestAlgorithmName, d, s.ImageDigest)
	}
	// edk2's AuthenticodeVerify compares the last HashSize bytes of the
	// content rather than parsing DigestInfo.
	if !bytes.HasSuffix(content, d) {
		return errors.New("authenticode: SpcIndirectDataContent does not end with the image digest")
	}
	s.DigestMatches = true
	return nil
}

// verifySignerInfo checks the SignerInfo's signature as OpenSSL's
// PKCS7_signatureVerify does: with authenticated attributes, their
// messageDigest must equal the hash of the content and the signature covers
// the attributes re-tagged as a SET OF; without, it covers the content hash.
func verifySignerInfo(si signerInfo, signer *x509.Certificate, content []byte) error {
	h, ok := hashByOID(si.digestAlgorithm)
	if !ok || !h.Available() {
		return fmt.Errorf("authenticode: unsupported signer digest algorithm %v", si.digestAlgorithm)
	}
	sum := hashBytes(h, content)
	signed := sum
	if si.authAttrs != nil {
		vals, ok := find(si.authAttributes, oidMessageDigest)
		if !ok || len(vals) == 0 || !is(vals[0], classUniversal, asn1.TagOctetString, false) {
			return errors.New("authenticode: authenticated attributes have no messageDigest")
		}
		if !bytes.Equal(vals[0].Bytes, sum) {
			return errors.New("authenticode: messageDigest attribute does not match SpcIndirectDataContent")
		}
		attrs := bytes.Clone(si.authAttrs)
		attrs[0] = 0x31 // [0] IMPLICIT -> SET OF
		signed = hashBytes(h, attrs)
	}
	var err error
	switch pub := signer.PublicKey.(type) {
	case *rsa.PublicKey:
		if si.sigAlgorithm.Equal(oidRSASSAPSS) {
			err = rsa.VerifyPSS(pub, h, signed, si.signature, nil)
		} else {
			err = rsa.VerifyPKCS1v15(pub, h, signed, si.signature)
		}
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(pub, signed, si.signature) {
			err = errors.New("ecdsa verification failure")
		}
	default:
		err = fmt.Errorf("unsupported public key type %T", signer.PublicKey)
	}
	if err != nil {
		return fmt.Errorf("authenticode: signer info signature: %w", err)
	}
	return nil
}

// buildChain walks from the signer through the embedded certificates: each
// next certificate is one whose subject matches the current issuer and whose
// key verifies the current certificate.
func buildChain(signer *x509.Certificate, certs []*x509.Certificate) []*x509.Certificate {
	// Canonical names are computed once per distinct encoding: the walk
	// compares every pair.
	canon := make(map[string]string)
	key := func(der []byte) string {
		k, ok := canon[string(der)]
		if !ok {
			if c, ok := canonicalName(der); ok {
				k = c
			} else {
				k = "raw:" + string(der)
			}
			canon[string(der)] = k
		}
		return k
	}
	chain := []*x509.Certificate{signer}
	for cur := signer; len(chain) <= len(certs); {
		var next *x509.Certificate
		for _, c := range certs {
			if containsCert(chain, c) {
				continue
			}
			if key(cur.RawIssuer) == key(c.RawSubject) && issuedBy(cur, c) {
				next = c
				break
			}
		}
		if next == nil {
			break
		}
		chain = append(chain, next)
		cur = next
	}
	return chain
}

func containsCert(list []*x509.Certificate, c *x509.Certificate) bool {
	for _, x := range list {
		if x == c || bytes.Equal(x.Raw, c.Raw) {
			return true
		}
	}
	return false
}

// issuedBy reports whether parent's key verifies child's signature. It uses
// CheckSignatureFrom, so parent must be allowed to sign certificates (a CA by
// basic constraints, keyCertSign when it has a key usage), as OpenSSL's chain
// verification also requires; validity periods and extended key usages are
// not looked at (edk2 verifies with X509_V_FLAG_NO_CHECK_TIME and
// X509_PURPOSE_ANY). Unlike Go's default, SHA-1 certificate signatures are
// accepted, as OpenSSL accepts them.
func issuedBy(child, parent *x509.Certificate) bool {
	err := child.CheckSignatureFrom(parent)
	var insecure x509.InsecureAlgorithmError
	if errors.As(err, &insecure) {
		err = parent.CheckSignature(child.SignatureAlgorithm, child.RawTBSCertificate, child.Signature)
	}
	return err == nil
}

// VerifiesWith reports whether edk2 would accept this signature with anchor
// as the trusted certificate (a db entry): its AuthenticodeVerify compares the
// image digest (so DigestMatches is required here, and Nested signatures are
// judged the same way although firmware never looks at them) and Pkcs7Verify
// checks the SignerInfo (SignatureValid) and the chain with
// X509_V_FLAG_PARTIAL_CHAIN and no time or purpose check. The chain is trusted
// when anchor is byte-for-byte one of the Chain certificates, or when anchor's
// subject matches the issuer name of a Chain certificate and anchor's key
// verifies that certificate (anchor need not be embedded, nor self-signed).
func (s *Signature) VerifiesWith(anchor *x509.Certificate) bool {
	if anchor == nil || !s.SignatureValid || !s.DigestMatches || len(s.Chain) == 0 {
		return false
	}
	for _, c := range s.Chain {
		if bytes.Equal(c.Raw, anchor.Raw) {
			return true
		}
	}
	for _, c := range s.Chain {
		if sameName(c.RawIssuer, anchor.RawSubject) && issuedBy(c, anchor) {
			return true
		}
	}
	return false
}

// TBSHash returns the hash of c's TBSCertificate, as dbx EFI_CERT_X509_SHA256,
// _SHA384 and _SHA512 entries record it; nil when h is unavailable.
func TBSHash(c *x509.Certificate, h crypto.Hash) []byte {
	if c == nil || !h.Available() {
		return nil
	}
	return hashBytes(h, c.RawTBSCertificate)
}

func hashBytes(h crypto.Hash, b []byte) []byte {
	w := h.New()
	w.Write(b)
	return w.Sum(nil)
}

// Digest algorithm OIDs.
var (
	oidSHA1   = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA256 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}
)

func hashByOID(oid asn1.ObjectIdentifier) (crypto.Hash, bool) {
	switch {
	case oid.Equal(oidSHA1):
		return crypto.SHA1, true
	case oid.Equal(oidSHA256):
		return crypto.SHA256, true
	case oid.Equal(oidSHA384):
		return crypto.SHA384, true
	case oid.Equal(oidSHA512):
		return crypto.SHA512, true
	}
	return 0, false
}

func hashName(oid asn1.ObjectIdentifier) string {
	if h, ok := hashByOID(oid); ok {
		return hashLabel(h)
	}
	return oid.String()
}

func hashLabel(h crypto.Hash) string {
	switch h {
	case crypto.SHA1:
		return "sha1"
	case crypto.SHA256:
		return "sha256"
	case crypto.SHA384:
		return "sha384"
	case crypto.SHA512:
		return "sha512"
	case 0:
		return "unsupported"
	}
	return h.String()
}

// edk2HashOIDs is edk2's mHash table in its order: the DER value bytes of each
// algorithm's OID. SHA-224 is listed but has no implementation, so a match
// makes the entry unsupported.
var edk2HashOIDs = []struct {
	h   crypto.Hash
	oid []byte
}{
	{crypto.SHA1, []byte{0x2b, 0x0e, 0x03, 0x02, 0x1a}},
	{0, []byte{0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04}},
	{crypto.SHA256, []byte{0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01}},
	{crypto.SHA384, []byte{0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02}},
	{crypto.SHA512, []byte{0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03}},
}

// edk2DigestAlgorithm is edk2's HashPeImageByType: it does not parse the
// PKCS#7 but, when the second byte has the two-byte long-form length bits
// (0x82) set, compares the bytes at offset 32, where the first digestAlgorithms
// OID value lies in a ContentInfo whose outer lengths are all two-byte, with
// each known OID in turn.
func edk2DigestAlgorithm(d []byte) crypto.Hash {
	if len(d) < 2 || d[1]&0x82 != 0x82 {
		return 0
	}
	for _, a := range edk2HashOIDs {
		if len(d) < 32+len(a.oid) {
			return 0
		}
		if bytes.Equal(d[32:32+len(a.oid)], a.oid) {
			return a.h
		}
	}
	return 0
}
