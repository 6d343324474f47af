package secureboot

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/vouch-dev/vouch/internal/efi"
	"github.com/vouch-dev/vouch/internal/mscerts"

	"github.com/vouch-dev/vouch/internal/testfixtures"
)

func readVarDir(t testing.TB, name string) *efi.VarSet {
	t.Helper()
	dir := filepath.Join(sharedDir, name)
	vs, err := efi.ReadVarDir(os.DirFS(dir), dir)
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

// TestFromVarsEfivars reads a real efivarfs dump of an AMI firmware with
// shim's variables (rhboot/shim test-data/efivars-1).
func TestFromVarsEfivars(t *testing.T) {
	fw, err := FromVars(readVarDir(t, "efivars-shim-test-data-1"))
	if err != nil {
		t.Fatal(err)
	}
	if !fw.SecureBoot || fw.SetupMode || !fw.Enforcing() {
		t.Errorf("SecureBoot=%v SetupMode=%v", fw.SecureBoot, fw.SetupMode)
	}
	for _, id := range []string{CAUEFI2011, "microsoft-windows-production-pca-2011"} {
		if !fw.TrustsCA(id) {
			t.Errorf("db lacks %s: %v", id, fw.DBCAs)
		}
	}
	if !slices.Contains(fw.KEKCAs, "microsoft-kek-ca-2011") {
		t.Errorf("KEK CAs %v", fw.KEKCAs)
	}
	if len(fw.DBX) == 0 || len(fw.PK) == 0 || len(fw.DBDefault) == 0 {
		t.Errorf("dbx %d, PK %d, dbDefault %d lists", len(fw.DBX), len(fw.PK), len(fw.DBDefault))
	}
	if fw.SbatLevelName != "SbatLevel" || string(fw.SbatLevel) != "sbat,1,2021030218\n" {
		t.Errorf("SbatLevel %s %q", fw.SbatLevelName, fw.SbatLevel)
	}
	if len(fw.MokList) == 0 {
		t.Error("MokList not read")
	}
	if want := []uint16{0, 1, 2, 3, 4, 5}; !reflect.DeepEqual(fw.BootOrder, want) {
		t.Errorf("BootOrder %v, want %v", fw.BootOrder, want)
	}
	if len(fw.BootEntries) != 7 {
		t.Errorf("%d boot entries, want 7", len(fw.BootEntries))
	}
	if len(fw.Warnings) != 0 {
		t.Errorf("warnings: %v", fw.Warnings)
	}
	s := fw.Summarize()
	if s.DBX["SHA256"] == 0 || len(s.DB) == 0 || len(s.BootOrder) != 6 {
		t.Errorf("summary %+v", s)
	}
}

// TestFromVarsEfivarsNoModes: the efivars-0 dump has no SecureBoot, SetupMode
// or PK; the state is derived as edk2 derives it (setup mode: nothing
// enforced).
func TestFromVarsEfivarsNoModes(t *testing.T) {
	fw, err := FromVars(readVarDir(t, "efivars-shim-test-data-0"))
	if err != nil {
		t.Fatal(err)
	}
	if !fw.SetupMode || fw.SecureBoot || fw.Enforcing() {
		t.Errorf("SecureBoot=%v SetupMode=%v, want setup mode", fw.SecureBoot, fw.SetupMode)
	}
	if !fw.TrustsCA(CAUEFI2011) {
		t.Errorf("db CAs %v", fw.DBCAs)
	}
}

// TestFromVarsStore reads Debian's OVMF store, which holds neither SecureBoot
// nor SetupMode (they are volatile): PK present and SecureBootEnable=1 make
// Secure Boot on in user mode, as AuthVariableLib decides at start-up.
func TestFromVarsStore(t *testing.T) {
	testfixtures.Long(t, testfixtures.OVMF)
	fw := firmwareFromStore(t, readArtefact(t, ovmfVars))
	if !fw.SecureBoot || fw.SetupMode {
		t.Errorf("SecureBoot=%v SetupMode=%v", fw.SecureBoot, fw.SetupMode)
	}
	if want := []string{"microsoft-windows-production-pca-2011", CAUEFI2011}; !reflect.DeepEqual(fw.DBCAs, want) {
		t.Errorf("db CAs %v, want %v", fw.DBCAs, want)
	}
	if want := []string{"microsoft-kek-ca-2011"}; !reflect.DeepEqual(fw.KEKCAs, want) {
		t.Errorf("KEK CAs %v, want %v", fw.KEKCAs, want)
	}
	if fw.SbatLevel != nil || len(fw.MokList) != 0 {
		t.Error("unexpected shim variables in OVMF's store")
	}
	// The 2023 variant.
	fw = firmwareFromStore(t, deriveStore(t, store2023, nil))
	if want := []string{"windows-uefi-ca-2023", CAUEFI2023}; !reflect.DeepEqual(fw.DBCAs, want) {
		t.Errorf("2023 store db CAs %v, want %v", fw.DBCAs, want)
	}
	// SecureBootEnable=0 turns enforcement off.
	s, err := efi.ParseVarStore(readArtefact(t, ovmfVars))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Set(efi.Variable{Name: "SecureBootEnable", GUID: secureBootEnableGUID, Attributes: efi.NonVolatile | efi.BootServiceAccess, Data: []byte{0}}); err != nil {
		t.Fatal(err)
	}
	if fw = firmwareFromStore(t, s.Bytes()); fw.SecureBoot || fw.Enforcing() {
		t.Error("SecureBootEnable=0 still enforces")
	}
	// Without PK: setup mode.
	if err := s.Delete("PK", efi.GlobalVariableGUID); err != nil {
		t.Fatal(err)
	}
	if fw = firmwareFromStore(t, s.Bytes()); !fw.SetupMode {
		t.Error("no PK but not setup mode")
	}
}

func TestFromVarsErrors(t *testing.T) {
	bad := []efi.Variable{{Name: "db", GUID: efi.ImageSecurityDatabaseGUID, Attributes: 7, Data: []byte{1, 2, 3}}}
	if _, err := FromVars(efi.NewVarSet("bad", bad)); err == nil || !strings.Contains(err.Error(), "db") {
		t.Errorf("malformed db: %v", err)
	}
	// A malformed KEK or MokList is a warning, not an error.
	warn := []efi.Variable{
		{Name: "KEK", GUID: efi.GlobalVariableGUID, Attributes: 7, Data: []byte{1, 2, 3}},
		{Name: "MokListRT", GUID: efi.ShimLockGUID, Attributes: 6, Data: []byte{9}},
		{Name: "BootOrder", GUID: efi.GlobalVariableGUID, Attributes: 7, Data: []byte{1}},
	}
	fw, err := FromVars(efi.NewVarSet("warn", warn))
	if err != nil {
		t.Fatal(err)
	}
	if len(fw.Warnings) != 3 {
		t.Errorf("warnings %v", fw.Warnings)
	}
}

func TestProfiles(t *testing.T) {
	for _, name := range Profiles() {
		fw, err := FromProfile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !fw.Enforcing() || fw.SbatLevel != nil || len(fw.DBX) != 0 {
			t.Errorf("%s: %+v", name, fw)
		}
		if got := len(fw.DBEntries()); got != len(fw.DBCAs) {
			t.Errorf("%s: %d db entries for %d CAs", name, got, len(fw.DBCAs))
		}
		// Each db entry is the built-in certificate of its CA (mscerts),
		// described by its name and ID.
		for i, e := range fw.db {
			der, ok := mscerts.DER(fw.DBCAs[i])
			if !ok || e.cert == nil || !bytes.Equal(e.cert.Raw, der) || e.ca != fw.DBCAs[i] {
				t.Errorf("%s: db entry %d is not the built-in %s", name, i, fw.DBCAs[i])
			}
			if want := "db (profile " + name + "): " + CAName(fw.DBCAs[i]) + " (" + fw.DBCAs[i] + ")"; e.String() != want {
				t.Errorf("%s: entry %q, want %q", name, e.String(), want)
			}
		}
	}
}
