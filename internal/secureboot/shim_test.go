package secureboot

import (
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vouch-dev/vouch/internal/authenticode"
	"github.com/vouch-dev/vouch/internal/authenticode/authenticodetest"
	"github.com/vouch-dev/vouch/internal/efi"
)

// vendorCertSection builds a .vendor_cert section: cert_table, then the
// authorized data, then the deauthorized signature lists.
func vendorCertSection(auth []byte, dbx []efi.SignatureList) []byte {
	deauth := efi.MarshalSignatureLists(dbx)
	b := make([]byte, 16)
	binary.LittleEndian.PutUint32(b[0:], uint32(len(auth)))
	binary.LittleEndian.PutUint32(b[4:], uint32(len(deauth)))
	binary.LittleEndian.PutUint32(b[8:], 16)
	binary.LittleEndian.PutUint32(b[12:], uint32(16+len(auth)))
	return append(append(b, auth...), deauth...)
}

// sbatLevelSection builds shim's .sbatlevel: version 0 and the offsets of
// the two payloads from the payload header at offset 4.
func sbatLevelSection(previous, latest string) []byte {
	b := make([]byte, 12)
	binary.LittleEndian.PutUint32(b[4:], 8)
	binary.LittleEndian.PutUint32(b[8:], uint32(8+len(previous)+1))
	b = append(b, previous...)
	b = append(b, 0)
	b = append(b, latest...)
	return append(b, 0)
}

const sbatHeader = "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n"

func grubSBAT(gen string) []byte {
	return []byte(sbatHeader + "grub," + gen + ",Free Software Foundation,grub,2.06,https://www.gnu.org/software/grub/\ngrub.test,1,Test,grub2,2.06-1,https://example.org\n")
}

// testShim is a shim image trusting vendor, with a vendor dbx and an
// embedded SBAT level (previous grub,3; latest grub,5).
func testShim(t testing.TB, vendor *x509.Certificate, vendorDBX []efi.SignatureList) []byte {
	t.Helper()
	return longSectionNames(testPE(
		authenticodetest.Section{Name: ".text", Data: []byte{0xc3}},
		authenticodetest.Section{Name: ".sbat", Data: []byte(sbatHeader + "shim,4,UEFI shim,shim,1,https://github.com/rhboot/shim\n")},
		authenticodetest.Section{Name: "SBLVL", Data: sbatLevelSection("sbat,1,2024010900\nshim,4\ngrub,3\n", "sbat,1,2025021800\nshim,4\ngrub,5\n")},
		authenticodetest.Section{Name: "VCERT", Data: vendorCertSection(vendor.Raw, vendorDBX)},
	), map[string]string{"SBLVL": ".sbatlevel", "VCERT": ".vendor_cert"})
}

// longSectionNames gives sections names longer than 8 bytes the way the GNU
// linker does for shim: "/N" in the section header, N an offset into the
// COFF string table after the (empty) symbol table.
func longSectionNames(b []byte, rename map[string]string) []byte {
	le := binary.LittleEndian
	peOff := int(le.Uint32(b[0x3c:]))
	fh := peOff + 4
	nsec := int(le.Uint16(b[fh+2:]))
	optSize := int(le.Uint16(b[fh+16:]))
	strtab := []byte{0, 0, 0, 0}
	for i := 0; i < nsec; i++ {
		h := fh + 20 + optSize + 40*i
		name := strings.TrimRight(string(b[h:h+8]), "\x00")
		long, ok := rename[name]
		if !ok {
			continue
		}
		ref := fmt.Sprintf("/%d", len(strtab))
		copy(b[h:h+8], make([]byte, 8))
		copy(b[h:h+8], ref)
		strtab = append(append(strtab, long...), 0)
	}
	le.PutUint32(strtab, uint32(len(strtab)))
	le.PutUint32(b[fh+8:], uint32(len(b))) // PointerToSymbolTable
	le.PutUint32(b[fh+12:], 0)             // NumberOfSymbols
	return append(b, strtab...)
}

var oidModSign = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 2312, 16, 1, 2}

