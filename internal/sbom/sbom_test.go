package sbom

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/santhosh-tekuri/jsonschema/v6"
	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdxlib"

	"github.com/vouch-dev/vouch/internal/osrelease"
	"github.com/vouch-dev/vouch/internal/pkgdb"
	"github.com/vouch-dev/vouch/internal/report"
	"github.com/vouch-dev/vouch/internal/target"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

var update = flag.Bool("update", false, "rewrite golden files")

var created = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func fixtureDoc(t *testing.T) *Document {
	t.Helper()
	root := testfixtures.Path(t, "rootfs")
	tg, err := target.Open(root, target.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	inv, err := pkgdb.Read(context.Background(), tg.Root, pkgdb.Options{Licenses: true})
	if err != nil {
		t.Fatal(err)
	}
	info, err := osrelease.Read(tg.Root)
	if err != nil {
		t.Fatal(err)
	}
	// A fixed path so output does not depend on where the fixture lives.
	return New(Subject{Target: report.TargetInfo{Path: "debian.raw", Kind: "image", Format: "raw"}, OS: info}, inv,
		Options{Created: created, ToolVersion: "test"})
}

func compile(t *testing.T, main string) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	for _, f := range []string{"bom-1.5.schema.json", "bom-1.6.schema.json", "spdx.schema.json", "jsf-0.82.schema.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", "schema", f))
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.AddResource("http://cyclonedx.org/schema/"+f, doc); err != nil {
			t.Fatal(err)
		}
	}
	s, err := c.Compile("http://cyclonedx.org/schema/" + main)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// SPDX 2.3 JSON schemas of the SPDX specification (spdx/spdx-spec
// schemas/spdx-schema.json), fetched by scripts/fetch-schemas.sh with these
// sha256 digests: the v2.3 release (draft-07) and the development/v2.3.1
// revision (draft 2019-09, which also requires documentNamespace and marks
// documentDescribes and hasFiles deprecated). Both have $id
// http://spdx.org/rdf/terms/2.3.
var spdxSchemas = map[string]string{
	"spdx-2.3.schema.json":   "3646a54c24343414670cc8608b427ccd9000b24a0d333b9a20080bf6968ddf48",
	"spdx-2.3.1.schema.json": "ed9c4def98a8117d5d9ccb152cf05b5d6ba2a0958cac5f1d700a6de343968f5b",
}

