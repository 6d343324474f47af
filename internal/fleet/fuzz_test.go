package fleet_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/vouch-dev/vouch/internal/fleet"
)

// FuzzDecodeReport: a report from the network never panics the server;
// what decodes and validates has state documents that name only what the
// report names.
func FuzzDecodeReport(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "fuzz", "reports", "*.json"))
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"hostname":"h","esp":[{"path":"EFI/BOOT/BOOTX64.EFI","digest":"` + fleet.Digest([]byte("x")) + `","size":1}]}`))
	f.Add([]byte(`{"hostname":"h","firmware":{"vars":[{"name":"db","guid":"d719b2cb-3d3a-4596-a3bc-dad00e67656f","attributes":39,"digest":"` + fleet.Digest(nil) + `"}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := fleet.DecodeReport(b)
		if err != nil {
			return
		}
		if r.Validate() != nil {
			return
		}
		fwD, fwDoc, chD, chDoc := r.StateDocs()
		if (fwDoc == nil) != (r.Firmware == nil) || chD != fleet.Digest(chDoc) || (fwDoc != nil && fwD != fleet.Digest(fwDoc)) {
			t.Fatalf("state documents: %s %s", fwD, chD)
		}
		var back fleet.FirmwareState
		if fwDoc != nil && (json.Unmarshal(fwDoc, &back) != nil || len(back.Vars) != len(r.Firmware.Vars)) {
			t.Fatal("firmware state document does not round-trip")
		}
		for _, d := range r.Needs() {
			if !fleet.ValidDigest(d) {
				t.Fatalf("needs an invalid digest %q", d)
			}
		}
	})
}

// FuzzParseSelector: host selectors from the command line and the API.
func FuzzParseSelector(f *testing.F) {
	for _, s := range []string{"platform=azure,status=only2011", "id=a,id=b", "=", ",,", "hostname=web,release=debian-12"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fleet.ParseSelector(s)
	})
}
