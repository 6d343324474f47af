package efi

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
)

// Attributes are a variable's EFI_VARIABLE_* attribute bits (UEFI 2.10 §8.2).
type Attributes uint32

// Attribute bits.
const (
	NonVolatile                       Attributes = 0x01 // NV
	BootServiceAccess                 Attributes = 0x02 // BS
	RuntimeAccess                     Attributes = 0x04 // RT
	HardwareErrorRecord               Attributes = 0x08 // HR
	AuthenticatedWriteAccess          Attributes = 0x10 // AW (deprecated count-based authentication)
	TimeBasedAuthenticatedWriteAccess Attributes = 0x20 // AT
	AppendWrite                       Attributes = 0x40 // AP (SetVariable only, never stored)
	EnhancedAuthenticatedAccess       Attributes = 0x80 // EA
)

var attrNames = []struct {
	bit  Attributes
	name string
}{
	{NonVolatile, "NV"}, {BootServiceAccess, "BS"}, {RuntimeAccess, "RT"},
	{HardwareErrorRecord, "HR"}, {AuthenticatedWriteAccess, "AW"},
	{TimeBasedAuthenticatedWriteAccess, "AT"}, {AppendWrite, "AP"},
	{EnhancedAuthenticatedAccess, "EA"},
}

// String gives the short names joined by "|", e.g. "NV|BS|RT|AT"; unknown
// bits appear in hex; no bits at all is "0".
func (a Attributes) String() string {
	if a == 0 {
		return "0"
	}
	var parts []string
	rest := a
	for _, n := range attrNames {
		if a&n.bit != 0 {
			parts = append(parts, n.name)
			rest &^= n.bit
		}
	}
	if rest != 0 {
		parts = append(parts, fmt.Sprintf("0x%x", uint32(rest)))
	}
	return strings.Join(parts, "|")
}

// Variable is one UEFI variable.
type Variable struct {
	Name       string
	GUID       GUID
	Attributes Attributes
	Data       []byte
}

// VarSet is a read-only set of variables from one source: an efivarfs mount,
// a directory of exported variables, or an edk2 variable store.
type VarSet struct {
	source string
	vars   []Variable // sorted by name, then GUID
	index  map[varKey]int
}

type varKey struct {
	name string
	guid GUID
}

func newVarSet(source string, vars []Variable) *VarSet {
	sort.Slice(vars, func(i, j int) bool {
		if vars[i].Name != vars[j].Name {
			return vars[i].Name < vars[j].Name
		}
		return vars[i].GUID.String() < vars[j].GUID.String()
	})
	vs := &VarSet{source: source, vars: vars, index: make(map[varKey]int, len(vars))}
	for i, v := range vars {
		vs.index[varKey{v.Name, v.GUID}] = i
	}
	return vs
}

// NewVarSet builds a VarSet from variables, for tests and for callers that
// assemble variables themselves. A later duplicate of a name and GUID wins.
func NewVarSet(source string, vars []Variable) *VarSet {
	seen := make(map[varKey]int)
	var uniq []Variable
	for _, v := range vars {
		k := varKey{v.Name, v.GUID}
		if i, ok := seen[k]; ok {
			uniq[i] = v
			continue
		}
		seen[k] = len(uniq)
		uniq = append(uniq, v)
	}
	return newVarSet(source, uniq)
}

// Get returns the variable with that name and vendor GUID.
func (vs *VarSet) Get(name string, guid GUID) (Variable, bool) {
	if vs == nil {
		return Variable{}, false
	}
	i, ok := vs.index[varKey{name, guid}]
	if !ok {
		return Variable{}, false
	}
	return vs.vars[i], true
}

// All returns every variable, sorted by name, then GUID.
func (vs *VarSet) All() []Variable {
	if vs == nil {
		return nil
	}
	return append([]Variable(nil), vs.vars...)
}

// Source names where the variables came from.
func (vs *VarSet) Source() string {
	if vs == nil {
		return ""
	}
	return vs.source
}

