package measure

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"maps"
	"strings"

	"github.com/vouch-dev/vouch/internal/authenticode"
	"github.com/vouch-dev/vouch/internal/efi"
	"github.com/vouch-dev/vouch/internal/nvram"
	"github.com/vouch-dev/vouch/internal/secureboot"
)

// Change is a proposed change to the Secure Boot variables or the boot
// chain. Its fields follow the CLI flags (--db-add, --dbx-update,
// --sbat-level, --shim/--shim-package, --grub, --kernel); it is to be
// replaced by the project-wide secureboot.Change.
type Change struct {
	DBAdd []*x509.Certificate // certificates appended to db
	// DBXUpdate is the signature lists an authenticated dbx update appends
	// (its EFI_VARIABLE_AUTHENTICATION_2 payload).
	DBXUpdate []byte
	// SBATLevel is an SbatLevel payload written to the variable.
	SBATLevel []byte
	Shim      *authenticode.Image // a new shim
	GRUB      *authenticode.Image // a new GRUB
	Kernel    *authenticode.Image // a new kernel
}

// Empty reports a change that changes nothing.
func (c Change) Empty() bool {
	return len(c.DBAdd) == 0 && len(c.DBXUpdate) == 0 && len(c.SBATLevel) == 0 && c.Shim == nil && c.GRUB == nil && c.Kernel == nil
}

// Installed are the boot binaries the logged boot ran, when known. The
// shim is needed to tell which db entry will authorise it after a db or dbx
// change (a dual-signed shim may then be allowed by another signature).
type Installed struct {
	Shim *authenticode.Image
}

// Prediction is PCR 4 and PCR 7 before and after a change.
type Prediction struct {
	PCRs    []PCRValue    `json:"pcrs"`
	Changes []EventChange `json:"changes"`
	// Notes say what the prediction assumed and what would stop the boot.
	Notes []string `json:"notes,omitempty"`
	// Refused is set when the new chain would not boot at all (the
	// firmware or shim refuses an image): the PCRs are then moot.
	Refused string `json:"refused,omitempty"`
}

// PCRValue is one PCR of one bank, now and after the change.
type PCRValue struct {
	Bank    Bank   `json:"bank"`
	PCR     int    `json:"pcr"`
	Old     Digest `json:"old"`
	New     Digest `json:"new"`
	Changed bool   `json:"changed"`
}

// EventChange is one measurement the change alters.
type EventChange struct {
	Seq  int    `json:"seq"`
	PCR  int    `json:"pcr"`
	Type string `json:"type"`
	What string `json:"what"`
	Why  string `json:"why"`
	// Data is the event data firmware or shim will measure, for events
	// whose digest is its hash; nil for boot applications.
	Data []byte `json:"-"`
}

// Value returns the predicted value of pcr in bank.
func (p *Prediction) Value(bank Bank, pcr int) (PCRValue, bool) {
	for _, v := range p.PCRs {
		if v.Bank == bank && v.PCR == pcr {
			return v, true
		}
	}
	return PCRValue{}, false
}

// Changed reports whether the change moves pcr in any bank.
func (p *Prediction) Changed(pcr int) bool {
	for _, v := range p.PCRs {
		if v.PCR == pcr && v.Changed {
			return true
		}
	}
	return false
}

