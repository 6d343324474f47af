package cli

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/vouch-dev/vouch/internal/authenticode"
	"github.com/vouch-dev/vouch/internal/secureboot"
	"github.com/vouch-dev/vouch/internal/target"
)

// noUEFI is what vouch says on a live host booted without UEFI.
const noUEFI = "no UEFI here: booted through legacy BIOS (or a container); the CA transition does not apply"

// withDBAdd applies the change's db additions to fw (the state analysed
// is the one after them); db additions need a firmware state.
func withDBAdd(fw *secureboot.Firmware, ch *secureboot.Change) (*secureboot.Firmware, error) {
	if len(ch.DBAdd) == 0 {
		return fw, nil
	}
	if fw == nil {
		return nil, usageErrorf("--db-add adds to a firmware state: give --vars, --efivars or --firmware too")
	}
	fw, _ = fw.WithChange(&secureboot.Change{DBAdd: ch.DBAdd}, secureboot.Options{})
	return fw, nil
}

// readImage reads and parses an EFI binary; errors name the file.
func readImage(p string) (*authenticode.Image, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, &exitError{code: ExitError, err: err}
	}
	img, err := authenticode.Parse(b)
	if err != nil {
		return nil, &exitError{code: ExitError, err: fmt.Errorf("%s: %w", p, err)}
	}
	return img, nil
}

func checkFormat(format string) error {
	if format != "table" && format != "json" {
		return usageErrorf("unknown format %q (want table or json)", format)
	}
	return nil
}

