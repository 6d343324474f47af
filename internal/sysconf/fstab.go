package sysconf

import (
	"fmt"
	"strings"
)

// Mount is a file system mounted at boot, from fstab(5) or a systemd mount
// unit.
type Mount struct {
	Spec, Dir, Type string
	Options         []string
	Source          string // "etc/fstab:3" or a unit file
}

// ParseFstab parses fstab(5). A line with fewer than three fields is an
// *Error: mount(8) rejects it.
func ParseFstab(file, text string) ([]Mount, error) {
	var out []Mount
	for i, l := range Lines(text) {
		f := strings.Fields(l)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) < 3 {
			return nil, &Error{Path: file, Reason: fmt.Sprintf("line %d: %d fields, want at least 3", i+1, len(f))}
		}
		m := Mount{Spec: f[0], Dir: UnescapeFstab(f[1]), Type: f[2], Source: fmt.Sprintf("%s:%d", file, i+1)}
		if len(f) > 3 {
			m.Options = strings.Split(f[3], ",")
		}
		out = append(out, m)
	}
	return out, nil
}

// UnescapeFstab decodes the octal escape of a space in an fstab field.
func UnescapeFstab(s string) string {
	return strings.ReplaceAll(s, `\040`, " ")
}

// ParseMountUnit reads What=, Type= and Options= of a systemd mount unit
// (file) that mounts dir.
func ParseMountUnit(file, dir, text string) *Mount {
	m := &Mount{Dir: dir, Source: file}
	for _, l := range Lines(text) {
		k, v, ok := strings.Cut(strings.TrimSpace(l), "=")
		switch {
		case !ok:
		case k == "What":
			m.Spec = v
		case k == "Type":
			m.Type = v
		case k == "Options":
			m.Options = strings.Split(v, ",")
		}
	}
	return m
}