func TestShimVerify(t *testing.T) {
	p := newPKI(t)
	ec := authenticodetest.ECDSA()
	vendor := authenticodetest.NewCA(t, "Test Vendor CA", nil, ec)
	grubSigner := authenticodetest.NewLeaf(t, "Test Vendor grub signer", vendor, ec)
	mok := authenticodetest.NewLeaf(t, "Machine Owner Key", nil, ec)
	modsign := authenticodetest.NewLeaf(t, "Module signing key", nil, ec, authenticodetest.Template(func(c *x509.Certificate) {
		c.UnknownExtKeyUsage = []asn1.ObjectIdentifier{oidModSign}
	}))

	grub4 := testPE(authenticodetest.Section{Name: ".text", Data: []byte{0x90, 0xc3}}, authenticodetest.Section{Name: ".sbat", Data: grubSBAT("4")})
	grubNoSBAT := testPE(authenticodetest.Section{Name: ".text", Data: []byte{0x91, 0xc3}})
	grubBadSBAT := testPE(authenticodetest.Section{Name: ".text", Data: []byte{0x92, 0xc3}}, authenticodetest.Section{Name: ".sbat", Data: []byte("grub,4,only three\n")})
	grubTwoSBAT := testPE(authenticodetest.Section{Name: ".sbat", Data: grubSBAT("4")}, authenticodetest.Section{Name: ".sbat", Data: grubSBAT("4")})
	signed := signWith(t, grub4, by(grubSigner))
	grubDigest := parseImage(t, signed).Digest(crypto.SHA256)
	grubSHA1 := parseImage(t, signed).Digest(crypto.SHA1)
	byMok := signWith(t, grub4, by(mok))
	byModsign := signWith(t, grub4, by(modsign))
	byDB := signWith(t, grub4, by(p.leaf, p.inter))
	sha384 := signWith(t, grub4, authenticodetest.Options{Signer: grubSigner.Cert, Key: grubSigner.Key, Hash: crypto.SHA384})
	// The first signature's CA is in dbx, the second verifies with the
	// vendor certificate: shim allows, edk2 would refuse.
	revokedThenVendor := signWith(t, signWith(t, grub4, by(p.otherLeaf, p.other)), by(grubSigner))
	unsignedInMok := grub4

	shimImg := parseImage(t, testShim(t, vendor.Cert, hashes(efi.CertSHA256GUID, make([]byte, 32))))
	shimVendorDBX := parseImage(t, testShim(t, vendor.Cert, hashes(efi.CertSHA256GUID, grubDigest)))

	cases := []struct {
		name     string
		shim     *authenticode.Image
		img      []byte
		fw       fwSpec
		o        ShimOptions
		allowed  bool
		decision string
	}{
		{"vendor certificate", shimImg, signed, fwSpec{}, ShimOptions{}, true, "shim vendor certificate: Test Vendor CA"},
		{"vendor dbx hash", shimVendorDBX, signed, fwSpec{}, ShimOptions{}, false, "vendor dbx: SHA-256"},
		{"vendor dbx X509 of the signer", parseImage(t, testShim(t, vendor.Cert, certs(grubSigner.Cert))), signed, fwSpec{}, ShimOptions{}, false, "vendor dbx: " + grubSigner.Cert.Subject.CommonName},
		{"system dbx SHA-256", shimImg, signed, fwSpec{dbx: hashes(efi.CertSHA256GUID, grubDigest)}, ShimOptions{}, false, "dbx: SHA-256"},
		{"system dbx SHA-1", shimImg, signed, fwSpec{dbx: hashes(efi.CertSHA1GUID, grubSHA1)}, ShimOptions{}, false, "dbx: SHA-1"},
		{"MokListX hash", shimImg, signed, fwSpec{mokx: hashes(efi.CertSHA256GUID, grubDigest)}, ShimOptions{}, false, "MokListX"},
		{"dbx X509 vendor CA", shimImg, signed, fwSpec{dbx: certs(vendor.Cert)}, ShimOptions{}, false, "dbx: Test Vendor CA"},
		{"MokListX X509 vendor CA", shimImg, signed, fwSpec{mokx: certs(vendor.Cert)}, ShimOptions{}, false, "MokListX: Test Vendor CA"},
		{"dbx X509 of the signer", shimImg, signed, fwSpec{dbx: certs(grubSigner.Cert)}, ShimOptions{}, false, "dbx: " + grubSigner.Cert.Subject.CommonName},
		{"MokListX X509_SHA256 is ignored by shim", shimImg, signed, fwSpec{mokx: tbs(grubSigner.Cert, time.Time{})}, ShimOptions{}, true, "shim vendor certificate"},
		{"MokList X509_SHA256 does not allow", shimImg, byMok, fwSpec{mok: tbs(mok.Cert, time.Time{})}, ShimOptions{}, false, ""},
		{"MokList hash beats nothing but MokListX hash", shimImg, unsignedInMok, fwSpec{mok: hashes(efi.CertSHA256GUID, parseImage(t, unsignedInMok).Digest(crypto.SHA256)), mokx: hashes(efi.CertSHA256GUID, parseImage(t, unsignedInMok).Digest(crypto.SHA256))}, ShimOptions{}, false, "MokListX: SHA-256"},
		{"dbx X509_SHA256 is ignored by shim", shimImg, signed, fwSpec{dbx: tbs(grubSigner.Cert, time.Time{})}, ShimOptions{}, true, "shim vendor certificate"},
		{"db X509", shimImg, byDB, fwSpec{db: certs(p.root.Cert)}, ShimOptions{}, true, "db: Test Root CA"},
		{"db X509 with MokIgnoreDB", shimImg, byDB, fwSpec{db: certs(p.root.Cert), ignoreDB: true}, ShimOptions{}, false, ""},
		{"only the first cert of an X509 list", shimImg, byDB, fwSpec{db: []efi.SignatureList{{Type: efi.CertX509GUID, SignatureSize: uint32(16 + max(len(p.other.Cert.Raw), len(p.root.Cert.Raw))), Signatures: []efi.SignatureData{{Owner: testOwner, Data: p.other.Cert.Raw}, {Owner: testOwner, Data: p.root.Cert.Raw}}}}}, ShimOptions{}, false, ""},
		{"MokList certificate", shimImg, byMok, fwSpec{mok: certs(mok.Cert)}, ShimOptions{}, true, "MokList: Machine Owner Key"},
		{"MokList certificate with module-signing EKU", shimImg, byModsign, fwSpec{mok: certs(modsign.Cert)}, ShimOptions{}, false, ""},
		{"unsigned, hash in MokList", shimImg, unsignedInMok, fwSpec{mok: hashes(efi.CertSHA256GUID, parseImage(t, unsignedInMok).Digest(crypto.SHA256))}, ShimOptions{}, true, "MokList: hash"},
		{"unsigned, nothing", shimImg, unsignedInMok, fwSpec{}, ShimOptions{}, false, ""},
		{"SHA-384 signature", shimImg, sha384, fwSpec{}, ShimOptions{}, false, ""},
		{"dbx hit on one of two signatures", shimImg, revokedThenVendor, fwSpec{dbx: certs(p.other.Cert)}, ShimOptions{}, true, "shim vendor certificate"},
		{"SBAT below the variable's level", shimImg, signed, fwSpec{sbatLevel: "sbat,1,2099010100\ngrub,5\n"}, ShimOptions{}, false, "SBAT: grub,5"},
		{"SBAT: older variable replaced by shim's level", shimImg, signed, fwSpec{sbatLevel: "sbat,1,2021030218\ngrub,9\n"}, ShimOptions{}, true, "shim vendor certificate"},
		{"SBAT: latest policy", shimImg, signed, fwSpec{}, ShimOptions{SBATPolicy: SBATLatest}, false, "SBAT: grub,5"},
		{"missing .sbat, loaded by shim", shimImg, signWith(t, grubNoSBAT, by(grubSigner)), fwSpec{}, ShimOptions{}, false, "no .sbat"},
		{"missing .sbat, verified through the protocol", shimImg, signWith(t, grubNoSBAT, by(grubSigner)), fwSpec{}, ShimOptions{Protocol: true}, true, "shim vendor certificate"},
		{"malformed .sbat", shimImg, signWith(t, grubBadSBAT, by(grubSigner)), fwSpec{}, ShimOptions{}, false, "malformed .sbat"},
		{"two .sbat sections", shimImg, signWith(t, grubTwoSBAT, by(grubSigner)), fwSpec{}, ShimOptions{}, false, "SBAT"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fw := c.fw.build(t)
			d := ShimVerifyWith(c.shim, fw, parseImage(t, c.img), c.o)
			if d.Allowed != c.allowed {
				t.Fatalf("allowed=%v, want %v: %+v", d.Allowed, c.allowed, d)
			}
			if got := d.AuthorizedBy + d.DeniedBy; !strings.Contains(got, c.decision) {
				t.Errorf("decided by %q, want %q: %s", got, c.decision, d.Explanation)
			}
		})
	}

	// edk2 on the same two-signature image refuses it.
	fw := fwSpec{db: certs(vendor.Cert), dbx: certs(p.other.Cert)}.build(t)
	if d := fw.Verify(parseImage(t, revokedThenVendor)); d.Allowed {
		t.Errorf("edk2 allowed an image with a dbx-revoked signature: %+v", d)
	}
	// Unknown firmware: shim's own certificate still applies.
	if d := ShimVerify(shimImg, nil, parseImage(t, signed)); !d.Allowed {
		t.Errorf("unknown firmware: %+v", d)
	}
	// Secure Boot off: shim does not verify.
	if d := ShimVerify(shimImg, fwSpec{secureBootOff: true}.build(t), parseImage(t, grub4)); !d.Allowed || d.Enforced {
		t.Errorf("Secure Boot off: %+v", d)
	}
}

