package cli

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vouch-dev/vouch/internal/integrity"
	"github.com/vouch-dev/vouch/internal/osrelease"
	"github.com/vouch-dev/vouch/internal/pkgdb"
	"github.com/vouch-dev/vouch/internal/sbom"
	"github.com/vouch-dev/vouch/internal/target"
	"github.com/vouch-dev/vouch/internal/vuln"
)

func newPackagesCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "packages",
		Short: "List installed packages and verify their files",
		Long: `packages reads the package databases of a disk image, a root directory or the
running system (dpkg, rpm: sqlite/Berkeley DB/NDB, apk) without mounting anything.

Bad input (a corrupt status stanza, an rpm database of an unknown format, a missing
md5sums file) is reported on stderr with the file; the rest is still read. Exit 2
only when nothing could be read.`,
	}
	c.AddCommand(newPackagesListCmd(), newPackagesVerifyCmd())
	return c
}

func newPackagesListCmd() *cobra.Command {
	var (
		format string
		live   bool
		all    bool
	)
	c := &cobra.Command{
		Use:   "list [TARGET]",
		Short: "List the installed packages",
		Long: `list prints every installed package: name, version, architecture, the package
manager, the source package and the declared licence. --all-states also lists dpkg
packages that are not fully installed (config-files, half-installed, ...), exactly
as dpkg-query -W does.`,
		Example: `  vouch packages list debian.qcow2
  vouch packages list --format json rootfs/ | jq '.[].name'`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if format != "table" && format != "json" {
				return usageErrorf("unknown format %q (want table or json)", format)
			}
			t, err := openTarget(targetArg(args), live)
			if err != nil {
				return err
			}
			defer t.Close()
			inv, err := readInventory(c, t, pkgdb.Options{Licenses: true, AllStates: all})
			if err != nil {
				return err
			}
			type row struct {
				Name          string `json:"name"`
				Version       string `json:"version"`
				Architecture  string `json:"architecture"`
				Manager       string `json:"manager"`
				Source        string `json:"source,omitempty"`
				SourceVersion string `json:"sourceVersion,omitempty"`
				License       string `json:"license,omitempty"`
				Status        string `json:"status,omitempty"`
			}
			rows := make([]row, 0, len(inv.Packages))
			for _, p := range inv.Packages {
				rows = append(rows, row{p.Name, p.Version, p.Architecture, p.Manager, p.Source, p.SourceVersion, p.License, p.Status})
			}
			if format == "json" {
				return writeJSON(c.OutOrStdout(), rows)
			}
			return buffered(c.OutOrStdout(), func(w io.Writer) error {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tVERSION\tARCH\tMANAGER\tSOURCE\tLICENSE")
				for _, r := range rows {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", pkgdb.EscapePath(r.Name), r.Version, r.Architecture, r.Manager, r.Source, r.License)
				}
				fmt.Fprintf(tw, "\n%d packages\n", len(rows))
				return tw.Flush()
			})
		},
	}
	c.Flags().StringVarP(&format, "format", "o", "table", "output format: table or json")
	c.Flags().BoolVar(&live, "live", false, "read the running system")
	c.Flags().BoolVar(&all, "all-states", false, "also list dpkg packages not fully installed, as dpkg-query -W does")
	return c
}

