package nvram

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf16"

	"github.com/vouch-dev/vouch/internal/authenticode"
	"github.com/vouch-dev/vouch/internal/efi"
)

// Variable is one variable as list shows it.
type Variable struct {
	Name       string   `json:"name"`
	GUID       string   `json:"guid"`
	Vendor     string   `json:"vendor,omitempty"` // the GUID's name when known
	Attributes string   `json:"attributes"`       // "NV|BS|RT|AT"
	AttrBits   uint32   `json:"attributes_value"`
	Size       int      `json:"size"`
	Timestamp  string   `json:"timestamp,omitempty"` // RFC 3339, authenticated variables with a non-zero EFI_TIME
	Value      string   `json:"value,omitempty"`     // a short decoding of small well-known variables
	Lists      []List   `json:"signature_lists,omitempty"`
	Error      string   `json:"error,omitempty"` // why the value could not be decoded
	KnownCAs   []string `json:"known_cas,omitempty"`
}

// List is one EFI_SIGNATURE_LIST.
type List struct {
	Type          string  `json:"type"` // "X509", "SHA256", ... or the GUID
	SignatureSize uint32  `json:"signature_size"`
	Entries       []Entry `json:"entries"`
}

// Entry is one EFI_SIGNATURE_DATA.
type Entry struct {
	Owner     string `json:"owner"`
	OwnerName string `json:"owner_name,omitempty"`
	// Hash is the hex data of a hash entry (SHA256, X509_SHA256 without its
	// revocation time...).
	Hash string `json:"hash,omitempty"`
	// Certificate fields of an X509 entry.
	Subject  string `json:"subject,omitempty"`
	Issuer   string `json:"issuer,omitempty"`
	Serial   string `json:"serial,omitempty"`
	NotAfter string `json:"not_after,omitempty"`
	SHA256   string `json:"sha256,omitempty"` // fingerprint of the DER
	KnownCA  string `json:"known_ca,omitempty"`
	Error    string `json:"error,omitempty"`
	Size     int    `json:"size"`
}

// signatureDatabases are the variables whose value is EFI_SIGNATURE_LISTs.
var signatureDatabases = map[string]bool{
	"PK": true, "KEK": true, "db": true, "dbx": true, "dbt": true, "dbr": true,
	"PKDefault": true, "KEKDefault": true, "dbDefault": true, "dbxDefault": true, "dbtDefault": true, "dbrDefault": true,
	"MokList": true, "MokListRT": true, "MokListX": true, "MokListXRT": true, "MokListTrusted": true,
}

var vendorNames = map[efi.GUID]string{
	efi.GlobalVariableGUID:        "EFI global variable",
	efi.ImageSecurityDatabaseGUID: "image security database",
	efi.ShimLockGUID:              "shim",
	MicrosoftOwner:                "Microsoft",
	VouchOwner:                    "vouch",
	mustGUID("f0a30bc7-af08-4556-99c4-001009c93a44"): "edk2 Secure Boot enable",
	mustGUID("c076ec0c-7028-4399-a072-71ee5c448b9f"): "edk2 custom mode",
	mustGUID("9073e4e0-60ec-4b6e-9903-4c223c260f3c"): "edk2 vendor keys",
	mustGUID("aaf32c78-947b-439a-a180-2e144ec37792"): "edk2 authenticated variable",
	mustGUID("d9bee56e-75dc-49d9-b4d7-b534210f637a"): "edk2 certificate database",
	mustGUID("4c19049f-4137-4dd3-9c10-8b97a83ffdfa"): "edk2 memory type information",
	mustGUID("eb704011-1402-11d3-8e77-00a0c969723b"): "edk2 MTC",
	mustGUID("9e58292b-7c68-497d-a0ce-6500fd9f1b95"): "OVMF platform config",
	mustGUID("a2c1808f-0d4f-4cc9-a619-d1e641d39d49"): "TCG2 configuration",
}

// vendorName names well-known vendor and owner GUIDs.
func vendorName(g efi.GUID) string { return vendorNames[g] }