// Predict computes PCR 4 and PCR 7 after ch from the measured log: the
// events the change alters are re-made (the variable data firmware will
// hash, the db entry that will authorise shim, the Authenticode digests of
// new boot applications) and the log replayed. It assumes the rest of the
// boot measures what it measured this time, which a settled boot (not the
// first boot of a fresh variable store, which writes variables) does.
func Predict(lg *Log, ch Change, inst Installed) (*Prediction, error) {
	p := &Prediction{}
	events := make([]*Event, len(lg.Events))
	for i, e := range lg.Events {
		c := *e
		c.Digests = maps.Clone(e.Digests)
		events[i] = &c
	}
	vars := measuredVars(events)
	set := func(e *Event, name string, guid efi.GUID, data []byte, what, why string) {
		e.Data = marshalVariable(name, guid, data)
		for _, bk := range lg.Banks {
			w := bk.Hash().New()
			w.Write(e.Data)
			e.Digests[bk] = w.Sum(nil)
		}
		p.Changes = append(p.Changes, EventChange{Seq: e.Seq, PCR: e.PCR, Type: e.TypeName, What: what, Why: why, Data: e.Data})
	}

	// The Secure Boot variables (PCR 7, EV_EFI_VARIABLE_DRIVER_CONFIG).
	newDB, newDBX := vars["db"], vars["dbx"]
	if len(ch.DBAdd) > 0 {
		d, err := efi.AppendSignatureLists(newDB, nvram.CertLists(ch.DBAdd))
		if err != nil {
			return nil, fmt.Errorf("measure: db: %w", err)
		}
		newDB = d
	}
	if len(ch.DBXUpdate) > 0 {
		d, err := efi.AppendSignatureLists(newDBX, ch.DBXUpdate)
		if err != nil {
			return nil, fmt.Errorf("measure: dbx update: %w", err)
		}
		newDBX = d
	}
	for _, e := range events {
		if e.Type != evEFIVariableDriverConfig || e.Variable == nil || e.Variable.GUID != efi.ImageSecurityDatabaseGUID {
			continue
		}
		switch {
		case e.Variable.Name == "db" && !bytes.Equal(newDB, e.Variable.Data):
			set(e, "db", efi.ImageSecurityDatabaseGUID, newDB, fmt.Sprintf("db: %d entries, then %d", countEntries(e.Variable.Data), countEntries(newDB)),
				"firmware measures db at every boot; "+certList(ch.DBAdd)+" appended")
		case e.Variable.Name == "dbx" && !bytes.Equal(newDBX, e.Variable.Data):
			set(e, "dbx", efi.ImageSecurityDatabaseGUID, newDBX, fmt.Sprintf("dbx: %d entries, then %d", countEntries(e.Variable.Data), countEntries(newDBX)),
				"firmware measures dbx at every boot; the dbx update appends entries")
		}
	}

	// The db entry that authorises shim (PCR 7, firmware's
	// EV_EFI_VARIABLE_AUTHORITY): the first signature edk2 allows, the
	// first db certificate it verifies with.
	shim := ch.Shim
	if shim == nil {
		shim = inst.Shim
	}
	if auth := firmwareAuthority(events); auth != nil {
		switch {
		case shim == nil && (len(ch.DBAdd) > 0 || len(ch.DBXUpdate) > 0):
			p.Notes = append(p.Notes, "the installed shim was not given: the prediction assumes the same db entry still authorises it (a dual-signed shim may switch to another)")
		case shim != nil:
			fw, err := firmwareFrom(vars, newDB, newDBX)
			if err != nil {
				return nil, err
			}
			d := fw.Verify(shim)
			if !d.Allowed {
				p.Refused = "the firmware would refuse shim: " + d.Reason
				break
			}
			entry, err := authorisingEntry(shim, d, newDB)
			if err != nil {
				return nil, err
			}
			if !bytes.Equal(entry, auth.Variable.Data) {
				set(auth, auth.Variable.Name, auth.Variable.GUID, entry, "authority for shim: "+describeAuthority(&Variable{Name: "db", Data: entry}),
					"edk2 measures the db entry that allowed the boot application ("+d.AuthorizedBy+")")
			} else {
				p.Notes = append(p.Notes, "shim stays authorised by "+describeAuthority(auth.Variable))
			}
		}
	}

	// shim's measurements into PCR 7: its vendor certificate and SbatLevel.
	for _, e := range events {
		if e.Type != evEFIVariableAuthority || e.Variable == nil || e.Variable.GUID != efi.ShimLockGUID {
			continue
		}
		switch e.Variable.Name {
		case "Shim", "MokListRT":
			// The certificate that verified GRUB: shim 15 measures its
			// vendor certificate as "Shim"; shim 16 the MokListRT entry
			// (owner GUID, then the certificate) holding it.
			if ch.Shim == nil {
				continue
			}
			vc, err := vendorCert(ch.Shim)
			if err != nil {
				return nil, err
			}
			if vc == nil {
				continue
			}
			data := vc.Raw
			if e.Variable.Name == "MokListRT" && len(e.Variable.Data) > 16 {
				data = append(append([]byte{}, e.Variable.Data[:16]...), vc.Raw...)
			}
			if !bytes.Equal(data, e.Variable.Data) {
				set(e, e.Variable.Name, efi.ShimLockGUID, data, "shim's vendor certificate: "+caName(vc),
					"shim measures the certificate that verified GRUB")
			}
		case "SbatLevel":
			next, why := nextSBATLevel(e.Variable.Data, ch)
			if next != nil && !bytes.Equal(next, e.Variable.Data) {
				set(e, "SbatLevel", efi.ShimLockGUID, next, "SbatLevel "+firstLine(next), why)
			} else if why != "" {
				p.Notes = append(p.Notes, why)
			}
		}
	}

	// PCR 4: the boot applications, by their Authenticode digest.
	for _, e := range events {
		if e.Type != evEFIBootServicesApp || e.PCR != 4 {
			continue
		}
		role := appRole(e, events)
		var img *authenticode.Image
		switch role {
		case "shim":
			img = ch.Shim
		case "grub":
			img = ch.GRUB
		case "kernel":
			img = ch.Kernel
		}
		if img == nil {
			continue
		}
		changed := false
		for _, bk := range lg.Banks {
			d := img.Digest(bk.Hash())
			if d == nil {
				return nil, fmt.Errorf("measure: the new %s has no %s Authenticode digest (malformed PE headers)", role, bk)
			}
			if !bytes.Equal(d, e.Digests[bk]) {
				changed = true
			}
			e.Digests[bk] = d
		}
		if changed {
			p.Changes = append(p.Changes, EventChange{Seq: e.Seq, PCR: 4, Type: e.TypeName, What: "the " + role + " image",
				Why: "the firmware (or shim) measures each boot application's Authenticode digest"})
		} else {
			p.Notes = append(p.Notes, "the new "+role+" has the same Authenticode digest as the one measured (only its signatures differ)")
		}
	}

	before := lg.Replay()
	after := (&Log{Banks: lg.Banks, Events: events, Locality: lg.Locality}).Replay()
	for _, bk := range lg.Banks {
		for _, i := range []int{4, 7} {
			o, n := before[bk][i], after[bk][i]
			if o == nil {
				continue
			}
			p.PCRs = append(p.PCRs, PCRValue{Bank: bk, PCR: i, Old: o, New: n, Changed: !bytes.Equal(o, n)})
		}
	}
	return p, nil
}

