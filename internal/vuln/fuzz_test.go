package vuln

import (
	"os"
	"path/filepath"
	"testing"
)

func FuzzOSVRecord(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "osv", "*.json"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b, "1:9.2p1-2+deb12u1")
		}
	}
	f.Add([]byte(`{"id":"X","affected":[{"package":{"ecosystem":"Alpine:v3.19","name":"musl"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1.2.4_git20230717-r5"}]}]}]}`), "1.2.4-r0")
	f.Fuzz(func(t *testing.T, b []byte, v string) {
		r, err := ParseRecord(b)
		if err != nil {
			return
		}
		for _, a := range r.Affected {
			for _, cmp := range []Comparator{CompareDeb, CompareRPM, compareAPK} {
				affects(a, v, cmp)
			}
		}
		CompareAPK(v, string(b[:min(len(b), 40)]))
	})
}
