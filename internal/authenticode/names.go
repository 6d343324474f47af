package authenticode

import (
	"bytes"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"sort"
	"strings"
)

// sameName compares two DER-encoded X.501 names the way OpenSSL's
// X509_NAME_cmp does, which edk2 relies on when it finds a signer by issuer
// and serial number and an issuer by name: equal encodings match; otherwise
// both are canonicalised (string values as UTF-8, leading and trailing white
// space removed, inner runs of white space collapsed to one space, ASCII
// lower-cased; the attributes of a multi-valued RDN in any order) and
// compared. This matters for certificates whose issuer is encoded with other
// string types than the issuer's own subject.
func sameName(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	ca, ok := canonicalName(a)
	if !ok {
		return false
	}
	cb, ok := canonicalName(b)
	return ok && ca == cb
}

func canonicalName(der []byte) (string, bool) {
	var rdns pkix.RDNSequence
	rest, err := asn1.Unmarshal(der, &rdns)
	if err != nil || len(rest) != 0 {
		return "", false
	}
	var sb strings.Builder
	for _, rdn := range rdns {
		parts := make([]string, 0, len(rdn))
		for _, atv := range rdn {
			var v string
			if s, ok := atv.Value.(string); ok {
				v = "s:" + canonicalString(s)
			} else {
				v = fmt.Sprintf("%T:%v", atv.Value, atv.Value)
			}
			parts = append(parts, atv.Type.String()+"="+v)
		}
		sort.Strings(parts)
		sb.WriteString(strings.Join(parts, "\x00"))
		sb.WriteString("\x01")
	}
	return sb.String(), true
}

// canonicalString is OpenSSL's asn1_string_canon for a UTF-8 value.
func canonicalString(s string) string {
	isSpace := func(c byte) bool {
		return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
	}
	var out []byte
	i, j := 0, len(s)
	for i < j && isSpace(s[i]) {
		i++
	}
	for j > i && isSpace(s[j-1]) {
		j--
	}
	for k := i; k < j; k++ {
		c := s[k]
		if isSpace(c) {
			for k+1 < j && isSpace(s[k+1]) {
				k++
			}
			out = append(out, ' ')
			continue
		}
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		out = append(out, c)
	}
	return string(out)
}
