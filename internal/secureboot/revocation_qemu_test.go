package secureboot

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/vouch-dev/vouch/internal/efi"
)

// TestRevocationQEMU checks revocation verdicts against the real firmware:
// vouch judges an update on Debian's removable-media path (dual-signed shim,
// signed GRUB) under Debian's Microsoft-keyed OVMF store, then the update is
// written into the store with the efi store writer and OVMF boots it with
// Secure Boot on. Three updates: Microsoft's published dbx (still boots), a
// dbx revoking the Microsoft Corporation UEFI CA 2011 certificate (edk2
// refuses the dual-signed shim although its 2023 signature is not revoked),
// and an SbatLevel with grub,6 (shim refuses Debian's grub,5).
func TestRevocationQEMU(t *testing.T) {
	if testing.Short() {
		t.Skip("boots OVMF under QEMU (not in -short)")
	}
	sh := debianShims(t).dual
	grub := deb(t, grubRel)
	files := map[string][]byte{"EFI/BOOT/BOOTX64.EFI": sh, "EFI/BOOT/grubx64.efi": grub}
	esp := fstest.MapFS{}
	for p, b := range files {
		esp[p] = &fstest.MapFile{Data: b}
	}
	base := readArtefact(t, ovmfVars)
	isdb := efi.ImageSecurityDatabaseGUID

	realDBX, err := ReadDBXUpdate(dbxFile("DBXUpdate-amd64.bin"))
	if err != nil {
		t.Fatal(err)
	}
	ca2011 := readCert(t, "db-microsoft-uefi-ca-2011.der")
	sum := sha1.Sum(ca2011.Raw)
	doc := realJSON(t)
	doc["certificates"] = []any{map[string]any{
		"value": "ca2011.der", "subjectName": "CN = Microsoft Corporation UEFI CA 2011", "issuerName": "CN = Microsoft Corporation Third Party Marketplace Root",
		"thumbprint": hex.EncodeToString(sum[:]), "description": "test", "dateOfAddition": "2026-07-01"}}
	dir := t.TempDir()
	listPath := filepath.Join(dir, "list.json")
	b, _ := json.Marshal(doc)
	if err := os.WriteFile(listPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca2011.der"), ca2011.Raw, 0o644); err != nil {
		t.Fatal(err)
	}
	certDBX, err := ReadDBXUpdate(listPath)
	if err != nil {
		t.Fatal(err)
	}
	level, err := ParseSBATUpdate([]byte("sbat,1,2026010100\nshim,4\ngrub,6\n"), "grub6.txt", "")
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name  string
		rev   Revocation
		apply func(s *efi.VarStore) error
	}{
		{"Microsoft's DBXUpdate", Revocation{DBX: realDBX}, func(s *efi.VarStore) error {
			for _, l := range realDBX.Lists("") {
				if err := s.AppendSignatureList("dbx", isdb, l); err != nil {
					return err
				}
			}
			return nil
		}},
		{"dbx revokes the 2011 UEFI CA", Revocation{DBX: certDBX}, func(s *efi.VarStore) error {
			return s.AppendSignatureList("dbx", isdb, certList(ca2011.Raw))
		}},
		{"SbatLevel with grub 6", Revocation{SBAT: level}, func(s *efi.VarStore) error {
			return s.Set(efi.Variable{Name: "SbatLevel", GUID: efi.ShimLockGUID, Attributes: efi.NonVolatile | efi.BootServiceAccess, Data: []byte(level.Payload)})
		}},
	}
	var table strings.Builder
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fw := firmwareFromStore(t, base)
			paths := BootPaths(esp, nil, nil)
			Evaluate(paths, fw, Options{})
			imp, err := AnalyzeRevocation(esp, paths, fw, Options{}, c.rev)
			if err != nil {
				t.Fatal(err)
			}
			s, err := efi.ParseVarStore(base)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.apply(s); err != nil {
				t.Fatal(err)
			}
			// The store as written predicts what the update predicted.
			direct := BootPaths(esp, nil, nil)
			Evaluate(direct, firmwareFromStore(t, s.Bytes()), Options{})
			if direct[0].booted() != imp.BootsAfter {
				t.Errorf("the written store: boots %v; the update's impact: %v", direct[0].booted(), imp.BootsAfter)
			}
			d := t.TempDir()
			r := bootOVMF(t, d, makeESP(t, d, files), s.Bytes())
			if r.reached != imp.BootsAfter {
				t.Errorf("OVMF %s (marker %q), vouch says boots after: %v: %s\nserial: %q",
					map[bool]string{true: "reached GRUB", false: "refused"}[r.reached], r.marker, imp.BootsAfter, imp.Verdict, tail([]byte(r.log)))
			}
			table.WriteString(c.name + ": OVMF " + boots(r.reached) + " (" + r.marker + ", " + r.elapsed.Round(time.Second).String() + "), vouch " + boots(imp.BootsAfter) + ", revoked " + strings.Join(imp.Revoked, " ") + "\n")
		})
	}
	t.Log("\n" + table.String())
}
