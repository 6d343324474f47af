package cli

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vouch-dev/vouch/internal/fleet"
)

func newFleetCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "fleet",
		Short: "Ask a fleet server: hosts, readiness, what-if before a rollout, canaries",
		Long: `fleet asks 'vouch serve' about the hosts its agents report. Host selectors
(--hosts) are KEY=VALUE pairs joined by commas: platform, model, firmware,
release, lineage, channel, label, hostname, id, and status (secureBootOff,
bootsToday, notBootingToday, survives2023OnlyShim, stopsWith2023OnlyShim,
canAcceptDBUpdate, cannotAcceptDBUpdate, on2023, only2011, testPK, pcr7Sealed,
unknownFirmware).`,
	}
	c.AddCommand(newFleetHostsCmd(), newFleetHostCmd(), newFleetReadinessCmd(), newFleetWhatIfCmd(), newFleetCanariesCmd(), newFleetSimulateCmd())
	return c
}

type fleetCommon struct {
	clientFlags
	format, hosts string
}

func (f *fleetCommon) register(c *cobra.Command) {
	f.clientFlags.register(c)
	c.Flags().StringVarP(&f.format, "format", "o", "table", "output format: table or json")
	c.Flags().StringVar(&f.hosts, "hosts", "", "host selector: KEY=VALUE[,KEY=VALUE...]")
}

func (f *fleetCommon) query() (fleet.Query, error) {
	if err := checkFormat(f.format); err != nil {
		return fleet.Query{}, err
	}
	q, err := fleet.ParseSelector(f.hosts)
	if err != nil {
		return q, usageErrorf("--hosts: %v", err)
	}
	return q, nil
}

func newFleetHostsCmd() *cobra.Command {
	var (
		f      fleetCommon
		status string
		page   fleet.Page
	)
	c := &cobra.Command{
		Use:   "hosts",
		Short: "List hosts with their Secure Boot transition verdict",
		Example: `  vouch fleet hosts --server URL --token T --status only2011
  vouch fleet hosts --server URL --token T --hosts platform=azure,release=debian-12 -o json
  vouch fleet hosts --server URL --token T --limit 1000 --after h-0123456789abcdef`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			q, err := f.query()
			if err != nil {
				return err
			}
			if status != "" {
				q.Status = status
			}
			cl, err := f.client()
			if err != nil {
				return err
			}
			if page.Limit < 0 {
				return usageErrorf("--limit %d: want a positive number (0: all)", page.Limit)
			}
			r, err := cl.HostsPage(c.Context(), q, page)
			if err != nil {
				return serverError(err)
			}
			if f.format == "json" {
				return writeJSON(c.OutOrStdout(), r)
			}
			return buffered(c.OutOrStdout(), func(w io.Writer) error {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tHOSTNAME\tPLATFORM\tRELEASE\tSECURE BOOT\tBOOTS TODAY\t2023-ONLY SHIM\tFIRMWARE TRUSTS")
				for _, h := range r.Hosts {
					sb, today, with := yes(h.SecureBootEnabled), yes(h.BootsToday), yes(h.BootsWith2023OnlyShim)
					if !h.FirmwareKnown {
						sb, today, with = "unknown", "unknown", "unknown"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.ID, h.Hostname, h.Dims["platform"], h.Dims["release"], sb, today, with, orNone(h.FirmwareTrusts))
				}
				tw.Flush()
				fmt.Fprintf(w, "%d host(s)\n", len(r.Hosts))
				if r.Next != "" {
					fmt.Fprintf(w, "more: --after %s\n", r.Next)
				}
				return nil
			})
		},
	}
	f.register(c)
	c.Flags().StringVar(&status, "status", "", "only hosts with this readiness status")
	c.Flags().IntVar(&page.Limit, "limit", 0, "at most this many hosts, ordered by ID (0: all)")
	c.Flags().StringVar(&page.After, "after", "", "the hosts after this ID (the previous page's next)")
	return c
}

func newFleetHostCmd() *cobra.Command {
	var f fleetCommon
	c := &cobra.Command{
		Use:   "host ID",
		Short: "One host: facts, verdict, boot paths and history (JSON)",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cl, err := f.client()
			if err != nil {
				return err
			}
			r, err := cl.Host(c.Context(), args[0])
			if err != nil {
				return serverError(err)
			}
			_, err = c.OutOrStdout().Write(append(r, '\n'))
			return err
		},
	}
	f.clientFlags.register(c)
	return c
}

