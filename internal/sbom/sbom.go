// Package sbom writes the installed packages of a target as a software bill of
// materials: SPDX 2.3 JSON (github.com/spdx/tools-golang) or CycloneDX 1.5 JSON
// (github.com/CycloneDX/cyclonedx-go). Each package carries its package URL and
// the licence it declares; the image itself (OS name and version, the target
// path and image format) is the described package (SPDX) or the metadata
// component (CycloneDX). Output is deterministic for a given inventory and
// creation time: identifiers and the serial number derive from the content.
package sbom

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx/v2/common"
	spdx "github.com/spdx/tools-golang/spdx/v2/v2_3"

	"github.com/vouch-dev/vouch/internal/osrelease"
	"github.com/vouch-dev/vouch/internal/pkgdb"
	"github.com/vouch-dev/vouch/internal/report"
)

// Formats are the SBOM formats Write knows.
var Formats = []string{"spdx-json", "cyclonedx-json"}

// Subject is what the SBOM describes.
type Subject struct {
	Target report.TargetInfo
	OS     *osrelease.Info // nil when the root has no os-release
}

// Options change the output.
type Options struct {
	// Created is the document's creation time (UTC, second precision).
	Created     time.Time
	ToolVersion string
}

// Document is an SBOM ready to be written in either format.
type Document struct {
	subject Subject
	opts    Options
	pkgs    []component
	id      string // content hash, hex
}

type component struct {
	pkg     *pkgdb.Package
	purl    string
	ref     string // unique: bom-ref / SPDX id suffix
	license License
}