func newSecureBootCmd() *cobra.Command {
	var (
		ff     firmwareFlags
		ch     *changeFlags
		format string
		live   bool
	)
	c := &cobra.Command{
		Use:   "secureboot [TARGET]",
		Short: "Tell whether a target boots under UEFI Secure Boot, and through the 2011 → 2023 CA transition",
		Long: `secureboot finds every boot path of a target — NVRAM Boot#### entries, the
removable-media path EFI/BOOT/BOOTX64.EFI, vendor directories (EFI/debian/shimx64.efi
→ grubx64.efi), fallback with BOOTX64.CSV — and judges each stage the way the real
verifier does: the firmware as edk2's DxeImageVerificationLib (db, dbx), shim with
its own rules (vendor certificate, vendor dbx, MokList/MokListX, SBAT), down to the
kernels of the root file system. It then answers the Microsoft UEFI CA transition
(the Microsoft Corporation UEFI CA 2011 that signs shim expired 2026-06-27): which
CAs signed the shim, which the firmware trusts, whether it boots today and whether
it will boot once a shim signed only by the Microsoft UEFI CA 2023 arrives.

The firmware state comes from --vars (an edk2/OVMF variable store), --efivars (an
efivarfs or exported variables), --firmware (what-if profile: microsoft-2011,
microsoft-2023, microsoft-both), or for the running system its own efivarfs.
Without any, shim-side facts are reported and the verdict is given per profile.

Revocation updates can be judged before anyone applies them:
  --dbx-update FILE   Microsoft's signed DBXUpdate.bin (EFI_VARIABLE_AUTHENTICATION_2
                      + signature lists), bare signature lists, or the JSON list
                      beside it (dbx_info_msft_latest.json; the target's architecture
                      is taken, descriptions and dates are reported). The lists are
                      appended to the firmware's dbx as the firmware's append write
                      does (to an empty dbx for a profile or unknown firmware).
  --sbat-level LEVEL  latest or automatic: the newest or the previous SbatLevel the
                      target's own shim carries (shim's SbatPolicy); FILE: one
                      SbatLevel payload ("sbat,1,2024040900" then component,generation
                      rows) or an exported SbatLevel variable, written to the
                      SbatLevel variable; FILE#DATESTAMP or FILE#latest: one payload
                      of a history such as shim's SbatLevel_Variable.txt.
Every binary of the ESP (shim, GRUB, fallback, MokManager, spare loaders) and every
kernel is judged before and after, as its loader judges it (firmware: db/dbx; shim:
dbx, vendor dbx, MokListX and SBAT for what it loads and what GRUB verifies through
it). The report (table, or "revocationImpact" in JSON) lists what each binary is
revoked by and whether each boot path still boots. Without a firmware state the
update is judged under the microsoft-both profile, with answers per profile.
(--sbat-policy, the old name of --sbat-level latest|automatic, still works.)

Exit codes: 0 it boots (or the firmware is unknown), 1 it does not boot under the
given firmware, or would not boot after the revocation update (with unknown
firmware: the update stops a target that boots under the microsoft-both profile),
2 usage or input error (including an update or SbatLevel file that does not parse).
On a host booted without UEFI it says so and exits 0.`,
		Example: `  vouch secureboot --vars /usr/share/OVMF/OVMF_VARS_4M.ms.fd debian.qcow2
  vouch secureboot --firmware microsoft-2023 --format json disk.raw
  vouch secureboot --live
  vouch secureboot --efivars ./exported-vars --db-add my-db.der rootfs/
  vouch secureboot --vars OVMF_VARS_4M.ms.fd --dbx-update DBXUpdate.bin debian.raw
  vouch secureboot --efivars /sys/firmware/efi/efivars --dbx-update dbx_info_msft_latest.json /
  vouch secureboot --firmware microsoft-both --sbat-level latest disk.qcow2
  vouch secureboot --live --sbat-level SbatLevel_Variable.txt#2025051000`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			policy := ""
			if c.Flags().Changed("sbat-policy") {
				policy, ff.sbatPolicy = ff.sbatPolicy, "automatic"
				fmt.Fprintln(c.ErrOrStderr(), "vouch: --sbat-policy is deprecated: use --sbat-level latest|automatic")
			}
			o, err := ff.options()
			if err != nil {
				return err
			}
			if policy != "" {
				if ch.files.SBATLevel != "" {
					return usageErrorf("--sbat-policy is the old name of --sbat-level: give only --sbat-level")
				}
				if _, err := secureboot.ParseSBATPolicy(policy); err != nil {
					return usageErrorf("--sbat-policy: %v", err)
				}
				ch.files.SBATLevel = strings.Replace(policy, "previous", "automatic", 1)
			}
			change, err := ch.load()
			if err != nil {
				return err
			}
			rev := change.Revocation()
			t, err := openTarget(targetArg(args), live)
			if err != nil {
				return err
			}
			defer t.Close()
			if t.Kind == target.KindLive && !t.HasUEFI() && !ff.given() {
				if format == "json" {
					return writeJSON(c.OutOrStdout(), map[string]any{"target": t.Path, "uefi": false, "message": noUEFI})
				}
				_, err := fmt.Fprintln(c.OutOrStdout(), noUEFI)
				return err
			}
			fw, _, err := ff.load(t)
			if err != nil {
				return err
			}
			if fw, err = withDBAdd(fw, change); err != nil {
				return err
			}
			j, err := secureboot.JudgeTarget(t, fw, o, rev)
			if err != nil {
				return &exitError{code: ExitError, err: err}
			}
			out := struct {
				Target string `json:"target"`
				*secureboot.Report
				RevocationImpact *secureboot.RevocationImpact `json:"revocationImpact,omitempty"`
			}{t.Path, j.Report, j.Impact}
			if format == "json" {
				err = writeJSON(c.OutOrStdout(), out)
			} else {
				err = buffered(c.OutOrStdout(), func(w io.Writer) error {
					if err := writeSecureBoot(w, t, j.Report); err != nil || j.Impact == nil {
						return err
					}
					writeRevocation(w, j.Impact)
					return nil
				})
			}
			if err != nil {
				return err
			}
			if j.Fails() {
				return &exitError{code: ExitFindings}
			}
			return nil
		},
	}
	ff.register(c)
	ch = addChangeFlags(c, changeFirmware)
	c.Flags().StringVarP(&format, "format", "o", "table", "output format: table or json")
	c.Flags().BoolVar(&live, "live", false, "inspect the running system")
	c.AddCommand(newSignaturesCmd(), newVerifyCmd())
	return c
}

