package target

import (
	"errors"
	"io/fs"
	"slices"
	"strings"

	"github.com/vouch-dev/vouch/internal/disk"
	"github.com/vouch-dev/vouch/internal/osrelease"
)

// Inventory is what `vouch inspect` reports. Its JSON keys are a contract.
type Inventory struct {
	Target      string          `json:"target"`
	Kind        Kind            `json:"kind"`
	Format      string          `json:"format,omitempty"`
	VirtualSize int64           `json:"virtualSize,omitempty"`
	Table       *TableInfo      `json:"partitionTable,omitempty"`
	Filesystems []Filesystem    `json:"filesystems,omitempty"`
	ESP         *ESPInfo        `json:"esp,omitempty"`
	OS          *osrelease.Info `json:"os,omitempty"`
	Kernels     []string        `json:"kernels"`
	UEFI        *bool           `json:"uefi,omitempty"`
	BytesRead   int64           `json:"bytesRead,omitempty"`
	Warnings    []string        `json:"warnings,omitempty"`
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

// Inventory gathers what `vouch inspect` reports of an opened target.
// Problems reading parts of it are Warnings.
func (t *Target) Inventory() *Inventory {
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
	if t.Kind == KindLive {
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
		for _, k := range Kernels(t.Root) {
			inv.Kernels = append(inv.Kernels, strings.TrimPrefix(k, "boot/vmlinuz-"))
		}
		slices.Reverse(inv.Kernels) // oldest first
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
	return inv
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
	slices.SortFunc(files, func(a, b ESPFile) int { return strings.Compare(strings.ToLower(a.Path), strings.ToLower(b.Path)) })
	return files, err
}
