package measure

import (
	"crypto/x509"
	"encoding/binary"
	"fmt"

	"github.com/vouch-dev/vouch/internal/authenticode"
	"github.com/vouch-dev/vouch/internal/efi"
)

// Explanation says what PCR 7 and PCR 4 hold.
type Explanation struct {
	// SecureBoot is the SecureBoot variable as measured; nil when the log
	// has no such event.
	SecureBoot *bool `json:"secureBoot"`
	// Variables are the Secure Boot variables firmware measured.
	Variables []MeasuredVariable `json:"variables"`
	// Authorities are PCR 7's EV_EFI_VARIABLE_AUTHORITY events: the db
	// entry that let each boot application run (firmware), shim's vendor
	// certificate, its SbatLevel, MOK entries.
	Authorities []Authority `json:"authorities"`
	// MOK are shim's MokList, MokListX and MokListTrusted measurements
	// (PCR 14).
	MOK []MeasuredVariable `json:"mok,omitempty"`
	// Apps are PCR 4's boot applications in order.
	Apps []App `json:"apps"`
}

// MeasuredVariable is a variable event.
type MeasuredVariable struct {
	Seq     int      `json:"seq"`
	Name    string   `json:"name"`
	Size    int      `json:"size"`
	Entries int      `json:"entries,omitempty"` // signature database entries
	CAs     []string `json:"cas,omitempty"`     // known CAs among its certificates
}

// Authority is an EV_EFI_VARIABLE_AUTHORITY event.
type Authority struct {
	Seq int `json:"seq"`
	// By is "firmware" (a db entry allowed an image) or "shim".
	By       string `json:"by"`
	Variable string `json:"variable"`
	// CA is the known CA's identifier (e.g. "microsoft-uefi-ca-2011"),
	// "" when the certificate is not a known CA or the data is not one.
	CA          string `json:"ca,omitempty"`
	Description string `json:"description"`
}

// App is a boot application measured into PCR 4.
type App struct {
	Seq    int             `json:"seq"`
	Role   string          `json:"role"` // shim, grub, kernel, shim-helper
	File   string          `json:"file,omitempty"`
	Digest map[Bank]Digest `json:"digests"`
}

// Explain decodes PCR 7 and PCR 4.
func (lg *Log) Explain() *Explanation {
	x := &Explanation{}
	for _, e := range lg.Events {
		switch {
		case e.PCR == 7 && e.Type == evEFIVariableDriverConfig && e.Variable != nil:
			v := e.Variable
			if v.Name == "SecureBoot" && v.GUID == efi.GlobalVariableGUID && len(v.Data) == 1 {
				on := v.Data[0] == 1
				x.SecureBoot = &on
			}
			x.Variables = append(x.Variables, describeDatabase(e.Seq, v))
		case e.PCR == 7 && e.Type == evEFIVariableAuthority && e.Variable != nil:
			a := Authority{Seq: e.Seq, By: "shim", Variable: e.Variable.Name, Description: describeAuthority(e.Variable)}
			if e.Variable.GUID == efi.ImageSecurityDatabaseGUID {
				a.By = "firmware"
			}
			if c := authorityCert(e.Variable); c != nil {
				if k, ok := authenticode.IdentifyCA(c); ok {
					a.CA = k.ID
				}
			}
			x.Authorities = append(x.Authorities, a)
		case e.PCR == 14 && (e.Type == evIPL || e.Type == evEFIVariableAuthority):
			x.MOK = append(x.MOK, MeasuredVariable{Seq: e.Seq, Name: printable(e.Data), Size: len(e.Data)})
		case e.PCR == 4 && e.Type == evEFIBootServicesApp:
			a := App{Seq: e.Seq, Role: appRole(e, lg.Events), Digest: e.Digests}
			if e.Image != nil {
				a.File = e.Image.File
			}
			x.Apps = append(x.Apps, a)
		}
	}
	return x
}

// ShimAuthority is the CA of the db entry that allowed the first boot
// application (shim), "" when the log has none or it is not a known CA.
func (x *Explanation) ShimAuthority() (Authority, bool) {
	for _, a := range x.Authorities {
		if a.By == "firmware" {
			return a, true
		}
	}
	return Authority{}, false
}

func describeDatabase(seq int, v *Variable) MeasuredVariable {
	mv := MeasuredVariable{Seq: seq, Name: v.Name, Size: v.Size}
	switch v.Name {
	case "PK", "KEK", "db", "dbx", "dbt", "dbr":
	default:
		return mv
	}
	lists, err := efi.ParseSignatureLists(v.Data)
	if err != nil {
		return mv
	}
	for _, l := range lists {
		mv.Entries += len(l.Signatures)
		if l.Type != efi.CertX509GUID {
			continue
		}
		for _, s := range l.Signatures {
			if c, err := x509.ParseCertificate(s.Data); err == nil {
				if k, ok := authenticode.IdentifyCA(c); ok {
					mv.CAs = append(mv.CAs, k.ID)
				} else {
					mv.CAs = append(mv.CAs, caName(c))
				}
			}
		}
	}
	return mv
}

// String is a one-line summary of an event for tables.
func (e *Event) String() string {
	return fmt.Sprintf("%4d  PCR %2d  %-34s %s", e.Seq, e.PCR, e.TypeName, e.Description)
}

// separatorOK reports a normal separator (0x00000000).
func separatorOK(e *Event) bool {
	return len(e.Data) == 4 && binary.LittleEndian.Uint32(e.Data) == 0
}
