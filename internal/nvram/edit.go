package nvram

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/vouch-dev/vouch/internal/authenticode"
	"github.com/vouch-dev/vouch/internal/efi"
	"github.com/vouch-dev/vouch/internal/mscerts"
	"github.com/vouch-dev/vouch/internal/secureboot"
)

// Target variables of the edits.
const (
	VarDB  = "db"
	VarDBX = "dbx"
	VarKEK = "KEK"
)

// varGUID gives the vendor GUID of db, dbx and KEK.
func varGUID(name string) (efi.GUID, error) {
	switch name {
	case VarDB, VarDBX:
		return efi.ImageSecurityDatabaseGUID, nil
	case VarKEK:
		return efi.GlobalVariableGUID, nil
	}
	return efi.GUID{}, fmt.Errorf("nvram: variable %q is not db, dbx or KEK", name)
}

// dbAttrs are the attributes of db, dbx and KEK (UEFI 2.10 §8.2.2 and
// §32.6.1: NV, BS, RT and time-based authenticated write access).
const dbAttrs = efi.NonVolatile | efi.BootServiceAccess | efi.RuntimeAccess | efi.TimeBasedAuthenticatedWriteAccess

// Change says what an edit did.
type Change struct {
	Variable string `json:"variable"`
	// Added and Present count EFI_SIGNATURE_DATA entries: appended, and
	// offered but already there (so not appended, as firmware skips them).
	Added   int `json:"added"`
	Present int `json:"already_present"`
	// Entries is the number of entries of the variable after the edit.
	Entries    int    `json:"entries"`
	FreeBefore int    `json:"free_before"`
	FreeAfter  int    `json:"free_after"`
	Summary    string `json:"summary"`
	// Verification is the result of checking an applied update's
	// signature, nil for unsigned edits.
	Verification *Verification `json:"verification,omitempty"`
}

func countEntries(data []byte) int {
	lists, err := efi.ParseSignatureLists(data)
	if err != nil {
		return 0
	}
	n := 0
	for _, l := range lists {
		n += len(l.Signatures)
	}
	return n
}

// current returns the variable's data, nil when it is missing.
func (s *Store) current(name string, guid efi.GUID) []byte {
	v, ok := s.Vars().Get(name, guid)
	if !ok {
		return nil
	}
	return v.Data
}

// appendLists appends signature lists to a variable with append-write
// semantics (efi.VarStore.AppendWrite) and reports the change.
func (s *Store) appendLists(name string, payload []byte, timeStamp []byte) (Change, error) {
	guid, err := varGUID(name)
	if err != nil {
		return Change{}, err
	}
	offered := countEntries(payload)
	c := Change{Variable: name, FreeBefore: s.Free()}
	added, err := s.vs.AppendWrite(name, guid, dbAttrs, payload, timeStamp)
	if err != nil {
		return Change{}, s.editErr(name, err)
	}
	c.Added = countEntries(added)
	c.Present = offered - c.Added
	c.Entries = countEntries(s.current(name, guid))
	c.FreeAfter = s.Free()
	return c, nil
}

// editErr words a failed edit, with the room needed and left when the store
// is full.
func (s *Store) editErr(name string, err error) error {
	if errors.Is(err, efi.ErrStoreFull) {
		// efi's error gives the record's size and the room left after
		// compaction: needed against free.
		return fmt.Errorf("nvram: %s: the new %s does not fit in the store's %d-byte variable area, nothing changed: %w", s.source(), name, s.Size(), err)
	}
	return fmt.Errorf("nvram: %s: %s: %w", s.source(), name, err)
}

// ownerFor is the owner GUID an added certificate gets: Microsoft's for a
// known Microsoft CA, vouch's otherwise.
func ownerFor(c *x509.Certificate) efi.GUID {
	if _, ok := authenticode.IdentifyCA(c); ok {
		return MicrosoftOwner
	}
	return VouchOwner
}

// x509Lists encodes each certificate as its own EFI_CERT_X509 list (an X509
// list's entries share one size, so certificates of different lengths need
// lists of their own, as every vendor's db shows).
func x509Lists(certs []*x509.Certificate) []byte {
	var lists []efi.SignatureList
	for _, c := range certs {
		lists = append(lists, efi.SignatureList{Type: efi.CertX509GUID, Signatures: []efi.SignatureData{{Owner: ownerFor(c), Data: c.Raw}}})
	}
	return efi.MarshalSignatureLists(lists)
}

