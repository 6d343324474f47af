// Package gatetest builds the real artefacts the gate's tests judge: Debian's
// dual-signed shim with its Microsoft Corporation UEFI CA 2011 signature
// removed (a shim signed only by the Microsoft UEFI CA 2023, what
// distributions ship once the 2011 CA has expired), edk2 variable stores that
// trust the 2011 CA only or both CAs, and .deb and .rpm packages carrying a
// shim, built with dpkg-deb and rpmbuild. It is for tests only: its helpers
// take a testing.TB and fail the test on error.
package gatetest

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vouch-dev/vouch/internal/authenticode"
	"github.com/vouch-dev/vouch/internal/authenticode/authenticodetest"
	"github.com/vouch-dev/vouch/internal/efi"
	"github.com/vouch-dev/vouch/internal/secureboot"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// Paths of Debian's artefacts.
const (
	ShimDeb      = "shim-signed/usr/lib/shim/shimx64.efi.signed"
	GRUBDeb      = "grub-efi-amd64-signed/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed"
	OVMFVars2011 = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"
	OVMFVarsNoPK = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// microsoftOwner is the owner GUID Microsoft uses for its db entries.
var microsoftOwner = func() efi.GUID {
	g, err := efi.ParseGUID("77fa9abd-0359-4d32-bd60-28f4e78f784b")
	if err != nil {
		panic(err)
	}
	return g
}()

// Need fails the test when a tool is missing, naming the Debian package.
func Need(t testing.TB, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		t.Fatalf("%s is missing: install the Debian package %s (make deps)", tool, pkg)
	}
	return p
}

