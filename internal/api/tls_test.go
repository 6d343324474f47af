package api_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vouch-dev/vouch/internal/api"
)

// TestTLS: --tls-cert/--tls-key serve HTTPS; a client that trusts the
// certificate works, one that does not is refused by TLS.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vouch test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)

	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan [2]string, 1)
	done := make(chan error, 1)
	go func() {
		done <- api.Serve(ctx, api.ServeOptions{Listen: "127.0.0.1:0", DataDir: filepath.Join(dir, "data"), TLSCert: certFile, TLSKey: keyFile,
			Ready: func(addr, tok string) {
				b, _ := os.ReadFile(tok)
				ready <- [2]string{addr, strings.TrimSpace(string(b))}
			}})
	}()
	defer func() { cancel(); <-done }()
	var s [2]string
	select {
	case s = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	if !strings.HasPrefix(s[0], "https://") {
		t.Fatalf("address %s", s[0])
	}
	c, err := api.NewClient(s[0], s[1], certFile)
	if err != nil {
		t.Fatal(err)
	}
	if tok, err := c.CreateToken(context.Background(), "reader", ""); err != nil || !strings.HasPrefix(tok, "vch_") {
		t.Fatalf("over TLS: %q %v", tok, err)
	}
	untrusting, _ := api.NewClient(s[0], s[1], "")
	if _, err := untrusting.CreateToken(context.Background(), "reader", ""); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a client that does not trust the certificate: %v", err)
	}
	if err := api.Serve(context.Background(), api.ServeOptions{Listen: "127.0.0.1:0", DataDir: filepath.Join(dir, "d2"), TLSCert: certFile}); err == nil {
		t.Fatal("--tls-cert without --tls-key accepted")
	}
}
