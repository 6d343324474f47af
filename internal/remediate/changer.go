package remediate

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/vouch-dev/vouch/internal/atomicfile"
	"github.com/vouch-dev/vouch/internal/rootfs"
)

// Changer plans and applies the changes of one rule's fix.
type Changer struct {
	root      string
	fsys      *rootfs.FS
	dry       bool
	stamp     string
	backupDir string
	overlay   map[string]*pending // relative path -> planned state (dry run and within a rule)
	touched   map[string]bool     // paths already recorded in this run's MANIFEST
	ops       []op
	printed   []string
}

type pending struct {
	content []byte
	exists  bool
	mode    fs.FileMode
	uid     int
	gid     int
}

type op struct {
	kind    string // write, chmod, chown
	rel     string
	content []byte
	mode    fs.FileMode
	uid     int
	gid     int
	show    string

	before       []byte // a write's content before this rule's first edit
	beforeExists bool
}

func (c *Changer) begin() { c.ops, c.printed = nil, nil }
func (c *Changer) abort() { c.ops, c.printed = nil, nil }

// real returns the host path of rel with symlinks resolved inside the root;
// missing trailing elements are kept as they are.
func (c *Changer) real(rel string) (string, error) {
	p, err := c.fsys.Resolve(rel, true)
	if err == nil {
		return filepath.Join(c.root, filepath.FromSlash(p)), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	dir, base := path.Split(rel)
	if dir == "" {
		return filepath.Join(c.root, filepath.FromSlash(rel)), nil
	}
	pd, err := c.real(strings.TrimSuffix(dir, "/"))
	if err != nil {
		return "", err
	}
	return filepath.Join(pd, base), nil
}

// state returns the planned or on-disk state of rel.
func (c *Changer) state(rel string) (*pending, error) {
	if p, ok := c.overlay[rel]; ok {
		cp := *p
		return &cp, nil
	}
	hp, err := c.real(rel)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(hp)
	if errors.Is(err, fs.ErrNotExist) {
		return &pending{mode: 0o644}, nil
	}
	if err != nil {
		return nil, err
	}
	p := &pending{exists: true, mode: fi.Mode()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		p.uid, p.gid = int(st.Uid), int(st.Gid)
	}
	if fi.Mode().IsRegular() {
		p.content, err = os.ReadFile(hp)
		if err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Read returns rel's content as planned so far.
func (c *Changer) Read(rel string) ([]byte, bool, error) {
	p, err := c.state(rel)
	if err != nil {
		return nil, false, err
	}
	return p.content, p.exists, nil
}

// Write plans rel's new content; a new file gets newMode and root ownership.
func (c *Changer) Write(rel string, content []byte, newMode fs.FileMode) error {
	p, err := c.state(rel)
	if err != nil {
		return err
	}
	if p.exists && bytes.Equal(p.content, content) {
		return nil
	}
	if p.exists && !p.mode.IsRegular() {
		return fmt.Errorf("remediate: /%s is not a regular file", rel)
	}
	before, beforeExists := p.content, p.exists
	if n := len(c.ops); n > 0 && c.ops[n-1].kind == "write" && c.ops[n-1].rel == rel {
		// Successive edits of one file by one rule show as one diff.
		before, beforeExists = c.ops[n-1].before, c.ops[n-1].beforeExists
		c.ops = c.ops[:n-1]
	}
	d := unifiedDiff(rel, before, content, beforeExists)
	if !p.exists {
		p.mode, p.uid, p.gid = newMode, 0, 0
	}
	p.content, p.exists = content, true
	c.overlay[rel] = p
	c.ops = append(c.ops, op{kind: "write", rel: rel, content: content, mode: p.mode, uid: p.uid, gid: p.gid, show: d,
		before: before, beforeExists: beforeExists})
	return nil
}

// Chmod plans a mode change.
func (c *Changer) Chmod(rel string, mode fs.FileMode) error {
	p, err := c.state(rel)
	if err != nil {
		return err
	}
	if !p.exists {
		return fmt.Errorf("remediate: /%s does not exist", rel)
	}
	if p.mode&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) == mode {
		return nil
	}
	show := fmt.Sprintf("chmod %04o /%s   (was %04o)\n", unixMode(mode), rel, unixMode(p.mode))
	p.mode = p.mode&fs.ModeType | mode
	c.overlay[rel] = p
	c.ops = append(c.ops, op{kind: "chmod", rel: rel, mode: mode, show: show})
	return nil
}

// Chown plans an owner change.
func (c *Changer) Chown(rel string, uid, gid int) error {
	p, err := c.state(rel)
	if err != nil {
		return err
	}
	if !p.exists {
		return fmt.Errorf("remediate: /%s does not exist", rel)
	}
	if p.uid == uid && p.gid == gid {
		return nil
	}
	show := fmt.Sprintf("chown %d:%d /%s   (was %d:%d)\n", uid, gid, rel, p.uid, p.gid)
	p.uid, p.gid = uid, gid
	c.overlay[rel] = p
	c.ops = append(c.ops, op{kind: "chown", rel: rel, uid: uid, gid: gid, show: show})
	return nil
}

// commit applies the planned operations (unless dry) and returns one line per
// change.
func (c *Changer) commit() ([]string, error) {
	var done []string
	for _, o := range c.ops {
		c.printed = append(c.printed, o.show)
		done = append(done, o.kind+" /"+o.rel)
		if c.dry {
			continue
		}
		if err := c.apply(o); err != nil {
			return done, err
		}
	}
	if !c.dry {
		// On disk now: later rules read the files themselves.
		for _, o := range c.ops {
			delete(c.overlay, o.rel)
		}
	}
	return done, nil
}

func (c *Changer) apply(o op) error {
	hp, err := c.real(o.rel)
	if err != nil {
		return err
	}
	if err := c.backup(o, hp); err != nil {
		return err
	}
	switch o.kind {
	case "chmod":
		return os.Chmod(hp, o.mode)
	case "chown":
		return os.Lchown(hp, o.uid, o.gid)
	}
	// Mode as planned: an existing file keeps its mode, even 0 (shadow on
	// Red Hat systems), and its owner.
	return atomicfile.Write(hp, o.content, atomicfile.Options{
		Mode:     o.mode,
		Owner:    &atomicfile.Owner{UID: o.uid, GID: o.gid},
		MkdirAll: true,
	})
}

// backup copies the original of a file about to change (once per run) into
// the run's backup directory and records the change in its MANIFEST.
func (c *Changer) backup(o op, hp string) error {
	if c.backupDir == "" {
		base := filepath.Join(c.root, filepath.FromSlash(BackupRoot))
		dir := filepath.Join(base, c.stamp)
		for i := 1; ; i++ {
			if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
				break
			}
			dir = filepath.Join(base, fmt.Sprintf("%s.%d", c.stamp, i))
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		if err := os.Chmod(filepath.Join(c.root, filepath.FromSlash(BackupRoot)), 0o700); err != nil {
			return err
		}
		c.backupDir = dir
	}
	if c.touched == nil {
		c.touched = map[string]bool{}
	}
	if c.touched[o.rel] {
		return nil // the original was recorded at the first change of this run
	}
	c.touched[o.rel] = true
	fi, err := os.Lstat(hp)
	line := ""
	switch {
	case errors.Is(err, fs.ErrNotExist):
		line = fmt.Sprintf("created\t/%s\n", o.rel)
	case err != nil:
		return err
	default:
		uid, gid := -1, -1
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(st.Uid), int(st.Gid)
		}
		line = fmt.Sprintf("%s\t/%s\tmode=%04o\towner=%d:%d\n", o.kind, o.rel, unixMode(fi.Mode()), uid, gid)
		dst := filepath.Join(c.backupDir, filepath.FromSlash(o.rel))
		if _, err := os.Lstat(dst); errors.Is(err, fs.ErrNotExist) && fi.Mode().IsRegular() {
			if err := copyFile(hp, dst, fi, uid, gid); err != nil {
				return err
			}
		}
	}
	m, err := os.OpenFile(filepath.Join(c.backupDir, "MANIFEST"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := m.WriteString(line); err != nil {
		m.Close()
		return err
	}
	return m.Close()
}

func copyFile(src, dst string, fi fs.FileInfo, uid, gid int) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		return err
	}
	if uid >= 0 {
		if err := os.Lchown(dst, uid, gid); err != nil && !errors.Is(err, fs.ErrPermission) {
			return err
		}
	}
	if err := os.Chmod(dst, fi.Mode().Perm()|fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
		return err
	}
	return os.Chtimes(dst, fi.ModTime(), fi.ModTime())
}
