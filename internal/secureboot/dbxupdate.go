package secureboot

import (
	"bytes"
	"crypto/sha1"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/vouch-dev/vouch/internal/authenticode"
	"github.com/vouch-dev/vouch/internal/efi"
)

// A dbx update is what a machine's owner (or Windows Update, or fwupd) appends
// to dbx to revoke boot binaries and signing certificates. Microsoft publishes
// it in two forms, both read here (microsoft/secureboot_objects):
//
//   - PostSignedObjects/DBX/<arch>/DBXUpdate.bin: an
//     EFI_VARIABLE_AUTHENTICATION_2 descriptor (EFI_TIME, then a
//     WIN_CERTIFICATE_UEFI_GUID holding a bare PKCS#7 SignedData made with a
//     KEK key) followed by the EFI_SIGNATURE_LISTs to append (UEFI 2.10
//     §8.2.2, SetVariable with EFI_VARIABLE_APPEND_WRITE);
//   - PreSignedObjects/DBX/dbx_info_msft_latest.json: the same revocations with
//     descriptions, as HashesJsonSchema.json describes: "images" per
//     architecture (x64, ia32, aarch64, arm; Authenticode SHA-256 hashes),
//     "certificates" (a DER file name and its SHA-1 thumbprint) and "svns"
//     (Windows boot manager security versions, stored in dbx as SHA-256
//     entries owned by SVN_OWNER_GUID; they never match a Linux binary).
//
// Bare signature lists (an unsigned update, e.g. the input of the signing
// step) are accepted too.

// Owner GUIDs Microsoft gives the entries it builds (secureboot_objects
// scripts/utility_functions.py; the same GUID owns its db and KEK entries).
var (
	microsoftOwnerGUID = mustGUID("77fa9abd-0359-4d32-bd60-28f4e78f784b")
	svnOwnerGUID       = mustGUID("9d132b6c-59d5-4388-ab1c-185cfcb2eb92")
)

// Update forms.
const (
	FormAuthVar  = "authenticated variable (EFI_VARIABLE_AUTHENTICATION_2)"
	FormSigLists = "signature lists"
	FormJSON     = "JSON revocation list"
)

// jsonArches are the architectures of the JSON list's "images", in
// HashesJsonSchema.json's order.
var jsonArches = []string{"x64", "ia32", "aarch64", "arm"}

// DBXUpdate is a parsed dbx update.
type DBXUpdate struct {
	// Source names the file.
	Source string `json:"source"`
	// Form is FormAuthVar, FormSigLists or FormJSON.
	Form string `json:"form"`
	// SignedAt is the EFI_VARIABLE_AUTHENTICATION_2 timestamp.
	SignedAt *time.Time `json:"signedAt,omitempty"`
	// Signers are the subjects of the certificates the PKCS#7 signature
	// carries. vouch does not verify the signature against KEK: it judges
	// what the update would do once applied.
	Signers []string `json:"signers,omitempty"`

	lists  []efi.SignatureList            // authenticated variable and signature-list forms
	arches map[string][]efi.SignatureList // JSON form: images per architecture
	common []efi.SignatureList            // JSON form: resolved certificates and SVNs
	certs  []jsonCert                     // JSON form: certificate entries
	info   map[string]entryInfo           // JSON form: descriptions by entry key
}

// entryInfo is what the JSON list says about one entry.
type entryInfo struct {
	Filename, Description, Date, Company string
}

type jsonCert struct {
	file, subject, issuer, thumbprint string
	info                              entryInfo
	der                               []byte // nil when the file is not at hand
}

// UpdateError is an update file that cannot be used: where and why.
type UpdateError struct {
	Source string
	// Offset is the byte offset of the problem, -1 when it has none (JSON
	// errors name the element instead).
	Offset int64
	Reason string
}

func (e *UpdateError) Error() string {
	if e.Offset < 0 {
		return fmt.Sprintf("secureboot: %s: %s", e.Source, e.Reason)
	}
	return fmt.Sprintf("secureboot: %s: %s (offset 0x%x)", e.Source, e.Reason, e.Offset)
}

func updateErr(src string, off int64, format string, args ...any) error {
	return &UpdateError{Source: src, Offset: off, Reason: fmt.Sprintf(format, args...)}
}

