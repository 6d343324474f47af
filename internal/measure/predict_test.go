package measure_test

import (
	"bytes"
	"crypto/x509"
	"github.com/vouch-dev/vouch/internal/testfixtures"
	"os"
	"strings"
	"testing"

	"github.com/vouch-dev/vouch/internal/authenticode"
	"github.com/vouch-dev/vouch/internal/efi"
	"github.com/vouch-dev/vouch/internal/gate/gatetest"
	"github.com/vouch-dev/vouch/internal/measure"
	"github.com/vouch-dev/vouch/internal/mscerts"
	"github.com/vouch-dev/vouch/internal/nvram"
)

func realLog(t *testing.T) *measure.Log {
	t.Helper()
	b, err := os.ReadFile("testdata/ovmf-swtpm-debian12.log")
	if err != nil {
		t.Fatal(err)
	}
	lg, err := measure.Parse(b, "ovmf-swtpm-debian12.log")
	if err != nil {
		t.Fatal(err)
	}
	return lg
}

func mustPE(t *testing.T, b []byte) *authenticode.Image {
	t.Helper()
	img, err := authenticode.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func changed(p *measure.Prediction) (pcr4, pcr7 bool) { return p.Changed(4), p.Changed(7) }

// TestPredictOffline predicts each change from the real log (Debian's
// dual-signed shim under Debian's Microsoft-keyed OVMF store) and checks
// what moves and why; TestSwtpmOracle checks the values against a TPM.
func TestPredictOffline(t *testing.T) {
	testfixtures.Long(t, testfixtures.Fixtures)
	lg := realLog(t)
	dual := mustPE(t, gatetest.DualShim(t))
	only2023 := mustPE(t, gatetest.Shim2023Only(t))
	inst := measure.Installed{Shim: dual}
	ca2023, err := mscerts.Read("microsoft-uefi-ca-2023")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("db gains the 2023 CA", func(t *testing.T) {
		p, err := measure.Predict(lg, measure.Change{DBAdd: []*x509.Certificate{ca2023}}, inst)
		if err != nil {
			t.Fatal(err)
		}
		if c4, c7 := changed(p); c4 || !c7 || len(p.Changes) != 1 || !strings.HasPrefix(p.Changes[0].What, "db: 2 entries, then 3") {
			t.Fatalf("PCR 4 %v, PCR 7 %v, changes %+v", c4, c7, p.Changes)
		}
		// The db the prediction hashes is the db nvram writes into the
		// store (the same append, two code paths).
		s, err := nvram.Parse(gatetest.Store2011(t), "OVMF_VARS_4M.ms.fd")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.AddCerts(nvram.VarDB, []*x509.Certificate{ca2023}); err != nil {
			t.Fatal(err)
		}
		v, _ := s.Vars().Get("db", efi.ImageSecurityDatabaseGUID)
		got := p.Changes[0].Data
		if len(got) < 32+4 || !bytes.Equal(got[len(got)-len(v.Data):], v.Data) || !bytes.Equal(got[:16], efi.ImageSecurityDatabaseGUID[:]) {
			t.Errorf("predicted db event data (%d bytes) does not end with the db nvram writes (%d bytes)", len(got), len(v.Data))
		}
		if !strings.Contains(strings.Join(p.Notes, " "), "stays authorised by db entry Microsoft Corporation UEFI CA 2011") {
			t.Errorf("notes %v: the dual-signed shim keeps its 2011 authority (signature 1 is tried first)", p.Notes)
		}
	})

	t.Run("2023-only shim on a 2011-only db is refused", func(t *testing.T) {
		p, err := measure.Predict(lg, measure.Change{Shim: only2023}, inst)
		if err != nil {
			t.Fatal(err)
		}
		if p.Refused == "" {
			t.Errorf("want a refusal, got %+v", p)
		}
	})

	t.Run("2023-only shim with the 2023 CA added", func(t *testing.T) {
		p, err := measure.Predict(lg, measure.Change{DBAdd: []*x509.Certificate{ca2023}, Shim: only2023}, inst)
		if err != nil {
			t.Fatal(err)
		}
		var auth bool
		for _, c := range p.Changes {
			auth = auth || strings.Contains(c.What, "authority for shim: db entry Microsoft UEFI CA 2023")
		}
		if !auth || p.Refused != "" {
			t.Errorf("changes %+v refused %q: want the authority to move to the 2023 CA", p.Changes, p.Refused)
		}
		if p.Changed(4) {
			t.Error("removing a signature changed shim's Authenticode digest (PCR 4)")
		}
	})

	t.Run("new kernel", func(t *testing.T) {
		kernel := mustPE(t, gatetest.ReadDebFile(t, "shim-helpers-amd64-signed/usr/lib/shim/mmx64.efi.signed"))
		p, err := measure.Predict(lg, measure.Change{Kernel: kernel}, inst)
		if err != nil {
			t.Fatal(err)
		}
		if c4, c7 := changed(p); !c4 || c7 || len(p.Changes) != 2 {
			t.Errorf("PCR 4 %v, PCR 7 %v, changes %+v: want the two kernel measurements", c4, c7, p.Changes)
		}
	})

	t.Run("older SbatLevel", func(t *testing.T) {
		p, err := measure.Predict(lg, measure.Change{SBATLevel: []byte("sbat,1,2023012900\nshim,2\ngrub,3\n")}, inst)
		if err != nil {
			t.Fatal(err)
		}
		if p.Changed(7) || !strings.Contains(strings.Join(p.Notes, " "), "shim keeps the variable") {
			t.Errorf("an older level changed PCR 7: %+v", p)
		}
	})

	t.Run("newer SbatLevel", func(t *testing.T) {
		p, err := measure.Predict(lg, measure.Change{SBATLevel: []byte("sbat,1,2025051000\nshim,4\ngrub,5\ngrub.proxmox,2\n")}, inst)
		if err != nil {
			t.Fatal(err)
		}
		if !p.Changed(7) || p.Changed(4) {
			t.Errorf("newer level: %+v", p)
		}
	})

	t.Run("empty change", func(t *testing.T) {
		p, err := measure.Predict(lg, measure.Change{}, inst)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range p.PCRs {
			if v.Changed || !bytes.Equal(v.Old, v.New) {
				t.Errorf("nothing changed, yet %+v", v)
			}
		}
		if len(p.PCRs) != 8 {
			t.Errorf("%d PCR values, want PCR 4 and 7 in 4 banks", len(p.PCRs))
		}
	})
}
