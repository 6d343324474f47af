package baseline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/vouch-dev/vouch/internal/finding"
	"github.com/vouch-dev/vouch/internal/rootfs"
	"github.com/vouch-dev/vouch/internal/target"
)

// BackupRoot is where Remediate keeps the originals of the files it changes,
// relative to the remediated root: one directory per run,
// var/backups/vouch/<UTC timestamp>/, holding each changed file at its own
// relative path (content, mode and owner preserved) and a MANIFEST listing
// every change (created files, edits, mode and owner changes with their old
// values). The directory is 0700 and created only when something changes.
const BackupRoot = "var/backups/vouch"

// ErrImage is returned when Remediate is given a disk image.
var ErrImage = errors.New("baseline: vouch does not modify disk images; extract or mount the root and remediate the directory")

// Summary counts what Remediate did.
type Summary struct {
	Fixed          int           `json:"fixed"`          // rules changed (or, dry run, that would be)
	AlreadyPassing int           `json:"alreadyPassing"` // rules that passed before
	NotApplicable  int           `json:"notApplicable"`
	Manual         int           `json:"manual"` // failing rules vouch does not fix
	Errors         int           `json:"errors"` // audits or fixes that could not complete
	Changes        int           `json:"changes"`
	DryRun         bool          `json:"dryRun"`
	BackupDir      string        `json:"backupDir,omitempty"`
	Rules          []RuleOutcome `json:"rules"`
}

// RuleOutcome is what happened to one rule.
type RuleOutcome struct {
	ID      string   `json:"id"`
	Outcome string   `json:"outcome"` // fixed, would-fix, pass, not-applicable, manual, error
	Message string   `json:"message,omitempty"`
	Changes []string `json:"changes,omitempty"`
}

