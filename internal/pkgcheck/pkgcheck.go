// Package pkgcheck is the "packages" suite of vouch scan: the package inventory,
// installed-file integrity, executables no package owns, apt source and index
// signatures, rpm header signatures and known vulnerabilities, each as a check
// of the common findings model.
package pkgcheck

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vouch-dev/vouch/internal/check"
	"github.com/vouch-dev/vouch/internal/finding"
	"github.com/vouch-dev/vouch/internal/integrity"
	"github.com/vouch-dev/vouch/internal/osrelease"
	"github.com/vouch-dev/vouch/internal/pkgdb"
	"github.com/vouch-dev/vouch/internal/pkgsig"
	"github.com/vouch-dev/vouch/internal/vuln"
)

// Suite is the suite name of these checks.
const Suite = "packages"

// The facts of a run the packages checks read: an OSV database and a fixed
// clock (tests).
var (
	vulnDBFact = check.NewFact[*vuln.DB]("packages.vulndb")
	nowFact    = check.NewFact[time.Time]("packages.now")
)

// WithVulnDB makes an OSV database available to packages.known-vulnerabilities.
func WithVulnDB(env *check.Env, db *vuln.DB) { vulnDBFact.Set(env, db) }

// WithNow fixes the time used for expiry checks.
func WithNow(env *check.Env, t time.Time) { nowFact.Set(env, t) }

func now(env *check.Env) time.Time {
	if t, ok := nowFact.Get(env); ok {
		return t
	}
	return time.Now()
}

// Checks returns the packages suite.
func Checks() []check.Check {
	return []check.Check{
		{
			ID:          "packages.inventory",
			Suite:       Suite,
			Title:       "Package databases are readable",
			Severity:    finding.Medium,
			Needs:       check.NeedRoot,
			Remediation: "Repair or restore the package database named in the evidence (dpkg: var/lib/dpkg/status and its -old backup; rpm: rpmdb --rebuilddb).",
			Run:         runInventory,
		},
		{
			ID:          "packages.integrity",
			Suite:       Suite,
			Title:       "Installed files match their package's recorded digests",
			Severity:    finding.High,
			Needs:       check.NeedRoot,
			Remediation: "Reinstall the package that owns each modified, missing or replaced file (apt-get install --reinstall PKG, dnf reinstall PKG) and find out how it changed.",
			References:  []string{"debsums(1)", "rpm -V (rpm(8) VERIFY OPTIONS)"},
			Run:         runIntegrity,
		},
		{
			ID:          "packages.unowned-executables",
			Suite:       Suite,
			Title:       "Every executable in a system path belongs to a package",
			Severity:    finding.Medium,
			Needs:       check.NeedRoot,
			Remediation: "Find where each executable came from; remove it, or ship it in a package so it is tracked and verifiable.",
			Run:         runUnowned,
		},
		{
			ID:          "packages.apt-sources-signed",
			Suite:       Suite,
			Title:       "apt sources require signatures and are bound to a keyring",
			Severity:    finding.High,
			Needs:       check.NeedRoot,
			Remediation: "Remove trusted=yes / allow-insecure / allow-weak, and bind each source to its keyring with signed-by (deb822: Signed-By: /usr/share/keyrings/....gpg).",
			References:  []string{"sources.list(5)", "https://wiki.debian.org/DebianRepository/UseThirdParty"},
			Run:         runAptSources,
		},
		{
			ID:          "packages.apt-lists-signed",
			Suite:       Suite,
			Title:       "apt's downloaded InRelease files are signed by the configured keys and not expired",
			Severity:    finding.High,
			Needs:       check.NeedRoot,
			Remediation: "Run apt-get update with the right keyring configured; an unverifiable or expired InRelease means the package indexes in the image cannot be trusted.",
			Run:         runAptLists,
		},
		{
			ID:          "packages.rpm-signatures",
			Suite:       Suite,
			Title:       "Installed rpm headers are signed by a trusted key",
			Severity:    finding.High,
			Needs:       check.NeedRoot,
			Remediation: "Import the vendor key (rpm --import /etc/pki/rpm-gpg/...) and reinstall packages whose signature does not verify; remove packages from unknown signers.",
			Run:         runRPMSignatures,
		},
		{
			ID:          "packages.known-vulnerabilities",
			Suite:       Suite,
			Title:       "No installed package has a known vulnerability",
			Severity:    finding.High,
			Needs:       check.NeedRoot,
			Remediation: "Update the packages listed to the fixed versions (apt-get upgrade, dnf upgrade, apk upgrade) and rebuild the image.",
			References:  []string{"https://osv.dev", "docs/vulnerabilities.md"},
			Run:         runVulns,
		},
	}
}

