// Package cli is vouch's command line as a library: Run parses arguments, runs a
// command and returns the exit code. Only main calls os.Exit.
//
// Exit codes: 0 all good; 1 findings at or above --fail-on (or a denied verdict);
// 2 a usage error or input vouch cannot read.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vouch-dev/vouch/internal/target"
)

// Exit codes.
const (
	ExitOK       = 0
	ExitFindings = 1
	ExitError    = 2
)

// version is set at build time with -ldflags "-X github.com/vouch-dev/vouch/internal/cli.version=...".
var version = ""

// Version returns vouch's version: the linker-set one, else the module version.
func Version() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// exitError carries an exit code out of a command.
type exitError struct {
	code int
	err  error // printed when non-nil
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usageErrorf is a bad invocation: exit 2.
func usageErrorf(format string, args ...any) error {
	return &exitError{code: ExitError, err: fmt.Errorf(format, args...)}
}

// Run runs vouch with args (without the program name).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(stderr, "vouch: %v\n", ee.err)
		}
		return ee.code
	}
	var te *target.Error
	if errors.As(err, &te) {
		fmt.Fprintf(stderr, "vouch: %v\n", te)
		return ExitError
	}
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(stderr, "vouch: interrupted")
		return ExitError
	}
	// Cobra's own errors (unknown command or flag) are usage errors.
	fmt.Fprintf(stderr, "vouch: %v\n", err)
	if strings.Contains(err.Error(), "unknown") || strings.Contains(err.Error(), "flag") || strings.Contains(err.Error(), "arg") {
		fmt.Fprintln(stderr, "Run 'vouch --help' for usage.")
	}
	return ExitError
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "vouch",
		Short: "Tell whether a Linux image or host can be trusted and will keep booting",
		Long: `vouch inspects Linux disk images (raw, qcow2, VHD, VHDX), root directories and
the running system, offline and without mounting, and answers: will it boot under
UEFI Secure Boot as its firmware is configured, does it meet a hardening baseline,
are its packages intact.

Exit codes: 0 all good, 1 findings at or above --fail-on, 2 usage or input error.`,
		Example: `  vouch inspect debian.qcow2
  vouch scan --suite secureboot,cloud-image debian.raw
  vouch scan --format json /`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageErrorf("%v (see 'vouch %s --help')", err, c.Name())
	})
	root.AddCommand(
		newVersionCmd(),
		newInspectCmd(),
		newScanCmd(),
		newBaselineCmd(),
		newSecureBootCmd(),
		newPackagesCmd(),
		newSBOMCmd(),
		newVulnCmd(),
		newGateCmd(),
		newFirmwareCmd(),
		newTestCmd(),
		newServeCmd(),
		newTokenCmd(),
		newAgentCmd(),
		newFleetCmd(),
		newJobCmd(),
		newTemplateCmd(),
		newWorkerCmd(),
	)
	return root
}

func newVersionCmd() *cobra.Command {
	var format string
	c := &cobra.Command{
		Use:     "version",
		Short:   "Print vouch's version",
		Example: "  vouch version\n  vouch version --format json",
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			switch format {
			case "json":
				return writeJSON(c.OutOrStdout(), map[string]string{"version": Version()})
			case "table":
				_, err := fmt.Fprintf(c.OutOrStdout(), "vouch %s\n", Version())
				return err
			}
			return usageErrorf("unknown format %q (want table or json)", format)
		},
	}
	c.Flags().StringVar(&format, "format", "table", "output format: table or json")
	return c
}

// openTarget opens a target named on the command line.
func openTarget(path string, live bool) (*target.Target, error) {
	if path == "" && !live {
		return nil, usageErrorf("no target given: name a disk image, a directory, or / (or pass --live)")
	}
	if live && path != "" && path != "/" {
		return nil, usageErrorf("--live inspects the running system; do not name a target too")
	}
	return target.Open(path, target.Options{Live: live})
}

func targetArg(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}
