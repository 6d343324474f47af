// Package osrelease reads the operating system identity of a root file system from
// os-release(5) and knows, from a dated table, until when each release is
// supported by its vendor.
package osrelease

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// Info is the parsed os-release file.
type Info struct {
	ID         string            `json:"id"`
	IDLike     []string          `json:"idLike,omitempty"`
	Name       string            `json:"name,omitempty"`
	PrettyName string            `json:"prettyName,omitempty"`
	VersionID  string            `json:"versionId,omitempty"`
	Codename   string            `json:"versionCodename,omitempty"`
	Variant    string            `json:"variantId,omitempty"`
	BuildID    string            `json:"buildId,omitempty"`
	ImageID    string            `json:"imageId,omitempty"`
	ImageVer   string            `json:"imageVersion,omitempty"`
	Path       string            `json:"path"`
	Fields     map[string]string `json:"-"`
}

// ErrNotFound means the root has neither etc/os-release nor usr/lib/os-release.
var ErrNotFound = errors.New("osrelease: no os-release file")

// Read reads etc/os-release, falling back to usr/lib/os-release as os-release(5)
// says applications should.
func Read(root fs.FS) (*Info, error) {
	for _, p := range []string{"etc/os-release", "usr/lib/os-release"} {
		b, err := fs.ReadFile(root, p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("osrelease: %s: %w", p, err)
		}
		info := Parse(b)
		info.Path = p
		return info, nil
	}
	return nil, ErrNotFound
}

// Parse parses os-release content: KEY=value lines, values optionally quoted with
// shell-style escapes; comments and malformed lines are ignored.
func Parse(b []byte) *Info {
	f := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			continue
		}
		f[k] = unquote(v)
	}
	info := &Info{
		ID: strings.ToLower(f["ID"]), Name: f["NAME"], PrettyName: f["PRETTY_NAME"],
		VersionID: f["VERSION_ID"], Codename: f["VERSION_CODENAME"], Variant: f["VARIANT_ID"],
		BuildID: f["BUILD_ID"], ImageID: f["IMAGE_ID"], ImageVer: f["IMAGE_VERSION"], Fields: f,
	}
	if info.ID == "" {
		info.ID = "linux" // os-release(5): ID defaults to "linux"
	}
	if l := strings.Fields(f["ID_LIKE"]); len(l) > 0 {
		info.IDLike = l
	}
	if info.PrettyName == "" {
		info.PrettyName = strings.TrimSpace(info.Name + " " + f["VERSION"])
	}
	return info
}

func unquote(v string) string {
	v = strings.TrimSpace(v)
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		q := v[0]
		v = v[1 : len(v)-1]
		if q == '"' {
			var b strings.Builder
			for i := 0; i < len(v); i++ {
				if v[i] == '\\' && i+1 < len(v) && strings.IndexByte("\\$\"`", v[i+1]) >= 0 {
					i++
				}
				b.WriteByte(v[i])
			}
			return b.String()
		}
	}
	return v
}

// String is the human name of the release.
func (i *Info) String() string {
	if i.PrettyName != "" {
		return i.PrettyName
	}
	return strings.TrimSpace(i.ID + " " + i.VersionID)
}
