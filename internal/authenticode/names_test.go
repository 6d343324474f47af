package authenticode

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"testing"
)

// name encodes an RDNSequence; each attribute is (OID, ASN.1 string tag,
// value), and attributes in one inner slice form one multi-valued RDN.
func name(t *testing.T, rdns ...[]atv) []byte {
	t.Helper()
	var seq pkix.RDNSequence
	for _, rdn := range rdns {
		var set pkix.RelativeDistinguishedNameSET
		for _, a := range rdn {
			set = append(set, pkix.AttributeTypeAndValue{Type: a.oid, Value: asn1.RawValue{Tag: a.tag, Bytes: []byte(a.v)}})
		}
		seq = append(seq, set)
	}
	der, err := asn1.Marshal(seq)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

type atv struct {
	oid asn1.ObjectIdentifier
	tag int
	v   string
}

func TestSameName(t *testing.T) {
	cn := asn1.ObjectIdentifier{2, 5, 4, 3}
	o := asn1.ObjectIdentifier{2, 5, 4, 10}
	email := asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}
	const printable, utf8, ia5 = asn1.TagPrintableString, asn1.TagUTF8String, asn1.TagIA5String
	tests := []struct {
		name string
		a, b []byte
		want bool
	}{
		{"identical", name(t, []atv{{cn, printable, "Test CA"}}), name(t, []atv{{cn, printable, "Test CA"}}), true},
		{"PrintableString vs UTF8String", name(t, []atv{{cn, printable, "Test CA"}}), name(t, []atv{{cn, utf8, "Test CA"}}), true},
		{"IA5String vs UTF8String email", name(t, []atv{{cn, utf8, "Red Hat"}}, []atv{{email, ia5, "secalert@redhat.com"}}),
			name(t, []atv{{cn, utf8, "Red Hat"}}, []atv{{email, utf8, "secalert@redhat.com"}}), true},
		{"case and white space", name(t, []atv{{cn, utf8, "  Test   CA "}}), name(t, []atv{{cn, printable, "test ca"}}), true},
		{"multi-valued RDN order", name(t, []atv{{cn, utf8, "A"}, {o, utf8, "B"}}), name(t, []atv{{o, utf8, "B"}, {cn, utf8, "A"}}), true},
		{"different value", name(t, []atv{{cn, utf8, "Test CA"}}), name(t, []atv{{cn, utf8, "Test CA 2"}}), false},
		{"different attribute", name(t, []atv{{cn, utf8, "X"}}), name(t, []atv{{o, utf8, "X"}}), false},
		{"RDN order matters", name(t, []atv{{cn, utf8, "A"}}, []atv{{o, utf8, "B"}}), name(t, []atv{{o, utf8, "B"}}, []atv{{cn, utf8, "A"}}), false},
		{"split vs multi-valued", name(t, []atv{{cn, utf8, "A"}}, []atv{{o, utf8, "B"}}), name(t, []atv{{cn, utf8, "A"}, {o, utf8, "B"}}), false},
		{"garbage", []byte{0x30, 0x03, 0x01}, name(t, []atv{{cn, utf8, "A"}}), false},
	}
	for _, tc := range tests {
		if got := sameName(tc.a, tc.b); got != tc.want {
			t.Errorf("%s: sameName = %v, want %v", tc.name, got, tc.want)
		}
		if got := sameName(tc.b, tc.a); got != tc.want {
			t.Errorf("%s (reversed): sameName = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestEdk2DigestAlgorithm(t *testing.T) {
	prefix := func(second byte) []byte {
		b := make([]byte, 32)
		b[0], b[1] = 0x30, second
		return b
	}
	sha256OID := []byte{0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01}
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"sha256", append(prefix(0x82), sha256OID...), "sha256"},
		{"sha1", append(prefix(0x82), 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0, 0, 0, 0), "sha1"},
		{"sha224 listed but unsupported", append(prefix(0x82), 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04), "unsupported"},
		{"one-byte length form", append(prefix(0x81), sha256OID...), "unsupported"},
		{"too short for the SHA-256 OID", append(prefix(0x82), sha256OID[:8]...), "unsupported"},
		{"empty", nil, "unsupported"},
	}
	for _, tc := range tests {
		if got := hashLabel(edk2DigestAlgorithm(tc.b)); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}