// ReadDBXUpdate reads a dbx update file. Certificates of the JSON form are
// looked up beside the file under the name the list gives ("value").
func ReadDBXUpdate(path string) (*DBXUpdate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("secureboot: dbx update: %w", err)
	}
	dir := filepath.Dir(path)
	return parseDBXUpdate(b, path, func(name string) ([]byte, error) {
		if name != filepath.Base(name) {
			return nil, fmt.Errorf("%q is not a plain file name", name)
		}
		return os.ReadFile(filepath.Join(dir, name))
	})
}

// ParseDBXUpdate parses a dbx update from memory; source names it in errors.
// Certificates of the JSON form are not at hand: they are matched by SHA-1
// thumbprint against the certificates the judged binaries carry.
func ParseDBXUpdate(b []byte, source string) (*DBXUpdate, error) {
	return parseDBXUpdate(b, source, nil)
}

func parseDBXUpdate(b []byte, src string, readCert func(string) ([]byte, error)) (*DBXUpdate, error) {
	trimmed := bytes.TrimLeft(bytes.TrimPrefix(b, []byte{0xef, 0xbb, 0xbf}), " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '{' {
		return parseDBXJSON(trimmed, src, readCert)
	}
	if len(b) == 0 {
		return nil, updateErr(src, 0, "empty file: not a dbx update")
	}
	u := &DBXUpdate{Source: src}
	av, avErr := efi.ParseAuthVar2(b)
	if avErr == nil {
		u.Form = FormAuthVar
		if !av.Timestamp.IsZero() {
			ts := av.Timestamp
			u.SignedAt = &ts
		}
		certs, err := authenticode.SignedDataCertificates(av.PKCS7)
		if err != nil {
			return nil, updateErr(src, int64(len(b)-len(av.Payload)-len(av.PKCS7)), "the update's PKCS#7 signature does not parse (%v); firmware refuses such an update", err)
		}
		for _, c := range certs {
			u.Signers = append(u.Signers, c.Subject.String())
		}
		start := int64(len(b) - len(av.Payload))
		if u.lists, err = dbxLists(av.Payload, src, start); err != nil {
			return nil, err
		}
		return u, nil
	}
	// Not an authenticated variable: bare signature lists, when they parse
	// whole and are of types a dbx takes.
	lists, err := efi.ParseSignatureLists(b)
	if err != nil || !knownTypes(lists) {
		return nil, updateErr(src, 0, "not a dbx update: neither an authenticated variable (%v), nor EFI signature lists, nor Microsoft's JSON revocation list", strings.TrimPrefix(avErr.Error(), "efi: "))
	}
	u.Form = FormSigLists
	if u.lists, err = dbxLists(b, src, 0); err != nil {
		return nil, err
	}
	return u, nil
}

func knownTypes(lists []efi.SignatureList) bool {
	for _, l := range lists {
		if l.TypeName() == "unknown" {
			return false
		}
	}
	return len(lists) > 0
}

// dbxLists parses the signature lists of an update as edk2's AuthVariableLib
// checks them before a db/dbx write (CheckSignatureListFormat): every list of
// a known type and size, and X509 entries that are certificates. base is the
// payload's offset in the file, for messages.
func dbxLists(b []byte, src string, base int64) ([]efi.SignatureList, error) {
	if len(b) == 0 {
		return nil, updateErr(src, base, "the update holds no signature lists")
	}
	lists, err := efi.ParseSignatureLists(b)
	if err != nil {
		var fe *efi.FormatError
		if errors.As(err, &fe) {
			return nil, updateErr(src, base+fe.Offset, "malformed signature list: %s", fe.Reason)
		}
		return nil, updateErr(src, base, "malformed signature list: %v", err)
	}
	off := base
	for i, l := range lists {
		if l.TypeName() == "unknown" {
			return nil, updateErr(src, off, "signature list %d has type %s, which firmware does not accept in dbx", i+1, l.Type)
		}
		if l.Type == efi.CertX509GUID {
			for j, s := range l.Signatures {
				if _, err := x509.ParseCertificate(s.Data); err != nil {
					return nil, updateErr(src, off, "signature list %d, entry %d: not an X.509 certificate: %v", i+1, j+1, err)
				}
			}
		}
		off += int64(28 + len(l.Header) + len(l.Signatures)*int(l.SignatureSize))
	}
	return lists, nil
}

