package efi

import (
	"bytes"
	"encoding/hex"
	"testing"
)

func TestGUID(t *testing.T) {
	g, err := ParseGUID("8BE4DF61-93CA-11D2-AA0D-00E098032B8C")
	if err != nil {
		t.Fatal(err)
	}
	if g != GlobalVariableGUID || g.String() != "8be4df61-93ca-11d2-aa0d-00e098032b8c" {
		t.Errorf("got %s", g)
	}
	// Mixed-endian storage: the first three fields are little-endian.
	want, _ := hex.DecodeString("61dfe48bca93d211aa0d00e098032b8c")
	if !bytes.Equal(g[:], want) {
		t.Errorf("bytes % x, want % x", g[:], want)
	}
	for _, bad := range []string{"", "8be4df61-93ca-11d2-aa0d-00e098032b8", "8be4df61x93ca-11d2-aa0d-00e098032b8c", "zbe4df61-93ca-11d2-aa0d-00e098032b8c"} {
		if _, err := ParseGUID(bad); err == nil {
			t.Errorf("ParseGUID(%q) accepted", bad)
		}
	}
	if ShimLockGUID.String() != "605dab50-e046-4300-abb6-3dd810dd8b23" || ImageSecurityDatabaseGUID.String() != "d719b2cb-3d3a-4596-a3bc-dad00e67656f" {
		t.Error("vendor GUIDs")
	}
}

func TestSignatureTypeName(t *testing.T) {
	for g, want := range map[GUID]string{
		CertX509GUID: "X509", CertSHA1GUID: "SHA1", CertSHA224GUID: "SHA224", CertSHA256GUID: "SHA256",
		CertSHA384GUID: "SHA384", CertSHA512GUID: "SHA512", CertRSA2048GUID: "RSA2048",
		CertRSA2048SHA1GUID: "RSA2048_SHA1", CertRSA2048SHA256GUID: "RSA2048_SHA256",
		CertX509SHA256GUID: "X509_SHA256", CertX509SHA384GUID: "X509_SHA384", CertX509SHA512GUID: "X509_SHA512",
		GlobalVariableGUID: "unknown",
	} {
		if got := SignatureTypeName(g); got != want {
			t.Errorf("SignatureTypeName(%s) = %s, want %s", g, got, want)
		}
	}
}

func TestAttributesString(t *testing.T) {
	for a, want := range map[Attributes]string{
		0:     "0",
		0x27:  "NV|BS|RT|AT",
		0x07:  "NV|BS|RT",
		0x4f:  "NV|BS|RT|HR|AP",
		0x103: "NV|BS|0x100",
	} {
		if got := a.String(); got != want {
			t.Errorf("Attributes(0x%x) = %s, want %s", uint32(a), got, want)
		}
	}
}

func TestFormatError(t *testing.T) {
	e := &FormatError{Source: "OVMF_VARS.fd", Offset: 0x48, Reason: "bad"}
	if e.Error() != "efi: OVMF_VARS.fd: bad (offset 0x48)" {
		t.Error(e.Error())
	}
	e.Source = ""
	if e.Error() != "efi: bad (offset 0x48)" {
		t.Error(e.Error())
	}
}
