package secureboot

import (
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/vouch-dev/vouch/internal/authenticode"
	"github.com/vouch-dev/vouch/internal/efi"
	"github.com/vouch-dev/vouch/internal/mscerts"
)

// What-if firmware profiles: the Microsoft certificates a PC or cloud VM ships
// with in db and KEK, Secure Boot on, user mode, an empty dbx and no SbatLevel
// variable (shim then applies the policy it carries).
const (
	ProfileMicrosoft2011 = "microsoft-2011"
	ProfileMicrosoft2023 = "microsoft-2023"
	ProfileMicrosoftBoth = "microsoft-both"
)

// Profiles lists the profile names.
func Profiles() []string {
	return []string{ProfileMicrosoft2011, ProfileMicrosoft2023, ProfileMicrosoftBoth}
}

var (
	profileDB2011  = []string{"microsoft-windows-production-pca-2011", "microsoft-uefi-ca-2011"}
	profileKEK2011 = []string{"microsoft-kek-ca-2011"}
	profileDB2023  = []string{"windows-uefi-ca-2023", "microsoft-uefi-ca-2023", "microsoft-option-rom-uefi-ca-2023"}
	profileKEK2023 = []string{"microsoft-kek-2k-ca-2023"}
)

// Known-CA IDs the transition verdict is about.
const (
	CAUEFI2011 = "microsoft-uefi-ca-2011"
	CAUEFI2023 = "microsoft-uefi-ca-2023"
)

// Vendor GUIDs of variables efi does not name.
var (
	// secureBootEnableGUID is gEfiSecureBootEnableDisableGuid: edk2 keeps the
	// user's Secure Boot switch in the non-volatile "SecureBootEnable".
	secureBootEnableGUID = mustGUID("f0a30bc7-af08-4556-99c4-001009c93a44")
)

