package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/vouch-dev/vouch/internal/baseline"
	"github.com/vouch-dev/vouch/internal/check"
	"github.com/vouch-dev/vouch/internal/remediate"
	"github.com/vouch-dev/vouch/internal/report"
)

var baselineSuites = []string{baseline.SuiteBaseline, baseline.SuiteHardening, baseline.SuiteCloudImage}

func newBaselineCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "baseline",
		Short: "Audit and fix the security baseline (CIS-derived, kernel and binary hardening, cloud image)",
		Long: `baseline audits a target against vouch's rules: the CIS-derived "baseline" suite,
the "hardening" suite (kernel configuration, command line, sysctl, ELF hardening of
every system binary) and the "cloud-image" suite (what the clouds require of an
image). remediate fixes what can be fixed safely on a directory or the live host.`,
		Example: `  vouch baseline audit debian.qcow2
  vouch baseline audit --suite hardening --format sarif rootfs/
  vouch baseline remediate --dry-run rootfs/
  vouch baseline list --suite cloud-image --format json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return c.Help() },
	}
	c.AddCommand(newBaselineAuditCmd(), newBaselineRemediateCmd(), newBaselineListCmd())
	return c
}

func suiteFlag(c *cobra.Command, p *[]string) {
	c.Flags().StringSliceVar(p, "suite", nil, "suites to use (comma-separated): "+strings.Join(baselineSuites, ", ")+" (default all)")
}

func checkSuites(suites []string) ([]string, error) {
	s := splitList(suites)
	for _, x := range s {
		if !contains(baselineSuites, x) {
			return nil, usageErrorf("unknown suite %q (want %s)", x, strings.Join(baselineSuites, ", "))
		}
	}
	return s, nil
}

func newBaselineAuditCmd() *cobra.Command {
	var (
		format, failOn string
		suites         []string
		live           bool
	)
	c := &cobra.Command{
		Use:   "audit [TARGET]",
		Short: "Audit a disk image, root directory or the running system against the baseline",
		Long: `audit runs the baseline rules against TARGET without modifying it and reports one
finding per rule: pass, fail (with the observed and expected values), not applicable
(the rule's platform or package is absent), or error (the rule could not decide, for
example a configuration file holding binary garbage; the other rules still run).

On an image or directory, runtime facts (a sysctl value, a loaded module) come from
the configuration that applies at boot, and the finding names its source.`,
		Example: `  vouch baseline audit debian.qcow2
  vouch baseline audit --suite baseline,hardening --fail-on medium rootfs/
  vouch baseline audit --format junit --live > baseline.xml`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if !contains(report.Formats, format) {
				return usageErrorf("unknown format %q (want %s)", format, strings.Join(report.Formats, ", "))
			}
			threshold, err := parseFailOn(failOn)
			if err != nil {
				return err
			}
			s, err := checkSuites(suites)
			if err != nil {
				return err
			}
			var checks []check.Check
			for _, r := range baseline.RulesOf(s...) {
				checks = append(checks, r.Check())
			}
			t, err := openTarget(targetArg(args), live)
			if err != nil {
				return err
			}
			defer t.Close()
			return runChecks(c, &check.Env{Target: t}, checks, format, threshold)
		},
	}
	c.Flags().StringVar(&format, "format", "table", "output format: "+strings.Join(report.Formats, ", "))
	c.Flags().StringVar(&failOn, "fail-on", "high", "exit 1 when a failing or erroring finding has this severity or higher: info, low, medium, high, critical, or none")
	suiteFlag(c, &suites)
	c.Flags().BoolVar(&live, "live", false, "audit the running system")
	return c
}

func newBaselineRemediateCmd() *cobra.Command {
	var (
		rules  []string
		suites []string
		dryRun bool
		format string
	)
	c := &cobra.Command{
		Use:   "remediate TARGET",
		Short: "Fix the failing rules that can be fixed safely (a directory or the live root)",
		Long: `remediate audits TARGET and applies the fix of every failing rule that has one,
printing the exact change of each (a unified diff for file contents, chmod/chown
lines for modes and owners). Files are written atomically (temporary file, then
rename) with their mode and owner kept, and the original of every changed file is
copied to TARGET/` + remediate.BackupRoot + `/<timestamp>/ with a MANIFEST of the changes.
Running it again changes nothing. Rules that cannot be fixed safely (NX, disk
encryption, ELF hardening, packages to remove) are listed with what a person must do.