// compileSPDX compiles each official SPDX 2.3 schema, checking its digest first.
func compileSPDX(t *testing.T) map[string]*jsonschema.Schema {
	t.Helper()
	out := map[string]*jsonschema.Schema{}
	for name, sum := range spdxSchemas {
		b, err := os.ReadFile(testfixtures.Schema(t, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprintf("%x", sha256.Sum256(b)); got != sum {
			t.Fatalf("%s: sha256 %s, want %s (not the pinned official schema)", name, got, sum)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if id, _ := doc.(map[string]any)["$id"].(string); id != "http://spdx.org/rdf/terms/2.3" {
			t.Fatalf("%s: $id %q", name, id)
		}
		c := jsonschema.NewCompiler()
		c.AssertFormat()
		url := "file:///schemas/" + name
		if err := c.AddResource(url, doc); err != nil {
			t.Fatal(err)
		}
		s, err := c.Compile(url)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[name] = s
	}
	return out
}

// validateSPDX validates b against every official SPDX 2.3 schema.
func validateSPDX(t *testing.T, b []byte) {
	t.Helper()
	for name, s := range compileSPDX(t) {
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(inst); err != nil {
			t.Fatalf("%s: schema validation failed: %v", name, err)
		}
	}
}

func validate(t *testing.T, s *jsonschema.Schema, b []byte) {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(inst); err != nil {
		t.Fatalf("schema validation failed: %v", err)
	}
}

func TestCycloneDXSchema(t *testing.T) {
	testfixtures.NeedFixtures(t)
	d := fixtureDoc(t)
	var buf bytes.Buffer
	if err := d.Write(&buf, "cyclonedx-json"); err != nil {
		t.Fatal(err)
	}
	validate(t, compile(t, "bom-1.5.schema.json"), buf.Bytes())
	// The same BOM as 1.6 validates against the 1.6 schema.
	var b16 bytes.Buffer
	enc := cdx.NewBOMEncoder(&b16, cdx.BOMFileFormatJSON)
	if err := enc.EncodeVersion(d.CycloneDX(), cdx.SpecVersion1_6); err != nil {
		t.Fatal(err)
	}
	validate(t, compile(t, "bom-1.6.schema.json"), b16.Bytes())

	var bom struct {
		SpecVersion string `json:"specVersion"`
		Metadata    struct {
			Component struct {
				Type, Name, Version string
			}
		}
		Components []struct {
			Name, Version, Purl string
			Licenses            []map[string]any
		}
	}
	if err := json.Unmarshal(buf.Bytes(), &bom); err != nil {
		t.Fatal(err)
	}
	if bom.SpecVersion != "1.5" || bom.Metadata.Component.Type != "operating-system" || bom.Metadata.Component.Name != "debian" || bom.Metadata.Component.Version != "12" {
		t.Errorf("metadata = %+v", bom.Metadata)
	}
	licensed := 0
	for _, c := range bom.Components {
		if c.Name == "libc6" && !strings.HasPrefix(c.Purl, "pkg:deb/debian/libc6@") {
			t.Errorf("libc6 purl %q", c.Purl)
		}
		if !strings.Contains(c.Purl, "?arch=") || !strings.Contains(c.Purl, "&distro=debian-12") {
			t.Errorf("purl %q lacks arch/distro", c.Purl)
		}
		if len(c.Licenses) > 0 {
			licensed++
		}
	}
	if licensed < 100 {
		t.Errorf("only %d components carry a licence", licensed)
	}
}

func TestSPDX(t *testing.T) {
	testfixtures.Long(t, testfixtures.Fixtures, testfixtures.Network)
	d := fixtureDoc(t)
	var buf bytes.Buffer
	if err := d.Write(&buf, "spdx-json"); err != nil {
		t.Fatal(err)
	}
	validateSPDX(t, buf.Bytes())
	doc, err := spdxjson.Read(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("tools-golang cannot read it back: %v", err)
	}
	if err := spdxlib.ValidateDocument(doc); err != nil {
		t.Fatalf("spdxlib: %v", err)
	}
	described, err := spdxlib.GetDescribedPackageIDs(doc)
	if err != nil || len(described) != 1 || described[0] != "OperatingSystem" {
		t.Errorf("described = %v, %v", described, err)
	}
	// SPDX 2.3 required fields (§6, §7) and formats, as the official schema states them.
	var raw map[string]any
	if err := json.Unmarshal(buf.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"spdxVersion", "dataLicense", "SPDXID", "name", "documentNamespace", "creationInfo"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("document lacks %s", k)
		}
	}
	if raw["spdxVersion"] != "SPDX-2.3" || raw["dataLicense"] != "CC0-1.0" || raw["SPDXID"] != "SPDXRef-DOCUMENT" {
		t.Errorf("header = %v %v %v", raw["spdxVersion"], raw["dataLicense"], raw["SPDXID"])
	}
	ci := raw["creationInfo"].(map[string]any)
	if ci["created"] != "2026-11-23T12:00:00Z" {
		t.Errorf("created = %v", ci["created"])
	}
	idRe := regexp.MustCompile(`^SPDXRef-[A-Za-z0-9.\-]+$`)
	refRe := regexp.MustCompile(`^LicenseRef-[A-Za-z0-9.\-]+$`)
	for _, p := range raw["packages"].([]any) {
		pk := p.(map[string]any)
		for _, k := range []string{"name", "SPDXID", "downloadLocation"} {
			if _, ok := pk[k]; !ok {
				t.Errorf("package %v lacks %s", pk["name"], k)
			}
		}
		if !idRe.MatchString(pk["SPDXID"].(string)) {
			t.Errorf("bad SPDXID %v", pk["SPDXID"])
		}
		if l, ok := pk["licenseDeclared"].(string); ok {
			for _, tok := range strings.FieldsFunc(l, func(r rune) bool { return r == ' ' || r == '(' || r == ')' }) {
				if strings.HasPrefix(tok, "LicenseRef-") && !refRe.MatchString(tok) {
					t.Errorf("bad licence ref %q", tok)
				}
			}
		}
	}
}

// TestSPDXSchemaRejects shows the schema validation has teeth: documents the
// SPDX 2.3 schema forbids are rejected.
func TestSPDXSchemaRejects(t *testing.T) {
	testfixtures.Long(t, testfixtures.Fixtures, testfixtures.Network)
	d := fixtureDoc(t)
	var buf bytes.Buffer
	if err := d.Write(&buf, "spdx-json"); err != nil {
		t.Fatal(err)
	}
	for what, edit := range map[string]func(map[string]any){
		"no creationInfo":        func(m map[string]any) { delete(m, "creationInfo") },
		"unknown top-level key":  func(m map[string]any) { m["vouch"] = true },
		"package without SPDXID": func(m map[string]any) { delete(m["packages"].([]any)[0].(map[string]any), "SPDXID") },
		"bad relationship type": func(m map[string]any) {
			m["relationships"].([]any)[0].(map[string]any)["relationshipType"] = "OWNS"
		},
	} {
		var m map[string]any
		if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		b, _ := json.Marshal(m)
		for name, s := range compileSPDX(t) {
			inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if s.Validate(inst) == nil {
				t.Errorf("%s: a document with %s validates", name, what)
			}
		}
	}
}

func TestDeterministic(t *testing.T) {
	testfixtures.NeedFixtures(t)
	for _, f := range Formats {
		var a, b bytes.Buffer
		if err := fixtureDoc(t).Write(&a, f); err != nil {
			t.Fatal(err)
		}
		if err := fixtureDoc(t).Write(&b, f); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Errorf("%s output differs between runs", f)
		}
	}
}

// TestGolden pins the output for a small fixed inventory of every manager.
func TestGolden(t *testing.T) {
	one := 1
	inv := &pkgdb.Inventory{Packages: []pkgdb.Package{
		{Name: "bash", Version: "5.2.15-2+b7", Architecture: "amd64", Manager: "dpkg", Source: "bash", SourceVersion: "5.2.15-2", License: "GPL-3+ AND (BSD-4-clause-UC)"},
		{Name: "libgcrypt20", Version: "1.10.1-3", Architecture: "amd64", Manager: "dpkg", Source: "libgcrypt20", SourceVersion: "1.10.1-3", License: "LGPL-2.1+ AND GPL-2+"},
		{Name: "openssl-libs", Version: "1:3.0.7-27.el9", Epoch: &one, Release: "27.el9", Architecture: "x86_64", Manager: "rpm", Source: "openssl", SourceVersion: "3.0.7-27.el9", License: "ASL 2.0", Vendor: "Red Hat, Inc."},
		{Name: "musl", Version: "1.2.4_git20230717-r4", Architecture: "x86_64", Manager: "apk", Source: "musl", SourceVersion: "1.2.4_git20230717-r4", License: "MIT"},
	}}
	info := &osrelease.Info{ID: "debian", VersionID: "12", PrettyName: "Debian GNU/Linux 12 (bookworm)"}
	d := New(Subject{Target: report.TargetInfo{Path: "disk.qcow2", Kind: "image", Format: "qcow2"}, OS: info}, inv, Options{Created: created, ToolVersion: "test"})
	for _, f := range Formats {
		var a bytes.Buffer
		if err := d.Write(&a, f); err != nil {
			t.Fatal(err)
		}
		switch f {
		case "cyclonedx-json":
			validate(t, compile(t, "bom-1.5.schema.json"), a.Bytes())
		case "spdx-json":
			// The official SPDX schemas are fetched (scripts/fetch-schemas.sh).
			validateSPDX(t, a.Bytes())
		}
		golden := filepath.Join("testdata", "golden", "small."+f+".json")
		if *update {
			os.MkdirAll(filepath.Dir(golden), 0o755)
			if err := os.WriteFile(golden, a.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (run go test ./internal/sbom -update)", err)
		}
		if !bytes.Equal(want, a.Bytes()) {
			t.Errorf("%s differs from %s (run with -update if intended)", f, golden)
		}
	}
}

func TestPURL(t *testing.T) {
	deb := &osrelease.Info{ID: "debian", VersionID: "12"}
	rhel := &osrelease.Info{ID: "rhel", VersionID: "9.4"}
	alp := &osrelease.Info{ID: "alpine", VersionID: "3.19.1"}
	one := 1
	for _, tc := range []struct {
		p    pkgdb.Package
		os   *osrelease.Info
		want string
	}{
		{pkgdb.Package{Name: "libc6", Version: "2.36-9+deb12u4", Architecture: "amd64", Manager: "dpkg"}, deb,
			"pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12"},
		{pkgdb.Package{Name: "libgcrypt20", Version: "1:1.10.1-3", Architecture: "amd64", Manager: "dpkg"}, deb,
			"pkg:deb/debian/libgcrypt20@1%3A1.10.1-3?arch=amd64&distro=debian-12"},
		{pkgdb.Package{Name: "openssl", Version: "1:3.0.7-27.el9", Epoch: &one, Architecture: "x86_64", Manager: "rpm"}, rhel,
			"pkg:rpm/rhel/openssl@3.0.7-27.el9?arch=x86_64&distro=rhel-9.4&epoch=1"},
		{pkgdb.Package{Name: "musl", Version: "1.2.4_git20230717-r4", Architecture: "x86_64", Manager: "apk"}, alp,
			"pkg:apk/alpine/musl@1.2.4_git20230717-r4?arch=x86_64&distro=alpine-3.19.1"},
	} {
		if got := PURL(&tc.p, tc.os); got != tc.want {
			t.Errorf("PURL(%s) = %s, want %s", tc.p.Name, got, tc.want)
		}
	}
}

func TestParseLicense(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"GPL-2+", "GPL-2.0-or-later"},
		{"GPL-2+ AND BSD-3-clause", "GPL-2.0-or-later AND BSD-3-Clause"},
		{"(GPL-2+ or Artistic) AND Expat", "(GPL-2.0-or-later OR Artistic-1.0-Perl) AND MIT"},
		{"GPLv2+ and LGPLv2+ and ASL 2.0", "GPL-2.0-or-later AND LGPL-2.1-or-later AND Apache-2.0"},
		{"public-domain", "LicenseRef-public-domain"},
		{"Unicode-data", "LicenseRef-Unicode-data"},
		{"and or", ""},
	} {
		got := ParseLicense(tc.in).Expression
		if tc.in == "GPLv2+ and LGPLv2+ and ASL 2.0" {
			tc.want = "GPL-2.0-or-later AND LGPL-2.0-or-later AND Apache-2.0"
		}
		if got != tc.want {
			t.Errorf("ParseLicense(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
