package mscerts_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vouch-dev/vouch/internal/authenticode"
	"github.com/vouch-dev/vouch/internal/mscerts"
)

// Every built-in certificate is the known CA of the same ID (authenticode's
// fingerprints), and every known CA is built in.
func TestBuiltInsAreTheKnownCAs(t *testing.T) {
	known := map[string]authenticode.KnownCA{}
	for _, k := range authenticode.KnownCAs() {
		known[k.ID] = k
	}
	seen := 0
	for _, c := range mscerts.All() {
		fp := sha256.Sum256(c.Cert.Raw)
		k, ok := known[c.ID]
		if !ok {
			if c.Var != "PK" {
				t.Errorf("%s: built in but not a known CA", c.ID)
			}
			continue
		}
		seen++
		if got := hex.EncodeToString(fp[:]); got != k.SHA256 {
			t.Errorf("%s: SHA-256 %s, known CA says %s", c.ID, got, k.SHA256)
		}
		if id, ok := authenticode.IdentifyCA(c.Cert); !ok || id.ID != c.ID {
			t.Errorf("%s: IdentifyCA says %v %v", c.ID, id.ID, ok)
		}
	}
	if seen != len(known) {
		t.Errorf("%d known CAs built in, want %d", seen, len(known))
	}
	if !strings.Contains(mscerts.Licence(), "BSD") {
		t.Errorf("licence text missing")
	}
}

func TestRead(t *testing.T) {
	dir := t.TempDir()
	ca, _ := mscerts.Lookup("microsoft-uefi-ca-2023")
	der := filepath.Join(dir, "ca.der")
	pemFile := filepath.Join(dir, "ca.pem")
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(der, ca.Raw, 0o644)
	os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}), 0o644)
	os.WriteFile(bad, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}}), 0o644)
	for _, arg := range []string{"microsoft-uefi-ca-2023", der, pemFile} {
		c, err := mscerts.Read(arg)
		if err != nil {
			t.Fatalf("%s: %v", arg, err)
		}
		if !c.Equal(ca) {
			t.Errorf("%s: a different certificate", arg)
		}
	}
	for arg, want := range map[string]string{
		"microsoft-uefi-ca-2099":             "neither a file nor a built-in certificate",
		filepath.Join(dir, "missing.der"):    "no such file",
		bad:                                  "not a CERTIFICATE",
		filepath.Join(dir, "..", "notthere"): "no such file",
	} {
		_, err := mscerts.Read(arg)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "mscerts: ") {
			t.Errorf("%s: error %v, want %q", arg, err, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	ca, _ := mscerts.DER("microsoft-uefi-ca-2011")
	f.Add(ca)
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca}))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := mscerts.Parse(b)
		if (c == nil) == (err == nil) {
			t.Fatalf("certificate %v and error %v", c != nil, err)
		}
	})
}
