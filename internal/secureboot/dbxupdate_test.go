package secureboot

import (
	"bytes"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// TestDBXJSONAgreesWithSchema: the JSON list reader accepts and refuses what
// Microsoft's HashesJsonSchema.json (format assertions on) accepts and
// refuses, on the real list and on mutations of each rule of the schema.
func TestDBXJSONAgreesWithSchema(t *testing.T) {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	schemaDoc, err := jsonschema.UnmarshalJSON(bytes.NewReader(readArtefact(t, dbxFile("HashesJsonSchema.json"))))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddResource("HashesJsonSchema.json", schemaDoc); err != nil {
		t.Fatal(err)
	}
	schema, err := c.Compile("HashesJsonSchema.json")
	if err != nil {
		t.Fatal(err)
	}
	first := func(d map[string]any, k string) map[string]any { return d[k].([]any)[0].(map[string]any) }
	img := func(d map[string]any, arch string) map[string]any {
		return d["images"].(map[string]any)[arch].([]any)[0].(map[string]any)
	}
	cases := []struct {
		name   string
		mutate func(d map[string]any)
		valid  bool
	}{
		{"as published", func(map[string]any) {}, true},
		{"extra member", func(d map[string]any) { img(d, "x64")["note"] = "anything" }, true},
		{"empty arrays", func(d map[string]any) { d["certificates"], d["svns"] = []any{}, []any{} }, true},
		{"no images", func(d map[string]any) { delete(d, "images") }, false},
		{"no certificates", func(d map[string]any) { delete(d, "certificates") }, false},
		{"no ia32", func(d map[string]any) { delete(d["images"].(map[string]any), "ia32") }, false},
		{"images not an object", func(d map[string]any) { d["images"] = "x" }, false},
		{"svns not an array", func(d map[string]any) { d["svns"] = map[string]any{} }, false},
		{"image not an object", func(d map[string]any) { d["images"].(map[string]any)["arm"] = []any{1} }, false},
		{"hashType SHA1", func(d map[string]any) { img(d, "aarch64")["hashType"] = "SHA1" }, false},
		{"no signingAuthority", func(d map[string]any) { delete(img(d, "ia32"), "signingAuthority") }, false},
		{"flatHash number", func(d map[string]any) { img(d, "x64")["flatHash"] = 1 }, false},
		{"image date", func(d map[string]any) { img(d, "arm")["dateOfAddition"] = "2018-13-01" }, false},
		{"certificate without thumbprint", func(d map[string]any) { delete(first(d, "certificates"), "thumbprint") }, false},
		{"certificate date", func(d map[string]any) { first(d, "certificates")["dateOfAddition"] = "yesterday" }, false},
		{"svn without guid", func(d map[string]any) { delete(first(d, "svns"), "guid") }, false},
		{"svn version number", func(d map[string]any) { first(d, "svns")["version"] = 9 }, false},
		{"svn date", func(d map[string]any) { first(d, "svns")["dateOfLastChange"] = "2026-02-30" }, false},
	}
	for _, tc := range cases {
		doc := realJSON(t)
		tc.mutate(doc)
		b := marshal(t, doc)
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		schemaOK := schema.Validate(inst) == nil
		_, err = ParseDBXUpdate(b, "list.json")
		if schemaOK != tc.valid || (err == nil) != tc.valid {
			t.Errorf("%s: schema valid %v, vouch error %v; want valid %v", tc.name, schemaOK, err, tc.valid)
		}
	}
}
