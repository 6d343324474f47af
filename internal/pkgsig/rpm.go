package pkgsig

import (
	"bytes"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/vouch-dev/vouch/internal/pkgdb"
)

// RPMKeyDir holds the vendor keys rpm-based distributions ship.
const RPMKeyDir = "etc/pki/rpm-gpg"

// RPMSignature is the verdict on one installed rpm's header signature.
type RPMSignature struct {
	Package string `json:"package"`
	Version string `json:"version"`
	Signed  bool   `json:"signed"`          // a signature verified by a known key
	KeyID   string `json:"keyId,omitempty"` // issuer key ID (hex)
	Problem string `json:"problem,omitempty"`
}

// RPMKeyring returns the keys rpm trusts on the root: the files of
// etc/pki/rpm-gpg and the gpg-pubkey pseudo-packages of the database (whose
// description holds the armored key).
func RPMKeyring(fsys fs.FS, inv *pkgdb.Inventory) (openpgp.EntityList, []pkgdb.Issue) {
	var (
		ring   openpgp.EntityList
		issues []pkgdb.Issue
	)
	if entries, err := fs.ReadDir(fsys, RPMKeyDir); err == nil {
		for _, e := range entries {
			if e.IsDir() {
				continue
			}
			p := path.Join(RPMKeyDir, e.Name())
			el, err := readKeyring(fsys, p)
			if err != nil {
				issues = append(issues, pkgdb.Issue{Path: p, Reason: "keyring: " + err.Error()})
				continue
			}
			ring = append(ring, el...)
		}
	}
	for i := range inv.Packages {
		p := &inv.Packages[i]
		if p.Manager != pkgdb.ManagerRPM || p.Name != "gpg-pubkey" || p.Header == nil {
			continue
		}
		h, err := pkgdb.ParseHeader(p.Header)
		if err != nil {
			continue
		}
		el, err := parseKeyring([]byte(h.String(pkgdb.TagDescription)))
		if err != nil {
			issues = append(issues, pkgdb.Issue{Path: p.Origin, Reason: "gpg-pubkey " + p.Version + ": " + err.Error()})
			continue
		}
		ring = append(ring, el...)
	}
	return ring, issues
}

// VerifyRPM verifies the header signature (RSAHEADER or DSAHEADER, rpm ≥ 4.1)
// of every installed rpm against ring. The signature covers the header's
// immutable region, which rpm keeps byte for byte in its database.
func VerifyRPM(inv *pkgdb.Inventory, ring openpgp.EntityList, now time.Time) []RPMSignature {
	var out []RPMSignature
	cfg := &packet.Config{Time: func() time.Time { return now }}
	for i := range inv.Packages {
		p := &inv.Packages[i]
		if p.Manager != pkgdb.ManagerRPM || p.Name == "gpg-pubkey" || p.Header == nil {
			continue
		}
		out = append(out, verifyHeader(p, ring, cfg))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Package < out[j].Package })
	return out
}

func verifyHeader(p *pkgdb.Package, ring openpgp.EntityList, cfg *packet.Config) RPMSignature {
	s := RPMSignature{Package: p.Name, Version: p.Version}
	h, err := pkgdb.ParseHeader(p.Header)
	if err != nil {
		s.Problem = err.Error()
		return s
	}
	sig := h.Bytes(pkgdb.TagRSAHeader)
	if sig == nil {
		sig = h.Bytes(pkgdb.TagDSAHeader)
	}
	if sig == nil {
		s.Problem = "unsigned: the header carries no OpenPGP signature"
		return s
	}
	if h.Immutable == nil {
		s.Problem = "the header has no immutable region to verify"
		return s
	}
	if pk, err := packet.Read(bytes.NewReader(sig)); err == nil {
		switch x := pk.(type) {
		case *packet.Signature:
			if x.IssuerKeyId != nil {
				s.KeyID = fmt.Sprintf("%016X", *x.IssuerKeyId)
			}
		}
	}
	if len(ring) == 0 {
		s.Problem = "no key to verify it with: " + RPMKeyDir + " and the rpm keyring are empty"
		return s
	}
	_, _, err = openpgp.VerifyDetachedSignature(ring, bytes.NewReader(h.Immutable), bytes.NewReader(sig), cfg)
	if err != nil {
		msg := err.Error()
		if strings.Contains(msg, "signature made by unknown entity") {
			msg = "signed by key " + s.KeyID + ", which is not in " + RPMKeyDir + " or the rpm keyring"
		}
		s.Problem = "signature does not verify: " + msg
		return s
	}
	s.Signed = true
	return s
}
