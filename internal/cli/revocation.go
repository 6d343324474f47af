package cli

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/vouch-dev/vouch/internal/secureboot"
	"github.com/vouch-dev/vouch/internal/target"
)

// revocationFlags are `vouch secureboot`'s what-if revocation updates.
type revocationFlags struct {
	dbxUpdate string
	sbatLevel string
}

func (rf *revocationFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&rf.dbxUpdate, "dbx-update", "", "judge a dbx update before applying it: Microsoft's signed DBXUpdate.bin (or bare signature lists) or its JSON list (dbx_info_msft_latest.json)")
	c.Flags().StringVar(&rf.sbatLevel, "sbat-level", "", "judge a new SBAT level: latest or automatic (the levels the target's shim carries), FILE (one SbatLevel payload or an exported SbatLevel variable), or FILE#DATESTAMP / FILE#latest (one payload of a history such as shim's SbatLevel_Variable.txt)")
}

// load parses the update files; nil when none was asked for. sbatPolicy is
// the deprecated --sbat-policy when it was given.
func (rf *revocationFlags) load(sbatPolicy string) (*secureboot.Revocation, error) {
	if sbatPolicy != "" {
		if rf.sbatLevel != "" {
			return nil, usageErrorf("--sbat-policy is the old name of --sbat-level: give only --sbat-level")
		}
		if _, err := secureboot.ParseSBATPolicy(sbatPolicy); err != nil {
			return nil, usageErrorf("--sbat-policy: %v", err)
		}
		rf.sbatLevel = sbatPolicy
		if sbatPolicy == "previous" {
			rf.sbatLevel = "automatic"
		}
	}
	if rf.dbxUpdate == "" && rf.sbatLevel == "" {
		return nil, nil
	}
	rev := &secureboot.Revocation{}
	var err error
	if rf.dbxUpdate != "" {
		if rev.DBX, err = secureboot.ReadDBXUpdate(rf.dbxUpdate); err != nil {
			return nil, &exitError{code: ExitError, err: err}
		}
	}
	if rf.sbatLevel != "" {
		if rev.SBAT, err = secureboot.ParseSBATUpdateArg(rf.sbatLevel); err != nil {
			return nil, &exitError{code: ExitError, err: err}
		}
	}
	return rev, nil
}

// analyzeRevocation judges rev on the analysed target.
func analyzeRevocation(t *target.Target, r *secureboot.Report, fw *secureboot.Firmware, o secureboot.Options, rev *secureboot.Revocation) (*secureboot.RevocationImpact, error) {
	if rev == nil {
		return nil, nil
	}
	imp, err := secureboot.AnalyzeRevocation(t.ESP, r.BootPaths, fw, o, *rev)
	if err != nil {
		var re *secureboot.RevocationError
		if errors.As(err, &re) {
			return nil, &exitError{code: ExitError, err: fmt.Errorf("%s: %w", t.Path, err)}
		}
		return nil, &exitError{code: ExitError, err: err}
	}
	return imp, nil
}

// revocationBreaks reports whether the update leaves the target unbootable:
// under known firmware, when no boot path boots after it; under unknown
// firmware, when it stops a target that boots under the stand-in.
func revocationBreaks(imp *secureboot.RevocationImpact) bool {
	if imp == nil {
		return false
	}
	if imp.FirmwareKnown {
		return !imp.BootsAfter
	}
	return imp.BootsBefore && !imp.BootsAfter
}

func writeRevocation(w io.Writer, imp *secureboot.RevocationImpact) {
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Revocation impact (applied to %s):\n", imp.Firmware)
	if d := imp.DBX; d != nil {
		var counts []string
		for _, k := range slices.Sorted(maps.Keys(d.Entries)) {
			counts = append(counts, fmt.Sprintf("%d %s", d.Entries[k], k))
		}
		fmt.Fprintf(w, "  dbx update: %s (%s", d.Source, d.Form)
		if d.Arch != "" {
			fmt.Fprintf(w, ", %s images", d.Arch)
		}
		if d.SignedAt != nil {
			fmt.Fprintf(w, ", signed %s", d.SignedAt.Format("2006-01-02"))
		}
		fmt.Fprintf(w, "): %s, %d new; dbx %d → %d entries\n", orNone(counts), d.New, d.Before, d.After)
	}
	if s := imp.SBAT; s != nil {
		line := func(l *secureboot.SBATLevel) string {
			if l == nil {
				return "none (no shim)"
			}
			return strings.ReplaceAll(strings.TrimSpace(l.Text), "\n", " ")
		}
		fmt.Fprintf(w, "  SBAT level: %s: %s → %s\n", s.Source, line(s.Before), line(s.After))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  PATH\tROLE\tLOADED BY\tBEFORE → AFTER\tREVOKED BY")
	for _, b := range imp.Binaries {
		by := "-"
		if len(b.RevokedBy) > 0 {
			var parts []string
			for _, r := range b.RevokedBy {
				parts = append(parts, r.String())
			}
			by = strings.Join(parts, "; ")
		} else if b.Revoked {
			by = b.Reason
		}
		p := b.Path
		if !b.OnBootPath {
			p += " (no boot path)"
		}
		change := b.Before + " → " + b.After
		if b.Revoked {
			change = b.Before + " → REVOKED"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", p, b.Role, b.LoadedBy, change, by)
	}
	tw.Flush()
	state := func(b *bool) string {
		if b == nil {
			return "unknown"
		}
		return map[bool]string{true: "boots", false: "DOES NOT BOOT"}[*b]
	}
	for _, p := range imp.BootPaths {
		fmt.Fprintf(w, "  %s: %s → %s\n", p.Name, state(p.BootsBefore), state(p.BootsAfter))
	}
	if len(imp.WhatIf) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, name := range secureboot.Profiles() {
			wi := imp.WhatIf[name]
			fmt.Fprintf(tw, "  if %s\tboots before: %s, after: %s\n", name, yes(wi.BootsBefore), yes(wi.BootsAfter))
		}
		tw.Flush()
	}
	for _, n := range imp.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	fmt.Fprintf(w, "  verdict: %s\n", imp.Verdict)
}
