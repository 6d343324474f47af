package secureboot_test

import (
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/vouch-dev/vouch/internal/nvram"
	"github.com/vouch-dev/vouch/internal/secureboot"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// editStore copies Debian's 2011-only OVMF store to a file, edits it with
// internal/nvram exactly as `vouch firmware vars` does (Open, edit, Save),
// and returns the file's new bytes.
func editStore(t *testing.T, edit func(s *nvram.Store) error) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "vm_VARS.fd")
	if err := os.WriteFile(p, secureboot.ReadArtefact(t, secureboot.OVMFVars), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := nvram.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := edit(s); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(nvram.SaveOptions{NoBackup: true}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestQEMUEditedStores boots Debian's shim variants and signed GRUB under
// OVMF (Secure Boot on) with variable stores edited by internal/nvram, and
// checks that the real firmware does what vouch's engine predicts from the
// same edited store:
//
//   - the 2011-only store with the Microsoft UEFI CA 2023 added to db boots a
//     shim signed only by the 2023 CA;
//   - the same store with that shim's Authenticode SHA-256 added to dbx
//     refuses it;
//   - Microsoft's signed DBXUpdate.bin applied to dbx (443 hashes) leaves
//     Debian 12's current shim bootable, and the firmware reads the grown dbx;
//   - the store set to profile microsoft-2023 refuses the 2011-only shim and
//     boots the 2023-only one.
func TestQEMUEditedStores(t *testing.T) {
	if testing.Short() {
		t.Skip("boots OVMF under QEMU (not in -short)")
	}
	dual, only2011, only2023 := secureboot.DebianShims(t)
	grub := secureboot.DebianGRUB(t)
	certDir := testfixtures.Data("secureboot", "certs")
	ca2023, err := nvram.ReadCertFile(filepath.Join(certDir, "db-microsoft-uefi-ca-2023.der"))
	if err != nil {
		t.Fatal(err)
	}
	addCA := func(s *nvram.Store) error {
		_, err := s.AddCerts(nvram.VarDB, []*x509.Certificate{ca2023})
		return err
	}
	stores := map[string][]byte{
		"2011+db-add-2023": editStore(t, addCA),
		"2011+db-add-2023+dbx-hash": editStore(t, func(s *nvram.Store) error {
			if err := addCA(s); err != nil {
				return err
			}
			_, err := s.AddHashes([][]byte{secureboot.ShimDigest(t, only2023)})
			return err
		}),
		"2011+apply-DBXUpdate": editStore(t, func(s *nvram.Store) error {
			upd := testfixtures.Data("secureboot", "dbx", "DBXUpdate-amd64.bin")
			b, err := os.ReadFile(upd)
			if err != nil {
				return err
			}
			c, err := s.Apply(b, upd, nvram.VarDBX)
			if err == nil && (c.Added == 0 || !c.Verification.Verified) {
				err = fmt.Errorf("DBXUpdate applied %d entries, verification %v", c.Added, c.Verification)
			}
			return err
		}),
		"set-profile-2023": editStore(t, func(s *nvram.Store) error {
			cd, err := nvram.LoadCertDir(certDir)
			if err != nil {
				return err
			}
			_, err = s.SetProfile(secureboot.ProfileMicrosoft2023, cd)
			return err
		}),
	}
	// ProfileStore, what vouch test uses, builds the same store.
	profile, err := nvram.ProfileStore(secureboot.ReadArtefact(t, secureboot.OVMFVars), secureboot.ProfileMicrosoft2023, certDir)
	if err != nil {
		t.Fatal(err)
	}
	if string(profile) != string(stores["set-profile-2023"]) {
		t.Error("ProfileStore and SetProfile+Save give different stores")
	}
	shims := map[string][]byte{"2011-only": only2011, "2023-only": only2023, "dual": dual}
	cases := []struct {
		store, shim string
		boots       bool
	}{
		{"2011+db-add-2023", "2023-only", true},
		{"2011+db-add-2023+dbx-hash", "2023-only", false},
		{"2011+apply-DBXUpdate", "dual", true},
		{"set-profile-2023", "2011-only", false},
		{"set-profile-2023", "2023-only", true},
	}
	var (
		mu   sync.Mutex
		rows []string
	)
	sem := make(chan struct{}, 2) // two cores
	start := time.Now()
	t.Run("cases", func(t *testing.T) {
		for _, tc := range cases {
			t.Run(tc.store+"/"+tc.shim, func(t *testing.T) {
				t.Parallel()
				vars := stores[tc.store]
				s, err := nvram.Parse(vars, tc.store)
				if err != nil {
					t.Fatal(err)
				}
				fw, err := secureboot.FromVars(s.Vars())
				if err != nil {
					t.Fatal(err)
				}
				paths := secureboot.BootPaths(fstest.MapFS{
					"EFI/BOOT/BOOTX64.EFI": {Data: shims[tc.shim]},
					"EFI/BOOT/grubx64.efi": {Data: grub},
				}, nil, nil)
				if len(paths) != 1 {
					t.Fatalf("%d boot paths, want 1", len(paths))
				}
				secureboot.Evaluate(paths, fw, secureboot.Options{})
				bp := paths[0]
				engine := bp.Boots != nil && *bp.Boots
				if engine != tc.boots {
					t.Errorf("engine says boots=%v, want %v: %s", engine, tc.boots, bp.Verdict)
				}

				sem <- struct{}{}
				defer func() { <-sem }()
				dir := t.TempDir()
				esp := secureboot.MakeESP(t, dir, map[string][]byte{"EFI/BOOT/BOOTX64.EFI": shims[tc.shim], "EFI/BOOT/grubx64.efi": grub})
				r := secureboot.BootOVMF(t, dir, esp, vars)
				if r.Reached != engine {
					t.Errorf("OVMF reached GRUB=%v (marker %q), engine says %v: %s\nserial: %q", r.Reached, r.Marker, engine, bp.Verdict, secureboot.Tail(r.Log))
				}
				mu.Lock()
				rows = append(rows, fmt.Sprintf("%-27s %-10s OVMF %-6v engine %-6v %q %ds", tc.store, tc.shim, r.Reached, engine, r.Marker, int(r.Elapsed.Seconds())))
				mu.Unlock()
			})
		}
	})
	t.Logf("edited stores under QEMU+OVMF, %d boots in %v:\n%s", len(rows), time.Since(start).Round(time.Second), strings.Join(rows, "\n"))
}
