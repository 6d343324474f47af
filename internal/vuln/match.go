package vuln

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	debversion "github.com/knqyf263/go-deb-version"
	rpmversion "github.com/knqyf263/go-rpm-version"

	"github.com/vouch-dev/vouch/internal/osrelease"
	"github.com/vouch-dev/vouch/internal/pkgdb"
)

// Match is one vulnerability affecting one installed package.
type Match struct {
	ID           string   `json:"id"`
	Aliases      []string `json:"aliases,omitempty"`
	Summary      string   `json:"summary,omitempty"`
	Package      string   `json:"package"`
	Version      string   `json:"version"`
	Architecture string   `json:"architecture,omitempty"`
	Manager      string   `json:"manager"`
	// Source and SourceVersion are what was compared when the record names a
	// source package (Debian, Ubuntu, Alpine).
	Source        string `json:"source,omitempty"`
	SourceVersion string `json:"sourceVersion,omitempty"`
	Ecosystem     string `json:"ecosystem"`
	// FixedVersion is the lowest fixed version above the installed one; empty
	// when the record has no fix.
	FixedVersion string `json:"fixedVersion,omitempty"`
	Severity     string `json:"severity,omitempty"`
	File         string `json:"file"`
}

// Result is the outcome of Match.
type Result struct {
	Matches []Match
	// Notes say why nothing may have matched (no records for the target's
	// ecosystem) and which versions could not be compared.
	Notes []string
}

// Comparator compares two versions of one ecosystem: -1, 0, +1, or an error
// when either does not parse.
type Comparator func(a, b string) (int, error)

// CompareDeb is dpkg's version order.
func CompareDeb(a, b string) (int, error) {
	va, err := debversion.NewVersion(a)
	if err != nil {
		return 0, err
	}
	vb, err := debversion.NewVersion(b)
	if err != nil {
		return 0, err
	}
	return sign(va.Compare(vb)), nil
}

// CompareRPM is rpm's version order ([epoch:]version-release; a missing epoch
// is 0).
func CompareRPM(a, b string) (int, error) {
	if a == "" || b == "" {
		return 0, fmt.Errorf("empty rpm version")
	}
	return sign(rpmversion.NewVersion(a).Compare(rpmversion.NewVersion(b))), nil
}

func sign(c int) int {
	switch {
	case c < 0:
		return -1
	case c > 0:
		return 1
	}
	return 0
}

func compareAPK(a, b string) (int, error) {
	if !ValidAPK(a) {
		return 0, fmt.Errorf("invalid apk version %q", a)
	}
	if !ValidAPK(b) {
		return 0, fmt.Errorf("invalid apk version %q", b)
	}
	return CompareAPK(a, b), nil
}

// ComparatorFor returns the version order of a package manager.
func ComparatorFor(manager string) Comparator {
	switch manager {
	case pkgdb.ManagerDpkg:
		return CompareDeb
	case pkgdb.ManagerRPM:
		return CompareRPM
	case pkgdb.ManagerAPK:
		return compareAPK
	}
	return nil
}

