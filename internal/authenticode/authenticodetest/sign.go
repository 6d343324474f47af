package authenticodetest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	"github.com/vouch-dev/vouch/internal/authenticode"
)

// Options describes a signature made by SignWith and PKCS7.
type Options struct {
	Signer *x509.Certificate
	Key    crypto.Signer
	// Chain lists further certificates to embed after the signer's.
	Chain []*x509.Certificate
	// Hash is the digest algorithm of the image digest and of the SignerInfo.
	Hash crypto.Hash

	// DigestOID, when set, replaces the algorithm OID written in the
	// SignedData's digestAlgorithms and in SpcIndirectDataContent's
	// DigestInfo (the digest itself is still computed with Hash), to make
	// signatures with unknown or mismatched algorithms.
	DigestOID asn1.ObjectIdentifier
	// Digest, when set, is claimed instead of the image's real digest.
	Digest []byte
	// OmitSigner leaves the signer's certificate out of the certificates.
	OmitSigner bool
	// Nested are PKCS#7 ContentInfos (from PKCS7) carried as nested
	// signatures in the unauthenticated attribute 1.3.6.1.4.1.311.2.4.1.
	Nested [][]byte
}

// Sign appends a WIN_CERT_TYPE_PKCS_SIGNED_DATA entry holding an Authenticode
// signature of pe by signer (embedding signer then chain) with digest
// algorithm h, as sbsign does: an unsigned image is first padded with zeros to
// a multiple of 8 bytes and gets a certificate table at its end; a signed one
// gets one more entry, which leaves its Authenticode digest unchanged.
func Sign(pe []byte, signer *x509.Certificate, key crypto.Signer, chain []*x509.Certificate, h crypto.Hash) ([]byte, error) {
	return SignWith(pe, Options{Signer: signer, Key: key, Chain: chain, Hash: h})
}

// SignWith is Sign with every option.
func SignWith(pe []byte, o Options) ([]byte, error) {
	pe, err := prepare(pe)
	if err != nil {
		return nil, err
	}
	p7, err := PKCS7(pe, o)
	if err != nil {
		return nil, err
	}
	return AppendWinCertificate(pe, authenticode.WinCertTypePKCSSignedData, p7)
}

