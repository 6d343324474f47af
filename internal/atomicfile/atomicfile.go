// Package atomicfile is vouch's one way to replace a file: a reader sees the
// old file or the new one, never half of one, and a failed write leaves the
// old file as it was.
package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// Options say what the new file is like.
type Options struct {
	// Mode is the new file's permission bits (and setuid, setgid,
	// sticky), exactly: 0 gives a file no one but root may open, as a
	// rewritten /etc/shadow of mode 0000 must stay.
	Mode fs.FileMode
	// Owner, when set, is given to the new file; a user who may not give
	// files away (fs.ErrPermission) keeps them as they are.
	Owner *Owner
	// MkdirAll creates the missing folders of the path (0o755).
	MkdirAll bool
}

// Owner is a numeric owner and group.
type Owner struct{ UID, GID int }

// Write replaces path with b: a temporary file in the same folder, written,
// given its mode and owner, synced, renamed over path, and the folder
// synced. On any error the temporary file is removed and path is untouched.
func Write(path string, b []byte, o Options) (err error) {
	dir := filepath.Dir(path)
	if o.MkdirAll {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".vouch-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(b); err != nil {
		return err
	}
	mode := o.Mode
	if err = f.Chmod(mode.Perm() | mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
		return err
	}
	if o.Owner != nil {
		if cerr := f.Chown(o.Owner.UID, o.Owner.GID); cerr != nil && !errors.Is(cerr, fs.ErrPermission) {
			return cerr
		}
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return nil // renamed; a folder that cannot be opened cannot be synced
	}
	defer d.Close()
	_ = d.Sync()
	return nil
}