// signatureJSON is one signature in `secureboot signatures`. Its keys are a
// contract.
type signatureJSON struct {
	Index           int      `json:"index"`
	Nested          int      `json:"nested"`
	SignerSubject   string   `json:"signerSubject"`
	SignerIssuer    string   `json:"signerIssuer"`
	Chain           []string `json:"chain"`
	DigestAlgorithm string   `json:"digestAlgorithm"`
	DigestMatches   bool     `json:"digestMatches"`
	SignatureValid  bool     `json:"signatureValid"`
	KnownCA         string   `json:"knownCA"`
	Error           string   `json:"error,omitempty"`
}

func signaturesOf(img *authenticode.Image) []signatureJSON {
	out := []signatureJSON{}
	for _, s := range img.Signatures() {
		j := signatureJSON{Index: s.Index + 1, Nested: s.Nested, Chain: []string{}, DigestAlgorithm: s.DigestAlgorithmName,
			DigestMatches: s.DigestMatches, SignatureValid: s.SignatureValid, KnownCA: s.KnownCA()}
		if s.Signer != nil {
			j.SignerSubject, j.SignerIssuer = s.Signer.Subject.String(), s.Signer.Issuer.String()
		}
		for _, c := range s.Chain {
			j.Chain = append(j.Chain, c.Subject.String())
		}
		if s.Err != nil {
			j.Error = s.Err.Error()
		}
		out = append(out, j)
	}
	return out
}

func newSignaturesCmd() *cobra.Command {
	var format string
	c := &cobra.Command{
		Use:   "signatures FILE.efi",
		Short: "List every Authenticode signature of an EFI binary",
		Long: `signatures lists every signature of a PE/COFF binary (each WIN_CERTIFICATE entry,
then any nested signature): the signer and its issuer, the certificate chain found in
the signature, the digest algorithm, whether the signed digest matches the image and
whether the signature verifies, and which well-known Microsoft CA it chains to
(microsoft-uefi-ca-2011, microsoft-uefi-ca-2023, ...). Subjects are RFC 4514 strings.`,
		Example: `  vouch secureboot signatures /boot/efi/EFI/debian/shimx64.efi
  vouch secureboot signatures --format json shimx64.efi.signed`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			img, err := readImage(args[0])
			if err != nil {
				return err
			}
			sigs := signaturesOf(img)
			tableErr := img.CertTableErr()
			if format == "json" {
				out := map[string]any{"signatures": sigs}
				if tableErr != nil {
					out["certificateTableError"] = tableErr.Error()
				}
				return writeJSON(c.OutOrStdout(), out)
			}
			return buffered(c.OutOrStdout(), func(w io.Writer) error {
				if len(sigs) == 0 {
					fmt.Fprintf(w, "%s: no signatures\n", args[0])
				}
				for _, s := range sigs {
					head := fmt.Sprintf("signature %d", s.Index)
					if s.Nested > 0 {
						head += fmt.Sprintf(" (nested, depth %d)", s.Nested)
					}
					fmt.Fprintf(w, "%s: %s, digest %s, signature %s\n", head, s.DigestAlgorithm,
						map[bool]string{true: "matches", false: "DOES NOT MATCH"}[s.DigestMatches],
						map[bool]string{true: "valid", false: "NOT VALID"}[s.SignatureValid])
					fmt.Fprintf(w, "  signer:   %s\n  issuer:   %s\n", s.SignerSubject, s.SignerIssuer)
					for i, cs := range s.Chain {
						label := "  chain:    "
						if i > 0 {
							label = "            "
						}
						fmt.Fprintf(w, "%s%s\n", label, cs)
					}
					if s.KnownCA != "" {
						fmt.Fprintf(w, "  known CA: %s\n", s.KnownCA)
					}
					if s.Error != "" {
						fmt.Fprintf(w, "  problem:  %s\n", s.Error)
					}
				}
				if tableErr != nil {
					fmt.Fprintf(w, "certificate table: %v\n", tableErr)
				}
				return nil
			})
		},
	}
	c.Flags().StringVarP(&format, "format", "o", "table", "output format: table or json")
	return c
}