// AddCerts appends certificates to db or KEK as EFI_CERT_X509 lists. A
// certificate already present with the same owner is not added again.
func (s *Store) AddCerts(name string, certs []*x509.Certificate) (Change, error) {
	if name != VarDB && name != VarKEK {
		return Change{}, fmt.Errorf("nvram: certificates go to db or KEK, not %q", name)
	}
	if len(certs) == 0 {
		return Change{}, errors.New("nvram: no certificate given")
	}
	c, err := s.appendLists(name, x509Lists(certs), nil)
	if err != nil {
		return c, err
	}
	var names []string
	for _, cert := range certs {
		names = append(names, certLabel(cert))
	}
	c.Summary = fmt.Sprintf("%s: added %d of %d certificates (%s)%s; %d entries now", name, c.Added, len(certs), strings.Join(names, ", "), presentNote(c.Present), c.Entries)
	return c, nil
}

func presentNote(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(", %d already present", n)
}

func certLabel(c *x509.Certificate) string {
	if k, ok := authenticode.IdentifyCA(c); ok {
		return k.Name
	}
	if c.Subject.CommonName != "" {
		return c.Subject.CommonName
	}
	return c.Subject.String()
}

// AddHashes appends SHA-256 image hashes (Authenticode digests) to dbx as
// one EFI_CERT_SHA256 list owned by vouch.
func (s *Store) AddHashes(hashes [][]byte) (Change, error) {
	if len(hashes) == 0 {
		return Change{}, errors.New("nvram: no hash given")
	}
	l := efi.SignatureList{Type: efi.CertSHA256GUID, SignatureSize: 16 + sha256.Size}
	for _, h := range hashes {
		if len(h) != sha256.Size {
			return Change{}, fmt.Errorf("nvram: a SHA-256 hash is %d bytes, not %d", sha256.Size, len(h))
		}
		l.Signatures = append(l.Signatures, efi.SignatureData{Owner: VouchOwner, Data: h})
	}
	c, err := s.appendLists(VarDBX, efi.MarshalSignatureLists([]efi.SignatureList{l}), nil)
	if err != nil {
		return c, err
	}
	c.Summary = fmt.Sprintf("dbx: added %d of %d SHA-256 hashes%s; %d entries now", c.Added, len(hashes), presentNote(c.Present), c.Entries)
	return c, nil
}

// ParseHash parses a SHA-256 hash given as 64 hex digits.
func ParseHash(s string) ([]byte, error) {
	t := strings.TrimPrefix(strings.ToLower(strings.TrimSpace(s)), "sha256:")
	b, err := hex.DecodeString(t)
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("nvram: %q is not a SHA-256 hash: want 64 hex digits", s)
	}
	return b, nil
}

// CertDir holds the certificates found in a folder, by SHA-256 fingerprint.
type CertDir struct {
	Dir   string
	certs map[string]*x509.Certificate
}

// LoadCertDir reads every file under dir (recursively: Microsoft's
// secureboot_objects keeps PreSignedObjects/DB/Certificates/*.der and
// .../KEK/Certificates/*.der) that is a DER or PEM certificate. Other files
// are ignored.
func LoadCertDir(dir string) (*CertDir, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("nvram: certificate folder: %w", err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("nvram: %s: not a folder of certificates", dir)
	}
	cd := &CertDir{Dir: dir, certs: map[string]*x509.Certificate{}}
	// WalkDir does not follow a link given as the root; a linked folder
	// is still the folder the user named.
	root := dir
	if r, err := filepath.EvalSymlinks(dir); err == nil {
		root = r
	}
	// Unreadable entries are skipped, like files that are no certificate:
	// a missing CA is reported by name when it is asked for.
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root {
				return err
			}
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if info, err := d.Info(); err != nil || info.Size() > 1<<20 {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		c, err := mscerts.Parse(b)
		if err != nil {
			return nil
		}
		fp := sha256.Sum256(c.Raw)
		cd.certs[hex.EncodeToString(fp[:])] = c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("nvram: certificate folder %s: %w", dir, err)
	}
	return cd, nil
}

// CA returns the certificate of a known Microsoft CA (authenticode.KnownCAs
// ID), matched by the SHA-256 fingerprint of its DER. A nil CertDir gives
// the built-in certificate (internal/mscerts).
func (cd *CertDir) CA(id string) (*x509.Certificate, error) {
	if cd == nil {
		if c, ok := mscerts.Lookup(id); ok {
			return c, nil
		}
		return nil, fmt.Errorf("nvram: no built-in certificate %q", id)
	}
	for _, k := range authenticode.KnownCAs() {
		if k.ID != id {
			continue
		}
		if c, ok := cd.certs[k.SHA256]; ok {
			return c, nil
		}
		return nil, fmt.Errorf("nvram: %s: no certificate of the %s (%s, SHA-256 %s) in the folder: download it from Microsoft (microsoft/secureboot_objects PreSignedObjects) into it", cd.Dir, k.Name, k.ID, k.SHA256)
	}
	return nil, fmt.Errorf("nvram: unknown CA %q", id)
}

