package efi

import (
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestDBXUpdate parses Microsoft's published x64 DBX update and checks its
// hashes against the JSON Microsoft publishes beside it.
func TestDBXUpdate(t *testing.T) {
	b := readFile(t, sbData("dbx", "DBXUpdate-amd64.bin"))
	a, err := ParseAuthVar2(b)
	if err != nil {
		t.Fatal(err)
	}
	if a.CertType != CertTypePKCS7GUID {
		t.Errorf("cert type %s", a.CertType)
	}
	if want := time.Date(2010, 3, 6, 19, 17, 21, 0, time.UTC); !a.Timestamp.Equal(want) {
		t.Errorf("timestamp %v, want %v", a.Timestamp, want)
	}
	// The PKCS#7 blob is a bare SignedData (no ContentInfo wrapper): one
	// SEQUENCE filling the certificate, whose first element is version 1.
	var seq asn1.RawValue
	rest, err := asn1.Unmarshal(a.PKCS7, &seq)
	if err != nil || len(rest) != 0 || seq.Tag != asn1.TagSequence {
		t.Fatalf("PKCS7 is not one SEQUENCE: %v, %d trailing bytes", err, len(rest))
	}
	var version int
	if _, err := asn1.Unmarshal(seq.Bytes, &version); err != nil || version != 1 {
		t.Errorf("SignedData version %d, %v; want 1", version, err)
	}
	lists, err := ParseSignatureLists(a.Payload)
	if err != nil {
		t.Fatal(err)
	}
	hashes := map[string]bool{}
	nX509 := 0
	for _, l := range lists {
		switch l.Type {
		case CertSHA256GUID:
			for _, s := range l.Signatures {
				hashes[strings.ToUpper(hex.EncodeToString(s.Data))] = true
			}
		case CertX509GUID:
			for _, s := range l.Signatures {
				if _, err := x509.ParseCertificate(s.Data); err != nil {
					t.Errorf("dbx certificate: %v", err)
				}
				nX509++
			}
		default:
			t.Errorf("unexpected %s list in DBX update", l.TypeName())
		}
	}

	var info struct {
		Images map[string][]struct {
			AuthenticodeHash string `json:"authenticodeHash"`
			HashType         string `json:"hashType"`
		} `json:"images"`
	}
	if err := json.Unmarshal(readFile(t, sbData("dbx", "dbx_info_msft_latest.json")), &info); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, im := range info.Images["x64"] {
		if im.HashType == "SHA256" {
			want[strings.ToUpper(im.AuthenticodeHash)] = true
		}
	}
	if len(hashes) != 443 || len(want) != 443 {
		t.Errorf("%d SHA256 entries in the update, %d x64 hashes in the JSON; want 443 each", len(hashes), len(want))
	}
	for h := range want {
		if !hashes[h] {
			t.Errorf("JSON hash %s missing from the update", h)
		}
	}
	for h := range hashes {
		if !want[h] {
			t.Errorf("update hash %s not in the JSON", h)
		}
	}
	if nX509 != 0 {
		t.Errorf("%d X509 entries; the amd64 update carries hashes only", nX509)
	}
}

func TestParseEFITime(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		want time.Time
		err  bool
	}{
		{in: make([]byte, 16)},
		{in: []byte{0xe8, 0x07, 12, 31, 23, 59, 59, 0, 0, 0, 0, 0, 0, 0, 0, 0}, want: time.Date(2024, 12, 31, 23, 59, 59, 0, time.UTC)},
		{in: []byte{0xe8, 0x07, 13, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, err: true},
		{in: []byte{0xe8, 0x07, 1, 1, 24, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, err: true},
		{in: []byte{0xe8, 0x07, 1, 1}, err: true},
	} {
		got, err := ParseEFITime(tc.in)
		if (err != nil) != tc.err || !got.Equal(tc.want) {
			t.Errorf("ParseEFITime(% x) = %v, %v", tc.in, got, err)
		}
	}
}
