package secureboot

// A Change is a proposed change to a machine's boot trust, judged before
// anyone makes it. It is the one type `vouch gate`, `vouch secureboot`, the
// fleet's what-if and the measured-boot prediction share:
//
//	type Change struct {
//		DBAdd        []DBCert    // certificates appended to db (--db-add)
//		DBX          *DBXUpdate  // a dbx update appended to dbx (--dbx-update)
//		SBAT         *SBATUpdate // a new SbatLevel or policy (--sbat-level)
//		Shim         *Binary     // a new shim (--shim, or found in --shim-package)
//		ShimPackage  string      // the .deb/.rpm the shim came from, "" for a file
//		GRUB, Kernel *Binary     // the next stages the new shim loads (--grub, --kernel)
//	}
//
//	type ChangeFiles struct { DBAdd []string; DBXUpdate, SBATLevel, Shim, ShimPackage, GRUB, Kernel string }
//
// Build a Change from paths with gate.LoadChange(ChangeFiles) (it reads
// .deb/.rpm packages, which this package does not); on the command line
// internal/cli's changeFlags registers --db-add (repeatable: a DER/PEM file or
// a built-in name such as microsoft-uefi-ca-2023, see internal/mscerts),
// --dbx-update, --sbat-level, --shim, --shim-package, --grub and --kernel and
// calls it. Every part is optional; Empty reports a Change with none.
//
// Apply a Change to a firmware state with Firmware.WithChange: it returns a
// copy with the db certificates enrolled after the existing entries (an
// append write), the dbx update appended as edk2's append write filters it,
// and the SbatLevel file payload written (latest/automatic set the SbatPolicy
// in the returned Options instead). The new binaries are judged against that
// state by gate.Judge; AnalyzeRevocation reports the before/after of the
// Revocation part on a target's own boot chain.

import (
	"crypto/x509"
	"fmt"

	"github.com/vouch-dev/vouch/internal/authenticode"
	"github.com/vouch-dev/vouch/internal/efi"
)

// Change is a proposed change to db, dbx, SbatLevel and the boot chain. The
// zero value changes nothing.
type Change struct {
	// DBAdd are certificates to append to db, in order.
	DBAdd []DBCert `json:"dbAdd,omitempty"`
	// DBX is a dbx update (Microsoft's signed DBXUpdate.bin, bare
	// signature lists or the JSON list), nil for none.
	DBX *DBXUpdate `json:"dbxUpdate,omitempty"`
	// SBAT is a new SbatLevel payload, or the latest/automatic policy, nil
	// for none.
	SBAT *SBATUpdate `json:"sbatLevel,omitempty"`
	// Shim is a new shim, nil for none.
	Shim *Binary `json:"shim,omitempty"`
	// ShimPackage is the package file Shim was read from, "" when it was
	// given as a file.
	ShimPackage string `json:"shimPackage,omitempty"`
	// ShimsAlso are the package's other signed shims (an rpm installs
	// shim as shimx64.efi and again as BOOTX64.EFI); Helpers its MokManager
	// and fallback, which the new shim loads and verifies. Each is a boot
	// stage the package installs, and is judged.
	ShimsAlso []*Binary `json:"shimsAlso,omitempty"`
	Helpers   []*Binary `json:"helpers,omitempty"`
	// GRUB and Kernel are the next stages the new shim will load, nil when
	// not given (callers then take the target's own).
	GRUB   *Binary `json:"grub,omitempty"`
	Kernel *Binary `json:"kernel,omitempty"`
}

// ChangeFiles names the files of a Change, as given on a command line.
type ChangeFiles struct {
	// DBAdd are certificate files (DER or PEM) or built-in names
	// (mscerts.IDs: microsoft-uefi-ca-2023, ...).
	DBAdd []string
	// DBXUpdate is a dbx update file (ReadDBXUpdate).
	DBXUpdate string
	// SBATLevel is latest, automatic, FILE or FILE#DATESTAMP
	// (ParseSBATUpdateArg).
	SBATLevel string
	// Shim is a shim EFI binary; ShimPackage a .deb or .rpm holding one.
	// Give at most one.
	Shim, ShimPackage string
	// GRUB and Kernel are EFI binaries (a signed kernel is a PE image).
	GRUB, Kernel string
}

// Empty reports that no file was named.
func (f ChangeFiles) Empty() bool {
	return len(f.DBAdd) == 0 && f.DBXUpdate == "" && f.SBATLevel == "" && f.Shim == "" &&
		f.ShimPackage == "" && f.GRUB == "" && f.Kernel == ""
}

// DBCert is a certificate to add to db.
type DBCert struct {
	// Source is how it was named: a built-in name or a file path.
	Source string `json:"source"`
	// CA is its known-CA ID (authenticode.KnownCAs), "" for another
	// certificate.
	CA   string            `json:"ca,omitempty"`
	Cert *x509.Certificate `json:"-"`
}

