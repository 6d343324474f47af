package measure

import (
	"crypto/x509"
	"fmt"

	"github.com/vouch-dev/vouch/internal/authenticode"
	"github.com/vouch-dev/vouch/internal/efi"
)

// describeAuthority says what an EV_EFI_VARIABLE_AUTHORITY event holds:
// firmware measures the EFI_SIGNATURE_DATA of the db entry that allowed an
// image (owner GUID, then the certificate); shim measures its vendor
// certificate ("Shim"), the SbatLevel variable, and MokList entries.
func describeAuthority(v *Variable) string {
	switch {
	case v.GUID == efi.ShimLockGUID && v.Name == "SbatLevel":
		return "SbatLevel " + printable(v.Data)
	case v.GUID == efi.ShimLockGUID && v.Name == "Shim":
		return "shim's vendor certificate: " + certName(v.Data)
	}
	if len(v.Data) > 16 {
		if c, err := x509.ParseCertificate(v.Data[16:]); err == nil {
			var owner efi.GUID
			copy(owner[:], v.Data[:16])
			return fmt.Sprintf("%s entry %s (owner %s)", v.Name, caName(c), owner)
		}
	}
	if c, err := x509.ParseCertificate(v.Data); err == nil {
		return caName(c)
	}
	return printable(v.Data)
}

func certName(der []byte) string {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return "undecodable certificate: " + err.Error()
	}
	return caName(c)
}

// caName is the known CA's name, else the subject's common name.
func caName(c *x509.Certificate) string {
	if k, ok := authenticode.IdentifyCA(c); ok {
		return k.Name
	}
	if c.Subject.CommonName != "" {
		return c.Subject.CommonName
	}
	return c.Subject.String()
}

// authorityCert returns the certificate of an authority event: the
// EFI_SIGNATURE_DATA's certificate, or the data itself when it is a
// certificate (shim's "Shim").
func authorityCert(v *Variable) *x509.Certificate {
	if len(v.Data) > 16 {
		if c, err := x509.ParseCertificate(v.Data[16:]); err == nil {
			return c
		}
	}
	if c, err := x509.ParseCertificate(v.Data); err == nil {
		return c
	}
	return nil
}