// Remediate audits rules on the root directory root and fixes the failing
// ones that have a fix, printing the exact change of each (a unified diff for
// file contents) to out. With dryRun nothing is written. Each file is written
// atomically (a temporary file in the same directory, then rename) with its
// mode and owner preserved, after its original is copied under BackupRoot.
// Running it twice changes nothing the second time.
func Remediate(ctx context.Context, root string, rules []Rule, dryRun bool, out io.Writer) (Summary, error) {
	sum := Summary{DryRun: dryRun}
	info, err := os.Stat(root)
	if err != nil {
		return sum, fmt.Errorf("baseline: %w", err)
	}
	if !info.IsDir() {
		return sum, ErrImage
	}
	t, err := target.Open(root, target.Options{})
	if err != nil {
		return sum, err
	}
	defer t.Close()
	if t.Kind == target.KindImage {
		return sum, ErrImage
	}
	if t.Root == nil {
		return sum, fmt.Errorf("baseline: %s is not a root file system (no etc/os-release)", root)
	}
	abs := t.Path
	c := &Changer{root: abs, fsys: t.Root, dry: dryRun, overlay: map[string]*pending{}, stamp: time.Now().UTC().Format("20060102T150405Z")}
	live := t.Kind == target.KindLive
	st := NewState(t.Root, live)
	for _, r := range rules {
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		res := r.Evaluate(st)
		o := RuleOutcome{ID: r.ID, Message: res.Message}
		switch res.Status {
		case finding.Pass:
			o.Outcome = "pass"
			sum.AlreadyPassing++
		case finding.NotApplicable:
			o.Outcome = "not-applicable"
			sum.NotApplicable++
		case finding.Error:
			o.Outcome = "error"
			sum.Errors++
			fmt.Fprintf(out, "# %s: error: %s\n", r.ID, res.Message)
		case finding.Fail:
			if r.Fix == nil {
				o.Outcome = "manual"
				sum.Manual++
				fmt.Fprintf(out, "# %s: not fixed: vouch cannot make this change safely. %s\n", r.ID, r.Remedy)
				break
			}
			c.begin()
			if err := r.Fix(st, c); err != nil {
				c.abort()
				o.Outcome, o.Message = "error", err.Error()
				sum.Errors++
				fmt.Fprintf(out, "# %s: not fixed: %v\n", r.ID, err)
				break
			}
			done, err := c.commit()
			o.Changes = done
			if err != nil {
				o.Outcome, o.Message = "error", err.Error()
				sum.Errors++
				fmt.Fprintf(out, "# %s: fix failed: %v\n", r.ID, err)
				break
			}
			if len(done) == 0 {
				o.Outcome, o.Message = "error", "the fix made no change but the audit fails: "+res.Message
				sum.Errors++
				fmt.Fprintf(out, "# %s: %s\n", r.ID, o.Message)
				break
			}
			verb := "fixed"
			if dryRun {
				verb = "would-fix"
			}
			o.Outcome = verb
			sum.Fixed++
			sum.Changes += len(done)
			fmt.Fprintf(out, "# %s: %s (%s)\n", r.ID, strings.ReplaceAll(verb, "-", " "), res.Message)
			for _, d := range c.printed {
				fmt.Fprint(out, d)
			}
			if !dryRun {
				st = NewState(t.Root, live) // later audits see the change
			}
		}
		sum.Rules = append(sum.Rules, o)
	}
	if c.backupDir != "" {
		sum.BackupDir = c.backupDir
	}
	fmt.Fprintf(out, "# %d rules %s, %d already passing, %d not applicable, %d need a person, %d errors",
		sum.Fixed, map[bool]string{true: "would be fixed", false: "fixed"}[dryRun], sum.AlreadyPassing, sum.NotApplicable, sum.Manual, sum.Errors)
	if sum.BackupDir != "" {
		fmt.Fprintf(out, "; originals in %s", sum.BackupDir)
	}
	fmt.Fprintln(out)
	if live && sum.Fixed > 0 && !dryRun {
		fmt.Fprintln(out, "# kernel parameters, sshd and module settings take effect after `sysctl --system`, reloading sshd, or a reboot")
	}
	return sum, nil
}

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
		return fmt.Errorf("baseline: /%s is not a regular file", rel)
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
		return fmt.Errorf("baseline: /%s does not exist", rel)
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
		return fmt.Errorf("baseline: /%s does not exist", rel)
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
	dir := filepath.Dir(hp)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".vouch-tmp-*")
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(o.content); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(o.mode.Perm() | o.mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chown(o.uid, o.gid); err != nil && !errors.Is(err, fs.ErrPermission) {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), hp); err != nil {
		return err
	}
	ok = true
	return nil
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

// ---- edits the primitives use -------------------------------------------------

