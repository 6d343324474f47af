package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/vouch-dev/vouch/internal/target"
)

func newInspectCmd() *cobra.Command {
	var (
		format string
		live   bool
	)
	c := &cobra.Command{
		Use:   "inspect [TARGET]",
		Short: "Show what a disk image, root directory or the running system holds",
		Long: `inspect reads a target without mounting or modifying it and prints: the
container format and virtual size, the partitions (index, type and its name, label,
start, size), the file systems found and which is the EFI System Partition and which
the root, the OS identity from os-release, the installed kernels, the files under
the ESP's EFI directory, and how many bytes of the image it read.

TARGET is a disk image (raw, qcow2, VHD, VHDX; the format is detected from the
content), a directory holding a root file system, or / for the running system.`,
		Example: `  vouch inspect debian.qcow2
  vouch inspect --format json disk.vhdx
  vouch inspect /srv/rootfs
  vouch inspect --live`,
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
			inv := t.Inventory()
			if format == "json" {
				return writeJSON(c.OutOrStdout(), inv)
			}
			return buffered(c.OutOrStdout(), func(w io.Writer) error { return writeInventory(w, inv) })
		},
	}
	c.Flags().StringVarP(&format, "format", "o", "table", "output format: table or json")
	c.Flags().BoolVar(&live, "live", false, "inspect the running system")
	return c
}

func writeInventory(w io.Writer, inv *target.Inventory) error {
	ew := &errWriter{w: w}
	fmt.Fprintf(ew, "Target:      %s (%s)\n", inv.Target, inv.Kind)
	if inv.Format != "" {
		fmt.Fprintf(ew, "Format:      %s, virtual size %s (%d bytes)\n", inv.Format, humanBytes(inv.VirtualSize), inv.VirtualSize)
	}
	if inv.UEFI != nil {
		fmt.Fprintf(ew, "UEFI:        %v\n", *inv.UEFI)
	}
	if inv.OS != nil {
		fmt.Fprintf(ew, "OS:          %s (ID=%s VERSION_ID=%s, from %s)\n", inv.OS, inv.OS.ID, inv.OS.VersionID, inv.OS.Path)
	}
	if len(inv.Kernels) > 0 {
		fmt.Fprintf(ew, "Kernels:     %s\n", strings.Join(inv.Kernels, ", "))
	}
	if t := inv.Table; t != nil {
		fmt.Fprintf(ew, "\nPartition table: %s", t.Kind)
		if t.GUID != "" {
			fmt.Fprintf(ew, " (disk GUID %s)", t.GUID)
		}
		if t.Hybrid {
			fmt.Fprint(ew, ", hybrid MBR")
		}
		fmt.Fprintln(ew)
		if len(t.Partitions) > 0 {
			tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "  #\tTYPE\tTYPE NAME\tLABEL\tSTART\tSIZE\tFILESYSTEM\tROLE")
			for _, p := range t.Partitions {
				fsType, role := "", ""
				for _, f := range inv.Filesystems {
					if f.Partition == p.Index {
						fsType, role = f.Type, f.Role
					}
				}
				fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", p.Index, p.Type, p.TypeName, p.Label, p.Start, humanBytes(p.Size), fsType, role)
			}
			tw.Flush()
		}
	}
	for _, f := range inv.Filesystems {
		if f.Partition == 0 {
			fmt.Fprintf(ew, "Whole-disk file system: %s %s (%s)\n", f.Type, f.UUID, f.Role)
		}
	}
	if inv.ESP != nil {
		fmt.Fprintf(ew, "\nESP (%s) files under EFI/:\n", inv.ESP.Location)
		for _, f := range inv.ESP.Files {
			fmt.Fprintf(ew, "  %-40s %10d\n", f.Path, f.Size)
		}
		if len(inv.ESP.Files) == 0 {
			fmt.Fprintln(ew, "  (none)")
		}
	}
	for _, warn := range inv.Warnings {
		fmt.Fprintf(ew, "\nwarning: %s\n", warn)
	}
	if inv.Format != "" {
		pct := 0.0
		if inv.VirtualSize > 0 {
			pct = float64(inv.BytesRead) / float64(inv.VirtualSize) * 100
		}
		fmt.Fprintf(ew, "\nRead %s of the image (%.3f%% of its virtual size).\n", humanBytes(inv.BytesRead), pct)
	}
	return ew.err
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// errWriter keeps the first write error.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return len(p), nil
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, nil
}
