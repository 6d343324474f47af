package cli

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/vouch-dev/vouch/internal/efi"
	"github.com/vouch-dev/vouch/internal/gate"
	"github.com/vouch-dev/vouch/internal/measure"
	"github.com/vouch-dev/vouch/internal/secureboot"
)

func newMeasureCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "measure",
		Short: "Read and replay the TPM event log; explain and predict PCR 7 and PCR 4",
		Long: `measure reads a TPM event log (binary_bios_measurements, TCG crypto-agile format):
replay prints the PCR values it replays to per bank and compares them with the TPM's
(--pcrs FILE, or the live host's sysfs with --live); explain says what PCR 7 and PCR 4
hold; predict computes PCR 7 and PCR 4 after a db, dbx, SbatLevel, shim, GRUB or
kernel change and which disks sealed to them would stop unlocking.

LOG defaults to the live host's /sys/kernel/security/tpm0/binary_bios_measurements.`,
	}
	c.AddCommand(newMeasureReplayCmd(), newMeasureExplainCmd(), newMeasurePredictCmd())
	return c
}

func readLog(args []string) (*measure.Log, string, error) {
	path := "/" + measure.LogPath
	if len(args) > 0 {
		path = args[0]
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, path, &exitError{code: ExitError, err: fmt.Errorf("measure: %w", err)}
	}
	lg, err := measure.Parse(b, path)
	if err != nil {
		return nil, path, &exitError{code: ExitError, err: err}
	}
	return lg, path, nil
}

// replayResult is `measure replay`'s JSON: the contract our checks use.
type replayResult struct {
	PCRs       map[measure.Bank]map[string]measure.Digest `json:"pcrs"`
	Events     []*measure.Event                           `json:"events"`
	Findings   []measure.Finding                          `json:"findings,omitempty"`
	Mismatches []measure.Mismatch                         `json:"mismatches,omitempty"`
	Verified   *bool                                      `json:"verified,omitempty"`
}

func newMeasureReplayCmd() *cobra.Command {
	var format, pcrsFile string
	var live bool
	c := &cobra.Command{
		Use:   "replay [LOG]",
		Short: "Replay an event log per bank and compare it with the TPM's PCRs",
		Example: `  vouch measure replay --format json binary_bios_measurements
  vouch measure replay --pcrs pcrs.txt binary_bios_measurements
  vouch measure replay --live`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if format != "table" && format != "json" {
				return usageErrorf("unknown format %q (want table or json)", format)
			}
			lg, _, err := readLog(args)
			if err != nil {
				return err
			}
			res := replayResult{PCRs: map[measure.Bank]map[string]measure.Digest{}, Events: lg.Events, Findings: lg.Findings}
			for bk, vals := range lg.Replay() {
				m := map[string]measure.Digest{}
				for i, d := range vals {
					m[strconv.Itoa(i)] = d
				}
				res.PCRs[bk] = m
			}
			var tpm measure.PCRs
			switch {
			case pcrsFile != "":
				b, err := os.ReadFile(pcrsFile)
				if err != nil {
					return &exitError{code: ExitError, err: fmt.Errorf("measure: %w", err)}
				}
				if tpm, err = measure.ParsePCRs(b, pcrsFile); err != nil {
					return &exitError{code: ExitError, err: err}
				}
			case live:
				if tpm, err = measure.ReadPCRs(os.DirFS("/"), lg.Banks); err != nil {
					return &exitError{code: ExitError, err: err}
				}
			}
			if tpm != nil {
				mm, verr := lg.Compare(tpm)
				res.Mismatches = mm
				ok := len(mm) == 0 && verr == nil
				res.Verified = &ok
			}
			if format == "json" {
				if err := writeJSON(c.OutOrStdout(), res); err != nil {
					return err
				}
			} else if err := buffered(c.OutOrStdout(), func(w io.Writer) error { return writeReplay(w, lg, res) }); err != nil {
				return err
			}
			if res.Verified != nil && !*res.Verified {
				return &exitError{code: ExitFindings}
			}
			return nil
		},
	}
	c.Flags().StringVarP(&format, "format", "o", "table", "output format: table or json")
	c.Flags().StringVar(&pcrsFile, "pcrs", "", "compare with these PCR values: lines \"BANK INDEX HEX\" or tpm2_pcrread's output")
	c.Flags().BoolVar(&live, "live", false, "compare with the live host's PCRs (/sys/class/tpm/tpm0/pcr-BANK/N)")
	return c
}