func newFleetReadinessCmd() *cobra.Command {
	var (
		f  fleetCommon
		by []string
	)
	c := &cobra.Command{
		Use:   "readiness",
		Short: "Count hosts by readiness for the CA transition, grouped by any fact",
		Long: `readiness counts reported hosts: Secure Boot off, boots today, survives a
2023-only shim, can accept Microsoft's KEK-signed db update, already trusts the
2023 UEFI CA, depends on the 2011 CA only, has a test PK, disks sealed to PCR 7.
--by groups by platform, model, firmware, release, lineage, channel or label.
Each distinct firmware state and boot chain is judged once by the engine of
'vouch secureboot', then multiplied by the hosts that share it.`,
		Example: `  vouch fleet readiness --server URL --token T --by platform,release`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			q, err := f.query()
			if err != nil {
				return err
			}
			cl, err := f.client()
			if err != nil {
				return err
			}
			r, err := cl.Readiness(c.Context(), by, q)
			if err != nil {
				return serverError(err)
			}
			if f.format == "json" {
				return writeJSON(c.OutOrStdout(), r)
			}
			return buffered(c.OutOrStdout(), func(w io.Writer) error {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
				head := append(upper(r.GroupedBy), "HOSTS", "SB OFF", "BOOTS", "2023-ONLY OK", "DB UPDATE OK", "ON 2023", "2011 ONLY", "TEST PK", "PCR7", "UNKNOWN", "")
				fmt.Fprintln(tw, strings.Join(head, "\t"))
				row := func(label []string, n fleet.Counts) {
					cells := append(label, fmt.Sprint(n.Hosts), fmt.Sprint(n.SecureBootOff), fmt.Sprint(n.BootsToday), fmt.Sprint(n.Survives2023OnlyShim),
						fmt.Sprint(n.CanAcceptDBUpdate), fmt.Sprint(n.On2023), fmt.Sprint(n.Only2011), fmt.Sprint(n.TestPK), fmt.Sprint(n.PCR7Sealed), fmt.Sprint(n.UnknownFirmware), "")
					fmt.Fprintln(tw, strings.Join(cells, "\t"))
				}
				for _, g := range r.Groups {
					var label []string
					for _, d := range r.GroupedBy {
						label = append(label, orDash(g.By[d]))
					}
					row(label, g.Counts)
				}
				if len(r.GroupedBy) > 0 {
					total := make([]string, len(r.GroupedBy))
					total[0] = "total"
					for i := 1; i < len(total); i++ {
						total[i] = ""
					}
					row(total, r.Total)
				} else {
					row(nil, r.Total)
				}
				tw.Flush()
				fmt.Fprintf(w, "%d distinct firmware state and boot chain pair(s) evaluated\n", r.DistinctStates)
				return nil
			})
		},
	}
	f.register(c)
	c.Flags().StringSliceVar(&by, "by", nil, "group by these facts (platform, model, firmware, release, lineage, channel, label)")
	return c
}

func upper(s []string) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = strings.ToUpper(x)
	}
	return out
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newFleetWhatIfCmd() *cobra.Command {
	var (
		f  fleetCommon
		cf *changeFlags
	)
	c := &cobra.Command{
		Use:   "whatif (--shim-package FILE | --shim FILE | --dbx-update FILE | --sbat-level LEVEL | --db-add CERT)...",
		Short: "Which hosts a shim, dbx, SBAT or db change would stop booting, before the rollout",
		Long: `whatif judges a proposed change on every selected host's stored facts with the
engine of 'vouch gate' (a new shim package: the firmware's verdict on the new shim,
its SBAT self-check, its verdict on the host's GRUB and kernel) and of 'vouch
secureboot --dbx-update/--sbat-level' (every binary on the ESP and every kernel
before and after the revocation). --db-add adds a certificate to db first, as
Microsoft's KEK-signed db update does. Each distinct state is judged once.

Exit codes: 0 no selected host stops booting, 1 some would, 2 usage or input error.`,
		Example: `  vouch fleet whatif --server URL --token T --shim-package shim-signed_1.44_amd64.deb
  vouch fleet whatif --server URL --token T --dbx-update DBXUpdate.bin --hosts platform=azure -o json
  vouch fleet whatif --server URL --token T --sbat-level SbatLevel_Variable.txt#latest`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if _, err := f.query(); err != nil {
				return err
			}
			if cf.files.Empty() {
				return usageErrorf("name a change: --shim-package, --shim, --dbx-update, --sbat-level or --db-add")
			}
			// The server parses the change with the same loader; parsing it
			// here first reports a bad file before anything is sent.
			if _, err := cf.load(); err != nil {
				return err
			}
			req, err := fleet.NewChangeRequest(cf.files, f.hosts)
			if err != nil {
				return &exitError{code: ExitError, err: err}
			}
			cl, err := f.client()
			if err != nil {
				return err
			}
			r, err := cl.WhatIf(c.Context(), req)
			if err != nil {
				return serverError(err)
			}
			if f.format == "json" {
				err = writeJSON(c.OutOrStdout(), r)
			} else {
				err = buffered(c.OutOrStdout(), func(w io.Writer) error { writeWhatIf(w, r); return nil })
			}
			if err != nil {
				return err
			}
			if len(r.StopBooting) > 0 {
				return &exitError{code: ExitFindings}
			}
			return nil
		},
	}
	f.register(c)
	cf = addChangeFlags(c, changeAll)
	return c
}

