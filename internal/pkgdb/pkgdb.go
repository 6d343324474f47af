// Package pkgdb reads the installed-package databases of a Linux root file system
// offline: dpkg (var/lib/dpkg/status and the status.d/ directory distroless images
// use), rpm (rpmdb.sqlite, Berkeley DB Packages, NDB Packages.db) and apk
// (lib/apk/db/installed).
//
// Every reader is tolerant: a corrupt stanza, header or record is reported as an
// Issue naming the file (and line or record) and the rest is still read. Nothing
// here trusts a length, offset or count read from a file.
package pkgdb

import (
	"cmp"
	"context"
	"crypto"
	"errors"
	"fmt"
	"io/fs"
	"slices"
)

// Package managers.
const (
	ManagerDpkg = "dpkg"
	ManagerRPM  = "rpm"
	ManagerAPK  = "apk"
)

// Package is one installed package.
type Package struct {
	Name          string `json:"name"`
	Version       string `json:"version"`
	Architecture  string `json:"architecture"`
	Source        string `json:"source,omitempty"`
	SourceVersion string `json:"sourceVersion,omitempty"`
	Manager       string `json:"manager"`
	// License is what the package declares: the rpm License tag, apk's L: field,
	// or the License: fields of a machine-readable Debian copyright file joined
	// with " AND ". Empty when nothing is declared.
	License string `json:"license,omitempty"`
	// Status is the dpkg status ("installed", "config-files", "half-installed",
	// ...); "installed" for rpm and apk.
	Status string `json:"status,omitempty"`
	// Epoch is the rpm epoch (nil when the header has none).
	Epoch *int `json:"epoch,omitempty"`
	// Release is the rpm release (Version then holds VERSION-RELEASE, with the
	// epoch prefixed as "E:" when there is one, the form vulnerability feeds use).
	Release string `json:"release,omitempty"`
	// MultiArch is dpkg's Multi-Arch field ("same" packages have name:arch files).
	MultiArch string `json:"multiArch,omitempty"`
	// Replaces is dpkg's Replaces field, raw.
	Replaces string `json:"replaces,omitempty"`
	// Vendor and Packager are rpm's; Origin is where the record was read from.
	Vendor string `json:"vendor,omitempty"`
	Origin string `json:"origin"`

	// Files are the paths the package installed (absolute, as recorded), with
	// digests where the database records them (rpm, apk). dpkg's md5sums live in
	// separate files: see DpkgMD5Sums.
	Files []File `json:"files,omitempty"`
	// Conffiles are configuration files with the digest recorded at install.
	Conffiles []Conffile `json:"conffiles,omitempty"`

	// Header is the raw rpm header blob, for signature verification.
	Header []byte `json:"-"`
}

// File is one installed file as its package recorded it.
type File struct {
	Path   string      `json:"path"`
	Digest string      `json:"digest,omitempty"` // lower-case hex
	Algo   crypto.Hash `json:"-"`                // 0 when there is no digest
	Mode   fs.FileMode `json:"-"`                // 0 when unknown
	Config bool        `json:"config,omitempty"`
	Ghost  bool        `json:"-"` // rpm %ghost or a file state other than normal: recorded, not installed
}

// Conffile is a configuration file with its recorded digest.
type Conffile struct {
	Path string `json:"path"`
	// Digest is the MD5 (dpkg) or the package's file digest (rpm), lower-case hex.
	// dpkg writes "newconffile" for a conffile not yet configured.
	Digest   string      `json:"digest"`
	Algo     crypto.Hash `json:"-"`
	Obsolete bool        `json:"obsolete,omitempty"`
	// RemoveOnUpgrade marks dpkg conffiles that will be removed.
	RemoveOnUpgrade bool `json:"removeOnUpgrade,omitempty"`
}

// Key is the package's name with its architecture, as dpkg-query's
// ${binary:Package} for Multi-Arch: same packages.
func (p *Package) Key() string {
	if p.MultiArch == "same" && p.Architecture != "" {
		return p.Name + ":" + p.Architecture
	}
	return p.Name
}