// TestShimReal: Debian's shim, GRUB, kernel, fallback and MokManager.
func TestShimReal(t *testing.T) {
	sh := parseImage(t, debianShims(t).dual)
	fw := firmwareFromStore(t, readArtefact(t, ovmfVars))
	for _, c := range []struct {
		rel      string
		protocol bool
		allowed  bool
		by       string
	}{
		{grubRel, false, true, "shim vendor certificate: Debian Secure Boot CA"},
		{fbRel, false, true, "shim vendor certificate: Debian Secure Boot CA"},
		{mmRel, false, true, "shim vendor certificate: Debian Secure Boot CA"},
	} {
		d := ShimVerifyWith(sh, fw, parseImage(t, deb(t, c.rel)), ShimOptions{Protocol: c.protocol})
		if d.Allowed != c.allowed || !strings.Contains(d.AuthorizedBy+d.DeniedBy, c.by) {
			t.Errorf("%s: %+v", c.rel, d)
		}
	}
	// Debian 12's kernel has no .sbat section. shim's verify_sbat_section
	// accepts that for images verified through its SHIM_LOCK protocol
	// ("SBAT is mandatory for binaries loaded by shim, but optional for
	// binaries loaded outside of shim but verified via the protocol"),
	// which is how GRUB checks the kernel; shim itself would refuse it.
	kernel := parseImage(t, readArtefact(t, kernelPath(t)))
	if _, ok := kernel.SectionData(".sbat"); ok {
		t.Log("this kernel has a .sbat section")
	}
	if d := ShimVerifyWith(sh, fw, kernel, ShimOptions{Protocol: true}); !d.Allowed {
		t.Errorf("kernel through the protocol: %+v", d)
	}
	if d := ShimVerify(sh, fw, kernel); d.Allowed {
		t.Errorf("kernel loaded by shim itself without .sbat: %+v", d)
	}
	// shim's own SBAT passes its level.
	if d := ShimSelfCheck(sh, fw, SBATAutomatic); !d.Allowed {
		t.Errorf("self check: %+v", d)
	}
}

