package nvram

import "crypto/x509"

// CertLists is the payload AddCerts appends for certs: one EFI_CERT_X509 list
// per certificate, owned by Microsoft for a known Microsoft CA and by vouch
// otherwise. measure predicts the db firmware will measure from it.
func CertLists(certs []*x509.Certificate) []byte { return x509Lists(certs) }