func writeReplay(w io.Writer, lg *measure.Log, res replayResult) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BANK\tPCR\tREPLAYED")
	for _, bk := range lg.Banks {
		var idx []int
		for k := range res.PCRs[bk] {
			i, _ := strconv.Atoi(k)
			idx = append(idx, i)
		}
		sort.Ints(idx)
		for _, i := range idx {
			fmt.Fprintf(tw, "%s\t%d\t%s\n", bk, i, res.PCRs[bk][strconv.Itoa(i)])
		}
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%d events\n", len(lg.Events))
	for _, f := range res.Findings {
		fmt.Fprintf(w, "finding: %s\n", f)
	}
	for _, m := range res.Mismatches {
		fmt.Fprintf(w, "does not replay: %s\n", m)
	}
	if res.Verified != nil && *res.Verified {
		fmt.Fprintln(w, "the log replays to the TPM's PCRs")
	}
	return nil
}

func newMeasureExplainCmd() *cobra.Command {
	var format string
	c := &cobra.Command{
		Use:     "explain [LOG]",
		Short:   "Say what PCR 7 (Secure Boot state, authorities) and PCR 4 (boot applications) hold",
		Example: "  vouch measure explain binary_bios_measurements\n  vouch measure explain -o json",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if format != "table" && format != "json" {
				return usageErrorf("unknown format %q (want table or json)", format)
			}
			lg, _, err := readLog(args)
			if err != nil {
				return err
			}
			x := lg.Explain()
			if format == "json" {
				return writeJSON(c.OutOrStdout(), x)
			}
			return buffered(c.OutOrStdout(), func(w io.Writer) error {
				sb := "not measured"
				if x.SecureBoot != nil {
					sb = map[bool]string{true: "on", false: "off"}[*x.SecureBoot]
				}
				fmt.Fprintf(w, "PCR 7: Secure Boot %s\n", sb)
				for _, v := range x.Variables {
					fmt.Fprintf(w, "  event %d: %s (%d bytes", v.Seq, v.Name, v.Size)
					if v.Entries > 0 {
						fmt.Fprintf(w, ", %d entries", v.Entries)
					}
					fmt.Fprint(w, ")")
					if len(v.CAs) > 0 {
						fmt.Fprintf(w, ": %s", strings.Join(v.CAs, ", "))
					}
					fmt.Fprintln(w)
				}
				for _, a := range x.Authorities {
					fmt.Fprintf(w, "  event %d: authority (%s): %s\n", a.Seq, a.By, a.Description)
				}
				fmt.Fprintln(w, "PCR 4: boot applications")
				for _, a := range x.Apps {
					fmt.Fprintf(w, "  event %d: %s %s sha256 %s\n", a.Seq, a.Role, a.File, a.Digest[measure.SHA256])
				}
				for _, m := range x.MOK {
					fmt.Fprintf(w, "PCR 14: event %d: %s\n", m.Seq, m.Name)
				}
				return nil
			})
		},
	}
	c.Flags().StringVarP(&format, "format", "o", "table", "output format: table or json")
	return c
}

// measureChange is the proposed change (the one flag set shared with gate,
// secureboot and fleet what-if) in the form measure predicts from: the bytes
// firmware and shim will measure.
func measureChange(c *secureboot.Change) (measure.Change, error) {
	var ch measure.Change
	for _, d := range c.DBAdd {
		ch.DBAdd = append(ch.DBAdd, d.Cert)
	}
	if c.DBX != nil {
		if c.DBX.Form == secureboot.FormJSON {
			return ch, usageErrorf("--dbx-update %s: predict needs the signature lists firmware measures (DBXUpdate.bin), not the JSON list", c.DBX.Source)
		}
		ch.DBXUpdate = efi.MarshalSignatureLists(c.DBX.Lists(c.Arch()))
	}
	if c.SBAT != nil {
		if c.SBAT.Keyword != "" {
			return ch, usageErrorf("--sbat-level %s: predict needs the payload (a file): the level shim writes for %s depends on the shim", c.SBAT.Keyword, c.SBAT.Keyword)
		}
		ch.SBATLevel = []byte(c.SBAT.Payload)
	}
	if c.Shim != nil {
		ch.Shim = c.Shim.Image
	}
	if c.GRUB != nil {
		ch.GRUB = c.GRUB.Image
	}
	if c.Kernel != nil {
		ch.Kernel = c.Kernel.Image
	}
	return ch, nil
}

