package cli

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/vouch-dev/vouch/internal/secureboot"
)

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