func writeWhatIf(w io.Writer, r *fleet.WhatIf) {
	fmt.Fprintf(w, "%d host(s), %d distinct state(s): %d stop booting, %d keep booting, %d already not booting, %d unknown\n",
		r.Hosts, r.DistinctStates, len(r.StopBooting), r.KeepBooting, len(r.AlreadyBroken), len(r.Unknown))
	for _, g := range r.Groups {
		mark := "  "
		if g.Stop {
			mark = "! "
		}
		fmt.Fprintf(w, "%s%d host(s): %s\n    e.g. %s\n", mark, g.Hosts, g.Reason, strings.Join(g.Sample, ", "))
	}
	if len(r.StopBooting) > 0 {
		fmt.Fprintf(w, "stop booting: %s\n", strings.Join(r.StopBooting, " "))
	}
}

func newFleetCanariesCmd() *cobra.Command {
	var (
		f        fleetCommon
		dims     []string
		pairwise bool
		perGroup int
		within   time.Duration
	)
	c := &cobra.Command{
		Use:   "canaries --dims platform,model,release,lineage,channel",
		Short: "Pick the fewest recently seen hosts that cover every combination (or pair) of facts",
		Long: `canaries picks real hosts, seen within --seen-within, that together cover every
observed combination of the --dims values (with --pairwise: every observed pair of
values of two dimensions), each --per-group times where enough hosts have it. The
choice is greedy set cover, deterministic; the lower bound and the gap to it are
reported. The table output is one host name per line, ready for an update tool.`,
		Example: `  vouch fleet canaries --server URL --token T --dims platform,model,release --pairwise
  vouch fleet canaries --server URL --token T --dims platform,release --per-group 2 -o json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			q, err := f.query()
			if err != nil {
				return err
			}
			if len(dims) == 0 {
				return usageErrorf("give --dims")
			}
			cl, err := f.client()
			if err != nil {
				return err
			}
			r, err := cl.Canaries(c.Context(), fleet.CanaryOptions{Dims: dims, Pairwise: pairwise, PerGroup: perGroup, SeenWithin: within, Query: q})
			if err != nil {
				return serverError(err)
			}
			if f.format == "json" {
				return writeJSON(c.OutOrStdout(), r)
			}
			return buffered(c.OutOrStdout(), func(w io.Writer) error {
				for _, h := range r.Hosts {
					var vals []string
					keys := make([]string, 0, len(h.Dims))
					for k := range h.Dims {
						keys = append(keys, k)
					}
					sort.Strings(keys)
					for _, k := range keys {
						vals = append(vals, k+"="+h.Dims[k])
					}
					fmt.Fprintf(w, "%s\t%s\t%s\n", h.Hostname, h.ID, strings.Join(vals, " "))
				}
				fmt.Fprintf(c.ErrOrStderr(), "%d canaries covering %d element(s) of %d candidate host(s); lower bound %d, gap %d\n",
					len(r.Hosts), r.Elements, r.Candidates, r.LowerBound, r.Gap)
				return nil
			})
		},
	}
	f.register(c)
	c.Flags().StringSliceVar(&dims, "dims", nil, "dimensions to cover")
	c.Flags().BoolVar(&pairwise, "pairwise", false, "cover every pair of values instead of every combination")
	c.Flags().IntVar(&perGroup, "per-group", 1, "hosts per combination (or pair)")
	c.Flags().DurationVar(&within, "seen-within", 7*24*time.Hour, "only hosts that reported within this window")
	return c
}