TARGET must be a directory holding a root file system, or / for the running system
(kernel parameters and sshd settings then apply after sysctl --system, an sshd
reload or a reboot). vouch never modifies a disk image.`,
		Example: `  vouch baseline remediate --dry-run rootfs/
  vouch baseline remediate --rules baseline.aslr,baseline.sshd-permit-root-login rootfs/
  vouch baseline remediate --suite baseline /`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if format != "text" && format != "json" {
				return usageErrorf("unknown format %q (want text or json)", format)
			}
			s, err := checkSuites(suites)
			if err != nil {
				return err
			}
			selected := baseline.RulesOf(s...)
			if ids := splitList(rules); len(ids) > 0 && !(len(ids) == 1 && ids[0] == "all") {
				byID := map[string]baseline.Rule{}
				for _, r := range baseline.Rules() {
					byID[r.ID] = r
				}
				selected = nil
				for _, id := range ids {
					r, ok := byID[id]
					if !ok {
						return usageErrorf("unknown rule %q (see 'vouch baseline list')", id)
					}
					selected = append(selected, r)
				}
			}
			var log strings.Builder
			out := io.Writer(c.OutOrStdout())
			if format == "json" {
				out = &log
			}
			sum, err := baseline.Remediate(c.Context(), args[0], selected, dryRun, out)
			if errors.Is(err, remediate.ErrImage) {
				return usageErrorf("%s is not a directory: vouch does not modify disk images; extract or mount the root and remediate the directory", args[0])
			}
			if err != nil {
				return err
			}
			if format == "json" {
				return writeJSON(c.OutOrStdout(), sum)
			}
			if sum.Errors > 0 {
				return &exitError{code: ExitFindings}
			}
			return nil
		},
	}
	c.Flags().StringSliceVar(&rules, "rules", nil, "rule IDs to fix (comma-separated), or all (default all of the selected suites)")
	suiteFlag(c, &suites)
	c.Flags().BoolVar(&dryRun, "dry-run", false, "print the changes without making them")
	c.Flags().StringVar(&format, "format", "text", "output format: text (the changes as diffs) or json (a summary)")
	return c
}

// RuleInfo is one rule as `vouch baseline list --format json` prints it. Its
// JSON keys are a contract.
type RuleInfo struct {
	ID         string   `json:"id"`
	Suite      string   `json:"suite"`
	Title      string   `json:"title"`
	Severity   string   `json:"severity"`
	Remediable bool     `json:"remediable"`
	Rationale  string   `json:"rationale,omitempty"`
	References []string `json:"references,omitempty"`
	Platforms  []string `json:"platforms,omitempty"`
	Remedy     string   `json:"remedy,omitempty"`
}

func newBaselineListCmd() *cobra.Command {
	var (
		format string
		suites []string
	)
	c := &cobra.Command{
		Use:   "list",
		Short: "List the baseline rules",
		Example: `  vouch baseline list
  vouch baseline list --suite hardening --format json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if format != "table" && format != "json" {
				return usageErrorf("unknown format %q (want table or json)", format)
			}
			s, err := checkSuites(suites)
			if err != nil {
				return err
			}
			var out []RuleInfo
			for _, r := range baseline.RulesOf(s...) {
				out = append(out, RuleInfo{ID: r.ID, Suite: r.Suite(), Title: r.Title, Severity: r.Severity.String(),
					Remediable: r.Remediable(), Rationale: r.Rationale, References: r.References, Platforms: r.Platforms, Remedy: r.Remedy})
			}
			if out == nil {
				out = []RuleInfo{}
			}
			if format == "json" {
				return writeJSON(c.OutOrStdout(), out)
			}
			return buffered(c.OutOrStdout(), func(w io.Writer) error {
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tSEVERITY\tFIX\tTITLE")
				counts := map[string]int{}
				for _, r := range out {
					fix := "-"
					if r.Remediable {
						fix = "yes"
					}
					counts[r.Suite]++
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.ID, r.Severity, fix, r.Title)
				}
				tw.Flush()
				fmt.Fprintf(w, "\n%d rules:", len(out))
				for _, s := range baselineSuites {
					if counts[s] > 0 {
						fmt.Fprintf(w, " %s %d", s, counts[s])
					}
				}
				_, err := fmt.Fprintln(w)
				return err
			})
		},
	}
	c.Flags().StringVar(&format, "format", "table", "output format: table or json")
	suiteFlag(c, &suites)
	return c
}