// Issue is bad input found while reading: the file, where in it, and why. The
// rest of the database is still read.
type Issue struct {
	Path   string `json:"path"`
	Line   int    `json:"line,omitempty"`   // 1-based, for text formats
	Record int    `json:"record,omitempty"` // for binary databases
	Reason string `json:"reason"`
}

func (i Issue) String() string {
	switch {
	case i.Line > 0:
		return fmt.Sprintf("%s:%d: %s", i.Path, i.Line, i.Reason)
	case i.Record > 0:
		return fmt.Sprintf("%s: record %d: %s", i.Path, i.Record, i.Reason)
	}
	return fmt.Sprintf("%s: %s", i.Path, i.Reason)
}

// Inventory is what Read found.
type Inventory struct {
	Packages []Package `json:"packages"`
	// Databases are the database files read (relative paths).
	Databases []string `json:"databases"`
	Issues    []Issue  `json:"issues,omitempty"`
}

// Managers returns the package managers seen, in a fixed order.
func (inv *Inventory) Managers() []string {
	var out []string
	for _, m := range []string{ManagerDpkg, ManagerRPM, ManagerAPK} {
		for i := range inv.Packages {
			if inv.Packages[i].Manager == m {
				out = append(out, m)
				break
			}
		}
	}
	return out
}

// Options say what Read loads beyond name, version and architecture.
type Options struct {
	// Files loads every package's file list (dpkg info/*.list; rpm and apk
	// databases carry theirs and always fill it).
	Files bool
	// Licenses reads dpkg's usr/share/doc/PKG/copyright files.
	Licenses bool
	// AllStates keeps dpkg packages in every state but not-installed (as
	// dpkg-query -W shows them); otherwise only installed and half-configured
	// packages (whose files are on disk) are kept.
	AllStates bool
}

// ErrNoDatabase means the root holds no package database vouch knows.
var ErrNoDatabase = errors.New("pkgdb: no package database found")

// Read reads every package database in fsys. It returns ErrNoDatabase when there
// is none, and an error wrapping the issues when databases exist but nothing
// could be read from any of them.
func Read(ctx context.Context, fsys fs.FS, opts Options) (*Inventory, error) {
	return read(ctx, fsys, opts, readDpkg, readRPM, readAPK)
}

// ReadDpkg is Read for the dpkg database alone (var/lib/dpkg/status and
// status.d/), for callers whose rules are written for Debian's packages.
func ReadDpkg(ctx context.Context, fsys fs.FS, opts Options) (*Inventory, error) {
	return read(ctx, fsys, opts, readDpkg)
}

type reader func(context.Context, fs.FS, Options, *Inventory) (bool, error)

func read(ctx context.Context, fsys fs.FS, opts Options, readers ...reader) (*Inventory, error) {
	inv := &Inventory{}
	found := false
	for _, r := range readers {
		ok, err := r(ctx, fsys, opts, inv)
		if err != nil {
			return nil, err
		}
		found = found || ok
	}
	if !found {
		return nil, ErrNoDatabase
	}
	slices.SortStableFunc(inv.Packages, func(a, b Package) int {
		return cmp.Or(cmp.Compare(a.Manager, b.Manager), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Architecture, b.Architecture), cmp.Compare(a.Version, b.Version))
	})
	if len(inv.Packages) == 0 && len(inv.Issues) > 0 {
		return inv, &ReadError{Issues: inv.Issues}
	}
	return inv, nil
}

// ReadError is returned when package databases exist but none could be read.
type ReadError struct{ Issues []Issue }

func (e *ReadError) Error() string {
	if len(e.Issues) == 0 {
		return "pkgdb: nothing could be read"
	}
	return fmt.Sprintf("pkgdb: nothing could be read: %s (and %d more issues)", e.Issues[0], len(e.Issues)-1)
}