// SignatureLists parses the named variable as signature lists (db, dbx, KEK,
// PK, MokList...). A missing variable is ErrNotFound.
func (vs *VarSet) SignatureLists(name string, guid GUID) ([]SignatureList, error) {
	v, ok := vs.Get(name, guid)
	if !ok {
		return nil, fmt.Errorf("efi: %s-%s: %w", name, guid, ErrNotFound)
	}
	return parseSignatureLists(v.Data, vs.Source()+": "+name)
}

// BootOrder decodes the BootOrder variable. A missing variable is ErrNotFound.
func (vs *VarSet) BootOrder() ([]uint16, error) {
	v, ok := vs.Get("BootOrder", GlobalVariableGUID)
	if !ok {
		return nil, fmt.Errorf("efi: BootOrder: %w", ErrNotFound)
	}
	if len(v.Data)%2 != 0 {
		return nil, formatErr(vs.Source()+": BootOrder", len(v.Data)-1, "odd length %d", len(v.Data))
	}
	out := make([]uint16, len(v.Data)/2)
	for i := range out {
		out[i] = binary.LittleEndian.Uint16(v.Data[2*i:])
	}
	return out, nil
}

// BootEntry decodes Boot####. A missing variable is ErrNotFound.
func (vs *VarSet) BootEntry(n uint16) (*LoadOption, error) {
	name := fmt.Sprintf("Boot%04X", n)
	v, ok := vs.Get(name, GlobalVariableGUID)
	if !ok {
		return nil, fmt.Errorf("efi: %s: %w", name, ErrNotFound)
	}
	lo, err := parseLoadOption(v.Data, vs.Source()+": "+name)
	if err != nil {
		return nil, err
	}
	return lo, nil
}

// ReadVarDir reads variables from an efivarfs mount or a directory of exported
// variables: files named "Name-GUID" holding a 4-byte little-endian attribute
// word followed by the data. Files whose names do not end in a GUID are
// ignored; a variable file shorter than 4 bytes is a *FormatError.
func ReadVarDir(fsys fs.FS, source string) (*VarSet, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("efi: %s: %w", source, err)
	}
	var vars []Variable
	for _, e := range entries {
		name, guid, ok := splitVarFileName(e.Name())
		if !ok || e.IsDir() {
			continue
		}
		if !e.Type().IsRegular() {
			continue
		}
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("efi: %s: %w", source, err)
		}
		if len(b) < 4 {
			return nil, formatErr(source+": "+e.Name(), len(b), "variable file of %d bytes lacks the 4-byte attribute word", len(b))
		}
		vars = append(vars, Variable{
			Name:       name,
			GUID:       guid,
			Attributes: Attributes(binary.LittleEndian.Uint32(b)),
			Data:       b[4:],
		})
	}
	return newVarSet(source, vars), nil
}

// splitVarFileName splits "Name-8be4df61-93ca-11d2-aa0d-00e098032b8c".
func splitVarFileName(fn string) (string, GUID, bool) {
	if len(fn) < 38 || fn[len(fn)-37] != '-' {
		return "", GUID{}, false
	}
	g, err := ParseGUID(fn[len(fn)-36:])
	if err != nil {
		return "", GUID{}, false
	}
	return fn[:len(fn)-37], g, true
}

// VarFileName is the efivarfs file name of a variable: "Name-GUID".
func VarFileName(name string, guid GUID) string { return name + "-" + guid.String() }

// decodeUTF16 decodes little-endian UTF-16 up to the first NUL.
func decodeUTF16(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

// encodeUTF16Z encodes s as NUL-terminated little-endian UTF-16.
func encodeUTF16Z(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u)+2)
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return b
}

// parseBootNumber parses the #### of "Boot####".
func parseBootNumber(name string) (uint16, bool) {
	if len(name) != 8 || !strings.HasPrefix(name, "Boot") {
		return 0, false
	}
	n, err := strconv.ParseUint(name[4:], 16, 16)
	if err != nil {
		return 0, false
	}
	return uint16(n), true
}

// BootEntries lists the Boot#### variables present, in number order.
func (vs *VarSet) BootEntries() []uint16 {
	var out []uint16
	for _, v := range vs.All() {
		if v.GUID != GlobalVariableGUID {
			continue
		}
		if n, ok := parseBootNumber(v.Name); ok && strings.ToUpper(v.Name[4:]) == v.Name[4:] {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