// Describe lists a set of variables as list shows them, in name order.
// auth, when not nil, gives the authentication fields of a variable (an
// edk2 store has them; an efivarfs export does not).
func Describe(vs *efi.VarSet, auth func(name string, guid efi.GUID) (efi.AuthInfo, bool)) []Variable {
	var out []Variable
	for _, v := range vs.All() {
		d := Variable{
			Name:       v.Name,
			GUID:       v.GUID.String(),
			Vendor:     vendorName(v.GUID),
			Attributes: v.Attributes.String(),
			AttrBits:   uint32(v.Attributes),
			Size:       len(v.Data),
		}
		if auth != nil {
			if a, ok := auth(v.Name, v.GUID); ok {
				if t := a.Time(); !t.IsZero() {
					d.Timestamp = t.Format(time.RFC3339)
				}
			}
		}
		if signatureDatabases[v.Name] && (v.GUID == efi.GlobalVariableGUID || v.GUID == efi.ImageSecurityDatabaseGUID || v.GUID == efi.ShimLockGUID) {
			lists, err := efi.ParseSignatureLists(v.Data)
			if err != nil {
				d.Error = err.Error()
			}
			for _, l := range lists {
				dl := describeList(l)
				for _, e := range dl.Entries {
					if e.KnownCA != "" {
						d.KnownCAs = append(d.KnownCAs, e.KnownCA)
					}
				}
				d.Lists = append(d.Lists, dl)
			}
		} else {
			d.Value = shortValue(v)
		}
		out = append(out, d)
	}
	return out
}

// List describes every live variable of the store.
func (s *Store) List() []Variable { return Describe(s.Vars(), s.vs.AuthInfo) }

func describeList(l efi.SignatureList) List {
	dl := List{Type: l.TypeName(), SignatureSize: l.SignatureSize}
	if dl.Type == "unknown" {
		dl.Type = l.Type.String()
	}
	for _, sd := range l.Signatures {
		e := Entry{Owner: sd.Owner.String(), OwnerName: vendorName(sd.Owner), Size: len(sd.Data)}
		switch l.Type {
		case efi.CertX509GUID:
			describeCert(&e, sd.Data)
		case efi.CertX509SHA256GUID, efi.CertX509SHA384GUID, efi.CertX509SHA512GUID:
			// ToBeSignedHash then a 16-byte EFI_TIME of revocation.
			e.Hash = hex.EncodeToString(sd.Data[:len(sd.Data)-16])
		default:
			e.Hash = hex.EncodeToString(sd.Data)
		}
		dl.Entries = append(dl.Entries, e)
	}
	return dl
}

func describeCert(e *Entry, der []byte) {
	// An entry of a list whose signature size exceeds the certificate is
	// zero-padded; the certificate is the DER element at its start.
	der = trimDER(der)
	fp := sha256.Sum256(der)
	e.SHA256 = hex.EncodeToString(fp[:])
	c, err := x509.ParseCertificate(der)
	if err != nil {
		e.Error = "not a parsable X.509 certificate: " + err.Error()
		return
	}
	e.Subject = c.Subject.String()
	e.Issuer = c.Issuer.String()
	e.Serial = c.SerialNumber.Text(16)
	e.NotAfter = c.NotAfter.UTC().Format(time.RFC3339)
	if k, ok := authenticode.IdentifyCA(c); ok {
		e.KnownCA = k.ID
	}
}

// trimDER cuts trailing bytes after one DER element (a SEQUENCE with a
// definite length), as entries of a list with a larger signature size carry.
func trimDER(b []byte) []byte {
	if len(b) < 2 || b[0] != 0x30 {
		return b
	}
	n, hdr := int(b[1]), 2
	if n&0x80 != 0 {
		k := n & 0x7f
		if k == 0 || k > 4 || len(b) < 2+k {
			return b
		}
		n = 0
		for _, c := range b[2 : 2+k] {
			n = n<<8 | int(c)
		}
		hdr = 2 + k
	}
	if n < 0 || hdr+n > len(b) {
		return b
	}
	return b[:hdr+n]
}