// PKCS7 returns the DER ContentInfo of an Authenticode signature of pe (which
// should already be padded, see Sign; PKCS7 pads a copy the same way before
// hashing it).
func PKCS7(pe []byte, o Options) ([]byte, error) {
	if o.Signer == nil || o.Key == nil {
		return nil, errors.New("authenticodetest: no signer or key")
	}
	if !o.Hash.Available() {
		return nil, fmt.Errorf("authenticodetest: hash %v unavailable", o.Hash)
	}
	hashOID, ok := oidOfHash[o.Hash]
	if !ok {
		return nil, fmt.Errorf("authenticodetest: no OID for %v", o.Hash)
	}
	digest := o.Digest
	if digest == nil {
		padded, err := prepare(pe)
		if err != nil {
			return nil, err
		}
		im, err := authenticode.Parse(padded)
		if err != nil {
			return nil, err
		}
		if digest = im.Digest(o.Hash); digest == nil {
			return nil, errors.New("authenticodetest: image cannot be hashed")
		}
	}
	digestOID := hashOID
	if o.DigestOID != nil {
		if _, err := asn1.Marshal(o.DigestOID); err != nil {
			return nil, fmt.Errorf("authenticodetest: digest OID %v: %w", o.DigestOID, err)
		}
		digestOID = o.DigestOID
	}

	// SpcIndirectDataContent ::= SEQUENCE {
	//   data SpcAttributeTypeAndOptionalValue { SPC_PE_IMAGE_DATAOBJ, SpcPeImageData },
	//   messageDigest DigestInfo }
	// with SpcPeImageData { flags '' (BIT STRING), file [0] { [2] { [0] "<<<Obsolete>>>" (BMPString) } } }
	// as signtool and sbsign write it.
	obsolete := []byte{}
	for _, r := range "<<<Obsolete>>>" {
		obsolete = append(obsolete, 0, byte(r))
	}
	peImageData := seq(
		tlv(0x03, []byte{0x00}),
		tlv(0xa0, tlv(0xa2, tlv(0x80, obsolete))),
	)
	spc := seq(
		seq(oid(oidSpcPEImageData), peImageData),
		seq(algorithm(digestOID), tlv(0x04, digest)),
	)
	spcContents := contents(spc)

	h := o.Hash
	md := hashOf(h, spcContents)
	attrs := [][]byte{
		attribute(oidContentType, oid(oidSpcIndirectDataContent)),
		attribute(oidSpcSpOpusInfo, seq()),
		attribute(oidSpcStatementType, seq(oid(oidIndividualCodeSigning))),
		attribute(oidMessageDigest, tlv(0x04, md)),
	}
	sort.Slice(attrs, func(i, j int) bool { return bytes.Compare(attrs[i], attrs[j]) < 0 }) // DER SET OF order
	signedAttrs := tlv(0x31, attrs...)

	var sigAlg []byte
	var sig []byte
	var err error
	switch o.Key.Public().(type) {
	case *rsa.PublicKey:
		sigAlg = algorithm(oidRSAEncryption)
		sig, err = o.Key.Sign(rand.Reader, hashOf(h, signedAttrs), h)
	case *ecdsa.PublicKey:
		ecOID, ok := oidECDSAWith[h]
		if !ok {
			return nil, fmt.Errorf("authenticodetest: no ECDSA signature OID for %v", h)
		}
		sigAlg = seq(oid(ecOID))
		sig, err = o.Key.Sign(rand.Reader, hashOf(h, signedAttrs), h)
	default:
		return nil, fmt.Errorf("authenticodetest: unsupported key %T", o.Key.Public())
	}
	if err != nil {
		return nil, fmt.Errorf("authenticodetest: sign: %w", err)
	}

	serial, err := asn1.Marshal(o.Signer.SerialNumber)
	if err != nil {
		return nil, err
	}
	signerInfo := [][]byte{
		tlv(0x02, []byte{1}),
		seq(o.Signer.RawIssuer, serial),
		algorithm(hashOID),
		tlv(0xa0, attrs...),
		sigAlg,
		tlv(0x04, sig),
	}
	if len(o.Nested) > 0 {
		signerInfo = append(signerInfo, tlv(0xa1, attribute(oidNestedSignature, o.Nested...)))
	}

	var certs [][]byte
	if !o.OmitSigner {
		certs = append(certs, o.Signer.Raw)
	}
	for _, c := range o.Chain {
		certs = append(certs, c.Raw)
	}
	signedData := seq(
		tlv(0x02, []byte{1}),
		tlv(0x31, algorithm(digestOID)),
		seq(oid(oidSpcIndirectDataContent), tlv(0xa0, spc)),
		tlv(0xa0, certs...),
		tlv(0x31, seq(signerInfo...)),
	)
	return seq(oid(oidSignedData), tlv(0xa0, signedData)), nil
}

// AppendWinCertificate appends a WIN_CERTIFICATE (revision 0x0200) of the
// given type holding data, padded to 8 bytes, to pe's certificate table,
// creating the table at the end of the (8-byte padded) file when there is
// none. The table must be at the end of the file. For
// WIN_CERT_TYPE_EFI_GUID, data starts with the certificate type GUID.
func AppendWinCertificate(pe []byte, certType uint16, data []byte) ([]byte, error) {
	pe, err := prepare(pe)
	if err != nil {
		return nil, err
	}
	dir, err := securityDir(pe)
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	va, size := le.Uint32(pe[dir:]), le.Uint32(pe[dir+4:])
	length := 8 + len(data)
	entry := make([]byte, length+(8-length%8)%8)
	le.PutUint32(entry[0:], uint32(length))
	le.PutUint16(entry[4:], 0x0200)
	le.PutUint16(entry[6:], certType)
	copy(entry[8:], data)
	out := append(bytes.Clone(pe), entry...)
	le.PutUint32(out[dir:], va)
	le.PutUint32(out[dir+4:], size+uint32(len(entry)))
	return out, nil
}

