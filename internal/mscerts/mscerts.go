// Package mscerts holds Microsoft's public UEFI Secure Boot certificates, built
// into vouch so that firmware profiles, `vouch firmware vars ... set-profile`
// and `db add microsoft-uefi-ca-2023` work with no file at hand, and it is the
// one reader of a certificate named on a command line: a built-in name, or a
// DER or PEM file.
//
// The certificates are the db CAs (Microsoft Windows Production PCA 2011,
// Microsoft Corporation UEFI CA 2011, Windows UEFI CA 2023, Microsoft UEFI CA
// 2023, Microsoft Option ROM UEFI CA 2023), the KEK CAs (Microsoft Corporation
// KEK CA 2011, Microsoft Corporation KEK 2K CA 2023) and the Windows OEM
// Devices PK, as published in microsoft/secureboot_objects (ORIGIN.md,
// LICENSE-secureboot_objects.txt). Their IDs are authenticode.KnownCAs' IDs.
package mscerts

import (
	"crypto/x509"
	"embed"
	"encoding/pem"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
)

//go:embed certs/*.der LICENSE-secureboot_objects.txt ORIGIN.md
var files embed.FS

// Cert is one built-in certificate.
type Cert struct {
	// ID is the stable name, e.g. "microsoft-uefi-ca-2023"
	// (authenticode.KnownCA.ID).
	ID string
	// Var is the variable Microsoft publishes it for: "db", "KEK" or "PK".
	Var string
	// File is its file name in microsoft/secureboot_objects' layout as kept
	// here (certs/db-microsoft-uefi-ca-2023.der).
	File string
	// Cert is the parsed certificate; the caller must not modify it.
	Cert *x509.Certificate
}

// table maps each file to its ID and variable.
var table = []struct{ id, v, file string }{
	{"microsoft-windows-production-pca-2011", "db", "db-microsoft-windows-production-pca-2011.der"},
	{"microsoft-uefi-ca-2011", "db", "db-microsoft-uefi-ca-2011.der"},
	{"windows-uefi-ca-2023", "db", "db-windows-uefi-ca-2023.der"},
	{"microsoft-uefi-ca-2023", "db", "db-microsoft-uefi-ca-2023.der"},
	{"microsoft-option-rom-uefi-ca-2023", "db", "db-microsoft-option-rom-uefi-ca-2023.der"},
	{"microsoft-kek-ca-2011", "KEK", "kek-microsoft-corporation-kek-ca-2011.der"},
	{"microsoft-kek-2k-ca-2023", "KEK", "kek-microsoft-corporation-kek-2k-ca-2023.der"},
	{"windows-oem-devices-pk", "PK", "pk-windows-oem-devices-pk.der"},
}

var load = sync.OnceValue(func() []Cert {
	out := make([]Cert, 0, len(table))
	for _, e := range table {
		b, err := files.ReadFile(path.Join("certs", e.file))
		if err != nil {
			panic("mscerts: built-in file missing: " + err.Error())
		}
		c, err := x509.ParseCertificate(b)
		if err != nil {
			panic("mscerts: built-in certificate " + e.file + " does not parse: " + err.Error())
		}
		out = append(out, Cert{ID: e.id, Var: e.v, File: "certs/" + e.file, Cert: c})
	}
	return out
})

// All returns the built-in certificates: db, then KEK, then PK.
func All() []Cert { return slices.Clone(load()) }

// IDs returns the built-in names.
func IDs() []string {
	out := make([]string, 0, len(table))
	for _, e := range table {
		out = append(out, e.id)
	}
	return out
}

// Lookup returns the built-in certificate with that ID.
func Lookup(id string) (*x509.Certificate, bool) {
	for _, c := range load() {
		if c.ID == id {
			return c.Cert, true
		}
	}
	return nil, false
}

// DER returns the built-in file's bytes (tests compare them with what
// firmware holds).
func DER(id string) ([]byte, bool) {
	c, ok := Lookup(id)
	if !ok {
		return nil, false
	}
	return slices.Clone(c.Raw), true
}

// Licence returns the licence text the certificates are published under.
func Licence() string {
	b, _ := files.ReadFile("LICENSE-secureboot_objects.txt")
	return string(b)
}

// Parse parses one certificate, DER or PEM (a CERTIFICATE block).
func Parse(b []byte) (*x509.Certificate, error) {
	if blk, _ := pem.Decode(b); blk != nil {
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("mscerts: PEM block %q is not a CERTIFICATE", blk.Type)
		}
		b = blk.Bytes
	}
	c, err := x509.ParseCertificate(b)
	if err != nil {
		return nil, fmt.Errorf("mscerts: %w", err)
	}
	return c, nil
}

// Read is the one reader of a certificate named by a user: a built-in ID
// (microsoft-uefi-ca-2023, ...; a file of that name in the working directory
// is not consulted, write ./NAME for it) or the path of a DER or PEM file.
// Errors name the argument and the problem.
func Read(arg string) (*x509.Certificate, error) {
	if c, ok := Lookup(arg); ok {
		return c, nil
	}
	b, err := os.ReadFile(arg)
	if err != nil {
		if os.IsNotExist(err) && !strings.ContainsAny(arg, "/.") {
			return nil, fmt.Errorf("mscerts: %s: neither a file nor a built-in certificate (built in: %s)", arg, strings.Join(IDs(), ", "))
		}
		return nil, fmt.Errorf("mscerts: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("mscerts: %s: not an X.509 certificate (DER or PEM): %w", arg, err)
	}
	return c, nil
}
