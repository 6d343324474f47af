// Package target opens what vouch inspects — a disk image, a directory holding a
// root file system, or the running system — and exposes read-only views of it:
// the root file system and the EFI System Partition as io/fs.FS with relative
// paths, firmware variables where the target has them, and facts about the image
// (container format, partitions, file systems).
//
// A disk image is read as a stack, without mounting and without writing:
// container format (raw, qcow2, VHD, VHDX) → partition table (GPT, MBR) → file
// systems (FAT for the ESP, ext2/3/4 or XFS for the root). Only the blocks needed
// are read.
package target

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/vouch-dev/vouch/internal/container"
	"github.com/vouch-dev/vouch/internal/disk"
	"github.com/vouch-dev/vouch/internal/fatfs"
	"github.com/vouch-dev/vouch/internal/luks"
	"github.com/vouch-dev/vouch/internal/rootfs"
)

// Kind says what a target is.
type Kind string

// Target kinds.
const (
	KindImage     Kind = "image"
	KindDirectory Kind = "directory"
	KindLive      Kind = "live"
)

// Roles a file system plays in a target.
const (
	RoleESP  = "esp"
	RoleRoot = "root"
)

// Target is an opened image, directory or live system.
type Target struct {
	Kind Kind
	Path string

	// Root is the root file system, nil when the target has none (an ESP-only
	// image). Symlinks resolve inside it.
	Root *rootfs.FS
	// ESP is the EFI System Partition, nil when there is none.
	ESP fs.FS
	// ESPPath says where the ESP was found: "partition 1" in an image, or the
	// directory under the root ("boot/efi").
	ESPPath string
	// EFIVars is the live system's efivarfs, nil elsewhere.
	EFIVars fs.FS

	// Image describes a disk image target; nil for directories and the live host.
	Image *Image

	closer io.Closer
}

// Image holds the facts of a disk image.
type Image struct {
	Format      container.Format
	VirtualSize int64
	Table       *disk.Table
	Filesystems []Filesystem
	// Note says what of the image was not read (an encrypted root).
	Note string
	// LUKS are the LUKS2 volumes of its partitions, with their headers (the
	// tokens that unlock them with the TPM): read in the clear, nothing is
	// decrypted.
	LUKS []LUKSVolume
	img  container.Image
}

// LUKSVolume is a LUKS volume in a partition of an image: its header, or
// why it could not be read (a LUKS1 volume, a damaged header).
type LUKSVolume struct {
	Partition int
	Header    *luks.Header
	Err       error
}

// BytesRead is how many bytes of the image file(s) vouch has read so far.
func (im *Image) BytesRead() int64 { return im.img.BytesRead() }

// Filesystem is a file system (or volume) found in a partition, or in the whole
// disk when it has no partition table (Partition 0).
type Filesystem struct {
	Partition int    `json:"partition"`
	Type      string `json:"type"`
	Label     string `json:"label,omitempty"`
	UUID      string `json:"uuid,omitempty"`
	Role      string `json:"role,omitempty"`
	Note      string `json:"note,omitempty"`
}

// Options change how Open reads a target.
type Options struct {
	// Live opens the running system even when path is not "/".
	Live bool
}

// Error is a target that cannot be read, with a reason a person understands.
type Error struct {
	Path        string
	Reason      string
	Unsupported bool // the input is valid but vouch does not read it yet
	Err         error
}