// Run runs a command and fails the test with its output when it fails.
func Run(t testing.TB, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// DualShim returns Debian bookworm's shim, signed by the Microsoft
// Corporation UEFI CA 2011 (signature 1) and the Microsoft UEFI CA 2023
// (signature 2).
func DualShim(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(testfixtures.Deb(t, ShimDeb))
	if err != nil {
		t.Fatal(err)
	}
	img, err := authenticode.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if got := secureboot.SignedBy(img); fmt.Sprint(got) != "[microsoft-uefi-ca-2011 microsoft-uefi-ca-2023]" {
		t.Fatalf("Debian's shim is signed by %v, want the 2011 then the 2023 UEFI CA", got)
	}
	return b
}

// Shim2023Only is Debian's shim with the 2011 signature removed
// (authenticode.RemoveSignature; the Authenticode digest is unchanged).
func Shim2023Only(t testing.TB) []byte {
	t.Helper()
	b, err := authenticode.RemoveSignature(DualShim(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	img, err := authenticode.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if got := secureboot.SignedBy(img); fmt.Sprint(got) != "[microsoft-uefi-ca-2023]" {
		t.Fatalf("stripped shim is signed by %v, want only the Microsoft UEFI CA 2023", got)
	}
	return b
}

// Shim2011Only is Debian's shim with the 2023 signature removed.
func Shim2011Only(t testing.TB) []byte {
	t.Helper()
	b, err := authenticode.RemoveSignature(DualShim(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// OtherVendorGRUB is Debian's GRUB with Debian's signature removed and
// signed instead by a code-signing certificate made for the test (issued by
// "Example Vendor Secure Boot CA"): a second stage built for another
// vendor's shim, which Debian's shim, trusting only Debian's key, refuses.
func OtherVendorGRUB(t testing.TB) []byte {
	t.Helper()
	unsigned, err := authenticode.RemoveSignature(ReadDebFile(t, GRUBDeb), 0)
	if err != nil {
		t.Fatal(err)
	}
	ca := authenticodetest.NewCA(t, "Example Vendor Secure Boot CA", nil)
	signer := authenticodetest.NewLeaf(t, "Example Vendor Secure Boot Signer", ca)
	b, err := authenticodetest.Sign(unsigned, signer.Cert, signer.Key, []*x509.Certificate{ca.Cert}, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Kernel returns the file name ("vmlinuz-RELEASE") and content of the signed
// kernel scripts/fetch-debs.sh extracted: whichever release the archive
// serves today.
func Kernel(t testing.TB) (string, []byte) {
	t.Helper()
	p := testfixtures.Kernel(t)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Base(p), b
}

// ReadDebFile returns a file of Debian's extracted packages.
func ReadDebFile(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(testfixtures.Deb(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Store2011 returns Debian's OVMF_VARS_4M.ms.fd: Secure Boot on, db holding
// the Microsoft Windows Production PCA 2011 and the Microsoft Corporation
// UEFI CA 2011.
func Store2011(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(OVMFVars2011)
	if err != nil {
		t.Fatalf("%v: install the Debian package ovmf", err)
	}
	return b
}

// StoreBoth is Store2011 with the Microsoft UEFI CA 2023 appended to db, as
// the Microsoft db update does.
func StoreBoth(t testing.TB) []byte {
	t.Helper()
	return EditStore(t, Store2011(t), func(s *efi.VarStore) {
		cert, err := os.ReadFile(testfixtures.Data("secureboot", "certs", "db-microsoft-uefi-ca-2023.der"))
		if err != nil {
			t.Fatal(err)
		}
		l := efi.SignatureList{Type: efi.CertX509GUID, Signatures: []efi.SignatureData{{Owner: microsoftOwner, Data: cert}}}
		if err := s.AppendSignatureList("db", efi.ImageSecurityDatabaseGUID, l); err != nil {
			t.Fatal(err)
		}
	})
}

// EditStore parses a variable store, lets edit change it and returns the
// new bytes.
func EditStore(t testing.TB, b []byte, edit func(*efi.VarStore)) []byte {
	t.Helper()
	s, err := efi.ParseVarStore(b)
	if err != nil {
		t.Fatal(err)
	}
	edit(s)
	return s.Bytes()
}

// Firmware decodes a store.
func Firmware(t testing.TB, b []byte) *secureboot.Firmware {
	t.Helper()
	s, err := efi.ParseVarStore(b)
	if err != nil {
		t.Fatal(err)
	}
	fw, err := secureboot.FromVars(s.Vars())
	if err != nil {
		t.Fatal(err)
	}
	return fw
}

// WriteFile writes b to dir/name and returns the path.
func WriteFile(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// ShimSignedDeb rebuilds Debian's shim-signed package with shim replaced
// and the version raised to version: dpkg-deb -R, replace
// usr/lib/shim/shimx64.efi.signed and its md5sums line, dpkg-deb -Z comp -b.
// comp is a dpkg-deb compressor: xz, zstd, gzip or none.
func ShimSignedDeb(t testing.TB, dir string, shim []byte, version, comp string) string {
	t.Helper()
	Need(t, "dpkg-deb", "dpkg")
	debs, _ := filepath.Glob(filepath.Join(testfixtures.Repo(), ".cache", "debs", "shim-signed_*.deb"))
	if len(debs) != 1 {
		testfixtures.Deb(t, ShimDeb) // fetches them
		debs, _ = filepath.Glob(filepath.Join(testfixtures.Repo(), ".cache", "debs", "shim-signed_*.deb"))
	}
	if len(debs) != 1 {
		t.Fatalf("want one .cache/debs/shim-signed_*.deb, found %v", debs)
	}
	tree := filepath.Join(dir, "shim-signed-"+version+"-"+comp)
	Run(t, dir, "dpkg-deb", "-R", debs[0], tree)
	WriteFile(t, tree, "usr/lib/shim/shimx64.efi.signed", shim)
	ctl, err := os.ReadFile(filepath.Join(tree, "DEBIAN", "control"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(ctl), "\n") {
		if strings.HasPrefix(l, "Version: ") {
			l = "Version: " + version
		}
		out = append(out, l)
	}
	WriteFile(t, tree, "DEBIAN/control", []byte(strings.Join(out, "\n")))
	sums := Run(t, tree, "md5sum", "usr/lib/shim/shimx64.efi.signed")
	md5, err := os.ReadFile(filepath.Join(tree, "DEBIAN", "md5sums"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(string(md5), "\n"), "\n") {
		if strings.HasSuffix(l, "  usr/lib/shim/shimx64.efi.signed") {
			l = strings.TrimSpace(sums)
		}
		lines = append(lines, l)
	}
	WriteFile(t, tree, "DEBIAN/md5sums", []byte(strings.Join(lines, "\n")+"\n"))
	deb := filepath.Join(dir, fmt.Sprintf("shim-signed_%s_%s_amd64.deb", version, comp))
	Run(t, dir, "dpkg-deb", "--root-owner-group", "-Z", comp, "-b", tree, deb)
	return deb
}

// PlainDeb builds a package named name holding files (path → content) with
// dpkg-deb, without md5sums when md5 is false.
func PlainDeb(t testing.TB, dir, name string, files map[string][]byte, md5 bool) string {
	t.Helper()
	Need(t, "dpkg-deb", "dpkg")
	tree := filepath.Join(dir, name+"-tree")
	WriteFile(t, tree, "DEBIAN/control", []byte("Package: "+name+"\nVersion: 1.0\nArchitecture: all\nMaintainer: vouch tests <tests@example.org>\nDescription: gate test package\n"))
	var sums bytes.Buffer
	for p, b := range files {
		WriteFile(t, tree, p, b)
		if md5 {
			sums.WriteString(strings.TrimSpace(Run(t, tree, "md5sum", p)) + "\n")
		}
	}
	if md5 {
		WriteFile(t, tree, "DEBIAN/md5sums", sums.Bytes())
	}
	deb := filepath.Join(dir, name+"_1.0_all.deb")
	Run(t, dir, "dpkg-deb", "--root-owner-group", "-b", tree, deb)
	return deb
}

// ShimRPM builds, with rpmbuild, a Fedora-style shim-x64 rpm installing shim
// at /boot/efi/EFI/fedora/shimx64.efi. payload is an rpm payload I/O mode
// such as "w19.zstdio", "w6.xzdio", "w9.gzdio".
func ShimRPM(t testing.TB, dir string, shim []byte, payload string) string {
	t.Helper()
	Need(t, "rpmbuild", "rpm")
	top := filepath.Join(dir, "rpmbuild-"+strings.ReplaceAll(payload, ".", "-"))
	src := WriteFile(t, top, "SOURCES/shimx64.efi", shim)
	spec := `Name: shim-x64
Version: 16.1
Release: 1
Summary: First-stage UEFI bootloader (vouch gate test)
License: BSD
BuildArch: x86_64
AutoReqProv: no

%description
shim signed only by the Microsoft UEFI CA 2023, for vouch's gate tests.

%install
mkdir -p %{buildroot}/boot/efi/EFI/fedora
install -m 0700 ` + src + ` %{buildroot}/boot/efi/EFI/fedora/shimx64.efi

%files
/boot/efi/EFI/fedora/shimx64.efi
`
	specPath := WriteFile(t, top, "SPECS/shim.spec", []byte(spec))
	Run(t, top, "rpmbuild", "-bb", "--define", "_topdir "+top, "--define", "_binary_payload "+payload,
		"--define", "__os_install_post %{nil}", "--define", "debug_package %{nil}", "--define", "_build_id_links none", specPath)
	rpms, _ := filepath.Glob(filepath.Join(top, "RPMS", "x86_64", "*.rpm"))
	if len(rpms) != 1 {
		t.Fatalf("rpmbuild made %v", rpms)
	}
	return rpms[0]
}