// shortValue decodes the small variables people look for; "" otherwise.
func shortValue(v efi.Variable) string {
	switch {
	case v.GUID == efi.GlobalVariableGUID && (v.Name == "SecureBoot" || v.Name == "SetupMode" || v.Name == "AuditMode" || v.Name == "DeployedMode" || v.Name == "VendorKeys"),
		v.Name == "SecureBootEnable", v.Name == "CustomMode", v.Name == "VendorKeysNv", v.Name == "MokSBState", v.Name == "MokDBState":
		if len(v.Data) == 1 {
			return fmt.Sprintf("%d", v.Data[0])
		}
	case v.GUID == efi.GlobalVariableGUID && (v.Name == "BootOrder" || v.Name == "DriverOrder"):
		if len(v.Data)%2 == 0 {
			var parts []string
			for i := 0; i+1 < len(v.Data); i += 2 {
				parts = append(parts, fmt.Sprintf("%04X", binary.LittleEndian.Uint16(v.Data[i:])))
			}
			return strings.Join(parts, ",")
		}
	case v.GUID == efi.GlobalVariableGUID && (v.Name == "Timeout" || v.Name == "BootCurrent" || v.Name == "BootNext"):
		if len(v.Data) == 2 {
			return fmt.Sprintf("%d", binary.LittleEndian.Uint16(v.Data))
		}
	case v.GUID == efi.GlobalVariableGUID && isBootOption(v.Name):
		lo, err := efi.ParseLoadOption(v.Data)
		if err != nil {
			return ""
		}
		s := lo.Description
		if fp := lo.FilePath.String(); fp != "" {
			s += " → " + fp
		}
		if !lo.Active() {
			s += " (inactive)"
		}
		return s
	case v.GUID == efi.GlobalVariableGUID && (v.Name == "PlatformLang" || v.Name == "Lang" || v.Name == "PlatformLangCodes" || v.Name == "LangCodes"):
		return strings.TrimRight(printable(v.Data), "\x00")
	case v.GUID == efi.ShimLockGUID && (v.Name == "SbatLevel" || v.Name == "SbatLevelRT"):
		return strings.ReplaceAll(strings.TrimSpace(printable(v.Data)), "\n", "; ")
	}
	return ""
}

func isBootOption(name string) bool {
	for _, p := range []string{"Boot", "Driver", "SysPrep", "PlatformRecovery"} {
		if rest, ok := strings.CutPrefix(name, p); ok && len(rest) == 4 {
			for _, c := range rest {
				if !strings.ContainsRune("0123456789ABCDEF", c) {
					return false
				}
			}
			return true
		}
	}
	return false
}

// printable returns b as text when it is printable ASCII (and line breaks),
// "" otherwise.
func printable(b []byte) string {
	for _, c := range b {
		if (c < 0x20 || c > 0x7e) && c != '\n' && c != '\r' && c != '\t' && c != 0 {
			return ""
		}
	}
	return string(b)
}

// WriteTable renders variables for people: one line per variable, then one
// line per signature-list entry under it.
func WriteTable(w io.Writer, vars []Variable) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIABLE\tGUID\tATTRIBUTES\tSIZE\tTIMESTAMP\tVALUE")
	for _, v := range vars {
		val := v.Value
		if len(v.Lists) > 0 {
			n := 0
			for _, l := range v.Lists {
				n += len(l.Entries)
			}
			val = fmt.Sprintf("%d signature lists, %d entries", len(v.Lists), n)
		}
		if v.Error != "" {
			val = strings.TrimSpace(val + " (" + v.Error + ")")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", v.Name, v.GUID, v.Attributes, v.Size, v.Timestamp, oneLine(val))
		for _, l := range v.Lists {
			for _, e := range l.Entries {
				fmt.Fprintf(tw, "  %s\t%s\t\t\t\t%s\n", l.Type, ownerLabel(e), entryLabel(e))
			}
		}
	}
	return tw.Flush()
}

func ownerLabel(e Entry) string {
	if e.OwnerName != "" {
		return "owner " + e.OwnerName
	}
	return "owner " + e.Owner
}

func entryLabel(e Entry) string {
	switch {
	case e.Error != "":
		return e.Error
	case e.Subject != "":
		s := commonName(e.Subject)
		if e.KnownCA != "" {
			s += " [" + e.KnownCA + "]"
		}
		return s + " sha256:" + e.SHA256[:16] + "…"
	default:
		return e.Hash
	}
}

// commonName picks CN=... out of a distinguished name string.
func commonName(dn string) string {
	for _, part := range strings.Split(dn, ",") {
		if cn, ok := strings.CutPrefix(part, "CN="); ok {
			return cn
		}
	}
	return dn
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if r := []rune(s); len(r) > 90 {
		s = string(r[:89]) + "…"
	}
	return s
}

// utf16Name is the UTF-16LE encoding of a variable name without its NUL, as
// the signed data of an authenticated write begins.
func utf16Name(name string) []byte {
	u := utf16.Encode([]rune(name))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return b
}