func mustGUID(s string) efi.GUID {
	g, err := efi.ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

// dbEntry is one X509 entry of db as the verifiers try them.
type dbEntry struct {
	cert   *x509.Certificate
	ca     string // known-CA ID or ""
	origin string // "db", "db (profile microsoft-2011)", "db (--db-cert FILE)"
	strict bool   // the entry passes shim's verify_x509 (exact DER length)
	first  bool   // the first entry of its signature list (shim tries only those)
}

func (e dbEntry) String() string {
	return e.origin + ": " + describeCert(e.cert)
}

// Firmware is the Secure Boot state of a machine: its key databases, modes,
// shim's MOK variables and SBAT level, and its boot entries.
type Firmware struct {
	// Source says where the state came from: a file, a directory,
	// "efivarfs", or "profile microsoft-2011".
	Source string
	// Profile is the what-if profile name, "" for real variables.
	Profile string
	// Vars are the variables read, nil for a profile.
	Vars *efi.VarSet

	// SecureBoot reports that the firmware enforces signatures: the
	// SecureBoot variable, or for an edk2 store what AuthVariableLib derives
	// at start-up (PK present and SecureBootEnable not 0).
	SecureBoot   bool
	SetupMode    bool // no PK: anything may be enrolled, nothing is checked
	AuditMode    bool
	DeployedMode bool

	PK, KEK, DB, DBX                             []efi.SignatureList
	PKDefault, KEKDefault, DBDefault, DBXDefault []efi.SignatureList
	// MokList and MokListX are shim's machine owner keys and their deny
	// list: the boot-services variables, or their MokListRT/MokListXRT
	// mirrors (all an efivarfs shows).
	MokList, MokListX []efi.SignatureList
	// MokIgnoreDB is shim's MokDBState: do not trust db for second stages.
	MokIgnoreDB bool
	// ShimValidationDisabled is shim's MokSBState: shim runs in insecure
	// mode and verifies nothing.
	ShimValidationDisabled bool

	// SbatLevel is the SbatLevel variable's data (or SbatLevelRT's when
	// only the mirror is visible), nil when there is none.
	SbatLevel      []byte
	SbatLevelName  string
	SbatLevelAttrs efi.Attributes

	BootOrder   []uint16
	BootEntries map[uint16]*efi.LoadOption

	// DBCAs and KEKCAs are the known Microsoft CAs (by ID) in db and KEK.
	DBCAs, KEKCAs []string
	// Warnings lists variables that could not be read and what was
	// assumed instead.
	Warnings []string

	db            []dbEntry
	dbx509        []dbEntry
	hasDB, hasDBX bool
}

// FromVars decodes the Secure Boot state from variables. A db or dbx that is
// not a valid signature database is an error (the decision would be
// guesswork); other unreadable variables become Warnings.
func FromVars(vs *efi.VarSet) (*Firmware, error) {
	fw := &Firmware{Source: vs.Source(), Vars: vs, BootEntries: map[uint16]*efi.LoadOption{}}
	g, isdb := efi.GlobalVariableGUID, efi.ImageSecurityDatabaseGUID
	var err error
	if fw.DB, fw.hasDB, err = sigLists(vs, "db", isdb); err != nil {
		return nil, fmt.Errorf("secureboot: %w", err)
	}
	if fw.DBX, fw.hasDBX, err = sigLists(vs, "dbx", isdb); err != nil {
		return nil, fmt.Errorf("secureboot: %w", err)
	}
	optional := func(name string, guid efi.GUID) []efi.SignatureList {
		l, _, err := sigLists(vs, name, guid)
		if err != nil {
			fw.Warnings = append(fw.Warnings, fmt.Sprintf("%v (ignored)", err))
		}
		return l
	}
	fw.PK = optional("PK", g)
	fw.KEK = optional("KEK", g)
	fw.PKDefault = optional("PKDefault", g)
	fw.KEKDefault = optional("KEKDefault", g)
	fw.DBDefault = optional("dbDefault", g)
	fw.DBXDefault = optional("dbxDefault", g)
	mok := func(name string) []efi.SignatureList {
		if _, ok := vs.Get(name, efi.ShimLockGUID); ok {
			return optional(name, efi.ShimLockGUID)
		}
		return optional(name+"RT", efi.ShimLockGUID)
	}
	fw.MokList = mok("MokList")
	fw.MokListX = mok("MokListX")
	fw.MokIgnoreDB = flag(vs, "MokDBState", efi.ShimLockGUID) || flag(vs, "MokIgnoreDB", efi.ShimLockGUID)
	fw.ShimValidationDisabled = flag(vs, "MokSBState", efi.ShimLockGUID) || flag(vs, "MokSBStateRT", efi.ShimLockGUID)
	for _, name := range []string{"SbatLevel", "SbatLevelRT"} {
		if v, ok := vs.Get(name, efi.ShimLockGUID); ok {
			fw.SbatLevel, fw.SbatLevelName, fw.SbatLevelAttrs = v.Data, name, v.Attributes
			break
		}
	}

	// Modes (UEFI 2.10 §32.3). An efivarfs has SecureBoot and SetupMode; an
	// edk2 store has neither (they are volatile), so derive them the way
	// AuthVariableLibInitialize does: user mode when PK exists, Secure Boot
	// on when in user mode and SecureBootEnable is not 0 (edk2 creates it
	// as 1 when it is missing).
	_, hasPK := vs.Get("PK", g)
	if v, ok := vs.Get("SetupMode", g); ok && len(v.Data) > 0 {
		fw.SetupMode = v.Data[0] == 1
	} else {
		fw.SetupMode = !hasPK
	}
	if v, ok := vs.Get("SecureBoot", g); ok && len(v.Data) > 0 {
		fw.SecureBoot = v.Data[0] == 1
	} else {
		enable := true
		if v, ok := vs.Get("SecureBootEnable", secureBootEnableGUID); ok && len(v.Data) > 0 {
			enable = v.Data[0] == 1
		}
		fw.SecureBoot = !fw.SetupMode && enable
	}
	fw.AuditMode = flag(vs, "AuditMode", g)
	fw.DeployedMode = flag(vs, "DeployedMode", g)

	if order, err := vs.BootOrder(); err == nil {
		fw.BootOrder = order
	} else if !errors.Is(err, efi.ErrNotFound) {
		fw.Warnings = append(fw.Warnings, fmt.Sprintf("%v (ignored)", err))
	}
	for _, n := range vs.BootEntries() {
		lo, err := vs.BootEntry(n)
		if err != nil {
			fw.Warnings = append(fw.Warnings, fmt.Sprintf("%v (ignored)", err))
			continue
		}
		fw.BootEntries[n] = lo
	}

	fw.db = x509Entries(fw.DB, "db")
	fw.dbx509 = x509Entries(fw.DBX, "dbx")
	fw.DBCAs = knownIn(fw.db)
	fw.KEKCAs = knownIn(x509Entries(fw.KEK, "KEK"))
	return fw, nil
}

// sigLists reads a signature database variable; a missing one is (nil, false, nil).
func sigLists(vs *efi.VarSet, name string, guid efi.GUID) ([]efi.SignatureList, bool, error) {
	if _, ok := vs.Get(name, guid); !ok {
		return nil, false, nil
	}
	l, err := vs.SignatureLists(name, guid)
	if err != nil {
		return nil, true, err
	}
	return l, true, nil
}

// flag reports a one-byte boolean variable set to non-zero.
func flag(vs *efi.VarSet, name string, guid efi.GUID) bool {
	v, ok := vs.Get(name, guid)
	return ok && len(v.Data) > 0 && v.Data[0] != 0
}

// x509Entries lists the X509 entries of signature lists in the order edk2
// walks them. Entries that do not parse are skipped (edk2's
// AuthenticodeVerify fails on them too).
func x509Entries(lists []efi.SignatureList, origin string) []dbEntry {
	var out []dbEntry
	for _, l := range lists {
		if l.Type != efi.CertX509GUID {
			continue
		}
		for i, s := range l.Signatures {
			c, strict := parseCertLenient(s.Data)
			if c == nil {
				continue
			}
			e := dbEntry{cert: c, origin: origin, strict: strict, first: i == 0}
			if k, ok := authenticode.IdentifyCA(c); ok {
				e.ca = k.ID
			}
			out = append(out, e)
		}
	}
	return out
}

// parseCertLenient parses a DER certificate the way OpenSSL's d2i_X509 does
// from an EFI_SIGNATURE_DATA: bytes after the certificate are ignored. strict
// reports what shim's verify_x509 demands: a SEQUENCE with a two-byte length
// that covers the data exactly.
func parseCertLenient(b []byte) (*x509.Certificate, bool) {
	var raw asn1.RawValue
	rest, err := asn1.Unmarshal(b, &raw)
	if err != nil {
		return nil, false
	}
	c, err := x509.ParseCertificate(raw.FullBytes)
	if err != nil {
		return nil, false
	}
	strict := len(rest) == 0 && len(b) >= 4 && b[0] == 0x30 && b[1] == 0x82 && int(b[2])<<8|int(b[3]) == len(b)-4
	return c, strict
}

func knownIn(entries []dbEntry) []string {
	var out []string
	for _, e := range entries {
		if e.ca != "" && !slices.Contains(out, e.ca) {
			out = append(out, e.ca)
		}
	}
	return out
}

// FromProfile returns a what-if firmware state: Secure Boot on, user mode,
// the profile's Microsoft CAs in db (their built-in certificates,
// internal/mscerts) and KEK, an empty dbx, no MOK and no SbatLevel variable.
func FromProfile(name string) (*Firmware, error) {
	db, kek, err := ProfileCAs(name)
	if err != nil {
		return nil, err
	}
	fw := &Firmware{
		Source:      "profile " + name,
		Profile:     name,
		SecureBoot:  true,
		BootEntries: map[uint16]*efi.LoadOption{},
		hasDB:       true,
		DBCAs:       append([]string(nil), db...),
		KEKCAs:      append([]string(nil), kek...),
	}
	for _, id := range db {
		c, ok := mscerts.Lookup(id)
		if !ok {
			return nil, fmt.Errorf("secureboot: firmware profile %s: no built-in certificate %q", name, id)
		}
		fw.db = append(fw.db, dbEntry{cert: c, ca: id, origin: "db (profile " + name + ")", strict: true, first: true})
	}
	return fw, nil
}

// AddDBCert adds a certificate to db, as if enrolled after the existing
// entries (the --db-cert of the command line).
func (fw *Firmware) AddDBCert(c *x509.Certificate, origin string) {
	e := dbEntry{cert: c, origin: "db (" + origin + ")", strict: true, first: true}
	if k, ok := authenticode.IdentifyCA(c); ok {
		e.ca = k.ID
		if !slices.Contains(fw.DBCAs, k.ID) {
			fw.DBCAs = append(fw.DBCAs, k.ID)
		}
	}
	fw.db = append(fw.db, e)
	fw.hasDB = true
}

// Enforcing reports whether the firmware checks image signatures: Secure Boot
// on (edk2's DxeImageVerificationHandler returns success at once when the
// SecureBoot variable is missing or 0, which it is in setup and audit mode).
func (fw *Firmware) Enforcing() bool {
	return fw.SecureBoot && !fw.SetupMode
}

// TrustsCA reports whether db holds the known CA with that ID.
func (fw *Firmware) TrustsCA(id string) bool { return slices.Contains(fw.DBCAs, id) }

// DBEntries describes the X509 entries of db, in order: the certificate's
// name and known-CA ID, and where it came from when that is not the db
// variable itself ("profile microsoft-2011", "--db-cert FILE").
func (fw *Firmware) DBEntries() []string {
	out := make([]string, 0, len(fw.db))
	for _, e := range fw.db {
		d := strings.TrimPrefix(e.String(), e.origin+": ")
		if e.origin != "db" {
			d += " [" + strings.TrimSuffix(strings.TrimPrefix(e.origin, "db ("), ")") + "]"
		}
		out = append(out, d)
	}
	return out
}

// Summary is the firmware state in a form for reports.
type Summary struct {
	Source       string   `json:"source"`
	Profile      string   `json:"profile,omitempty"`
	SecureBoot   bool     `json:"secureBoot"`
	SetupMode    bool     `json:"setupMode"`
	AuditMode    bool     `json:"auditMode,omitempty"`
	DeployedMode bool     `json:"deployedMode,omitempty"`
	PK           []string `json:"pk,omitempty"`
	KEK          []string `json:"kek,omitempty"`
	DB           []string `json:"db"`
	DBCAs        []string `json:"dbCAs"`
	KEKCAs       []string `json:"kekCAs"`
	DBX          DBXCount `json:"dbx"`
	MokList      []string `json:"mokList,omitempty"`
	MokListX     int      `json:"mokListXEntries,omitempty"`
	MokIgnoreDB  bool     `json:"mokIgnoreDB,omitempty"`
	ShimInsecure bool     `json:"shimValidationDisabled,omitempty"`
	SbatLevel    string   `json:"sbatLevel,omitempty"`
	BootOrder    []string `json:"bootOrder,omitempty"`
	Warnings     []string `json:"warnings,omitempty"`
}

// DBXCount counts dbx entries by type ("SHA256": 431, "X509": 1...).
type DBXCount map[string]int

// Summarize describes the state.
func (fw *Firmware) Summarize() Summary {
	s := Summary{
		Source: fw.Source, Profile: fw.Profile, SecureBoot: fw.SecureBoot, SetupMode: fw.SetupMode,
		AuditMode: fw.AuditMode, DeployedMode: fw.DeployedMode,
		DB: fw.DBEntries(), DBCAs: nonNil(fw.DBCAs), KEKCAs: nonNil(fw.KEKCAs), DBX: DBXCount{},
		MokIgnoreDB: fw.MokIgnoreDB, ShimInsecure: fw.ShimValidationDisabled, Warnings: fw.Warnings,
	}
	for _, e := range x509Entries(fw.PK, "PK") {
		s.PK = append(s.PK, describeCert(e.cert))
	}
	for _, e := range x509Entries(fw.KEK, "KEK") {
		s.KEK = append(s.KEK, describeCert(e.cert))
	}
	for _, l := range fw.DBX {
		s.DBX[l.TypeName()] += len(l.Signatures)
	}
	for _, e := range x509Entries(fw.MokList, "MokList") {
		s.MokList = append(s.MokList, describeCert(e.cert))
	}
	for _, l := range fw.MokList {
		if l.Type != efi.CertX509GUID {
			s.MokList = append(s.MokList, fmt.Sprintf("%d %s hash(es)", len(l.Signatures), l.TypeName()))
		}
	}
	for _, l := range fw.MokListX {
		s.MokListX += len(l.Signatures)
	}
	if fw.SbatLevel != nil {
		s.SbatLevel = strings.TrimRight(string(fw.SbatLevel), "\x00")
	}
	nums := make([]int, 0, len(fw.BootOrder))
	for _, n := range fw.BootOrder {
		nums = append(nums, int(n))
	}
	for _, n := range nums {
		s.BootOrder = append(s.BootOrder, fmt.Sprintf("Boot%04X", n))
	}
	return s
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// hashIn reports whether digest is an entry of a list of type t. Like edk2's
// IsSignatureFoundInDatabase it only looks at lists whose signature size is
// the owner GUID plus the digest.
func hashIn(lists []efi.SignatureList, t efi.GUID, digest []byte) bool {
	if digest == nil {
		return false
	}
	for _, l := range lists {
		if l.Type != t || int(l.SignatureSize) != 16+len(digest) {
			continue
		}
		for _, s := range l.Signatures {
			if string(s.Data[:len(digest)]) == string(digest) {
				return true
			}
		}
	}
	return false
}

func hexShort(b []byte) string {
	s := hex.EncodeToString(b)
	if len(s) > 16 {
		return s[:16] + "…"
	}
	return s
}