func newVerifyCmd() *cobra.Command {
	var (
		ff     firmwareFlags
		ch     *changeFlags
		format string
	)
	c := &cobra.Command{
		Use:   "verify (--vars FILE.fd | --efivars DIR | --firmware PROFILE) FILE.efi",
		Short: "Say whether the firmware would start an EFI binary",
		Long: `verify applies a firmware's db and dbx to an EFI binary exactly as edk2's
DxeImageVerificationLib does and says whether the firmware would start it, which db
entry allowed it or which rule refused it.

Exit codes: 0 allowed, 1 denied, 2 usage or input error.`,
		Example: `  vouch secureboot verify --vars /usr/share/OVMF/OVMF_VARS_4M.ms.fd shimx64.efi
  vouch secureboot verify --firmware microsoft-2023 --format json shimx64.efi
  vouch secureboot verify --efivars /sys/firmware/efi/efivars grubx64.efi
  vouch secureboot verify --firmware microsoft-2011 --db-add microsoft-uefi-ca-2023 shimx64.efi`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			if !ff.given() {
				return usageErrorf("verify needs a firmware state: --vars FILE.fd, --efivars DIR or --firmware PROFILE")
			}
			change, err := ch.load()
			if err != nil {
				return err
			}
			fw, _, err := ff.load(nil)
			if err != nil {
				return err
			}
			fw, _ = fw.WithChange(change, secureboot.Options{})
			img, err := readImage(args[0])
			if err != nil {
				return err
			}
			d := fw.Verify(img)
			if format == "json" {
				err = writeJSON(c.OutOrStdout(), struct {
					secureboot.Decision
					Firmware string `json:"firmware"`
				}{d, fw.Source})
			} else {
				err = buffered(c.OutOrStdout(), func(w io.Writer) error { return writeDecision(w, args[0], fw, d) })
			}
			if err != nil {
				return err
			}
			if !d.Allowed {
				return &exitError{code: ExitFindings}
			}
			return nil
		},
	}
	ff.register(c)
	ch = addChangeFlags(c, changeDB|changeDBX)
	c.Flags().StringVarP(&format, "format", "o", "table", "output format: table or json")
	return c
}