// prepare pads an image without a certificate table to 8 bytes and points
// its (empty) table at the end; an image with a table must have it at the end.
func prepare(pe []byte) ([]byte, error) {
	dir, err := securityDir(pe)
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	va, size := le.Uint32(pe[dir:]), le.Uint32(pe[dir+4:])
	if size != 0 {
		if uint64(va)+uint64(size) != uint64(len(pe)) {
			return nil, errors.New("authenticodetest: certificate table is not at the end of the image")
		}
		return pe, nil
	}
	out := append(bytes.Clone(pe), make([]byte, (8-len(pe)%8)%8)...)
	le.PutUint32(out[dir:], uint32(len(out)))
	le.PutUint32(out[dir+4:], 0)
	return out, nil
}

// securityDir returns the file offset of the certificate table directory
// entry.
func securityDir(pe []byte) (int, error) {
	if _, err := authenticode.Parse(pe); err != nil {
		return 0, err
	}
	le := binary.LittleEndian
	peOff := int(le.Uint32(pe[0x3c:]))
	opt := peOff + 24
	var numRva, dd int
	switch le.Uint16(pe[opt:]) {
	case 0x10b:
		numRva, dd = opt+92, opt+96
	default:
		numRva, dd = opt+108, opt+112
	}
	if le.Uint32(pe[numRva:]) <= 4 {
		return 0, errors.New("authenticodetest: image has no certificate table directory entry")
	}
	return dd + 4*8, nil
}

// ASN.1 building blocks.

var (
	oidSignedData             = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidSpcIndirectDataContent = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 4}
	oidSpcPEImageData         = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 15}
	oidSpcSpOpusInfo          = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 12}
	oidSpcStatementType       = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 11}
	oidIndividualCodeSigning  = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 21}
	oidNestedSignature        = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 4, 1}
	oidContentType            = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidMessageDigest          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	oidRSAEncryption          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}

	oidOfHash = map[crypto.Hash]asn1.ObjectIdentifier{
		crypto.SHA1:   {1, 3, 14, 3, 2, 26},
		crypto.SHA256: {2, 16, 840, 1, 101, 3, 4, 2, 1},
		crypto.SHA384: {2, 16, 840, 1, 101, 3, 4, 2, 2},
		crypto.SHA512: {2, 16, 840, 1, 101, 3, 4, 2, 3},
	}
	oidECDSAWith = map[crypto.Hash]asn1.ObjectIdentifier{
		crypto.SHA1:   {1, 2, 840, 10045, 4, 1},
		crypto.SHA256: {1, 2, 840, 10045, 4, 3, 2},
		crypto.SHA384: {1, 2, 840, 10045, 4, 3, 3},
		crypto.SHA512: {1, 2, 840, 10045, 4, 3, 4},
	}
)

// tlv encodes one DER element with a single-byte tag.
func tlv(tag byte, parts ...[]byte) []byte {
	var body []byte
	for _, p := range parts {
		body = append(body, p...)
	}
	out := []byte{tag}
	switch n := len(body); {
	case n < 0x80:
		out = append(out, byte(n))
	case n < 0x100:
		out = append(out, 0x81, byte(n))
	case n < 0x10000:
		out = append(out, 0x82, byte(n>>8), byte(n))
	default:
		out = append(out, 0x83, byte(n>>16), byte(n>>8), byte(n))
	}
	return append(out, body...)
}

func seq(parts ...[]byte) []byte { return tlv(0x30, parts...) }

func oid(o asn1.ObjectIdentifier) []byte {
	b, err := asn1.Marshal(o)
	if err != nil {
		panic(err) // only valid OIDs reach here (constants, checked caller OIDs)
	}
	return b
}

func algorithm(o asn1.ObjectIdentifier) []byte { return seq(oid(o), []byte{0x05, 0x00}) }

func attribute(o asn1.ObjectIdentifier, values ...[]byte) []byte {
	return seq(oid(o), tlv(0x31, values...))
}

// contents strips the tag and length of a DER element built by tlv.
func contents(der []byte) []byte {
	if der[1] < 0x80 {
		return der[2:]
	}
	return der[2+int(der[1]&0x7f):]
}

func hashOf(h crypto.Hash, b []byte) []byte {
	w := h.New()
	w.Write(b)
	return w.Sum(nil)
}