func newPackagesVerifyCmd() *cobra.Command {
	var (
		format    string
		live      bool
		noConf    bool
		noUnowned bool
		workers   int
	)
	c := &cobra.Command{
		Use:   "verify [TARGET]",
		Short: "Check installed files against the package manager's digests",
		Long: `verify hashes every file the installed packages put on the target and compares
it with the digest the package manager recorded (dpkg md5sums and conffile digests,
rpm file digests, apk checksums). It reports each file that is modified, missing or
replaced (now a symlink, a directory or a special file), and executables in system
paths (bin, sbin, usr/bin, usr/sbin, usr/local/*, lib*, usr/lib*) that no package
owns. Configuration files carry "conffile": true.

Exit codes: 0 nothing found; 1 problems found; 2 nothing could be read.`,
		Example: `  vouch packages verify debian.raw
  vouch packages verify --format json rootfs/ | jq '.[] | select(.problem=="modified")'`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if format != "table" && format != "json" {
				return usageErrorf("unknown format %q (want table or json)", format)
			}
			t, err := openTarget(targetArg(args), live)
			if err != nil {
				return err
			}
			defer t.Close()
			if t.Root == nil {
				return &exitError{code: ExitError, err: fmt.Errorf("%s has no root file system", t.Path)}
			}
			inv, err := readInventory(c, t, pkgdb.Options{Files: true})
			if err != nil {
				return err
			}
			res, err := integrity.Verify(c.Context(), t.Root, inv, integrity.Options{Workers: workers, Unowned: !noUnowned, SkipConffiles: noConf})
			if err != nil {
				return err
			}
			printIssues(c.ErrOrStderr(), res.Issues)
			problems := res.Problems
			if problems == nil {
				problems = []integrity.Problem{}
			}
			if format == "json" {
				err = writeJSON(c.OutOrStdout(), problems)
			} else {
				err = buffered(c.OutOrStdout(), func(w io.Writer) error {
					tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "PROBLEM\tPATH\tPACKAGE\tDETAIL")
					for _, p := range problems {
						what := p.Problem
						if p.Conffile {
							what += " (conffile)"
						}
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", what, p.Path, p.Package, p.Detail)
					}
					fmt.Fprintf(tw, "\n%d problems; %d files (%d MiB) of %d packages checked\n", len(problems), res.Files, res.Bytes>>20, res.Packages)
					return tw.Flush()
				})
			}
			if err != nil {
				return err
			}
			if len(problems) > 0 {
				return &exitError{code: ExitFindings}
			}
			return nil
		},
	}
	c.Flags().StringVarP(&format, "format", "o", "table", "output format: table or json")
	c.Flags().BoolVar(&live, "live", false, "verify the running system")
	c.Flags().BoolVar(&noConf, "no-conffiles", false, "leave configuration files out (debsums without -a)")
	c.Flags().BoolVar(&noUnowned, "no-unowned", false, "do not look for executables no package owns")
	c.Flags().IntVar(&workers, "workers", 0, "files hashed in parallel (0: twice the CPUs)")
	return c
}

// readInventory reads the target's package databases, printing bad input on
// stderr. It fails (exit 2) only when nothing could be read.
func readInventory(c *cobra.Command, t *target.Target, opts pkgdb.Options) (*pkgdb.Inventory, error) {
	if t.Root == nil {
		return nil, &exitError{code: ExitError, err: fmt.Errorf("%s has no root file system", t.Path)}
	}
	inv, err := pkgdb.Read(c.Context(), t.Root, opts)
	if errors.Is(err, pkgdb.ErrNoDatabase) {
		return nil, &exitError{code: ExitError, err: fmt.Errorf("%s: no package database (dpkg, rpm or apk) found", t.Path)}
	}
	var re *pkgdb.ReadError
	if errors.As(err, &re) {
		printIssues(c.ErrOrStderr(), re.Issues)
		return nil, &exitError{code: ExitError, err: fmt.Errorf("%s: no package could be read", t.Path)}
	}
	if err != nil {
		return nil, err
	}
	printIssues(c.ErrOrStderr(), inv.Issues)
	return inv, nil
}

func printIssues(w io.Writer, issues []pkgdb.Issue) {
	for _, i := range issues {
		fmt.Fprintf(w, "vouch: warning: %s\n", i)
	}
}