// fixMode removes the bits outside max and sets owner and group.
func (c *Changer) fixMode(s *State, name string, max fs.FileMode, owner string, groups []string) error {
	p, err := c.state(name)
	if err != nil {
		return err
	}
	if !p.exists {
		return nil
	}
	special := p.mode & (fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	want := (p.mode.Perm() & max.Perm()) | special&max
	if err := c.Chmod(name, want); err != nil {
		return err
	}
	uid, gid := p.uid, p.gid
	if owner != "" && s.userName(uint32(uid)) != owner {
		u, ok := s.uidOf(owner)
		if !ok {
			return fmt.Errorf("baseline: no user %s in /etc/passwd", owner)
		}
		uid = u
	}
	if len(groups) > 0 && !slices.Contains(groups, s.groupName(uint32(gid))) {
		g, ok := s.gidOf(groups[0])
		if !ok {
			return fmt.Errorf("baseline: no group %s in /etc/group", groups[0])
		}
		gid = g
	}
	return c.Chown(name, uid, gid)
}

// appendLines adds the lines rel does not hold yet, with header first in a
// new file.
func (c *Changer) appendLines(rel, header string, add ...string) error {
	old, exists, err := c.Read(rel)
	if err != nil {
		return err
	}
	text := string(old)
	have := map[string]bool{}
	for _, l := range lines(text) {
		have[strings.TrimSpace(l)] = true
	}
	if !exists && header != "" {
		text = header + "\n"
	}
	if text != "" && !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	for _, l := range add {
		if !have[l] {
			text += l + "\n"
			have[l] = true
		}
	}
	return c.Write(rel, []byte(text), 0o644)
}

// setKeyLine replaces every uncommented line of rel matching re with line,
// or appends line when none matches.
func (c *Changer) setKeyLine(rel, key, line, re string) error {
	rx := regexp.MustCompile(re)
	old, _, err := c.Read(rel)
	if err != nil {
		return err
	}
	ls := lines(string(old))
	found := false
	for i, l := range ls {
		if rx.MatchString(l) {
			ls[i] = line
			found = true
		}
	}
	if !found {
		ls = append(ls, line)
	}
	_ = key
	return c.Write(rel, []byte(strings.Join(ls, "\n")+"\n"), 0o644)
}

// setSysctl sets key = value where it wins at boot.
func (c *Changer) setSysctl(s *State, key, value string) error {
	settings, err := s.sysctlConfig()
	if err != nil {
		return err
	}
	var last *sysctlSetting
	for i := range settings {
		if settings[i].matches(key) {
			last = &settings[i]
		}
	}
	file := vouchSysctlFile
	if last != nil && last.File != vouchSysctlFile && appliesAfter(last.File, path.Base(vouchSysctlFile)) {
		// A later file would override ours: change the value where it is set.
		file = last.File
		if !strings.HasPrefix(file, "etc/") {
			// A vendor file: override it with a copy of the same name in
			// etc/sysctl.d (sysctl.d(5)), never edit the package's file.
			content, _, err := c.Read(file)
			if err != nil {
				return err
			}
			file = "etc/sysctl.d/" + path.Base(last.File)
			if _, exists, err := c.Read(file); err != nil {
				return err
			} else if !exists {
				hdr := "# Copy of /" + last.File + " made by vouch baseline remediate to override it.\n"
				if err := c.Write(file, append([]byte(hdr), content...), 0o644); err != nil {
					return err
				}
			}
		}
		rx := `^\s*-?` + regexp.QuoteMeta(last.Key) + `\s*=`
		if !last.pattern {
			rx = `^\s*-?` + strings.ReplaceAll(regexp.QuoteMeta(last.Key), `\.`, `[./]`) + `\s*=`
		}
		return c.setKeyLine(file, key, last.Key+" = "+value, rx)
	}
	_, exists, err := c.Read(file)
	if err != nil {
		return err
	}
	if !exists {
		hdr := []byte("# Kernel parameters set by vouch baseline remediate.\n")
		if err := c.Write(file, hdr, 0o644); err != nil {
			return err
		}
	}
	return c.setKeyLine(file, key, key+" = "+value, `^\s*-?`+strings.ReplaceAll(regexp.QuoteMeta(key), `\.`, `[./]`)+`\s*=`)
}

// appliesAfter reports whether a sysctl file is applied after a drop-in named
// base: a later name, or etc/sysctl.conf (read last).
func appliesAfter(file, base string) bool {
	if file == "etc/sysctl.conf" {
		return true
	}
	return path.Base(file) > base
}

// setSSHD sets an sshd option so that it is the value sshd keeps (the first
// one it reads).
func (c *Changer) setSSHD(s *State, key, value string) error {
	conf, err := s.sshd()
	if err != nil {
		return err
	}
	if conf == nil {
		return fmt.Errorf("baseline: no %s", sshdConfig)
	}
	line := key + " " + value
	d := conf.global(key)
	ours := path.Base(vouchSSHDFile)
	if conf.includeAt >= 0 {
		readAfterOurs := d == nil ||
			(strings.HasPrefix(d.File, "etc/ssh/sshd_config.d/") && path.Base(d.File) > ours) ||
			(d.File == sshdConfig && d.Order >= conf.includeAt)
		if d != nil && d.File == vouchSSHDFile {
			readAfterOurs = true
		}
		if readAfterOurs {
			_, exists, err := c.Read(vouchSSHDFile)
			if err != nil {
				return err
			}
			if !exists {
				hdr := []byte("# sshd options set by vouch baseline remediate; read before the rest of sshd_config.\n")
				if err := c.Write(vouchSSHDFile, hdr, 0o600); err != nil {
					return err
				}
			}
			return c.setKeyLine(vouchSSHDFile, key, line, `(?i)^\s*`+regexp.QuoteMeta(key)+`(\s|=)`)
		}
	}
	if d != nil {
		return c.replaceFirstDirective(d.File, key, line)
	}
	// No Include of sshd_config.d: insert before the first Match block.
	old, _, err := c.Read(sshdConfig)
	if err != nil {
		return err
	}
	ls := lines(string(old))
	at := len(ls)
	for i, l := range ls {
		if k, _ := sshdSplit(l); k == "match" {
			at = i
			break
		}
	}
	ls = append(ls[:at], append([]string{line}, ls[at:]...)...)
	return c.Write(sshdConfig, []byte(strings.Join(ls, "\n")+"\n"), 0o600)
}

func (c *Changer) replaceFirstDirective(rel, key, line string) error {
	old, _, err := c.Read(rel)
	if err != nil {
		return err
	}
	ls := lines(string(old))
	for i, l := range ls {
		k, _ := sshdSplit(l)
		if k == "match" {
			break
		}
		if k == strings.ToLower(key) {
			ls[i] = line
			return c.Write(rel, []byte(strings.Join(ls, "\n")+"\n"), 0o600)
		}
	}
	return fmt.Errorf("baseline: %s: no global %s line to change", rel, key)
}

// setIni sets key=value in section of a systemd drop-in file.
func (c *Changer) setIni(rel, section, key, value string) error {
	old, exists, err := c.Read(rel)
	if err != nil {
		return err
	}
	if !exists {
		text := fmt.Sprintf("# Set by vouch baseline remediate.\n[%s]\n%s=%s\n", section, key, value)
		return c.Write(rel, []byte(text), 0o644)
	}
	ls := lines(string(old))
	cur, secAt, done := "", -1, false
	for i, l := range ls {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "[") {
			cur = strings.Trim(t, "[]")
			if cur == section {
				secAt = i
			}
			continue
		}
		if k, _, ok := strings.Cut(t, "="); ok && cur == section && strings.TrimSpace(k) == key {
			ls[i] = key + "=" + value
			done = true
		}
	}
	if !done {
		if secAt < 0 {
			ls = append(ls, "["+section+"]", key+"="+value)
		} else {
			ls = append(ls[:secAt+1], append([]string{key + "=" + value}, ls[secAt+1:]...)...)
		}
	}
	return c.Write(rel, []byte(strings.Join(ls, "\n")+"\n"), 0o644)
}

