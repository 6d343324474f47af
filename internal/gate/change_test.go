package gate_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vouch-dev/vouch/internal/gate"
	"github.com/vouch-dev/vouch/internal/gate/gatetest"
	"github.com/vouch-dev/vouch/internal/mscerts"
	"github.com/vouch-dev/vouch/internal/secureboot"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// TestLoadChangeNoFixtures reads a change from the repository's reference
// data and the built-in certificates only.
func TestLoadChangeNoFixtures(t *testing.T) {
	dir := t.TempDir()
	ca, _ := mscerts.DER("microsoft-uefi-ca-2023")
	caFile := gatetest.WriteFile(t, dir, "ca.der", ca)
	c, err := gate.LoadChange(secureboot.ChangeFiles{
		DBAdd:     []string{"microsoft-uefi-ca-2023", caFile},
		DBXUpdate: testfixtures.Data("secureboot", "dbx", "DBXUpdate-amd64.bin"),
		SBATLevel: testfixtures.Data("secureboot", "SbatLevel_Variable.txt") + "#latest",
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.DBAdd) != 2 || c.DBAdd[0].CA != "microsoft-uefi-ca-2023" || c.DBAdd[1].Source != caFile || c.DBX == nil || c.SBAT == nil || c.SBAT.Payload == "" {
		t.Fatalf("change %+v", c)
	}
	if !c.ChangesFirmware() || c.ChangesBootChain() || c.Empty() || len(c.Describe()) != 4 {
		t.Errorf("firmware %v, boot chain %v, empty %v, describe %q", c.ChangesFirmware(), c.ChangesBootChain(), c.Empty(), c.Describe())
	}
	if r := c.Revocation(); r == nil || r.DBX != c.DBX || r.SBAT != c.SBAT {
		t.Errorf("revocation %+v", r)
	}
	if c, err := gate.LoadChange(secureboot.ChangeFiles{}); err != nil || !c.Empty() {
		t.Errorf("no files: %+v %v", c, err)
	}

	notPE := gatetest.WriteFile(t, dir, "notpe.efi", []byte("MZ but not really"))
	for _, tc := range []struct {
		files secureboot.ChangeFiles
		want  string
	}{
		{secureboot.ChangeFiles{DBAdd: []string{"microsoft-uefi-ca-2099"}}, "neither a file nor a built-in certificate"},
		{secureboot.ChangeFiles{DBAdd: []string{notPE}}, "not an X.509 certificate"},
		{secureboot.ChangeFiles{DBXUpdate: notPE}, notPE},
		{secureboot.ChangeFiles{SBATLevel: filepath.Join(dir, "missing.txt")}, "missing.txt"},
		{secureboot.ChangeFiles{Shim: notPE}, "not an EFI binary"},
		{secureboot.ChangeFiles{GRUB: filepath.Join(dir, "nogrub.efi")}, "nogrub.efi"},
		{secureboot.ChangeFiles{Shim: notPE, ShimPackage: notPE}, "not both"},
		{secureboot.ChangeFiles{ShimPackage: notPE}, notPE},
	} {
		_, err := gate.LoadChange(tc.files)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.files, err, tc.want)
		}
	}
}

// TestLoadChangeShimPackage takes the shim (and the GRUB, when --grub does
// not name one) from Debian's shim-signed package.
func TestLoadChangeShimPackage(t *testing.T) {
	testfixtures.Long(t, testfixtures.Fixtures)
	dir := t.TempDir()
	deb := gatetest.ShimSignedDeb(t, dir, gatetest.Shim2023Only(t), "99.0", "xz")
	c, err := gate.LoadChange(secureboot.ChangeFiles{ShimPackage: deb, DBAdd: []string{"microsoft-uefi-ca-2023"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Shim == nil || c.ShimPackage != deb || !strings.Contains(c.Shim.Name, "shimx64.efi.signed") {
		t.Fatalf("shim %+v from %q", c.Shim, c.ShimPackage)
	}
	if got := secureboot.SignedBy(c.Shim.Image); len(got) != 1 || got[0] != "microsoft-uefi-ca-2023" {
		t.Errorf("shim signed by %v", got)
	}
	// The change judged: the 2011-only profile refuses the shim, the same
	// profile with the change's db addition boots it.
	fw, _ := secureboot.FromProfile(secureboot.ProfileMicrosoft2011)
	if d := fw.Verify(c.Shim.Image); d.Allowed {
		t.Errorf("2011 firmware allows a 2023-only shim: %+v", d)
	}
	after, _ := fw.WithChange(c, secureboot.Options{})
	if d := after.Verify(c.Shim.Image); !d.Allowed || !strings.Contains(d.AuthorizedBy, "--db-add microsoft-uefi-ca-2023") {
		t.Errorf("after the change: %+v", d)
	}
	plain := gatetest.PlainDeb(t, dir, "hello", map[string][]byte{"usr/share/doc/hello/README": []byte("hi")}, true)
	if _, err := gate.LoadChange(secureboot.ChangeFiles{ShimPackage: plain}); err == nil || !strings.Contains(err.Error(), "holds no signed shim") {
		t.Errorf("package without a shim: %v", err)
	}
}

// TestLoadChangeKernelPackage takes --kernel as the package that installs
// the kernel (a linux-image .deb; any signed PE image stands for vmlinuz),
// from disk and from memory; a package without one is an input error.
func TestLoadChangeKernelPackage(t *testing.T) {
	testfixtures.Long(t, testfixtures.Fixtures, testfixtures.Peers)
	dir := t.TempDir()
	pe := gatetest.ReadDebFile(t, "shim-helpers-amd64-signed/usr/lib/shim/mmx64.efi.signed")
	deb := gatetest.PlainDeb(t, dir, "linux-image-test", map[string][]byte{"boot/vmlinuz-9.9.9-1-amd64": pe, "boot/config-9.9.9-1-amd64": []byte("CONFIG_X=y\n")}, true)
	c, err := gate.LoadChange(secureboot.ChangeFiles{Kernel: deb})
	if err != nil || c.Kernel == nil || !strings.HasPrefix(c.Kernel.Name, "boot/vmlinuz-9.9.9-1-amd64 from linux-image-test") {
		t.Fatalf("from disk: %+v %v", c, err)
	}
	b, err := os.ReadFile(deb)
	if err != nil {
		t.Fatal(err)
	}
	c, err = gate.LoadChangeBytes(secureboot.ChangeFiles{Kernel: "k.deb"}, map[string][]byte{"k.deb": b})
	if err != nil || c.Kernel == nil {
		t.Fatalf("from memory: %+v %v", c, err)
	}
	none := gatetest.PlainDeb(t, dir, "no-kernel", map[string][]byte{"usr/share/doc/x": []byte("x")}, true)
	if _, err := gate.LoadChange(secureboot.ChangeFiles{Kernel: none}); err == nil || !strings.Contains(err.Error(), "installs no kernel image") {
		t.Errorf("no kernel: %v", err)
	}
}