func newMeasurePredictCmd() *cobra.Command {
	var format, installedShim, root string
	var luksFiles []string
	var cf *changeFlags
	c := &cobra.Command{
		Use:   "predict [LOG]",
		Short: "Predict PCR 7 and PCR 4 after a db, dbx, SbatLevel, shim, GRUB or kernel change",
		Long: `predict starts from a measured log (of a settled boot: not the first boot of a
fresh variable store) and re-makes the measurements the change alters: the db and dbx
firmware will measure, the db entry that will authorise shim (edk2's rules), the
SbatLevel shim will measure, the Authenticode digests of new boot applications. It
prints the old and new PCR 4 and 7 per bank, which events change and why, and
whether disks sealed to those PCRs (crypttab tpm2-device=, --luks volumes' Clevis
tpm2 pins and systemd-tpm2 tokens) will still unlock.`,
		Example: `  vouch measure predict --db-add windows_uefi_ca_2023.der --installed-shim shimx64.efi LOG
  vouch measure predict --dbx-update DBXUpdate.bin LOG
  vouch measure predict --kernel /boot/vmlinuz-new --root / LOG
  vouch measure predict --db-add microsoft-uefi-ca-2023 --luks /dev/nvme0n1p3 LOG`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if format != "table" && format != "json" {
				return usageErrorf("unknown format %q (want table or json)", format)
			}
			sc, err := cf.load()
			if err != nil {
				return err
			}
			ch, err := measureChange(sc)
			if err != nil {
				return err
			}
			if ch.Empty() {
				return usageErrorf("no change given (--db-add, --dbx-update, --sbat-level, --shim, --grub, --kernel)")
			}
			var inst measure.Installed
			if installedShim != "" {
				b, err := gate.ReadEFI(installedShim, true)
				if err != nil {
					return usageErrorf("--installed-shim: %v", err)
				}
				inst.Shim = b.Image
			}
			lg, _, err := readLog(args)
			if err != nil {
				return err
			}
			p, err := measure.Predict(lg, ch, inst)
			if err != nil {
				return &exitError{code: ExitError, err: err}
			}
			var vols []measure.Volume
			for _, f := range luksFiles {
				v, err := measure.ReadVolume(f)
				if err != nil {
					return &exitError{code: ExitError, err: err}
				}
				vols = append(vols, v)
			}
			var rootFS fs.FS
			if root != "" {
				rootFS = os.DirFS(root)
			}
			sealed, err := measure.SealedFrom(rootFS, vols)
			if err != nil {
				return &exitError{code: ExitError, err: err}
			}
			out := struct {
				*measure.Prediction
				Sealed []measure.SealVerdict `json:"sealed,omitempty"`
			}{p, measure.JudgeSealed(sealed, p)}
			if format == "json" {
				return writeJSON(c.OutOrStdout(), out)
			}
			return buffered(c.OutOrStdout(), func(w io.Writer) error {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "BANK\tPCR\tNOW\tPREDICTED\t")
				for _, v := range p.PCRs {
					mark := ""
					if v.Changed {
						mark = "changes"
					}
					fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", v.Bank, v.PCR, v.Old, v.New, mark)
				}
				tw.Flush()
				for _, e := range p.Changes {
					fmt.Fprintf(w, "event %d (PCR %d, %s): %s: %s\n", e.Seq, e.PCR, e.Type, e.What, e.Why)
				}
				for _, n := range p.Notes {
					fmt.Fprintf(w, "note: %s\n", n)
				}
				if p.Refused != "" {
					fmt.Fprintf(w, "will not boot: %s\n", p.Refused)
				}
				for _, s := range out.Sealed {
					fmt.Fprintf(w, "sealed disk %s: %s\n", s.Disk.Name, s.Verdict)
				}
				return nil
			})
		},
	}
	cf = addChangeFlags(c, changeAll)
	c.Flags().StringVarP(&format, "format", "o", "table", "output format: table or json")
	c.Flags().StringVar(&installedShim, "installed-shim", "", "the shim that booted (to tell which db entry authorises it after a db or dbx change)")
	c.Flags().StringVar(&root, "root", "", "a root directory whose etc/crypttab names disks sealed to the TPM")
	c.Flags().StringArrayVar(&luksFiles, "luks", nil, "a LUKS2 volume (block device or file) whose tokens (Clevis tpm2 pins, systemd-tpm2) seal a key to the TPM; repeatable")
	return c
}