// addMountOption adds opt to the fstab entry of dir (or writes one for
// systemd's built-in /dev/shm mount).
func (c *Changer) addMountOption(s *State, dir, opt string) error {
	m, err := s.mountFor(dir)
	if err != nil {
		return err
	}
	if m == nil {
		return fmt.Errorf("baseline: %s is not a separate file system", dir)
	}
	if !strings.HasPrefix(m.Source, "etc/fstab:") {
		if dir == "/dev/shm" && m.Type == "tmpfs" && strings.HasPrefix(m.Source, "systemd") {
			return c.appendLines("etc/fstab", "", "tmpfs\t/dev/shm\ttmpfs\tdefaults,nodev,nosuid,noexec\t0\t0")
		}
		return fmt.Errorf("baseline: %s is mounted by %s; add Options= in a drop-in for it", dir, m.Source)
	}
	old, _, err := c.Read("etc/fstab")
	if err != nil {
		return err
	}
	ls := lines(string(old))
	changed := false
	for i, l := range ls {
		f := strings.Fields(l)
		if len(f) < 3 || strings.HasPrefix(f[0], "#") || path.Clean(unescapeFstab(f[1])) != dir {
			continue
		}
		if len(f) < 4 {
			f = append(f, "defaults")
		}
		opts := strings.Split(f[3], ",")
		if slices.Contains(opts, opt) {
			continue
		}
		f[3] = strings.Join(append(opts, opt), ",")
		ls[i] = strings.Join(f, "\t")
		changed = true
	}
	if !changed {
		return nil
	}
	return c.Write("etc/fstab", []byte(strings.Join(ls, "\n")+"\n"), 0o644)
}