// measuredVars are the Secure Boot variables' data as firmware measured
// them (PCR 7, EV_EFI_VARIABLE_DRIVER_CONFIG), by name.
func measuredVars(events []*Event) map[string][]byte {
	out := map[string][]byte{}
	for _, e := range events {
		if e.Type == evEFIVariableDriverConfig && e.PCR == 7 && e.Variable != nil {
			out[e.Variable.Name] = e.Variable.Data
		}
	}
	return out
}

// firmwareAuthority is the first EV_EFI_VARIABLE_AUTHORITY firmware made
// (variable db): the db entry that allowed the first boot application.
func firmwareAuthority(events []*Event) *Event {
	for _, e := range events {
		if e.Type == evEFIVariableAuthority && e.PCR == 7 && e.Variable != nil && e.Variable.GUID == efi.ImageSecurityDatabaseGUID {
			return e
		}
	}
	return nil
}

// firmwareFrom builds the firmware's Secure Boot state from the measured
// variables with db and dbx replaced.
func firmwareFrom(vars map[string][]byte, db, dbx []byte) (*secureboot.Firmware, error) {
	var vs []efi.Variable
	for name, data := range vars {
		guid := efi.GlobalVariableGUID
		switch name {
		case "db", "dbx", "dbt", "dbr":
			guid = efi.ImageSecurityDatabaseGUID
		}
		switch name {
		case "db":
			data = db
		case "dbx":
			data = dbx
		}
		vs = append(vs, efi.Variable{Name: name, GUID: guid, Data: data})
	}
	if _, ok := vars["dbx"]; !ok && len(dbx) > 0 {
		vs = append(vs, efi.Variable{Name: "dbx", GUID: efi.ImageSecurityDatabaseGUID, Data: dbx})
	}
	fw, err := secureboot.FromVars(efi.NewVarSet("the measured Secure Boot variables", vs))
	if err != nil {
		return nil, fmt.Errorf("measure: %w", err)
	}
	return fw, nil
}

