package pkgdb

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// APKInstalled is apk-tools' database of installed packages.
const APKInstalled = "lib/apk/db/installed"

func readAPK(_ context.Context, fsys fs.FS, _ Options, inv *Inventory) (bool, error) {
	b, err := fs.ReadFile(fsys, APKInstalled)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	inv.Databases = append(inv.Databases, APKInstalled)
	if err != nil {
		inv.Issues = append(inv.Issues, Issue{Path: APKInstalled, Reason: err.Error()})
		return true, nil
	}
	pkgs, issues := ParseAPKInstalled(b, APKInstalled)
	inv.Packages = append(inv.Packages, pkgs...)
	inv.Issues = append(inv.Issues, issues...)
	return true, nil
}

// ParseAPKInstalled parses lib/apk/db/installed (apk-tools' "installed database"
// format: one "X:value" line per field, packages separated by blank lines; F:
// starts a directory, R: a file in it, Z: that file's checksum — "Q1" then
// base64 SHA-1, or "Q2" then base64 SHA-256).
func ParseAPKInstalled(b []byte, file string) ([]Package, []Issue) {
	var (
		out    []Package
		issues []Issue
		cur    *Package
		start  int
		dir    string
		bad    bool
	)
	flush := func() {
		if cur != nil && !bad {
			if cur.Name == "" || cur.Version == "" {
				issues = append(issues, Issue{Path: file, Line: start, Reason: "package without P: (name) or V: (version)"})
			} else {
				if cur.Source == "" {
					cur.Source = cur.Name
				}
				cur.SourceVersion = cur.Version
				out = append(out, *cur)
			}
		}
		cur, dir, bad = nil, "", false
	}
	for n, line := range strings.Split(string(b), "\n") {
		lineNo := n + 1
		line = strings.TrimSuffix(line, "\r")
		if line == "" {
			flush()
			continue
		}
		if cur == nil {
			cur = &Package{Manager: ManagerAPK, Status: "installed", Origin: fmt.Sprintf("%s:%d", file, lineNo)}
			start = lineNo
		}
		if bad {
			continue
		}
		if len(line) < 2 || line[1] != ':' {
			issues = append(issues, Issue{Path: file, Line: lineNo, Reason: "line is not a KEY:value field: " + quoteShort([]byte(line))})
			bad = true
			continue
		}
		v := line[2:]
		switch line[0] {
		case 'P':
			cur.Name = v
		case 'V':
			cur.Version = v
		case 'A':
			cur.Architecture = v
		case 'L':
			cur.License = v
		case 'o':
			cur.Source = v
		case 'F':
			dir = v
		case 'R':
			cur.Files = append(cur.Files, File{Path: "/" + path.Join(dir, v)})
		case 'Z':
			if len(cur.Files) == 0 {
				issues = append(issues, Issue{Path: file, Line: lineNo, Reason: "Z: checksum before any R: file"})
				continue
			}
			f := &cur.Files[len(cur.Files)-1]
			d, algo, err := apkChecksum(v)
			if err != nil {
				issues = append(issues, Issue{Path: file, Line: lineNo, Reason: err.Error()})
				continue
			}
			f.Digest, f.Algo = d, algo
		case 'a':
			if len(cur.Files) > 0 {
				// a:uid:gid:mode of the last file
				parts := strings.Split(v, ":")
				if len(parts) == 3 {
					var m uint32
					if _, err := fmt.Sscanf(parts[2], "%o", &m); err == nil {
						cur.Files[len(cur.Files)-1].Mode = fs.FileMode(m & 0o777)
					}
				}
			}
		}
	}
	flush()
	return out, issues
}

func apkChecksum(v string) (string, crypto.Hash, error) {
	var algo crypto.Hash
	switch {
	case strings.HasPrefix(v, "Q1"):
		algo = crypto.SHA1
	case strings.HasPrefix(v, "Q2"):
		algo = crypto.SHA256
	default:
		// An unprefixed hex MD5 (very old apk databases).
		if isHex(strings.ToLower(v), 32) {
			return strings.ToLower(v), crypto.MD5, nil
		}
		return "", 0, fmt.Errorf("unknown apk checksum %q", quoteShort([]byte(v)))
	}
	raw, err := base64.StdEncoding.DecodeString(v[2:])
	if err != nil || len(raw) != algo.Size() {
		return "", 0, fmt.Errorf("malformed apk checksum %q", quoteShort([]byte(v)))
	}
	return hex.EncodeToString(raw), algo, nil
}