func newSBOMCmd() *cobra.Command {
	var (
		format  string
		live    bool
		created string
	)
	c := &cobra.Command{
		Use:   "sbom [TARGET]",
		Short: "Write a software bill of materials (SPDX 2.3 or CycloneDX 1.5 JSON)",
		Long: `sbom writes the installed packages of a target as an SBOM: SPDX 2.3 JSON or
CycloneDX 1.5 JSON. Each package has a package URL (pkg:deb/debian/NAME@VERSION?
arch=amd64&distro=debian-12, pkg:rpm/..., pkg:apk/...) and the licence it declares;
the image itself (OS name and version, the target path, the image format) is the
described / root component.

The output is deterministic for a given target and --created time.`,
		Example: `  vouch sbom --format spdx-json debian.qcow2 > debian.spdx.json
  vouch sbom --format cyclonedx-json rootfs/ > bom.json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if !slices.Contains(sbom.Formats, format) {
				return usageErrorf("unknown format %q (want %s)", format, strings.Join(sbom.Formats, " or "))
			}
			when := time.Now().UTC()
			if created != "" {
				var err error
				if when, err = time.Parse(time.RFC3339, created); err != nil {
					return usageErrorf("--created: %v (want RFC 3339, e.g. 2026-01-02T15:04:05Z)", err)
				}
			}
			t, err := openTarget(targetArg(args), live)
			if err != nil {
				return err
			}
			defer t.Close()
			inv, err := readInventory(c, t, pkgdb.Options{Licenses: true})
			if err != nil {
				return err
			}
			doc := sbom.New(sbom.Subject{Target: targetInfo(t), OS: osInfo(t)}, inv, sbom.Options{Created: when, ToolVersion: Version()})
			return buffered(c.OutOrStdout(), func(w io.Writer) error { return doc.Write(w, format) })
		},
	}
	c.Flags().StringVarP(&format, "format", "o", "", "SBOM format: "+strings.Join(sbom.Formats, " or ")+" (required)")
	c.Flags().BoolVar(&live, "live", false, "describe the running system")
	c.Flags().StringVar(&created, "created", "", "creation time to record (RFC 3339; default now), for reproducible output")
	return c
}

func newVulnCmd() *cobra.Command {
	var (
		format string
		live   bool
		db     string
	)
	c := &cobra.Command{
		Use:   "vuln [TARGET] --db PATH",
		Short: "Match installed packages against an OSV vulnerability database, offline",
		Long: `vuln matches the installed packages against an OSV database: a directory or a
.zip of OSV JSON records, as OSV publishes them per ecosystem (Debian:12, Alpine,
AlmaLinux, Rocky Linux, ...). Versions are compared in each distribution's own order
(dpkg, rpm, apk). Debian records name source packages and are matched against each
binary package's source. See docs/vulnerabilities.md for where to get the feeds.

Exit codes: 0 no known vulnerability; 1 vulnerabilities found; 2 nothing could be read.`,
		Example: `  vouch vuln --db Debian-all.zip debian.qcow2
  vouch vuln --db osv/ --format json rootfs/`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if format != "table" && format != "json" {
				return usageErrorf("unknown format %q (want table or json)", format)
			}
			if db == "" {
				return usageErrorf("--db is required: a directory or .zip of OSV JSON records (see docs/vulnerabilities.md)")
			}
			d, err := loadVulnDB(c, db)
			if err != nil {
				return err
			}
			t, err := openTarget(targetArg(args), live)
			if err != nil {
				return err
			}
			defer t.Close()
			inv, err := readInventory(c, t, pkgdb.Options{})
			if err != nil {
				return err
			}
			res := d.Match(inv, osInfo(t))
			for _, n := range res.Notes {
				fmt.Fprintf(c.ErrOrStderr(), "vouch: note: %s\n", n)
			}
			if format == "json" {
				err = writeJSON(c.OutOrStdout(), res.Matches)
			} else {
				err = buffered(c.OutOrStdout(), func(w io.Writer) error { return res.WriteTable(w) })
			}
			if err != nil {
				return err
			}
			if len(res.Matches) > 0 {
				return &exitError{code: ExitFindings}
			}
			return nil
		},
	}
	c.Flags().StringVarP(&format, "format", "o", "table", "output format: table or json")
	c.Flags().BoolVar(&live, "live", false, "scan the running system")
	addVulnDBFlag(c, &db, true)
	return c
}

// addVulnDBFlag defines --db, the OSV database, for vouch vuln (where it is
// required) and vouch scan (where it enables packages.known-vulnerabilities).
func addVulnDBFlag(c *cobra.Command, p *string, required bool) {
	usage := "OSV database: a directory or .zip of OSV JSON records"
	if required {
		usage += " (required)"
	} else {
		usage += "; without it the packages suite's vulnerability check is not applicable"
	}
	c.Flags().StringVar(p, "db", "", usage)
}

// loadVulnDB loads the OSV database named by --db. Records that cannot be read
// (a file that is not JSON, ...) are warnings on stderr; exit 2 only when no
// record could be read.
func loadVulnDB(c *cobra.Command, path string) (*vuln.DB, error) {
	d, err := vuln.Load(path)
	if err != nil {
		return nil, &exitError{code: ExitError, err: err}
	}
	for _, is := range d.Issues {
		fmt.Fprintf(c.ErrOrStderr(), "vouch: warning: %s\n", is)
	}
	return d, nil
}

// osInfo reads the target's os-release; nil when it has none.
func osInfo(t *target.Target) *osrelease.Info {
	if t.Root == nil {
		return nil
	}
	info, err := osrelease.Read(t.Root)
	if err != nil {
		return nil
	}
	return info
}