func readInv(ctx context.Context, env *check.Env, opts pkgdb.Options) (*pkgdb.Inventory, []check.Result) {
	inv, err := pkgdb.Read(ctx, env.Target.Root, opts)
	if errors.Is(err, pkgdb.ErrNoDatabase) {
		return nil, check.NA("no package database (dpkg, rpm or apk) in the root file system")
	}
	if err != nil {
		return nil, check.Errorf("%v", err)
	}
	return inv, nil
}

func issueResults(issues []pkgdb.Issue) []check.Result {
	var out []check.Result
	for _, is := range issues {
		out = append(out, check.Result{Status: finding.Error, Subject: is.Path, Message: is.String()})
	}
	return out
}

func runInventory(ctx context.Context, env *check.Env) []check.Result {
	inv, res := readInv(ctx, env, pkgdb.Options{})
	if inv == nil {
		return res
	}
	out := issueResults(inv.Issues)
	return append(out, check.Result{Status: finding.Pass,
		Message:  fmt.Sprintf("%d packages (%s) read from %s", len(inv.Packages), strings.Join(inv.Managers(), ", "), strings.Join(inv.Databases, ", ")),
		Evidence: inv.Databases})
}

func runIntegrity(ctx context.Context, env *check.Env) []check.Result {
	inv, res := readInv(ctx, env, pkgdb.Options{Files: true})
	if inv == nil {
		return res
	}
	r, err := integrity.Verify(ctx, env.Target.Root, inv, integrity.Options{})
	if err != nil {
		return check.Errorf("%v", err)
	}
	out := issueResults(r.Issues)
	for _, p := range r.Problems {
		msg := fmt.Sprintf("%s: %s (package %s)", p.Problem, p.Path, p.Package)
		if p.Conffile {
			msg = fmt.Sprintf("configuration file %s: %s (package %s)", p.Problem, p.Path, p.Package)
		}
		var ev []string
		if p.Expected != "" {
			ev = append(ev, "recorded digest "+p.Expected)
		}
		if p.Actual != "" {
			ev = append(ev, "found "+p.Actual)
		}
		if p.Detail != "" {
			ev = append(ev, p.Detail)
		}
		r := check.Result{Status: finding.Fail, Subject: p.Path, Message: msg, Evidence: ev}
		if p.Conffile && p.Problem == integrity.Modified {
			low := finding.Low // a changed configuration file is usually intended
			r.Severity = &low
		}
		out = append(out, r)
	}
	if len(r.Problems) == 0 {
		out = append(out, check.Result{Status: finding.Pass,
			Message: fmt.Sprintf("%d files (%d MiB) of %d packages match their recorded digests", r.Files, r.Bytes>>20, r.Packages)})
	}
	return out
}

func runUnowned(ctx context.Context, env *check.Env) []check.Result {
	inv, res := readInv(ctx, env, pkgdb.Options{Files: true})
	if inv == nil {
		return res
	}
	r, err := integrity.Verify(ctx, env.Target.Root, inv, integrity.Options{SkipFiles: true, Unowned: true})
	if err != nil {
		return check.Errorf("%v", err)
	}
	var out []check.Result
	for _, p := range r.Problems {
		out = append(out, check.Result{Status: finding.Fail, Subject: p.Path, Message: "executable owned by no package: " + p.Path, Evidence: []string{p.Detail}})
	}
	if len(out) == 0 {
		out = check.Pass("every executable in bin, sbin, lib* and the /usr and /usr/local equivalents belongs to a package")
	}
	return out
}

