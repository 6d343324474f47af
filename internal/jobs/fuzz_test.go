package jobs

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/vouch-dev/vouch/internal/imagetest"
)

// FuzzTemplate feeds template documents (what PUT /v1/templates and a job's
// templateProperties carry) to the strict decoder and Resolve: an error or
// cases, never a panic; a resolved selection names only catalogue cases.
func FuzzTemplate(f *testing.F) {
	for _, s := range []string{
		`{"selections":[{"casePriority":[0]}]}`,
		`{"selections":[{"caseName":["network.*"]},{"caseName":["network.dns"],"action":"exclude"}],"retryCount":1,"testIterations":2}`,
		`{"selections":[{"caseArea":["boot"],"caseTags":["smoke"]}],"firmware":{"profile":"matrix"}}`,
		`{"selections":[{"caseName":["["]}]}`,
		`{"selections":[{}]}`,
	} {
		f.Add([]byte(s))
	}
	all := imagetest.All()
	names := map[string]bool{}
	for _, c := range all {
		names[c.Name] = true
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var p TemplateProperties
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if dec.Decode(&p) != nil {
			return
		}
		cases, err := Resolve(p, all)
		if err != nil {
			if _, ok := err.(*InputError); !ok {
				t.Fatalf("not an input error: %T %v", err, err)
			}
			return
		}
		if len(cases) == 0 {
			t.Fatal("resolved to no case without an error")
		}
		for _, c := range cases {
			if !names[c.Name] {
				t.Fatalf("case %q is not in the catalogue", c.Name)
			}
		}
	})
}
