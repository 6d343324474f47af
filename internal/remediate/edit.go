package remediate

import (
	"bufio"
	"fmt"
	"io/fs"
	"regexp"
	"strings"
)

// File is a file as the changes planned so far leave it.
type File struct {
	Exists   bool
	Mode     fs.FileMode
	UID, GID int
}

// Stat returns rel's planned (or on-disk) existence, mode and owner.
func (c *Changer) Stat(rel string) (File, error) {
	p, err := c.state(rel)
	if err != nil {
		return File{}, err
	}
	return File{Exists: p.exists, Mode: p.mode, UID: p.uid, GID: p.gid}, nil
}

// AppendLines adds the lines rel does not hold yet, with header first in a
// new file.
func (c *Changer) AppendLines(rel, header string, add ...string) error {
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

// SetKeyLine replaces every line of rel matching the regular expression re
// with line, or appends line when none matches.
func (c *Changer) SetKeyLine(rel, line, re string) error {
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
	return c.Write(rel, []byte(strings.Join(ls, "\n")+"\n"), 0o644)
}

// SetINI sets key=value in section of a systemd-style drop-in file.
func (c *Changer) SetINI(rel, section, key, value string) error {
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

func lines(text string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64*1024), 4<<20)
	for sc.Scan() {
		out = append(out, strings.TrimRight(sc.Text(), "\r"))
	}
	return out
}

// unixMode is the permission and special bits of m as chmod(1) writes them.
func unixMode(m fs.FileMode) uint32 {
	v := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		v |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		v |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		v |= 0o1000
	}
	return v
}
