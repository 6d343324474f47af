package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/vouch-dev/vouch/internal/disk"
	"github.com/vouch-dev/vouch/internal/osrelease"
	"github.com/vouch-dev/vouch/internal/target"
)

// Inventory is what `vouch inspect` reports. Its JSON keys are a contract.
type Inventory struct {
	Target      string              `json:"target"`
	Kind        target.Kind         `json:"kind"`
	Format      string              `json:"format,omitempty"`
	VirtualSize int64               `json:"virtualSize,omitempty"`
	Table       *TableInfo          `json:"partitionTable,omitempty"`
	Filesystems []target.Filesystem `json:"filesystems,omitempty"`
	ESP         *ESPInfo            `json:"esp,omitempty"`
	OS          *osrelease.Info     `json:"os,omitempty"`
	Kernels     []string            `json:"kernels"`
	UEFI        *bool               `json:"uefi,omitempty"`
	BytesRead   int64               `json:"bytesRead,omitempty"`
	Warnings    []string            `json:"warnings,omitempty"`
}

// TableInfo is the partition table part of an inventory.
type TableInfo struct {
	Kind                string           `json:"kind"`
	GUID                string           `json:"guid,omitempty"`
	Hybrid              bool             `json:"hybrid,omitempty"`
	RecoveredFromBackup bool             `json:"recoveredFromBackup,omitempty"`
	Partitions          []disk.Partition `json:"partitions"`
}

// ESPInfo lists the ESP's EFI directory.
type ESPInfo struct {
	Location string    `json:"location"`
	Files    []ESPFile `json:"files"`
}

// ESPFile is one file under EFI/.
type ESPFile struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
}

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
			inv, err := Inspect(t)
			if err != nil {
				return err
			}
			if format == "json" {
				return writeJSON(c.OutOrStdout(), inv)
			}
			return buffered(c.OutOrStdout(), func(w io.Writer) error { return writeInventory(w, inv) })
		},
	}
	c.Flags().StringVar(&format, "format", "table", "output format: table or json")
	c.Flags().BoolVar(&live, "live", false, "inspect the running system")
	return c
}

// Inspect gathers the inventory of an opened target.
func Inspect(t *target.Target) (*Inventory, error) {
	inv := &Inventory{Target: t.Path, Kind: t.Kind, Kernels: []string{}}
	if im := t.Image; im != nil {
		inv.Format = string(im.Format)
		inv.VirtualSize = im.VirtualSize
		inv.Table = &TableInfo{Kind: im.Table.Kind, GUID: im.Table.GUID, Hybrid: im.Table.Hybrid,
			RecoveredFromBackup: im.Table.RecoveredFromBackup, Partitions: im.Table.Partitions}
		if inv.Table.Partitions == nil {
			inv.Table.Partitions = []disk.Partition{}
		}
		inv.Filesystems = im.Filesystems
		if im.Table.RecoveredFromBackup {
			inv.Warnings = append(inv.Warnings, "the primary GPT header is damaged; the backup GPT at the end of the disk was used")
		}
	}
	if t.Kind == target.KindLive {
		u := t.HasUEFI()
		inv.UEFI = &u
		if !u {
			inv.Warnings = append(inv.Warnings, "no UEFI here: /sys/firmware/efi is absent (booted through legacy BIOS, or a container)")
		}
	}
	if t.Root != nil {
		info, err := osrelease.Read(t.Root)
		switch {
		case err == nil:
			inv.OS = info
		case errors.Is(err, osrelease.ErrNotFound):
			inv.Warnings = append(inv.Warnings, "no os-release file in the root file system")
		default:
			inv.Warnings = append(inv.Warnings, err.Error())
		}
		inv.Kernels = kernels(t.Root)
	}
	if t.ESP != nil {
		files, err := espFiles(t.ESP)
		if err != nil {
			inv.Warnings = append(inv.Warnings, "reading the ESP: "+err.Error())
		}
		inv.ESP = &ESPInfo{Location: t.ESPPath, Files: files}
	}
	if t.Image != nil {
		inv.BytesRead = t.Image.BytesRead()
	}
	return inv, nil
}

// kernels lists boot/vmlinuz-* versions, sorted.
func kernels(root fs.FS) []string {
	out := []string{}
	entries, err := fs.ReadDir(root, "boot")
	if err != nil {
		return out
	}
	for _, e := range entries {
		if v, ok := strings.CutPrefix(e.Name(), "vmlinuz-"); ok && !e.IsDir() {
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return out
}

// espFiles lists every regular file under EFI/ with its size.
func espFiles(esp fs.FS) ([]ESPFile, error) {
	files := []ESPFile{}
	err := fs.WalkDir(esp, "EFI", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == "EFI" && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		files = append(files, ESPFile{Path: p, Size: info.Size()})
		return nil
	})
	sort.Slice(files, func(i, j int) bool { return strings.ToLower(files[i].Path) < strings.ToLower(files[j].Path) })
	return files, err
}

func writeInventory(w io.Writer, inv *Inventory) error {
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
