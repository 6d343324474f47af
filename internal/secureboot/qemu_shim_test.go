package secureboot

import (
	"crypto"
	"fmt"
	"github.com/vouch-dev/vouch/internal/testfixtures"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/vouch-dev/vouch/internal/authenticode"
	"github.com/vouch-dev/vouch/internal/efi"
)

// TestQEMUShimLists checks shim's own lists against the real shim: Debian's
// dual-signed shim on the removable path with Debian's signed GRUB, under
// OVMF with Debian's Microsoft-keyed store, in which the test writes shim's
// MOK variables (MokList, MokListX: non-volatile boot-services variables,
// which shim reads and mirrors at start) and dbx with the efi store writer.
// vouch's verdict on the shim stage, and the list it names, must be what shim
// does: GRUB's prompt, or shim's "Security Violation".
//
// Covered here: dbx and MokListX SHA-256 of GRUB, MokListX X509 (Debian's
// CA, shim's vendor certificate), MokListX X509_SHA256 of GRUB's signer
// (ignored by shim), and MokList SHA-256 of a GRUB whose signature is removed.
// shim's vendor dbx is compiled into shim, whose Microsoft signature then no
// longer holds, so it is checked against shim's source rules only
// (TestShimVerify), as are SHA-1 entries and the first-entry-per-list rule.
func TestQEMUShimLists(t *testing.T) {
	testfixtures.Long(t, testfixtures.QEMU)
	sh := debianShims(t)
	grub := deb(t, grubRel)
	grubImg := parseImage(t, grub)
	grubDigest := grubImg.Digest(crypto.SHA256)
	unsignedGrub, err := authenticode.RemoveSignature(grub, 0)
	if err != nil {
		t.Fatal(err)
	}
	vc, err := shimVendorCert(parseImage(t, sh.dual))
	if err != nil || vc.Cert == nil {
		t.Fatalf("Debian shim's vendor certificate: %v", err)
	}
	sigs := grubImg.Signatures()
	if len(sigs) == 0 || sigs[0].Signer == nil {
		t.Fatal("Debian's GRUB carries no signer certificate")
	}
	signer := sigs[0].Signer
	list := func(typ efi.GUID, data []byte) efi.SignatureList {
		return efi.SignatureList{Type: typ, Signatures: []efi.SignatureData{{Owner: testOwner, Data: data}}}
	}
	tbs256 := append(authenticode.TBSHash(signer, crypto.SHA256), make([]byte, 16)...)
	cases := []struct {
		name, variable string
		l              efi.SignatureList
		grub           []byte
		boots          bool
		deniedBy       string // substring of the shim stage's DeniedBy
	}{
		{"dbx SHA-256 of GRUB", "dbx", list(efi.CertSHA256GUID, grubDigest), grub, false, "dbx: SHA-256 hash of the image"},
		{"MokListX SHA-256 of GRUB", "MokListX", list(efi.CertSHA256GUID, grubDigest), grub, false, "MokListX: SHA-256 hash of the image"},
		{"MokListX X509 of shim's vendor CA", "MokListX", list(efi.CertX509GUID, vc.Cert.Raw), grub, false, "MokListX: " + vc.Cert.Subject.CommonName},
		{"MokListX X509_SHA256 of GRUB's signer (ignored)", "MokListX", list(efi.CertX509SHA256GUID, tbs256), grub, true, ""},
		{"MokList SHA-256 of an unsigned GRUB", "MokList", list(efi.CertSHA256GUID, grubDigest), unsignedGrub, true, ""},
	}
	var (
		mu   sync.Mutex
		rows []string
	)
	start := time.Now()
	t.Run("boots", func(t *testing.T) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				s, err := efi.ParseVarStore(readArtefact(t, ovmfVars))
				if err != nil {
					t.Fatal(err)
				}
				if c.variable == "dbx" {
					err = s.AppendSignatureList("dbx", efi.ImageSecurityDatabaseGUID, c.l)
				} else {
					err = s.Set(efi.Variable{Name: c.variable, GUID: efi.ShimLockGUID, Attributes: efi.NonVolatile | efi.BootServiceAccess, Data: efi.MarshalSignatureLists([]efi.SignatureList{c.l})})
				}
				if err != nil {
					t.Fatal(err)
				}
				vars := s.Bytes()
				files := map[string][]byte{"EFI/BOOT/BOOTX64.EFI": sh.dual, "EFI/BOOT/grubx64.efi": c.grub}
				esp := fstest.MapFS{}
				for p, b := range files {
					esp[p] = &fstest.MapFile{Data: b}
				}
				paths := BootPaths(esp, nil, nil)
				if len(paths) != 1 || len(paths[0].Stages) < 2 {
					t.Fatalf("boot paths %+v", paths)
				}
				Evaluate(paths, firmwareFromStore(t, vars), Options{})
				bp := paths[0]
				vouch := bp.Boots != nil && *bp.Boots
				d := bp.Stages[1].Decision
				if d == nil {
					t.Fatalf("no shim decision: %s", bp.Verdict)
				}
				if vouch != c.boots || d.Allowed != c.boots || !strings.Contains(d.DeniedBy, c.deniedBy) {
					t.Errorf("vouch: boots %v, shim stage allowed %v denied by %q; want boots %v, denied by %q: %s", vouch, d.Allowed, d.DeniedBy, c.boots, c.deniedBy, d.Explanation)
				}
				dir := t.TempDir()
				r := bootOVMF(t, dir, makeESP(t, dir, files), vars)
				if r.reached != vouch {
					t.Errorf("OVMF+shim %s (marker %q), vouch %s: %s\nserial: %q", boots(r.reached), r.marker, boots(vouch), bp.Verdict, tail([]byte(r.log)))
				}
				mu.Lock()
				rows = append(rows, fmt.Sprintf("%-48s shim %-6s vouch %-6s %q %q %ds", c.name, boots(r.reached), boots(vouch), d.DeniedBy, r.marker, int(r.elapsed.Seconds())))
				mu.Unlock()
			})
		}
	})
	sort.Strings(rows)
	t.Logf("shim's lists under QEMU+OVMF, %d boots in %v:\n%s", len(rows), time.Since(start).Round(time.Second), strings.Join(rows, "\n"))
}
