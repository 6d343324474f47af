package secureboot

import (
	"crypto"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"unicode/utf16"

	"github.com/vouch-dev/vouch/internal/authenticode"
	"github.com/vouch-dev/vouch/internal/efi"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// Real artefacts: Debian's signed packages (scripts/fetch-debs.sh, through
// testfixtures, which fetches them on first use), the Microsoft certificates
// of the reference data in testdata/secureboot, Debian's OVMF.
const (
	ovmfVars = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"
	ovmfCode = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"

	shimRel = "shim-signed/usr/lib/shim/shimx64.efi.signed"
	grubRel = "grub-efi-amd64-signed/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed"
	fbRel   = "shim-helpers-amd64-signed/usr/lib/shim/fbx64.efi.signed"
	mmRel   = "shim-helpers-amd64-signed/usr/lib/shim/mmx64.efi.signed"
)

var sharedDir = testfixtures.Data("secureboot")

func deb(t testing.TB, rel string) []byte {
	t.Helper()
	return readArtefact(t, testfixtures.Deb(t, rel))
}

// microsoftOwner is the owner GUID Microsoft uses for its db and KEK entries.
var microsoftOwner = mustGUID("77fa9abd-0359-4d32-bd60-28f4e78f784b")

// readArtefact reads a real artefact, failing with what provides it.
func readArtefact(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v: run scripts/fetch-debs.sh (make fixtures) for the Debian packages; OVMF comes from apt package ovmf", err)
	}
	return b
}

func kernelPath(t testing.TB) string {
	t.Helper()
	return testfixtures.Kernel(t)
}

func parseImage(t testing.TB, b []byte) *authenticode.Image {
	t.Helper()
	img, err := authenticode.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func readCert(t testing.TB, name string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(sharedDir, "certs", name))
	if err != nil {
		t.Fatalf("%v (the reference data in testdata/secureboot)", err)
	}
	c, err := x509.ParseCertificate(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// tool returns the path of a command, failing with the apt package that
// provides it.
func tool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/sbin"} {
			if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
				return filepath.Join(dir, name)
			}
		}
		t.Fatalf("%s not found: install the apt package %s (make deps)", name, pkg)
	}
	return p
}

// Debian's shim and the variants with one signature removed.
type shims struct {
	dual, only2011, only2023 []byte
}

var (
	shimsOnce sync.Once
	shimsVal  shims
	shimsErr  error
)

func debianShims(t testing.TB) shims {
	t.Helper()
	dual := deb(t, shimRel)
	shimsOnce.Do(func() {
		shimsVal.dual = dual
		// Entry 0 is the 2011 signature, entry 1 the 2023 one.
		if shimsVal.only2011, shimsErr = authenticode.RemoveSignature(dual, 1); shimsErr != nil {
			return
		}
		shimsVal.only2023, shimsErr = authenticode.RemoveSignature(dual, 0)
	})
	if shimsErr != nil {
		t.Fatal(shimsErr)
	}
	return shimsVal
}

// Variable stores derived from Debian's Microsoft-keyed OVMF store.
const (
	store2011    = "2011"
	store2023    = "2023"
	storeBoth    = "both"
	storeBothDbx = "both+dbx"
)

var storeNames = []string{store2011, store2023, storeBoth, storeBothDbx}

func x509List(certs ...*x509.Certificate) []efi.SignatureList {
	var out []efi.SignatureList
	for _, c := range certs {
		out = append(out, efi.SignatureList{Type: efi.CertX509GUID, Signatures: []efi.SignatureData{{Owner: microsoftOwner, Data: c.Raw}}})
	}
	return out
}

// deriveStore writes one of the store variants with the efi store writer.
func deriveStore(t testing.TB, name string, shimDigest []byte) []byte {
	t.Helper()
	s, err := efi.ParseVarStore(readArtefact(t, ovmfVars))
	if err != nil {
		t.Fatal(err)
	}
	isdb := efi.ImageSecurityDatabaseGUID
	ca2023 := readCert(t, "db-microsoft-uefi-ca-2023.der")
	switch name {
	case store2011:
	case store2023:
		win2023 := readCert(t, "db-windows-uefi-ca-2023.der")
		attrs := efi.NonVolatile | efi.BootServiceAccess | efi.RuntimeAccess | efi.TimeBasedAuthenticatedWriteAccess
		if err := s.Set(efi.Variable{Name: "db", GUID: isdb, Attributes: attrs, Data: efi.MarshalSignatureLists(x509List(win2023, ca2023))}); err != nil {
			t.Fatal(err)
		}
	case storeBoth, storeBothDbx:
		if err := s.AppendSignatureList("db", isdb, x509List(ca2023)[0]); err != nil {
			t.Fatal(err)
		}
		if name == storeBothDbx {
			l := efi.SignatureList{Type: efi.CertSHA256GUID, Signatures: []efi.SignatureData{{Owner: microsoftOwner, Data: shimDigest}}}
			if err := s.AppendSignatureList("dbx", isdb, l); err != nil {
				t.Fatal(err)
			}
		}
	default:
		t.Fatalf("unknown store %q", name)
	}
	return s.Bytes()
}

func firmwareFromStore(t testing.TB, b []byte) *Firmware {
	t.Helper()
	s, err := efi.ParseVarStore(b)
	if err != nil {
		t.Fatal(err)
	}
	fw, err := FromVars(s.Vars())
	if err != nil {
		t.Fatal(err)
	}
	return fw
}

func shimDigest(t testing.TB, shim []byte) []byte {
	return parseImage(t, shim).Digest(crypto.SHA256)
}

// loadOption encodes an active EFI_LOAD_OPTION whose device path is a
// short-form File() node, which edk2's boot manager expands against every
// file system.
func loadOption(desc, file string) []byte {
	u16 := func(s string) []byte {
		var b []byte
		for _, r := range utf16.Encode([]rune(s)) {
			b = binary.LittleEndian.AppendUint16(b, r)
		}
		return append(b, 0, 0)
	}
	name := u16(file)
	node := []byte{efi.MediaDevicePath, 0x04}
	node = binary.LittleEndian.AppendUint16(node, uint16(4+len(name)))
	node = append(node, name...)
	node = append(node, efi.EndDevicePath, 0xff, 4, 0)
	var b []byte
	b = binary.LittleEndian.AppendUint32(b, efi.LoadOptionActive)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(node)))
	b = append(b, u16(desc)...)
	return append(b, node...)
}

// addBootEntries adds Boot0100, Boot0101... for files and makes them the
// BootOrder.
func addBootEntries(t testing.TB, store []byte, files []string) []byte {
	t.Helper()
	s, err := efi.ParseVarStore(store)
	if err != nil {
		t.Fatal(err)
	}
	attrs := efi.NonVolatile | efi.BootServiceAccess | efi.RuntimeAccess
	var order []byte
	for i, f := range files {
		n := uint16(0x100 + i)
		if err := s.Set(efi.Variable{Name: fmt.Sprintf("Boot%04X", n), GUID: efi.GlobalVariableGUID, Attributes: attrs, Data: loadOption("vouch "+f, f)}); err != nil {
			t.Fatal(err)
		}
		order = binary.LittleEndian.AppendUint16(order, n)
	}
	if err := s.Set(efi.Variable{Name: "BootOrder", GUID: efi.GlobalVariableGUID, Attributes: attrs, Data: order}); err != nil {
		t.Fatal(err)
	}
	return s.Bytes()
}