func writeDecision(w io.Writer, file string, fw *secureboot.Firmware, d secureboot.Decision) error {
	verdict := "DENIED"
	if d.Allowed {
		verdict = "ALLOWED"
	}
	fmt.Fprintf(w, "%s: %s by the firmware (%s)\n", file, verdict, fw.Source)
	fmt.Fprintf(w, "  reason:        %s\n", d.Reason)
	if d.AuthorizedBy != "" {
		fmt.Fprintf(w, "  authorized by: %s\n", d.AuthorizedBy)
	}
	if d.DeniedBy != "" {
		fmt.Fprintf(w, "  denied by:     %s\n", d.DeniedBy)
	}
	if d.Explanation != "" {
		fmt.Fprintf(w, "  how:           %s\n", d.Explanation)
	}
	return nil
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func writeSecureBoot(w io.Writer, t *target.Target, r *secureboot.Report) error {
	fmt.Fprintf(w, "Target: %s (%s)\n", t.Path, t.Kind)
	if f := r.Firmware; f != nil {
		mode := "Secure Boot off"
		if f.SecureBoot {
			mode = "Secure Boot on"
		}
		if f.SetupMode {
			mode += ", setup mode"
		} else {
			mode += ", user mode"
		}
		fmt.Fprintf(w, "Firmware: %s — %s\n", f.Source, mode)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "  db\t%s\n", orNone(f.DB))
		fmt.Fprintf(tw, "  KEK\t%s\n", orNone(f.KEK))
		var dbx []string
		for _, k := range slices.Sorted(maps.Keys(f.DBX)) {
			dbx = append(dbx, fmt.Sprintf("%d %s", f.DBX[k], k))
		}
		fmt.Fprintf(tw, "  dbx\t%s\n", orNone(dbx))
		if len(f.MokList) > 0 {
			fmt.Fprintf(tw, "  MokList\t%s\n", strings.Join(f.MokList, "; "))
		}
		sbat := "none (shim applies the level it carries)"
		if f.SbatLevel != "" {
			sbat = strings.ReplaceAll(strings.TrimSpace(f.SbatLevel), "\n", " ")
		}
		fmt.Fprintf(tw, "  SbatLevel\t%s\n", sbat)
		tw.Flush()
		for _, warn := range f.Warnings {
			fmt.Fprintf(w, "  warning: %s\n", warn)
		}
	} else {
		fmt.Fprintln(w, "Firmware: unknown (give --vars, --efivars or --firmware); firmware stages are not judged")
	}
	fmt.Fprintln(w)
	if len(r.BootPaths) == 0 {
		fmt.Fprintln(w, "Boot paths: none found")
	}
	for _, bp := range r.BootPaths {
		state := "UNKNOWN"
		if bp.Boots != nil {
			state = map[bool]string{true: "BOOTS", false: "DOES NOT BOOT"}[*bp.Boots]
		}
		fmt.Fprintf(w, "%s — %s\n", bp.Name, state)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, st := range append(append([]secureboot.Stage(nil), bp.Stages...), bp.Kernels...) {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", st.LoadedBy, st.Path, st.Role, stageWords(st))
		}
		tw.Flush()
		fmt.Fprintf(w, "  %s\n", bp.Verdict)
	}
	tr := r.Transition
	fmt.Fprintln(w)
	fmt.Fprintln(w, "CA transition:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  shim signed by\t%s\n", orNone(tr.ShimSignedBy))
	if tr.FirmwareKnown {
		fmt.Fprintf(tw, "  firmware trusts\t%s\n", orNone(tr.FirmwareTrusts))
		fmt.Fprintf(tw, "  Secure Boot enabled\t%s\n", yes(tr.SecureBootEnabled))
		fmt.Fprintf(tw, "  boots today\t%s\n", yes(tr.BootsToday))
		fmt.Fprintf(tw, "  boots with a 2023-only shim\t%s\n", yes(tr.BootsWith2023OnlyShim))
	} else {
		for _, p := range secureboot.Profiles() {
			wi := tr.WhatIf[p]
			fmt.Fprintf(tw, "  if %s\tboots today: %s, with a 2023-only shim: %s\n", p, yes(wi.BootsToday), yes(wi.BootsWith2023OnlyShim))
		}
	}
	tw.Flush()
	fmt.Fprintf(w, "  advice: %s\n", tr.Advice)
	return nil
}

func stageWords(st secureboot.Stage) string {
	switch {
	case st.Error != "":
		return "MISSING: " + st.Error
	case st.Decision == nil:
		return "not judged (firmware unknown)"
	}
	d := st.Decision
	s := ""
	switch {
	case !d.Enforced:
		s = "allowed, not enforced: " + d.Reason
	case d.Allowed:
		s = "allowed: " + cmp.Or(d.AuthorizedBy, d.Reason)
	default:
		s = "REFUSED: " + d.Reason
	}
	if st.SelfCheck != nil && !st.SelfCheck.Allowed {
		s += "; " + st.SelfCheck.Reason
	}
	return s
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, "; ")
}
