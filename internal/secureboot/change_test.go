package secureboot_test

import (
	"testing"

	"github.com/vouch-dev/vouch/internal/mscerts"
	"github.com/vouch-dev/vouch/internal/secureboot"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// TestWithChange applies every firmware part of a change to a copy and
// leaves the original alone.
func TestWithChange(t *testing.T) {
	ca, _ := mscerts.Lookup("microsoft-uefi-ca-2023")
	dbx, err := secureboot.ReadDBXUpdate(testfixtures.Data("secureboot", "dbx", "DBXUpdate-amd64.bin"))
	if err != nil {
		t.Fatal(err)
	}
	sbat, err := secureboot.ParseSBATUpdateArg(testfixtures.Data("secureboot", "SbatLevel_Variable.txt") + "#latest")
	if err != nil {
		t.Fatal(err)
	}
	fw, _ := secureboot.FromProfile(secureboot.ProfileMicrosoft2011)
	c := &secureboot.Change{DBAdd: []secureboot.DBCert{secureboot.NewDBCert("microsoft-uefi-ca-2023", ca)}, DBX: dbx, SBAT: sbat}
	after, o := fw.WithChange(c, secureboot.Options{})
	if !after.TrustsCA(secureboot.CAUEFI2023) || fw.TrustsCA(secureboot.CAUEFI2023) {
		t.Errorf("db: after trusts 2023 %v, before %v", after.TrustsCA(secureboot.CAUEFI2023), fw.TrustsCA(secureboot.CAUEFI2023))
	}
	if n := len(after.DBX); n == 0 || len(fw.DBX) != 0 {
		t.Errorf("dbx: %d lists after, %d before", n, len(fw.DBX))
	}
	if string(after.SbatLevel) != sbat.Payload || fw.SbatLevel != nil || o.SBATPolicy != secureboot.SBATAutomatic {
		t.Errorf("SbatLevel after %q, before %q, policy %v", after.SbatLevel, fw.SbatLevel, o.SBATPolicy)
	}
	latest, _ := secureboot.ParseSBATUpdateArg("latest")
	if _, o := fw.WithChange(&secureboot.Change{SBAT: latest}, secureboot.Options{}); o.SBATPolicy != secureboot.SBATLatest {
		t.Errorf("--sbat-level latest: policy %v", o.SBATPolicy)
	}
	if same, _ := fw.WithChange(&secureboot.Change{}, secureboot.Options{}); same != fw {
		t.Errorf("an empty change copied the firmware")
	}
	var none *secureboot.Firmware
	if got, _ := none.WithChange(c, secureboot.Options{}); got != nil {
		t.Errorf("no firmware: %v", got)
	}
}
