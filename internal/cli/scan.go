package cli

import (
	"errors"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vouch-dev/vouch/internal/check"
	"github.com/vouch-dev/vouch/internal/checks"
	"github.com/vouch-dev/vouch/internal/finding"
	"github.com/vouch-dev/vouch/internal/osrelease"
	"github.com/vouch-dev/vouch/internal/pkgcheck"
	"github.com/vouch-dev/vouch/internal/report"
	"github.com/vouch-dev/vouch/internal/secureboot"
	"github.com/vouch-dev/vouch/internal/target"
	"github.com/vouch-dev/vouch/internal/vuln"
)

func newScanCmd() *cobra.Command {
	var (
		format string
		failOn string
		suites []string
		live   bool
		db     string
		ff     firmwareFlags
	)
	c := &cobra.Command{
		Use:   "scan [TARGET]",
		Short: "Run the checks against a target and report the findings",
		Long: `scan runs vouch's checks against a disk image, a root directory or the running
system and reports one finding per check (or per subject, such as a boot path): pass,
fail, not applicable (the target lacks what the check needs), or error (the check
could not decide; it never counts as a pass).

Suites: ` + strings.Join(checks.Suites(), ", ") + `.

The secure boot suite judges the target against a firmware state: --vars (an
edk2/OVMF variable store), --efivars (a directory of variables) or --firmware (a
what-if profile), else the running system's own efivarfs. Without one, a disk
image's or directory's firmware-dependent checks are not applicable.

--db PATH gives the packages suite an OSV vulnerability database (a directory or
.zip of OSV JSON records, as for vouch vuln); without it the known-vulnerabilities
check is not applicable.

Exit codes: 0 when no failing or erroring finding is at or above --fail-on; 1 when
one is; 2 on a usage or input error.`,
		Example: `  vouch scan debian.qcow2
  vouch scan --vars /usr/share/OVMF/OVMF_VARS_4M.ms.fd debian.qcow2
  vouch scan --suite secureboot --firmware microsoft-2023 --fail-on medium disk.vhdx
  vouch scan --format sarif / > vouch.sarif
  vouch scan --format junit rootfs/ > junit.xml
  vouch scan --suite packages --db Debian-12.zip debian.raw`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if !slices.Contains(report.Formats, format) {
				return usageErrorf("unknown format %q (want %s)", format, strings.Join(report.Formats, ", "))
			}
			threshold, err := parseFailOn(failOn)
			if err != nil {
				return err
			}
			o, err := ff.options()
			if err != nil {
				return err
			}
			selected, err := check.Select(checks.All(), splitList(suites))
			if err != nil {
				return usageErrorf("%v", err)
			}
			var vdb *vuln.DB
			if db != "" {
				if vdb, err = loadVulnDB(c, db); err != nil {
					return err
				}
			}
			t, err := openTarget(targetArg(args), live)
			if err != nil {
				return err
			}
			defer t.Close()
			env := &check.Env{Target: t}
			if vdb != nil {
				pkgcheck.WithVulnDB(env, vdb)
			}
			// The named firmware state, else the live host's own.
			fw, _, err := ff.load(t)
			if err != nil {
				return err
			}
			if fw != nil {
				secureboot.SetFirmware(env, fw)
			}
			secureboot.SetOptions(env, o)
			return runChecks(c, env, selected, format, threshold)
		},
	}
	ff.register(c)
	c.Flags().StringVarP(&format, "format", "o", "table", "output format: "+strings.Join(report.Formats, ", "))
	c.Flags().StringVar(&failOn, "fail-on", "high", "exit 1 when a failing or erroring finding has this severity or higher: info, low, medium, high, critical, or none")
	c.Flags().StringSliceVar(&suites, "suite", nil, "run only these suites (comma-separated): "+strings.Join(checks.Suites(), ", "))
	c.Flags().BoolVar(&live, "live", false, "scan the running system")
	addVulnDBFlag(c, &db, false)
	return c
}

// failNever is above every severity: nothing fails the run.
const failNever = finding.Critical + 1

func parseFailOn(s string) (finding.Severity, error) {
	if strings.EqualFold(s, "none") {
		return failNever, nil
	}
	sev, err := finding.ParseSeverity(s)
	if err != nil {
		return 0, usageErrorf("--fail-on: %v", err)
	}
	return sev, nil
}

func targetInfo(t *target.Target) report.TargetInfo {
	ti := report.TargetInfo{Path: t.Path, Kind: string(t.Kind)}
	if t.Image != nil {
		ti.Format = string(t.Image.Format)
	}
	if t.Root != nil {
		if info, err := osrelease.Read(t.Root); err == nil {
			ti.OS = info.String()
		} else if !errors.Is(err, osrelease.ErrNotFound) {
			ti.OS = "unknown (" + err.Error() + ")"
		}
	}
	return ti
}

func splitList(items []string) []string {
	var out []string
	for _, it := range items {
		for _, s := range strings.Split(it, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// runChecks runs checks against env, writes the report in format, and returns
// the exit error --fail-on asks for.
func runChecks(c *cobra.Command, env *check.Env, checks []check.Check, format string, threshold finding.Severity) error {
	fs := check.Run(c.Context(), env, checks)
	if err := c.Context().Err(); err != nil {
		return err
	}
	r := report.New(report.Tool{Name: "vouch", Version: Version()}, targetInfo(env.Target), fs)
	if err := buffered(c.OutOrStdout(), func(w io.Writer) error { return report.Write(w, r, format) }); err != nil {
		return err
	}
	for _, f := range fs {
		if f.Failing(threshold) {
			return &exitError{code: ExitFindings}
		}
	}
	return nil
}