// SetProfile rewrites db and KEK to hold exactly the profile's Microsoft CAs
// (secureboot.ProfileCAs), taken from certs, or the built-in certificates
// when certs is nil; PK, dbx and every other variable are kept. db and KEK keep their attributes and timestamps.
func (s *Store) SetProfile(profile string, certs *CertDir) ([]Change, error) {
	dbIDs, kekIDs, err := secureboot.ProfileCAs(profile)
	if err != nil {
		return nil, fmt.Errorf("nvram: %w", err)
	}
	pick := func(ids []string) ([]*x509.Certificate, error) {
		var out []*x509.Certificate
		for _, id := range ids {
			c, err := certs.CA(id)
			if err != nil {
				return nil, err
			}
			out = append(out, c)
		}
		return out, nil
	}
	dbCerts, err := pick(dbIDs)
	if err != nil {
		return nil, err
	}
	kekCerts, err := pick(kekIDs)
	if err != nil {
		return nil, err
	}
	var changes []Change
	for _, t := range []struct {
		name  string
		certs []*x509.Certificate
		ids   []string
	}{{VarKEK, kekCerts, kekIDs}, {VarDB, dbCerts, dbIDs}} {
		guid, _ := varGUID(t.name)
		before := s.current(t.name, guid)
		c := Change{Variable: t.name, FreeBefore: s.Free()}
		attrs := dbAttrs
		if v, ok := s.Vars().Get(t.name, guid); ok {
			attrs = v.Attributes
		}
		data := x509Lists(t.certs)
		if err := s.vs.Set(efi.Variable{Name: t.name, GUID: guid, Attributes: attrs, Data: data}); err != nil {
			return nil, s.editErr(t.name, err)
		}
		c.Entries = len(t.certs)
		c.Added = len(t.certs) - commonEntries(before, data)
		c.Present = len(t.certs) - c.Added
		c.FreeAfter = s.Free()
		removed := countEntries(before) - c.Present
		c.Summary = fmt.Sprintf("%s: set to profile %s (%s): %d entries, %d new, %d removed", t.name, profile, strings.Join(t.ids, ", "), c.Entries, c.Added, removed)
		changes = append(changes, c)
	}
	return changes, nil
}

// commonEntries counts entries of b also present (owner and data) in a.
func commonEntries(a, b []byte) int {
	la, err := efi.ParseSignatureLists(a)
	if err != nil {
		return 0
	}
	lb, _ := efi.ParseSignatureLists(b)
	seen := map[string]bool{}
	for _, l := range la {
		for _, e := range l.Signatures {
			seen[l.Type.String()+string(e.Owner[:])+string(e.Data)] = true
		}
	}
	n := 0
	for _, l := range lb {
		for _, e := range l.Signatures {
			if seen[l.Type.String()+string(e.Owner[:])+string(e.Data)] {
				n++
			}
		}
	}
	return n
}

// ProfileStore returns a copy of the store image template with db and KEK
// set to a firmware profile's Microsoft CAs (microsoft-2011, microsoft-2023,
// microsoft-both), whose certificates come from certDir, or are the
// built-in ones when certDir is "". It is what `vouch firmware vars STORE
// set-profile` writes, for callers that build VM firmware states (vouch test
// --firmware).
func ProfileStore(template []byte, profile string, certDir string) ([]byte, error) {
	s, err := Parse(template, "template variable store")
	if err != nil {
		return nil, err
	}
	var cd *CertDir
	if certDir != "" {
		if cd, err = LoadCertDir(certDir); err != nil {
			return nil, err
		}
	}
	if _, err := s.SetProfile(profile, cd); err != nil {
		return nil, err
	}
	return s.Bytes(), nil
}

// VarForFile guesses the variable an update file is for from its name:
// dbx, then KEK, then db, case-insensitively ("DBXUpdate-amd64.bin" is dbx).
func VarForFile(path string) (string, bool) {
	base := strings.ToLower(filepath.Base(path))
	switch {
	case strings.Contains(base, "dbx"):
		return VarDBX, true
	case strings.Contains(base, "kek"):
		return VarKEK, true
	case strings.Contains(base, "db"):
		return VarDB, true
	}
	return "", false
}

// NormalizeVar accepts db, dbx and kek in any case.
func NormalizeVar(s string) (string, error) {
	switch strings.ToLower(s) {
	case "db":
		return VarDB, nil
	case "dbx":
		return VarDBX, nil
	case "kek":
		return VarKEK, nil
	}
	return "", fmt.Errorf("nvram: variable %q: want db, dbx or KEK", s)
}
