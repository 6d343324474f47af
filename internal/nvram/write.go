package nvram

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/vouch-dev/vouch/internal/atomicfile"
	"github.com/vouch-dev/vouch/internal/efi"
)

// BackupSuffix is appended to a store's path for the default backup.
const BackupSuffix = ".vouch-bak"

// SaveOptions say how Save keeps the original.
type SaveOptions struct {
	// Backup is where the original goes; "" means Path + BackupSuffix.
	Backup string
	// NoBackup skips the backup.
	NoBackup bool
}

// CheckWritable refuses a store file that Save could not, or should not,
// replace: a missing or non-regular file, a file without any write
// permission bit (rename would otherwise silently replace a read-only file,
// and root passes every access check), a file or folder the caller may not
// write.
func CheckWritable(path string) error {
	info, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("nvram: %w", err)
	}
	if info.Mode()&os.ModeSymlink != 0 {
		if info, err = os.Stat(path); err != nil {
			return fmt.Errorf("nvram: %w", err)
		}
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("nvram: %s: not a regular file", path)
	}
	if info.Mode().Perm()&0o222 == 0 {
		return fmt.Errorf("nvram: %s: the file is read-only (mode %04o): make it writable (chmod u+w) to edit it", path, info.Mode().Perm())
	}
	if err := unix.Access(path, unix.W_OK); err != nil {
		return fmt.Errorf("nvram: %s: not writable: %w", path, err)
	}
	dir := filepath.Dir(realPath(path))
	if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
		return fmt.Errorf("nvram: %s: cannot create the new file beside it in %s: %w", path, dir, err)
	}
	return nil
}

// realPath resolves symbolic links so that the new file replaces the link's
// target, not the link.
func realPath(path string) string {
	if p, err := filepath.EvalSymlinks(path); err == nil {
		return p
	}
	return path
}

// Save writes the edited store back to its file atomically: the original is
// re-read and must be unchanged since Open (another writer, such as a
// running VM, would be overwritten), the backup is written, then the new
// image goes to a temporary file in the same folder, is synced, takes the
// original's mode and owner, and is renamed over the original; the folder is
// synced last. On any error the original file is untouched.
func (s *Store) Save(opts SaveOptions) error {
	if s.Path == "" {
		return errors.New("nvram: the store was not read from a file")
	}
	if !s.Changed() {
		return nil
	}
	if err := CheckWritable(s.Path); err != nil {
		return err
	}
	target := realPath(s.Path)
	now, err := os.ReadFile(target)
	if err != nil {
		return fmt.Errorf("nvram: %w", err)
	}
	if !bytes.Equal(now, s.orig) {
		return fmt.Errorf("nvram: %s changed since it was read (is the VM running?); nothing written", s.Path)
	}
	info, err := os.Stat(target)
	if err != nil {
		return fmt.Errorf("nvram: %w", err)
	}
	if !opts.NoBackup {
		backup := opts.Backup
		if backup == "" {
			backup = s.Path + BackupSuffix
		}
		if err := writeAtomic(backup, s.orig, info); err != nil {
			return fmt.Errorf("nvram: backup: %w", err)
		}
	}
	if err := writeAtomic(target, s.vs.Bytes(), info); err != nil {
		return fmt.Errorf("nvram: %w", err)
	}
	s.orig = s.vs.Bytes()
	return nil
}

// writeAtomic replaces path with b (atomicfile.Write), with like's mode and
// owner: the VM's owner (libvirt-qemu, say) is kept when root edits.
func writeAtomic(path string, b []byte, like os.FileInfo) error {
	o := atomicfile.Options{Mode: like.Mode().Perm()}
	if st, ok := like.Sys().(*syscall.Stat_t); ok {
		o.Owner = &atomicfile.Owner{UID: int(st.Uid), GID: int(st.Gid)}
	}
	return atomicfile.Write(path, b, o)
}

// Export writes every variable of vs into dir as efivarfs does: one file
// per variable named Name-GUID holding the 4-byte little-endian attributes
// and the data, the format efi.ReadVarDir reads. dir is created if missing;
// files of the same names are replaced, others left alone. It returns the
// file names written.
func Export(vs *efi.VarSet, dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("nvram: export: %w", err)
	}
	var names []string
	for _, v := range vs.All() {
		name := efi.VarFileName(v.Name, v.GUID)
		if filepath.Base(name) != name || name == "." || name == ".." {
			return names, fmt.Errorf("nvram: export: variable name %q cannot be a file name", v.Name)
		}
		b := binary.LittleEndian.AppendUint32(nil, uint32(v.Attributes))
		b = append(b, v.Data...)
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return names, fmt.Errorf("nvram: export: %w", err)
		}
		names = append(names, name)
	}
	return names, nil
}
