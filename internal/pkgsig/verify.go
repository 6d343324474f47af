package pkgsig

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/vouch-dev/vouch/internal/pkgdb"
)

// AptListsDir holds apt's downloaded indexes.
const AptListsDir = "var/lib/apt/lists"

// Release is the verdict on one InRelease file.
type Release struct {
	File       string    `json:"file"`
	Source     *Source   `json:"source,omitempty"` // nil when no configured source names it
	Keyring    []string  `json:"keyring"`          // keyring files used
	Signed     bool      `json:"signed"`           // a valid signature by a key of the keyring
	Signer     string    `json:"signer,omitempty"` // key ID (hex)
	ValidUntil time.Time `json:"validUntil,omitzero"`
	Expired    bool      `json:"expired,omitempty"`
	Problem    string    `json:"problem,omitempty"`
}

// VerifyLists checks every *InRelease in var/lib/apt/lists against the keyring
// its source configures (signed-by), else apt's global keyrings
// (etc/apt/trusted.gpg, etc/apt/trusted.gpg.d/). now decides expiry.
func VerifyLists(fsys fs.FS, sources []Source, now time.Time) ([]Release, []pkgdb.Issue) {
	entries, err := fs.ReadDir(fsys, AptListsDir)
	if err != nil {
		return nil, nil
	}
	byName := map[string]*Source{}
	for i := range sources {
		if sources[i].Type == "deb" || byName[sources[i].ListName()] == nil {
			byName[sources[i].ListName()] = &sources[i]
		}
	}
	var (
		out    []Release
		issues []pkgdb.Issue
	)
	cache := map[string]openpgp.EntityList{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), "InRelease") {
			continue
		}
		p := path.Join(AptListsDir, e.Name())
		r := Release{File: p, Source: byName[e.Name()]}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			issues = append(issues, pkgdb.Issue{Path: p, Reason: err.Error()})
			continue
		}
		var files []string
		var inline string
		if r.Source != nil {
			files, inline = r.Source.SignedBy, r.Source.InlineKey
		}
		if len(files) == 0 && inline == "" {
			files = globalKeyrings(fsys)
		}
		var ring openpgp.EntityList
		for _, f := range files {
			if !strings.Contains(f, "/") {
				continue // a fingerprint restricting the global keyring: not a file
			}
			rel := strings.TrimPrefix(path.Clean(f), "/")
			r.Keyring = append(r.Keyring, "/"+rel)
			if el, ok := cache[rel]; ok {
				ring = append(ring, el...)
				continue
			}
			el, err := readKeyring(fsys, rel)
			if err != nil {
				issues = append(issues, pkgdb.Issue{Path: rel, Reason: "keyring: " + err.Error()})
			}
			cache[rel] = el
			ring = append(ring, el...)
		}
		if inline != "" {
			el, err := openpgp.ReadArmoredKeyRing(strings.NewReader(inline))
			if err == nil {
				ring = append(ring, el...)
			}
			r.Keyring = append(r.Keyring, "(inline key in "+r.Source.File+")")
		}
		verifyRelease(&r, b, ring, now)
		out = append(out, r)
	}
	return out, issues
}

func verifyRelease(r *Release, b []byte, ring openpgp.EntityList, now time.Time) {
	block, _ := clearsign.Decode(b)
	if block == nil {
		r.Problem = "not clear-signed: no OpenPGP signature"
		return
	}
	if vu := releaseField(block.Plaintext, "Valid-Until"); vu != "" {
		if t, err := parseReleaseDate(vu); err == nil {
			r.ValidUntil = t
			r.Expired = now.After(t)
		}
	}
	if len(ring) == 0 {
		r.Problem = "no key to verify it with: the configured keyring is empty or missing"
		return
	}
	cfg := &packet.Config{Time: func() time.Time { return now }}
	signer, err := block.VerifySignature(ring, cfg)
	if err != nil {
		r.Problem = "signature does not verify against " + strings.Join(r.Keyring, ", ") + ": " + err.Error()
		return
	}
	r.Signed = true
	if signer != nil && signer.PrimaryKey != nil {
		r.Signer = fmt.Sprintf("%X", signer.PrimaryKey.Fingerprint)
	}
	if r.Expired {
		r.Problem = "expired: Valid-Until " + r.ValidUntil.Format(time.RFC1123) + " is past"
	}
}

func releaseField(b []byte, name string) string {
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func parseReleaseDate(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC1123, time.RFC1123Z, "Mon, 2 Jan 2006 15:04:05 MST", "Mon, 2 Jan 2006 15:04:05 -0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("pkgsig: unparsable date %q", s)
}

func globalKeyrings(fsys fs.FS) []string {
	var out []string
	if _, err := fs.Stat(fsys, "etc/apt/trusted.gpg"); err == nil {
		out = append(out, "/etc/apt/trusted.gpg")
	}
	if entries, err := fs.ReadDir(fsys, "etc/apt/trusted.gpg.d"); err == nil {
		var names []string
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".gpg") || strings.HasSuffix(e.Name(), ".asc") {
				names = append(names, "/etc/apt/trusted.gpg.d/"+e.Name())
			}
		}
		sort.Strings(names)
		out = append(out, names...)
	}
	return out
}

// readKeyring reads a binary (.gpg) or armored (.asc) keyring.
func readKeyring(fsys fs.FS, p string) (openpgp.EntityList, error) {
	b, err := fs.ReadFile(fsys, p)
	if err != nil {
		return nil, err
	}
	return parseKeyring(b)
}

func parseKeyring(b []byte) (openpgp.EntityList, error) {
	if bytes.Contains(b, []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----")) {
		var all openpgp.EntityList
		var firstErr error
		// An .asc file may hold several armored blocks.
		for len(b) > 0 {
			i := bytes.Index(b, []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----"))
			if i < 0 {
				break
			}
			b = b[i:]
			end := bytes.Index(b, []byte("-----END PGP PUBLIC KEY BLOCK-----"))
			if end < 0 {
				end = len(b)
			} else {
				end += len("-----END PGP PUBLIC KEY BLOCK-----")
			}
			el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(b[:end]))
			if err != nil && firstErr == nil {
				firstErr = err
			}
			all = append(all, el...)
			b = b[end:]
		}
		if len(all) == 0 && firstErr != nil {
			return nil, firstErr
		}
		return all, nil
	}
	el, err := openpgp.ReadKeyRing(bytes.NewReader(b))
	if len(el) > 0 {
		return el, nil
	}
	if err == nil {
		err = errors.New("no keys")
	}
	return nil, err
}
