// Package vuln matches installed packages against an OSV vulnerability database
// offline: a directory or a .zip of OSV JSON records (https://ossf.github.io/
// osv-schema/), as OSV publishes them per ecosystem (Debian:12, Alpine:v3.19,
// AlmaLinux:9, ...). Versions are compared in the distribution's own order:
// dpkg (github.com/knqyf263/go-deb-version), rpm (github.com/knqyf263/
// go-rpm-version) and apk (CompareAPK, after apk-tools). Debian, Ubuntu and
// Alpine records name source packages; binary packages are matched through their
// source.
package vuln

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Record is the part of an OSV record vouch uses.
type Record struct {
	ID        string     `json:"id"`
	Modified  string     `json:"modified,omitempty"`
	Published string     `json:"published,omitempty"`
	Withdrawn string     `json:"withdrawn,omitempty"`
	Aliases   []string   `json:"aliases,omitempty"`
	Related   []string   `json:"related,omitempty"`
	Summary   string     `json:"summary,omitempty"`
	Details   string     `json:"details,omitempty"`
	Severity  []Severity `json:"severity,omitempty"`
	Affected  []Affected `json:"affected"`
	// File is where the record was read from.
	File string `json:"-"`
}

// Severity is an OSV severity score.
type Severity struct {
	Type  string `json:"type"`
	Score string `json:"score"`
}

// Affected is one affected package of a record.
type Affected struct {
	Package  Package  `json:"package"`
	Ranges   []Range  `json:"ranges,omitempty"`
	Versions []string `json:"versions,omitempty"`
	// EcosystemSpecific and DatabaseSpecific are kept raw.
	EcosystemSpecific json.RawMessage `json:"ecosystem_specific,omitempty"`
	DatabaseSpecific  json.RawMessage `json:"database_specific,omitempty"`
}

// Package names a package in an ecosystem.
type Package struct {
	Ecosystem string `json:"ecosystem"`
	Name      string `json:"name"`
	PURL      string `json:"purl,omitempty"`
}

// Range is an OSV range: type ECOSYSTEM (or SEMVER, GIT, which distribution
// packages do not use) and its events.
type Range struct {
	Type   string  `json:"type"`
	Events []Event `json:"events"`
}

// Event is one of introduced, fixed, last_affected or limit.
type Event struct {
	Introduced   string `json:"introduced,omitempty"`
	Fixed        string `json:"fixed,omitempty"`
	LastAffected string `json:"last_affected,omitempty"`
	Limit        string `json:"limit,omitempty"`
}

// Issue is a database file that could not be used.
type Issue struct {
	Path   string
	Reason string
}

func (i Issue) String() string { return i.Path + ": " + i.Reason }

// DB is a loaded OSV database, indexed by package name.
type DB struct {
	Path    string
	Records []*Record
	Issues  []Issue
	byName  map[string][]ref
}

type ref struct {
	rec *Record
	aff int
}

// maxRecordSize bounds one OSV file; real records are a few KiB.
const maxRecordSize = 32 << 20

// Load reads a directory (recursively, *.json) or a .zip of OSV records. A file
// that is not valid OSV JSON is an issue; the rest is loaded. It fails only when
// path cannot be read at all or nothing in it is a record.
func Load(path string) (*DB, error) {
	db := &DB{Path: path, byName: map[string][]ref{}}
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("vuln: %w", err)
	}
	switch {
	case info.IsDir():
		err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				db.Issues = append(db.Issues, Issue{p, err.Error()})
				return nil
			}
			if d.IsDir() || !strings.HasSuffix(strings.ToLower(d.Name()), ".json") {
				return nil
			}
			b, err := readLimited(p)
			if err != nil {
				db.Issues = append(db.Issues, Issue{p, err.Error()})
				return nil
			}
			db.add(b, p)
			return nil
		})
	default:
		err = db.loadZip(path)
	}
	if err != nil {
		return nil, err
	}
	if len(db.Records) == 0 {
		if len(db.Issues) > 0 {
			return nil, fmt.Errorf("vuln: %s: no OSV record could be read (%s, and %d more issues)", path, db.Issues[0], len(db.Issues)-1)
		}
		return nil, fmt.Errorf("vuln: %s: no OSV records (*.json) found", path)
	}
	sort.Slice(db.Records, func(i, j int) bool { return db.Records[i].ID < db.Records[j].ID })
	return db, nil
}

func readLimited(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxRecordSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxRecordSize {
		return nil, errors.New("larger than 32 MiB; not an OSV record")
	}
	return b, nil
}

func (db *DB) loadZip(path string) error {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return fmt.Errorf("vuln: %s: neither a directory nor a zip of OSV records: %w", path, err)
	}
	defer zr.Close()
	for _, f := range zr.File {
		name := path + "!" + f.Name
		if f.FileInfo().IsDir() || !strings.HasSuffix(strings.ToLower(f.Name), ".json") {
			continue
		}
		if f.UncompressedSize64 > maxRecordSize {
			db.Issues = append(db.Issues, Issue{name, "larger than 32 MiB; not an OSV record"})
			continue
		}
		rc, err := f.Open()
		if err != nil {
			db.Issues = append(db.Issues, Issue{name, err.Error()})
			continue
		}
		b, err := io.ReadAll(io.LimitReader(rc, maxRecordSize+1))
		rc.Close()
		if err != nil {
			db.Issues = append(db.Issues, Issue{name, err.Error()})
			continue
		}
		db.add(b, name)
	}
	return nil
}

// ParseRecord parses one OSV JSON record and checks what matching relies on.
func ParseRecord(b []byte) (*Record, error) {
	var r Record
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("not OSV JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("not OSV JSON: data after the record")
	}
	if r.ID == "" {
		return nil, errors.New("OSV record without an id")
	}
	for i, a := range r.Affected {
		if a.Package.Name == "" || a.Package.Ecosystem == "" {
			return nil, fmt.Errorf("%s: affected[%d] names no package or ecosystem", r.ID, i)
		}
	}
	return &r, nil
}

func (db *DB) add(b []byte, file string) {
	r, err := ParseRecord(b)
	if err != nil {
		db.Issues = append(db.Issues, Issue{file, err.Error()})
		return
	}
	r.File = file
	if r.Withdrawn != "" {
		return
	}
	db.Records = append(db.Records, r)
	for i, a := range r.Affected {
		db.byName[a.Package.Name] = append(db.byName[a.Package.Name], ref{r, i})
	}
}