// EcosystemMatcher says whether an OSV ecosystem string covers the target's
// release: "Debian:12" and "Debian" for Debian 12; "Ubuntu:22.04:LTS" and
// "Ubuntu:Pro:22.04:LTS" for Ubuntu 22.04; "Alpine:v3.19" for Alpine 3.19.x;
// "AlmaLinux:9", "Rocky Linux:9", "Azure Linux:3", "Mariner:2.0", "Red Hat:...:9...".
func EcosystemMatcher(info *osrelease.Info) (string, func(string) bool) {
	if info == nil {
		return "", func(string) bool { return false }
	}
	v := info.VersionID
	major, _, _ := strings.Cut(v, ".")
	name := ""
	switch info.ID {
	case "debian":
		name = "Debian"
		if v == "" {
			return name, func(e string) bool { return e == "Debian" }
		}
		return name + ":" + major, func(e string) bool { return e == "Debian" || e == "Debian:"+major }
	case "ubuntu":
		return "Ubuntu:" + v, func(e string) bool {
			parts := strings.Split(e, ":")
			if parts[0] != "Ubuntu" {
				return false
			}
			for _, p := range parts[1:] {
				if p == v {
					return true
				}
			}
			return len(parts) == 1
		}
	case "alpine":
		parts := strings.Split(v, ".")
		mm := v
		if len(parts) >= 2 {
			mm = parts[0] + "." + parts[1]
		}
		return "Alpine:v" + mm, func(e string) bool { return e == "Alpine:v"+mm || e == "Alpine" }
	case "almalinux":
		name = "AlmaLinux"
	case "rocky":
		name = "Rocky Linux"
	case "azurelinux":
		name = "Azure Linux"
	case "mariner":
		return "Mariner:" + v, func(e string) bool { return e == "Mariner:"+v || e == "Mariner" }
	case "rhel":
		return "Red Hat (" + major + ")", func(e string) bool {
			return strings.HasPrefix(e, "Red Hat:") && (strings.Contains(e, ":"+major+":") || strings.Contains(e, "_"+major+":") || strings.HasSuffix(e, ":"+major))
		}
	default:
		return "", func(string) bool { return false }
	}
	return name + ":" + major, func(e string) bool { return e == name+":"+major || e == name }
}

// usesSource reports whether an ecosystem's records name source packages.
func usesSource(manager string) bool {
	return manager == pkgdb.ManagerDpkg || manager == pkgdb.ManagerAPK
}

// Match finds the records that affect the inventory's packages on a target
// whose release info describes.
func (db *DB) Match(inv *pkgdb.Inventory, info *osrelease.Info) *Result {
	res := &Result{}
	ecoName, ecoOK := EcosystemMatcher(info)
	if ecoName == "" {
		id := "unknown"
		if info != nil {
			id = info.ID + " " + info.VersionID
		}
		res.Notes = append(res.Notes, fmt.Sprintf("no OSV ecosystem known for %s; nothing matched", id))
		return res
	}
	inEco := 0
	for _, r := range db.Records {
		for _, a := range r.Affected {
			if ecoOK(a.Package.Ecosystem) {
				inEco++
				break
			}
		}
	}
	if inEco == 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("the database holds no record for ecosystem %s (%d records read)", ecoName, len(db.Records)))
	}
	badVersions := map[string]bool{}
	seen := map[string]bool{}
	for i := range inv.Packages {
		p := &inv.Packages[i]
		if p.Name == "gpg-pubkey" {
			continue
		}
		cmp := ComparatorFor(p.Manager)
		if cmp == nil {
			continue
		}
		type cand struct{ name, version string }
		cands := []cand{{p.Name, p.Version}}
		if usesSource(p.Manager) && p.Source != "" {
			cands = []cand{{p.Source, p.SourceVersion}}
		} else if p.Source != "" && p.Source != p.Name {
			cands = append(cands, cand{p.Source, p.Version})
		}
		for _, c := range cands {
			for _, rf := range db.byName[c.name] {
				a := rf.rec.Affected[rf.aff]
				if !ecoOK(a.Package.Ecosystem) {
					continue
				}
				affected, fixed, err := affects(a, c.version, cmp)
				if err != nil {
					key := rf.rec.ID + "/" + c.name
					if !badVersions[key] {
						badVersions[key] = true
						res.Notes = append(res.Notes, fmt.Sprintf("%s (%s): %v", rf.rec.ID, rf.rec.File, err))
					}
					continue
				}
				if !affected {
					continue
				}
				key := rf.rec.ID + "\x00" + p.Key() + "\x00" + p.Version
				if seen[key] {
					continue
				}
				seen[key] = true
				m := Match{ID: rf.rec.ID, Aliases: rf.rec.Aliases, Summary: rf.rec.Summary, Package: p.Key(),
					Version: p.Version, Architecture: p.Architecture, Manager: p.Manager, Ecosystem: a.Package.Ecosystem,
					FixedVersion: fixed, File: rf.rec.File, Severity: severity(rf.rec)}
				if c.name != p.Name {
					m.Source, m.SourceVersion = c.name, c.version
				}
				res.Matches = append(res.Matches, m)
			}
		}
	}
	sort.Slice(res.Matches, func(i, j int) bool {
		a, b := res.Matches[i], res.Matches[j]
		if a.Package != b.Package {
			return a.Package < b.Package
		}
		return a.ID < b.ID
	})
	return res
}