func (e *Error) Error() string {
	if e.Err != nil && e.Reason == "" {
		return fmt.Sprintf("%s: %v", e.Path, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Path, e.Reason)
}

func (e *Error) Unwrap() error { return e.Err }

// Open opens path as a target.
func Open(path string, opts Options) (*Target, error) {
	if opts.Live || path == "/" {
		return openLive()
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, &Error{Path: path, Reason: describeOSError(err), Err: err}
	}
	if info.IsDir() {
		return openDir(path)
	}
	if !info.Mode().IsRegular() && info.Mode()&fs.ModeDevice == 0 {
		return nil, &Error{Path: path, Reason: "not a disk image, a directory or a block device"}
	}
	return openImage(path)
}

// Close releases the target's files.
func (t *Target) Close() error {
	if t.closer != nil {
		return t.closer.Close()
	}
	return nil
}

func describeOSError(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "no such file or directory"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// espDirs are where distributions mount the ESP, in the order checked.
var espDirs = []string{"boot/efi", "efi", "boot"}

func openDir(path string) (*Target, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, &Error{Path: path, Err: err}
	}
	t := &Target{Kind: KindDirectory, Path: abs}
	root := rootfs.New(rootfs.Dir(abs))
	if isRoot(root) {
		t.Root = root
		t.ESP, t.ESPPath = findESPDir(root)
		return t, nil
	}
	// A directory holding an ESP's contents (EFI/...) is a target too.
	if info, err := root.Stat("EFI"); err == nil && info.IsDir() {
		t.ESP, t.ESPPath = root, "."
		return t, nil
	}
	return nil, &Error{Path: path, Reason: "not a root file system (no etc/os-release or usr/lib/os-release) and not an EFI System Partition (no EFI directory)"}
}

func openLive() (*Target, error) {
	root := rootfs.New(rootfs.Dir("/"))
	t := &Target{Kind: KindLive, Path: "/", Root: root}
	t.ESP, t.ESPPath = findESPDir(root)
	if info, err := os.Stat("/sys/firmware/efi/efivars"); err == nil && info.IsDir() {
		t.EFIVars = os.DirFS("/sys/firmware/efi/efivars")
	}
	return t, nil
}

// HasUEFI reports whether a live target booted through UEFI.
func (t *Target) HasUEFI() bool {
	_, err := os.Stat("/sys/firmware/efi")
	return t.Kind == KindLive && err == nil
}

// isRoot reports whether fsys looks like a Linux root file system, using the
// os-release locations of the os-release(5) specification.
func isRoot(fsys fs.FS) bool {
	for _, p := range []string{"etc/os-release", "usr/lib/os-release"} {
		if info, err := fs.Stat(fsys, p); err == nil && !info.IsDir() {
			return true
		}
	}
	return false
}

func findESPDir(root *rootfs.FS) (fs.FS, string) {
	for _, d := range espDirs {
		if info, err := root.Stat(d + "/EFI"); err == nil && info.IsDir() {
			sub, err := fs.Sub(root, d)
			if err == nil {
				return sub, d
			}
		}
	}
	return nil, ""
}

func openImage(path string) (*Target, error) {
	img, err := container.Open(path)
	if err != nil {
		return nil, imageError(path, err)
	}
	t := &Target{Kind: KindImage, Path: path, closer: img}
	im := &Image{Format: img.Format(), VirtualSize: img.Size(), img: img}
	t.Image = im
	if err := t.readImage(im); err != nil {
		img.Close()
		return nil, err
	}
	return t, nil
}

func imageError(path string, err error) error {
	var fe *container.FormatError
	if errors.As(err, &fe) {
		reason := fe.Reason
		if fe.Offset >= 0 {
			reason += fmt.Sprintf(" (offset 0x%x)", fe.Offset)
		}
		return &Error{Path: path, Reason: reason, Err: err, Unsupported: fe.Unsupported}
	}
	return &Error{Path: path, Reason: err.Error(), Err: err}
}

func (t *Target) readImage(im *Image) error {
	table, err := disk.ReadTable(im.img, im.VirtualSize)
	if err != nil {
		return t.readError("", err)
	}
	im.Table = table
	type candidate struct {
		part disk.Partition
		sec  *io.SectionReader
		info disk.FSInfo
	}
	var cands []candidate
	if table.Kind == "none" {
		sec := io.NewSectionReader(im.img, 0, im.VirtualSize)
		cands = append(cands, candidate{disk.Partition{Index: 0, Size: im.VirtualSize}, sec, disk.Probe(sec, im.VirtualSize)})
	}
	for _, p := range table.Partitions {
		if p.Type == "0x05" || p.Type == "0x0f" || p.Type == "0x85" {
			continue // the extended partition container itself
		}
		sec := io.NewSectionReader(im.img, p.Start, p.Size)
		cands = append(cands, candidate{p, sec, disk.Probe(sec, p.Size)})
	}
	var unsupported, encrypted []string
	// The ESP: by partition type first, then any FAT file system with an EFI directory.
	for pass := 0; pass < 2 && t.ESP == nil; pass++ {
		for _, c := range cands {
			if c.info.Type != disk.FSVFAT || (pass == 0 && !c.part.IsESP()) {
				continue
			}
			f, err := fatfs.New(c.sec, c.part.Size)
			if err != nil {
				continue
			}
			if _, err := fs.Stat(f, "EFI"); pass == 1 && err != nil {
				continue
			}
			t.ESP, t.ESPPath = f, fmt.Sprintf("partition %d", c.part.Index)
			im.setRole(c.part.Index, RoleESP)
			break
		}
	}
	// The root: a Discoverable Partitions root type first, then any Linux file
	// system holding os-release.
	for pass := 0; pass < 2 && t.Root == nil; pass++ {
		for _, c := range cands {
			if pass == 0 && !disk.IsRootType(c.part.Type) {
				continue
			}
			if pass == 1 && disk.IsRootType(c.part.Type) {
				continue
			}
			switch c.info.Type {
			case disk.FSExt2, disk.FSExt3, disk.FSExt4, disk.FSXFS:
			case disk.FSLUKS:
				// An encrypted root stays closed: the target is its ESP,
				// and the LUKS header (read below) says what unlocks it.
				encrypted = append(encrypted, fmt.Sprintf("partition %d", c.part.Index))
				continue
			case disk.FSBtrfs, disk.FSLVM, disk.FSMDRaid:
				if pass == 0 {
					return &Error{Path: t.Path, Unsupported: true,
						Reason: fmt.Sprintf("root partition %d holds %s, which vouch does not read yet", c.part.Index, fsDisplay(c.info.Type))}
				}
				unsupported = append(unsupported, fmt.Sprintf("partition %d holds %s", c.part.Index, fsDisplay(c.info.Type)))
				continue
			default:
				continue
			}
			root, err := openLinuxFS(c.info.Type, c.sec)
			if err != nil {
				if pass == 0 {
					return t.readError(fmt.Sprintf("root partition %d: ", c.part.Index), err)
				}
				continue
			}
			if !isRoot(root) {
				if pass == 0 {
					// Tell a damaged file system from one that is not a root.
					if _, err := root.ReadDir("."); err != nil {
						return t.readError(fmt.Sprintf("root partition %d (%s): ", c.part.Index, c.info.Type), err)
					}
					return &Error{Path: t.Path, Reason: fmt.Sprintf("root partition %d (%s) has no etc/os-release or usr/lib/os-release", c.part.Index, c.info.Type)}
				}
				continue
			}
			t.Root = root
			im.setRole(c.part.Index, RoleRoot)
			break
		}
	}
	for _, c := range cands {
		im.addFilesystem(c.part.Index, c.info)
		if c.info.Type == disk.FSLUKS {
			h, err := luks.Read(c.sec, c.part.Size, fmt.Sprintf("%s partition %d", t.Path, c.part.Index))
			im.LUKS = append(im.LUKS, LUKSVolume{Partition: c.part.Index, Header: h, Err: err})
		}
	}
	if t.Root == nil && len(unsupported) > 0 {
		return &Error{Path: t.Path, Unsupported: true,
			Reason: fmt.Sprintf("no readable root file system: %s, which vouch does not read yet", joinAnd(unsupported))}
	}
	if t.Root == nil && t.ESP == nil && len(encrypted) > 0 {
		return &Error{Path: t.Path, Unsupported: true, Reason: fmt.Sprintf("%s LUKS-encrypted and there is no EFI System Partition: nothing vouch can read", joinAnd(encrypted))}
	}
	if t.Root == nil && t.ESP == nil {
		return &Error{Path: t.Path, Reason: fmt.Sprintf("no root file system and no EFI System Partition found (%s, %d partitions)", table.Kind, len(table.Partitions))}
	}
	if t.Root == nil && len(encrypted) > 0 {
		im.Note = "the root file system (" + joinAnd(encrypted) + ") is LUKS-encrypted: only the ESP and the LUKS headers are read"
	}
	return nil
}

// readError reports err against the target. A container format error deeper in
// the chain (a qcow2 table past the end of the file, say) is the real cause, and
// already names the file: it is reported alone.
func (t *Target) readError(prefix string, err error) error {
	var fe *container.FormatError
	if errors.As(err, &fe) {
		reason := fe.Reason
		if fe.Offset >= 0 {
			reason += fmt.Sprintf(" (offset 0x%x)", fe.Offset)
		}
		return &Error{Path: t.Path, Reason: reason, Err: err, Unsupported: fe.Unsupported}
	}
	return &Error{Path: t.Path, Reason: prefix + err.Error(), Err: err}
}

func openLinuxFS(typ string, sec *io.SectionReader) (*rootfs.FS, error) {
	var (
		l   *linuxFS
		err error
	)
	// Both readers put read-ahead under their metadata reads only.
	if typ == disk.FSXFS {
		l, err = newXFS(sec)
	} else {
		l, err = newExt4(sec)
	}
	if err != nil {
		return nil, err
	}
	return rootfs.New(l), nil
}

func (im *Image) setRole(part int, role string) {
	for i := range im.Filesystems {
		if im.Filesystems[i].Partition == part {
			im.Filesystems[i].Role = role
			return
		}
	}
	im.Filesystems = append(im.Filesystems, Filesystem{Partition: part, Role: role})
}

func (im *Image) addFilesystem(part int, info disk.FSInfo) {
	for i := range im.Filesystems {
		if im.Filesystems[i].Partition == part {
			f := &im.Filesystems[i]
			f.Type, f.Label, f.UUID = info.Type, info.Label, info.UUID
			return
		}
	}
	if info.Type == "" {
		return
	}
	im.Filesystems = append(im.Filesystems, Filesystem{Partition: part, Type: info.Type, Label: info.Label, UUID: info.UUID})
}

func fsDisplay(t string) string {
	switch t {
	case disk.FSLVM:
		return "an LVM physical volume"
	case disk.FSBtrfs:
		return "btrfs"
	case disk.FSLUKS:
		return "a LUKS-encrypted volume"
	case disk.FSMDRaid:
		return "a Linux software RAID member"
	}
	return t
}

func joinAnd(s []string) string {
	switch len(s) {
	case 0:
		return ""
	case 1:
		return s[0]
	}
	out := s[0]
	for _, x := range s[1 : len(s)-1] {
		out += ", " + x
	}
	return out + " and " + s[len(s)-1]
}