// NewDBCert describes c, named source, as a db addition.
func NewDBCert(source string, c *x509.Certificate) DBCert {
	d := DBCert{Source: source, Cert: c}
	if k, ok := authenticode.IdentifyCA(c); ok {
		d.CA = k.ID
	}
	return d
}

// Binary is an EFI binary of a Change.
type Binary struct {
	// Name is how messages call it: a file path, or
	// "PKG.deb:usr/lib/shim/shimx64.efi.signed".
	Name  string              `json:"name"`
	Image *authenticode.Image `json:"-"`
}

// Empty reports that c changes nothing.
func (c *Change) Empty() bool {
	return c == nil || len(c.DBAdd) == 0 && c.DBX == nil && c.SBAT == nil && c.Shim == nil && c.GRUB == nil && c.Kernel == nil
}

// ChangesFirmware reports that c changes a firmware variable (db, dbx or
// SbatLevel) or shim's SBAT policy.
func (c *Change) ChangesFirmware() bool {
	return c != nil && (len(c.DBAdd) > 0 || c.DBX != nil || c.SBAT != nil)
}

// ChangesBootChain reports that c brings a new shim, GRUB or kernel.
func (c *Change) ChangesBootChain() bool {
	return c != nil && (c.Shim != nil || c.GRUB != nil || c.Kernel != nil)
}

// Revocation returns the dbx and SBAT part of c, nil when it has neither.
func (c *Change) Revocation() *Revocation {
	if c == nil || c.DBX == nil && c.SBAT == nil {
		return nil
	}
	return &Revocation{DBX: c.DBX, SBAT: c.SBAT}
}

// Arch is the JSON dbx list's architecture for c's images: "aarch64" when
// the new shim is an arm64 image, else "x64".
func (c *Change) Arch() string {
	if c != nil && c.Shim != nil && c.Shim.Image != nil && c.Shim.Image.Machine() == machineARM64 {
		return "aarch64"
	}
	return "x64"
}

// machineARM64 is IMAGE_FILE_MACHINE_ARM64.
const machineARM64 = 0xaa64

// Describe lists c's parts in words, one line each.
func (c *Change) Describe() []string {
	if c.Empty() {
		return nil
	}
	var out []string
	for _, d := range c.DBAdd {
		name := describeCert(d.Cert)
		out = append(out, fmt.Sprintf("db += %s (%s)", name, d.Source))
	}
	if c.DBX != nil {
		out = append(out, fmt.Sprintf("dbx += %s (%s)", c.DBX.Source, c.DBX.Form))
	}
	if c.SBAT != nil {
		out = append(out, "SbatLevel := "+c.SBAT.Source)
	}
	if c.Shim != nil {
		out = append(out, "new shim: "+c.Shim.Name)
	}
	if c.GRUB != nil {
		out = append(out, "new GRUB: "+c.GRUB.Name)
	}
	if c.Kernel != nil {
		out = append(out, "new kernel: "+c.Kernel.Name)
	}
	return out
}

// WithChange returns the firmware state after c's variable writes, and the
// options after its SBAT policy; fw is left as it was. db additions are
// enrolled after the existing entries; the dbx update is appended as edk2's
// append write filters it (entries present already are dropped; the JSON
// form's list for c.Arch, certificate entries only when their files were
// beside the list); an SbatLevel payload replaces the SbatLevel variable,
// while latest and automatic set o's SBATPolicy (shim writes the level
// itself). fw may be nil: then the result is nil too (no firmware to change).
func (fw *Firmware) WithChange(c *Change, o Options) (*Firmware, Options) {
	if fw == nil || !c.ChangesFirmware() {
		return fw, o
	}
	after := fw.clone()
	after.db = append([]dbEntry(nil), fw.db...)
	after.DBCAs = append([]string(nil), fw.DBCAs...)
	for _, d := range c.DBAdd {
		after.AddDBCert(d.Cert, "--db-add "+d.Source)
	}
	if u := c.DBX; u != nil {
		after.appendDBX(u.Lists(c.Arch()))
	}
	if c.SBAT != nil {
		after.applySBAT(c.SBAT, &o)
	}
	after.Source = fw.Source + " after the change"
	return after, o
}

// applySBAT makes an SBAT update: a payload is written to the SbatLevel
// variable (NV|BS, as SbatLevel_Variable.txt says it is written); latest and
// automatic set shim's SbatPolicy in o instead (shim writes the level).
func (fw *Firmware) applySBAT(u *SBATUpdate, o *Options) {
	if u.Keyword != "" {
		o.SBATPolicy = u.Policy
		return
	}
	fw.SbatLevel = []byte(u.Payload)
	fw.SbatLevelName = "SbatLevel"
	fw.SbatLevelAttrs = efi.NonVolatile | efi.BootServiceAccess
}