// New builds the SBOM of inv.
func New(subject Subject, inv *pkgdb.Inventory, opts Options) *Document {
	d := &Document{subject: subject, opts: opts}
	d.opts.Created = opts.Created.UTC().Truncate(time.Second)
	if d.opts.ToolVersion == "" {
		d.opts.ToolVersion = "dev"
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00", subject.Target.Path, subject.Target.Format, d.opts.Created.Format(time.RFC3339))
	seen := map[string]int{}
	for i := range inv.Packages {
		p := &inv.Packages[i]
		c := component{pkg: p, purl: PURL(p, subject.OS), license: ParseLicense(p.License)}
		c.ref = c.purl
		if n := seen[c.purl]; n > 0 {
			c.ref = fmt.Sprintf("%s#%d", c.purl, n)
		}
		seen[c.purl]++
		d.pkgs = append(d.pkgs, c)
		fmt.Fprintf(h, "%s\x00%s\x00", c.ref, p.License)
	}
	d.id = hex.EncodeToString(h.Sum(nil))
	return d
}

// Write renders the document in format ("spdx-json" or "cyclonedx-json").
func (d *Document) Write(w io.Writer, format string) error {
	switch format {
	case "spdx-json":
		return spdxjson.Write(d.SPDX(), w, spdxjson.Indent("  "), spdxjson.EscapeHTML(false))
	case "cyclonedx-json":
		enc := cdx.NewBOMEncoder(w, cdx.BOMFileFormatJSON)
		enc.SetPretty(true)
		enc.SetEscapeHTML(false)
		return enc.EncodeVersion(d.CycloneDX(), cdx.SpecVersion1_5)
	}
	return fmt.Errorf("sbom: unknown format %q (want %s)", format, strings.Join(Formats, " or "))
}

// name is the subject's display name: the OS, else the target's base name.
func (d *Document) name() string {
	if d.subject.OS != nil && d.subject.OS.PrettyName != "" {
		return d.subject.OS.PrettyName
	}
	if d.subject.Target.Path != "" {
		return filepath.Base(d.subject.Target.Path)
	}
	return "target"
}

func (d *Document) osVersion() string {
	if d.subject.OS == nil {
		return ""
	}
	return d.subject.OS.VersionID
}

func (d *Document) describe() string {
	t := d.subject.Target
	parts := []string{"target " + t.Path, "kind " + t.Kind}
	if t.Format != "" {
		parts = append(parts, "image format "+t.Format)
	}
	return strings.Join(parts, "; ")
}

// uuid is a deterministic version-4-shaped UUID from the content hash.
func (d *Document) uuid() string {
	b, _ := hex.DecodeString(d.id[:32])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	x := hex.EncodeToString(b)
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}

// SPDX returns the SPDX 2.3 document.
func (d *Document) SPDX() *spdx.Document {
	doc := &spdx.Document{
		SPDXVersion:       spdx.Version,
		DataLicense:       spdx.DataLicense,
		SPDXIdentifier:    "DOCUMENT",
		DocumentName:      d.name(),
		DocumentNamespace: "https://vouch.invalid/spdx/" + sanitize(d.name()) + "-" + d.uuid(),
		CreationInfo: &spdx.CreationInfo{
			Creators: []common.Creator{{CreatorType: "Tool", Creator: "vouch-" + d.opts.ToolVersion}},
			Created:  d.opts.Created.Format(time.RFC3339),
		},
	}
	root := &spdx.Package{
		PackageName:               d.name(),
		PackageSPDXIdentifier:     "OperatingSystem",
		PackageVersion:            d.osVersion(),
		PackageDownloadLocation:   "NOASSERTION",
		FilesAnalyzed:             false,
		IsFilesAnalyzedTagPresent: true,
		PackageLicenseConcluded:   "NOASSERTION",
		PackageLicenseDeclared:    "NOASSERTION",
		PackageCopyrightText:      "NOASSERTION",
		PackageComment:            d.describe(),
		// The spec's text (§7.24) spells it OPERATING-SYSTEM, the tag-value
		// form; the official SPDX 2.3 JSON schema allows only OPERATING_SYSTEM,
		// and SPDX's maintainers call the schema the authority for JSON
		// (spdx/spdx-spec issue 813).
		PrimaryPackagePurpose: "OPERATING_SYSTEM",
	}
	doc.Packages = append(doc.Packages, root)
	doc.Relationships = append(doc.Relationships, &spdx.Relationship{
		RefA: common.MakeDocElementID("", "DOCUMENT"), RefB: common.MakeDocElementID("", "OperatingSystem"), Relationship: "DESCRIBES"})
	refs := map[string]string{}
	for i, c := range d.pkgs {
		id := common.ElementID(fmt.Sprintf("Package-%s-%d", sanitize(c.pkg.Manager+"-"+c.pkg.Name), i+1))
		p := &spdx.Package{
			PackageName:               c.pkg.Name,
			PackageSPDXIdentifier:     id,
			PackageVersion:            c.pkg.Version,
			PackageDownloadLocation:   "NOASSERTION",
			FilesAnalyzed:             false,
			IsFilesAnalyzedTagPresent: true,
			PackageLicenseConcluded:   "NOASSERTION",
			PackageLicenseDeclared:    "NOASSERTION",
			PackageCopyrightText:      "NOASSERTION",
			PackageExternalReferences: []*spdx.PackageExternalReference{{Category: "PACKAGE-MANAGER", RefType: "purl", Locator: c.purl}},
		}
		if c.pkg.Source != "" && (c.pkg.Source != c.pkg.Name || c.pkg.SourceVersion != c.pkg.Version) {
			p.PackageSourceInfo = fmt.Sprintf("built from source package %s %s", c.pkg.Source, c.pkg.SourceVersion)
		}
		if c.pkg.Vendor != "" {
			p.PackageSupplier = &common.Supplier{Supplier: c.pkg.Vendor, SupplierType: "Organization"}
		}
		if c.license.Expression != "" {
			p.PackageLicenseDeclared = c.license.Expression
			for ref, name := range c.license.Refs {
				refs[ref] = name
			}
		}
		doc.Packages = append(doc.Packages, p)
		doc.Relationships = append(doc.Relationships, &spdx.Relationship{
			RefA: common.MakeDocElementID("", "OperatingSystem"), RefB: common.MakeDocElementID("", string(id)), Relationship: "CONTAINS"})
	}
	ids := make([]string, 0, len(refs))
	for r := range refs {
		ids = append(ids, r)
	}
	sort.Strings(ids)
	for _, r := range ids {
		doc.OtherLicenses = append(doc.OtherLicenses, &spdx.OtherLicense{
			LicenseIdentifier: r,
			LicenseName:       refs[r],
			ExtractedText:     "The package declares the licence \"" + refs[r] + "\"; its text is in the package's copyright or licence file.",
		})
	}
	return doc
}

// CycloneDX returns the CycloneDX BOM (rendered as 1.5).
func (d *Document) CycloneDX() *cdx.BOM {
	bom := cdx.NewBOM()
	bom.SerialNumber = "urn:uuid:" + d.uuid()
	bom.Version = 1
	rootRef := "os:" + sanitize(d.name())
	props := []cdx.Property{{Name: "vouch:target:path", Value: d.subject.Target.Path}, {Name: "vouch:target:kind", Value: d.subject.Target.Kind}}
	if d.subject.Target.Format != "" {
		props = append(props, cdx.Property{Name: "vouch:image:format", Value: d.subject.Target.Format})
	}
	root := &cdx.Component{
		BOMRef:      rootRef,
		Type:        cdx.ComponentTypeOS,
		Name:        d.name(),
		Version:     d.osVersion(),
		Description: d.describe(),
		Properties:  &props,
	}
	if d.subject.OS != nil && d.subject.OS.ID != "" {
		root.Name = d.subject.OS.ID
		root.Description = d.name() + "; " + d.describe()
	}
	bom.Metadata = &cdx.Metadata{
		Timestamp: d.opts.Created.Format(time.RFC3339),
		Tools: &cdx.ToolsChoice{Components: &[]cdx.Component{{
			Type: cdx.ComponentTypeApplication, Name: "vouch", Version: d.opts.ToolVersion,
		}}},
		Component: root,
	}
	comps := make([]cdx.Component, 0, len(d.pkgs))
	deps := make([]string, 0, len(d.pkgs))
	for _, c := range d.pkgs {
		comp := cdx.Component{
			BOMRef:     c.ref,
			Type:       cdx.ComponentTypeLibrary,
			Name:       c.pkg.Name,
			Version:    c.pkg.Version,
			PackageURL: c.purl,
		}
		if c.pkg.Vendor != "" {
			comp.Publisher = c.pkg.Vendor
		}
		if l := cdxLicenses(c.license); l != nil {
			comp.Licenses = l
		}
		p := []cdx.Property{{Name: "vouch:package:manager", Value: c.pkg.Manager}}
		if c.pkg.Source != "" {
			p = append(p, cdx.Property{Name: "vouch:package:source", Value: c.pkg.Source}, cdx.Property{Name: "vouch:package:source-version", Value: c.pkg.SourceVersion})
		}
		comp.Properties = &p
		comps = append(comps, comp)
		deps = append(deps, c.ref)
	}
	bom.Components = &comps
	bom.Dependencies = &[]cdx.Dependency{{Ref: rootRef, Dependencies: &deps}}
	return bom
}

func cdxLicenses(l License) *cdx.Licenses {
	if l.Declared == "" {
		return nil
	}
	if l.Known && !strings.ContainsAny(l.Expression, " ()") {
		return &cdx.Licenses{{License: &cdx.License{ID: l.Expression}}}
	}
	if l.Known {
		return &cdx.Licenses{{Expression: l.Expression}}
	}
	return &cdx.Licenses{{License: &cdx.License{Name: l.Declared}}}
}