func TestVendorCertReal(t *testing.T) {
	sh := parseImage(t, debianShims(t).dual)
	b, ok := sh.SectionData(".vendor_cert")
	if !ok {
		t.Fatal("no .vendor_cert in Debian's shim")
	}
	vc, err := ParseVendorCert(b)
	if err != nil {
		t.Fatal(err)
	}
	if vc.Cert == nil || vc.Cert.Subject.CommonName != "Debian Secure Boot CA" {
		t.Errorf("vendor certificate %v", vc.Cert)
	}
	n := 0
	for _, l := range vc.DBX {
		if l.Type != efi.CertSHA256GUID {
			t.Errorf("vendor dbx list of type %s", l.TypeName())
		}
		n += len(l.Signatures)
	}
	if n == 0 {
		t.Error("empty vendor dbx")
	}
	t.Logf("Debian shim vendor dbx: %d SHA-256 entries", n)

	for _, c := range []struct {
		name string
		b    []byte
	}{
		{"short", []byte{1, 2, 3}},
		{"authorized past end", vendorCertSection(nil, nil)[:12]},
		{"offset past end", func() []byte {
			b := vendorCertSection([]byte{0x30, 0x82, 0, 0}, nil)
			binary.LittleEndian.PutUint32(b[8:], 0xfffffff0)
			return b
		}()},
		{"not a certificate", vendorCertSection([]byte{0x30, 0x03, 1, 2, 3}, nil)},
		{"bad dbx", append(vendorCertSection(nil, nil)[:4:4], []byte{8, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}...)},
	} {
		if _, err := ParseVendorCert(c.b); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}