// JSON form. The checks are HashesJsonSchema.json's (required members,
// string types, the SHA256 hashType enum, YYYY-MM-DD dates) plus what mapping
// to signature lists needs (hex of the right length).

type jsonDoc map[string]json.RawMessage

func parseDBXJSON(b []byte, src string, readCert func(string) ([]byte, error)) (*DBXUpdate, error) {
	bad := func(where, format string, args ...any) error {
		return updateErr(src, -1, "JSON revocation list: %s: %s", where, fmt.Sprintf(format, args...))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var doc jsonDoc
	if err := dec.Decode(&doc); err != nil {
		return nil, updateErr(src, -1, "JSON revocation list does not parse: %v", err)
	}
	if dec.More() {
		return nil, updateErr(src, -1, "JSON revocation list: data after the top-level object")
	}
	for _, k := range []string{"images", "certificates", "svns"} {
		if _, ok := doc[k]; !ok {
			return nil, bad("top level", "required member %q is missing", k)
		}
	}
	u := &DBXUpdate{Source: src, Form: FormJSON, arches: map[string][]efi.SignatureList{}, info: map[string]entryInfo{}}

	var images jsonDoc
	if err := json.Unmarshal(doc["images"], &images); err != nil || images == nil {
		return nil, bad("images", "not an object")
	}
	for _, arch := range jsonArches {
		raw, ok := images[arch]
		if !ok {
			return nil, bad("images", "required member %q is missing", arch)
		}
		entries, err := jsonObjects(raw)
		if err != nil {
			return nil, bad("images."+arch, "%v", err)
		}
		l := efi.SignatureList{Type: efi.CertSHA256GUID, SignatureSize: 16 + 32}
		for i, e := range entries {
			where := fmt.Sprintf("images.%s[%d]", arch, i)
			f, err := e.strings("authenticodeHash", "hashType", "flatHash", "filename", "description", "companyName", "dateOfAddition", "signingAuthority")
			if err != nil {
				return nil, bad(where, "%v", err)
			}
			if f["hashType"] != "SHA256" {
				return nil, bad(where, "hashType %q is not one of [SHA256]", f["hashType"])
			}
			if err := checkDate(f["dateOfAddition"]); err != nil {
				return nil, bad(where+".dateOfAddition", "%v", err)
			}
			h, err := hexOf(f["authenticodeHash"], 32)
			if err != nil {
				return nil, bad(where+".authenticodeHash", "%v", err)
			}
			l.Signatures = append(l.Signatures, efi.SignatureData{Owner: microsoftOwnerGUID, Data: h})
			u.info[entryKey(efi.CertSHA256GUID, h)] = entryInfo{Filename: f["filename"], Description: f["description"], Date: f["dateOfAddition"], Company: f["companyName"]}
		}
		if len(l.Signatures) > 0 {
			u.arches[arch] = []efi.SignatureList{l}
		}
	}

	certs, err := jsonObjects(doc["certificates"])
	if err != nil {
		return nil, bad("certificates", "%v", err)
	}
	for i, e := range certs {
		where := fmt.Sprintf("certificates[%d]", i)
		f, err := e.strings("value", "subjectName", "issuerName", "thumbprint", "description", "dateOfAddition")
		if err != nil {
			return nil, bad(where, "%v", err)
		}
		if err := checkDate(f["dateOfAddition"]); err != nil {
			return nil, bad(where+".dateOfAddition", "%v", err)
		}
		tp, err := hexOf(f["thumbprint"], sha1.Size)
		if err != nil {
			return nil, bad(where+".thumbprint", "%v", err)
		}
		c := jsonCert{file: f["value"], subject: f["subjectName"], issuer: f["issuerName"], thumbprint: hex.EncodeToString(tp),
			info: entryInfo{Filename: f["value"], Description: f["description"], Date: f["dateOfAddition"]}}
		if readCert != nil {
			if der, err := readCert(c.file); err == nil {
				sum := sha1.Sum(der)
				if hex.EncodeToString(sum[:]) != c.thumbprint {
					return nil, bad(where, "the certificate file %s beside the list has SHA-1 %x, not the thumbprint %s", c.file, sum, c.thumbprint)
				}
				if _, err := x509.ParseCertificate(der); err != nil {
					return nil, bad(where, "the certificate file %s beside the list is not an X.509 certificate: %v", c.file, err)
				}
				c.der = der
			}
		}
		u.certs = append(u.certs, c)
	}

	svns, err := jsonObjects(doc["svns"])
	if err != nil {
		return nil, bad("svns", "%v", err)
	}
	svnList := efi.SignatureList{Type: efi.CertSHA256GUID, SignatureSize: 16 + 32}
	for i, e := range svns {
		where := fmt.Sprintf("svns[%d]", i)
		f, err := e.strings("value", "version", "filename", "guid", "description", "dateOfLastChange")
		if err != nil {
			return nil, bad(where, "%v", err)
		}
		if err := checkDate(f["dateOfLastChange"]); err != nil {
			return nil, bad(where+".dateOfLastChange", "%v", err)
		}
		v, err := hexOf(f["value"], 32)
		if err != nil {
			return nil, bad(where+".value", "%v", err)
		}
		svnList.Signatures = append(svnList.Signatures, efi.SignatureData{Owner: svnOwnerGUID, Data: v})
		u.info[entryKey(efi.CertSHA256GUID, v)] = entryInfo{Filename: f["filename"], Description: "SVN " + f["version"] + ": " + f["description"], Date: f["dateOfLastChange"]}
	}
	if len(svnList.Signatures) > 0 {
		u.common = append(u.common, svnList)
	}
	for _, c := range u.certs {
		if c.der != nil {
			u.common = append(u.common, certList(c.der))
			u.info[entryKey(efi.CertX509GUID, c.der)] = c.info
		}
	}
	return u, nil
}

func certList(der []byte) efi.SignatureList {
	return efi.SignatureList{Type: efi.CertX509GUID, SignatureSize: uint32(16 + len(der)), Signatures: []efi.SignatureData{{Owner: microsoftOwnerGUID, Data: der}}}
}

type jsonObject map[string]json.RawMessage

func jsonObjects(raw json.RawMessage) ([]jsonObject, error) {
	var arr []json.RawMessage
	if err := json.Unmarshal(raw, &arr); err != nil || arr == nil {
		return nil, errors.New("not an array")
	}
	out := make([]jsonObject, 0, len(arr))
	for i, r := range arr {
		var o jsonObject
		if err := json.Unmarshal(r, &o); err != nil || o == nil {
			return nil, fmt.Errorf("item %d is not an object", i)
		}
		out = append(out, o)
	}
	return out, nil
}

// strings returns the required string members.
func (o jsonObject) strings(required ...string) (map[string]string, error) {
	out := map[string]string{}
	for _, k := range required {
		raw, ok := o[k]
		if !ok {
			return nil, fmt.Errorf("required member %q is missing", k)
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("member %q is not a string", k)
		}
		out[k] = s
	}
	return out, nil
}

func checkDate(s string) error {
	if _, err := time.Parse(time.DateOnly, s); err != nil {
		return fmt.Errorf("%q is not a YYYY-MM-DD date", s)
	}
	return nil
}

func hexOf(s string, n int) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != n {
		return nil, fmt.Errorf("%q is not %d hexadecimal bytes", s, n)
	}
	return b, nil
}

func entryKey(t efi.GUID, data []byte) string {
	return t.String() + ":" + string(data)
}

// Arches lists the architectures a JSON update has images for; nil for the
// other forms (they are made for one architecture).
func (u *DBXUpdate) Arches() []string {
	var out []string
	for a := range u.arches {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// Lists returns the signature lists the update appends on a machine of
// architecture arch (a JSON arch name: x64, ia32, aarch64, arm; ignored
// except for the JSON form). JSON certificate entries whose file is not at
// hand are not among them: AnalyzeRevocation looks for them on the target.
func (u *DBXUpdate) Lists(arch string) []efi.SignatureList {
	if u.Form != FormJSON {
		return u.lists
	}
	return append(append([]efi.SignatureList(nil), u.arches[arch]...), u.common...)
}

// Counts counts the entries the update appends on arch, by type.
func (u *DBXUpdate) Counts(arch string) map[string]int {
	out := map[string]int{}
	for _, l := range u.Lists(arch) {
		out[l.TypeName()] += len(l.Signatures)
	}
	return out
}
