package secureboot

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzDBXUpdate feeds the dbx update reader (AUTH_2 with its PKCS#7
// certificate walk, bare signature lists, the JSON list). Seeds:
// testdata/fuzz/FuzzDBXUpdate, Microsoft's DBXUpdate.bin (whole and cut) and
// a cut-down JSON list.
func FuzzDBXUpdate(f *testing.F) {
	if bin, err := os.ReadFile(filepath.Join(sharedDir, "dbx", "DBXUpdate-amd64.bin")); err == nil {
		f.Add(bin)
		f.Add(bin[:3400])
		f.Add(bin[16+24 : 16+3321]) // the bare SignedData
	}
	if b, err := os.ReadFile(filepath.Join(sharedDir, "dbx", "dbx_info_msft_latest.json")); err == nil {
		var doc map[string]any
		if json.Unmarshal(b, &doc) == nil {
			for arch, v := range doc["images"].(map[string]any) {
				if l := v.([]any); len(l) > 2 {
					doc["images"].(map[string]any)[arch] = l[:2]
				}
			}
			if small, err := json.Marshal(doc); err == nil {
				f.Add(small)
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := ParseDBXUpdate(b, "fuzz")
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz") {
				t.Fatalf("error does not name the source: %v", err)
			}
			return
		}
		for _, arch := range append([]string{""}, jsonArches...) {
			n := 0
			for _, l := range u.Lists(arch) {
				n += len(l.Signatures)
			}
			c := 0
			for _, v := range u.Counts(arch) {
				c += v
			}
			if n != c {
				t.Fatalf("%s: %d entries, counted %d", arch, n, c)
			}
		}
		fw := &Firmware{}
		fw.appendDBX(u.Lists("x64"))
	})
}

// FuzzSBATUpdate feeds the SbatLevel file reader (one payload, an exported
// variable, a history with a pick). Seeds: testdata/fuzz/FuzzSBATUpdate and
// shim's SbatLevel_Variable.txt.
func FuzzSBATUpdate(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join(sharedDir, "SbatLevel_Variable.txt")); err == nil {
		f.Add(b, "2024040900")
		f.Add(b, "latest")
		f.Add(b, "")
	}
	f.Add([]byte("sbat,1,2024010900\nshim,4\ngrub,3\n"), "")
	f.Add(append([]byte{7, 0, 0, 0}, "sbat,1,2024040900\nshim,4\n\x00"...), "")
	f.Fuzz(func(t *testing.T, b []byte, pick string) {
		u, err := ParseSBATUpdate(b, "fuzz", pick)
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz") {
				t.Fatalf("error does not name the source: %v", err)
			}
			return
		}
		if u.Level == nil || len(u.Level.Entries) == 0 || u.Level.Datestamp == "" {
			t.Fatalf("level without datestamp or entries: %+v", u)
		}
		again, err := ParseSBATLevel([]byte(u.Payload))
		if err != nil || again.Text != u.Level.Text {
			t.Fatalf("payload %q does not parse back: %v", u.Payload, err)
		}
	})
}