// authorisingEntry is the EFI_SIGNATURE_DATA (owner GUID and certificate,
// as stored) of the db entry edk2's IsAllowedByDb finds for the signature
// that decided d: db's X509 lists in order, the first certificate the
// signature verifies with.
func authorisingEntry(img *authenticode.Image, d secureboot.Decision, db []byte) ([]byte, error) {
	if d.Signature == 0 {
		return nil, fmt.Errorf("measure: shim is allowed by %s, not by a signature: vouch does not predict the authority of hash entries", d.AuthorizedBy)
	}
	var sig *authenticode.Signature
	for _, s := range img.Signatures() {
		if s.Nested == 0 && s.Index+1 == d.Signature {
			sig = s
		}
	}
	if sig == nil {
		return nil, fmt.Errorf("measure: signature %d of shim not found", d.Signature)
	}
	lists, err := efi.ParseSignatureLists(db)
	if err != nil {
		return nil, fmt.Errorf("measure: db: %w", err)
	}
	for _, l := range lists {
		if l.Type != efi.CertX509GUID {
			continue
		}
		for _, e := range l.Signatures {
			c, err := x509.ParseCertificate(e.Data)
			if err != nil {
				continue
			}
			if sig.VerifiesWith(c) {
				return append(append([]byte{}, e.Owner[:]...), e.Data...), nil
			}
		}
	}
	return nil, fmt.Errorf("measure: no db certificate verifies signature %d of shim, yet the firmware model allows it (%s)", d.Signature, d.AuthorizedBy)
}

func vendorCert(shim *authenticode.Image) (*x509.Certificate, error) {
	b, ok := shim.SectionData(".vendor_cert")
	if !ok {
		return nil, nil
	}
	vc, err := secureboot.ParseVendorCert(b)
	if err != nil {
		return nil, fmt.Errorf("measure: new shim: %w", err)
	}
	return vc.Cert, nil
}

// nextSBATLevel is the SbatLevel shim will measure after ch: shim keeps the
// variable unless its own embedded level (automatic policy) is newer
// (set_sbat_uefi_variable); a written --sbat-level replaces the variable
// first.
func nextSBATLevel(cur []byte, ch Change) ([]byte, string) {
	level, why := cur, ""
	if len(ch.SBATLevel) > 0 {
		if newer(ch.SBATLevel, cur) {
			level, why = ch.SBATLevel, "shim measures the SbatLevel variable; the update writes a newer level"
		} else {
			why = "the SbatLevel update is not newer than the variable's " + datestamp(cur) + ": shim keeps the variable"
		}
	}
	if ch.Shim != nil {
		if b, ok := ch.Shim.SectionData(".sbatlevel"); ok {
			if e, err := secureboot.ParseSBATLevelSection(b); err == nil && newer([]byte(e.Previous), level) {
				level, why = []byte(e.Previous), "the new shim carries a newer automatic SbatLevel and writes it"
			}
		}
	}
	return level, why
}

// newer compares the datestamps of two SbatLevel payloads.
func newer(a, b []byte) bool { return datestamp(a) > datestamp(b) }

func datestamp(b []byte) string {
	l, err := secureboot.ParseSBATLevel(b)
	if err != nil {
		return ""
	}
	return l.Datestamp
}

func firstLine(b []byte) string {
	s := strings.TrimRight(string(b), "\x00")
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

func countEntries(b []byte) int {
	ls, err := efi.ParseSignatureLists(b)
	if err != nil {
		return 0
	}
	n := 0
	for _, l := range ls {
		n += len(l.Signatures)
	}
	return n
}

func certList(cs []*x509.Certificate) string {
	var names []string
	for _, c := range cs {
		names = append(names, caName(c))
	}
	if len(names) == 0 {
		return "entries"
	}
	return strings.Join(names, ", ")
}

// appRole says which boot application an EV_EFI_BOOT_SERVICES_APPLICATION
// of PCR 4 measured: the firmware's first is shim (the boot option), the
// one from a grub*.efi path is GRUB, and one without a file path after GRUB
// is the kernel (GRUB hands it to shim's verifier, which measures it).
func appRole(e *Event, events []*Event) string {
	file := ""
	if e.Image != nil {
		file = strings.ToLower(e.Image.File)
	}
	switch {
	case strings.Contains(file, "grub"):
		return "grub"
	case strings.Contains(file, "shim") || strings.HasSuffix(file, `\bootx64.efi`):
		return "shim"
	case strings.Contains(file, "vmlinuz") || strings.Contains(file, "linux"):
		return "kernel"
	case strings.HasSuffix(file, `mmx64.efi`) || strings.HasSuffix(file, `fbx64.efi`):
		return "shim-helper"
	}
	// No file path: by position among PCR 4's applications.
	n := 0
	for _, o := range events {
		if o == e {
			break
		}
		if o.Type == evEFIBootServicesApp && o.PCR == 4 {
			n++
		}
	}
	return [...]string{"shim", "grub", "kernel", "kernel"}[min(n, 3)]
}