func runAptSources(_ context.Context, env *check.Env) []check.Result {
	sources, issues := pkgsig.AptSources(env.Target.Root)
	if len(sources) == 0 && len(issues) == 0 {
		return check.NA("no apt sources (etc/apt/sources.list, sources.list.d)")
	}
	out := issueResults(issues)
	bad := 0
	for _, s := range sources {
		subj := fmt.Sprintf("%s:%d %s %s %s", s.File, s.Line, s.Type, s.URI, s.Suite)
		for _, p := range s.Problems() {
			out = append(out, check.Result{Status: finding.Fail, Subject: subj, Message: p, Evidence: []string{subj}})
			bad++
		}
	}
	if bad == 0 && len(sources) > 0 {
		out = append(out, check.Pass(fmt.Sprintf("%d apt sources, each bound to a keyring with signatures required", len(sources)))...)
	}
	return out
}

func runAptLists(_ context.Context, env *check.Env) []check.Result {
	sources, _ := pkgsig.AptSources(env.Target.Root)
	rels, issues := pkgsig.VerifyLists(env.Target.Root, sources, now(env))
	if len(rels) == 0 && len(issues) == 0 {
		return check.NA("no InRelease files in var/lib/apt/lists (apt lists were cleaned or never downloaded)")
	}
	out := issueResults(issues)
	for _, r := range rels {
		ev := []string{"keyring: " + strings.Join(r.Keyring, ", ")}
		if !r.ValidUntil.IsZero() {
			ev = append(ev, "Valid-Until: "+r.ValidUntil.Format(time.RFC1123))
		}
		if r.Problem != "" {
			out = append(out, check.Result{Status: finding.Fail, Subject: r.File, Message: r.File + ": " + r.Problem, Evidence: ev})
			continue
		}
		out = append(out, check.Result{Status: finding.Pass, Subject: r.File, Message: r.File + ": signed by " + r.Signer, Evidence: ev})
	}
	return out
}

func runRPMSignatures(ctx context.Context, env *check.Env) []check.Result {
	inv, res := readInv(ctx, env, pkgdb.Options{})
	if inv == nil {
		return res
	}
	if !slices.Contains(inv.Managers(), pkgdb.ManagerRPM) {
		return check.NA("no rpm database")
	}
	ring, issues := pkgsig.RPMKeyring(env.Target.Root, inv)
	out := issueResults(issues)
	good := 0
	for _, s := range pkgsig.VerifyRPM(inv, ring, now(env)) {
		if s.Signed {
			good++
			continue
		}
		out = append(out, check.Result{Status: finding.Fail, Subject: s.Package, Message: s.Package + " " + s.Version + ": " + s.Problem})
	}
	if good > 0 && len(out) == 0 {
		out = check.Pass(fmt.Sprintf("%d rpm headers signed by keys the image trusts", good))
	}
	return out
}

func runVulns(ctx context.Context, env *check.Env) []check.Result {
	db, _ := vulnDBFact.Get(env)
	if db == nil {
		return check.NA("no vulnerability database given (vouch scan --db PATH, or vouch vuln --db PATH)")
	}
	inv, res := readInv(ctx, env, pkgdb.Options{})
	if inv == nil {
		return res
	}
	info, _ := osrelease.Read(env.Target.Root)
	r := db.Match(inv, info)
	// OSV files that could not be read: reported with the file, the rest was matched.
	var out []check.Result
	for _, is := range db.Issues {
		out = append(out, check.Result{Status: finding.Error, Subject: is.Path, Message: is.String()})
	}
	failed := 0
	for _, m := range r.Matches {
		fix := "no fix yet"
		if m.FixedVersion != "" {
			fix = "fixed in " + m.FixedVersion
		}
		out = append(out, check.Result{Status: finding.Fail, Subject: m.Package,
			Message:  fmt.Sprintf("%s: %s %s (%s)", m.ID, m.Package, m.Version, fix),
			Evidence: append([]string{m.File}, m.Aliases...)})
		failed++
	}
	if failed == 0 {
		msg := fmt.Sprintf("no known vulnerability in %d packages (%d OSV records)", len(inv.Packages), len(db.Records))
		if len(r.Notes) > 0 {
			msg += "; " + strings.Join(r.Notes, "; ")
		}
		out = append(out, check.Pass(msg)...)
	}
	return out
}
