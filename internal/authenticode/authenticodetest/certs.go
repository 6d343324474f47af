// Package authenticodetest builds test fixtures for Authenticode: certificate
// authorities and signing certificates generated on the fly, minimal PE/COFF
// images, and signatures appended to them as WIN_CERTIFICATE entries the way
// sbsign and pesign write them. It is for tests only (its helpers take a
// testing.TB and fail the test on error), shared by the authenticode package
// and the Secure Boot engine's tests.
package authenticodetest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"
)

// Cert is a certificate with its private key.
type Cert struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// Option adjusts a certificate made by NewCA or NewLeaf.
type Option func(*config)

type config struct {
	tmpl *x509.Certificate
	key  crypto.Signer
	ec   bool
}

// Validity sets the validity period (an expired certificate, say).
func Validity(notBefore, notAfter time.Time) Option {
	return func(c *config) { c.tmpl.NotBefore, c.tmpl.NotAfter = notBefore, notAfter }
}

// ExtKeyUsage replaces the extended key usages (none when called without
// arguments).
func ExtKeyUsage(u ...x509.ExtKeyUsage) Option {
	return func(c *config) { c.tmpl.ExtKeyUsage = u }
}

// KeyUsage replaces the key usage bits.
func KeyUsage(u x509.KeyUsage) Option {
	return func(c *config) { c.tmpl.KeyUsage = u }
}

// Subject replaces the subject name (the common name argument is then
// ignored).
func Subject(n pkix.Name) Option {
	return func(c *config) { c.tmpl.Subject = n }
}

// Key uses the given key instead of generating one.
func Key(k crypto.Signer) Option {
	return func(c *config) { c.key = k }
}

// ECDSA generates a P-256 key instead of RSA-2048 (faster; firmware built on
// OpenSSL accepts both).
func ECDSA() Option {
	return func(c *config) { c.ec = true }
}

// Template lets the caller change anything else in the template.
func Template(f func(*x509.Certificate)) Option {
	return func(c *config) { f(c.tmpl) }
}

// NewCA makes a CA certificate (basic constraints CA:TRUE, keyCertSign)
// issued by parent, or self-signed when parent is nil.
func NewCA(tb testing.TB, commonName string, parent *Cert, opts ...Option) *Cert {
	tb.Helper()
	tmpl := baseTemplate(commonName)
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	return create(tb, tmpl, parent, opts)
}

// NewLeaf makes a code-signing certificate (CA:FALSE, digitalSignature, EKU
// codeSigning) issued by parent, or self-signed when parent is nil (as MOK
// keys often are).
func NewLeaf(tb testing.TB, commonName string, parent *Cert, opts ...Option) *Cert {
	tb.Helper()
	tmpl := baseTemplate(commonName)
	tmpl.BasicConstraintsValid = true
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}
	return create(tb, tmpl, parent, opts)
}

func baseTemplate(cn string) *x509.Certificate {
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"vouch test"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(10, 0, 0),
	}
}

func create(tb testing.TB, tmpl *x509.Certificate, parent *Cert, opts []Option) *Cert {
	tb.Helper()
	cfg := &config{tmpl: tmpl}
	for _, o := range opts {
		o(cfg)
	}
	key := cfg.key
	var err error
	switch {
	case key != nil:
	case cfg.ec:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		tb.Fatalf("authenticodetest: generate key: %v", err)
	}
	issuer, issuerKey := tmpl, key
	if parent != nil {
		issuer, issuerKey = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, key.Public(), issuerKey)
	if err != nil {
		tb.Fatalf("authenticodetest: create certificate %q: %v", tmpl.Subject.CommonName, err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("authenticodetest: parse certificate: %v", err)
	}
	return &Cert{Cert: c, Key: key}
}