func severity(r *Record) string {
	for _, s := range r.Severity {
		if s.Score != "" {
			return s.Type + " " + s.Score
		}
	}
	return ""
}

// affects evaluates an affected entry for version v (OSV schema, "Evaluation"):
// listed versions match exactly; each ECOSYSTEM range is walked in version
// order — introduced makes v affected from there on, fixed and limit end it at
// that version, last_affected ends it after that version. fixed is the lowest
// fixed version above v.
func affects(a Affected, v string, cmp Comparator) (bool, string, error) {
	for _, x := range a.Versions {
		if x == v {
			return true, lowestFixed(a, v, cmp), nil
		}
	}
	for _, r := range a.Ranges {
		if r.Type != "ECOSYSTEM" {
			continue
		}
		hit, err := inRange(r.Events, v, cmp)
		if err != nil {
			return false, "", err
		}
		if hit {
			return true, lowestFixed(a, v, cmp), nil
		}
	}
	return false, "", nil
}

func inRange(events []Event, v string, cmp Comparator) (bool, error) {
	type ev struct {
		kind, ver string
	}
	var evs []ev
	for _, e := range events {
		switch {
		case e.Introduced != "":
			evs = append(evs, ev{"introduced", e.Introduced})
		case e.Fixed != "":
			evs = append(evs, ev{"fixed", e.Fixed})
		case e.LastAffected != "":
			evs = append(evs, ev{"last_affected", e.LastAffected})
		case e.Limit != "":
			evs = append(evs, ev{"limit", e.Limit})
		}
	}
	// "0" is the lowest version of any ecosystem.
	var sortErr error
	sort.SliceStable(evs, func(i, j int) bool {
		if evs[i].ver == "0" || evs[j].ver == "0" {
			return evs[i].ver == "0" && evs[j].ver != "0"
		}
		c, err := cmp(evs[i].ver, evs[j].ver)
		if err != nil && sortErr == nil {
			sortErr = err
		}
		return c < 0
	})
	if sortErr != nil {
		return false, sortErr
	}
	affected := false
	for _, e := range evs {
		c := 1 // v compared with the event's version
		if e.ver != "0" {
			var err error
			if c, err = cmp(v, e.ver); err != nil {
				return false, err
			}
		}
		switch e.kind {
		case "introduced":
			if c >= 0 {
				affected = true
			}
		case "fixed", "limit":
			if c >= 0 {
				affected = false
			}
		case "last_affected":
			if c > 0 {
				affected = false
			}
		}
	}
	return affected, nil
}

func lowestFixed(a Affected, v string, cmp Comparator) string {
	best := ""
	for _, r := range a.Ranges {
		for _, e := range r.Events {
			if e.Fixed == "" {
				continue
			}
			if c, err := cmp(e.Fixed, v); err != nil || c <= 0 {
				continue
			}
			if best == "" {
				best = e.Fixed
			} else if c, err := cmp(e.Fixed, best); err == nil && c < 0 {
				best = e.Fixed
			}
		}
	}
	return best
}

// WriteTable renders the matches for people.
func (r *Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPACKAGE\tVERSION\tFIXED IN\tSUMMARY")
	for _, m := range r.Matches {
		fixed := m.FixedVersion
		if fixed == "" {
			fixed = "(no fix)"
		}
		sum := m.Summary
		if len(sum) > 70 {
			sum = sum[:67] + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.ID, m.Package, m.Version, fixed, sum)
	}
	fmt.Fprintf(tw, "\n%d known vulnerabilities\n", len(r.Matches))
	return tw.Flush()
}
