package efi

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"sort"
)

// Layout of an edk2 variable store in a firmware volume, from edk2's
// MdePkg/Include/Pi/PiFirmwareVolume.h, MdeModulePkg/Include/Guid/VariableFormat.h
// and MdeModulePkg/Universal/Variable/RuntimeDxe/Variable{Parsing,NonVolatile}.c.
var (
	// systemNvDataFvGUID is gEfiSystemNvDataFvGuid, the FileSystemGuid of the
	// firmware volume holding the NV variables.
	systemNvDataFvGUID = mustGUID("fff12b8d-7696-4c8b-a985-2747075b4f50")
	// authVariableStoreGUID is gEfiAuthenticatedVariableGuid: records carry
	// MonotonicCount, TimeStamp and PubKeyIndex.
	authVariableStoreGUID = mustGUID("aaf32c78-947b-439a-a180-2e144ec37792")
	// variableStoreGUID is gEfiVariableGuid: plain records.
	variableStoreGUID = mustGUID("ddcf3616-3275-4164-98b6-fe85707ffe7d")
)

const (
	fvHeaderMinSize   = 56 + 8 // EFI_FIRMWARE_VOLUME_HEADER with one block map entry
	fvSignature       = "_FVH"
	storeHeaderSize   = 28 // VARIABLE_STORE_HEADER
	storeFormatted    = 0x5a
	storeHealthy      = 0xfe
	varStartID        = 0x55aa
	authRecHeaderSize = 60 // AUTHENTICATED_VARIABLE_HEADER
	recHeaderSize     = 32 // VARIABLE_HEADER

	// Record states (VariableFormat.h). Bits are cleared as a record moves on.
	stateInDeletedTransition = 0xfe
	stateDeleted             = 0xfd
	stateHeaderValidOnly     = 0x7f
	stateAdded               = 0x3f
)

func align4(n int) int { return (n + 3) &^ 3 }

// VarStore is an edk2 variable store inside a firmware volume, as in OVMF's
// *_VARS*.fd: the FV header, the VARIABLE_STORE_HEADER, variable records,
// free space (0xFF), and whatever follows the store in the volume (OVMF's
// fault-tolerant-write working block and spare area), which is never touched.
//
// Writes follow edk2's own discipline: a new record is appended after the last
// one and the record it replaces is marked deleted in place; when the free
// space is too small the store is compacted (live records only, 0xFF fill)
// before ErrStoreFull is returned.
type VarStore struct {
	buf      []byte
	source   string
	storeOff int  // offset of VARIABLE_STORE_HEADER
	storeEnd int  // storeOff + Size
	auth     bool // authenticated record format
	recs     []record
	end      int  // first byte after the last record
	dirty    bool // free area not all 0xFF
}

// record is one variable record of the store.
type record struct {
	off      int
	state    byte
	attrs    Attributes
	monotone uint64
	time     [16]byte
	pubKey   uint32
	name     string
	nameRaw  []byte
	guid     GUID
	dataOff  int
	dataLen  int
}

func (s *VarStore) hdrSize() int {
	if s.auth {
		return authRecHeaderSize
	}
	return recHeaderSize
}

// ReadVarStoreFile reads an edk2 variable store file (OVMF_VARS*.fd).
func ReadVarStoreFile(path string) (*VarStore, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("efi: %w", err)
	}
	return parseVarStore(b, path)
}

// ParseVarStore parses the image of an edk2 variable store firmware volume. It
// keeps its own copy of b.
func ParseVarStore(b []byte) (*VarStore, error) {
	return parseVarStore(bytes.Clone(b), "var store")
}

func parseVarStore(b []byte, source string) (*VarStore, error) {
	s := &VarStore{buf: b, source: source}
	if len(b) < fvHeaderMinSize {
		return nil, formatErr(source, 0, "file of %d bytes is too small for a firmware volume header", len(b))
	}
	if string(b[40:44]) != fvSignature {
		return nil, formatErr(source, 40, "not a firmware volume: signature %q, want %q", b[40:44], fvSignature)
	}
	var fsGUID GUID
	copy(fsGUID[:], b[16:32])
	if fsGUID != systemNvDataFvGUID {
		return nil, formatErr(source, 16, "firmware volume file system %s is not the NV variable volume %s", fsGUID, systemNvDataFvGUID)
	}
	fvLen := binary.LittleEndian.Uint64(b[32:])
	if fvLen > uint64(len(b)) {
		return nil, formatErr(source, 32, "firmware volume length 0x%x exceeds file size 0x%x", fvLen, len(b))
	}
	hdrLen := int(binary.LittleEndian.Uint16(b[48:]))
	if hdrLen < fvHeaderMinSize || uint64(hdrLen)+storeHeaderSize > fvLen {
		return nil, formatErr(source, 48, "firmware volume header length 0x%x out of range", hdrLen)
	}
	s.storeOff = hdrLen
	var sig GUID
	copy(sig[:], b[hdrLen:])
	switch sig {
	case authVariableStoreGUID:
		s.auth = true
	case variableStoreGUID:
	default:
		return nil, formatErr(source, hdrLen, "variable store signature %s is neither the authenticated %s nor the plain %s", sig, authVariableStoreGUID, variableStoreGUID)
	}
	size := binary.LittleEndian.Uint32(b[hdrLen+16:])
	if size < storeHeaderSize || uint64(hdrLen)+uint64(size) > fvLen {
		return nil, formatErr(source, hdrLen+16, "variable store size 0x%x does not fit the firmware volume (0x%x bytes after its header)", size, fvLen-uint64(hdrLen))
	}
	if f, st := b[hdrLen+20], b[hdrLen+21]; f != storeFormatted || st != storeHealthy {
		return nil, formatErr(source, hdrLen+20, "variable store format 0x%02x state 0x%02x, want 0x%02x 0x%02x", f, st, storeFormatted, storeHealthy)
	}
	// edk2's GetEndPointer rounds base+Size up to 4 bytes; we keep the exact
	// end so that nothing is ever written past Size.
	s.storeEnd = hdrLen + int(size)
	if err := s.scan(); err != nil {
		return nil, err
	}
	return s, nil
}

// scan walks the records from the start of the store, as edk2's
// InitNonVolatileVariableStore does: while a header with StartId 0x55AA starts
// before the end of the store.
func (s *VarStore) scan() error {
	b := s.buf
	hs := s.hdrSize()
	s.recs = s.recs[:0]
	p := align4(s.storeOff + storeHeaderSize)
	for p+2 <= s.storeEnd && binary.LittleEndian.Uint16(b[p:]) == varStartID {
		if p+hs > s.storeEnd {
			return formatErr(s.source, p, "variable header extends past end of store at 0x%x", s.storeEnd)
		}
		r := record{off: p, state: b[p+2], attrs: Attributes(binary.LittleEndian.Uint32(b[p+4:]))}
		var nameSize, dataSize uint32
		if s.auth {
			r.monotone = binary.LittleEndian.Uint64(b[p+8:])
			copy(r.time[:], b[p+16:p+32])
			r.pubKey = binary.LittleEndian.Uint32(b[p+32:])
			nameSize = binary.LittleEndian.Uint32(b[p+36:])
			dataSize = binary.LittleEndian.Uint32(b[p+40:])
			copy(r.guid[:], b[p+44:p+60])
		} else {
			nameSize = binary.LittleEndian.Uint32(b[p+8:])
			dataSize = binary.LittleEndian.Uint32(b[p+12:])
			copy(r.guid[:], b[p+16:p+32])
		}
		// NameSizeOfVariable/DataSizeOfVariable: a header whose fields are
		// still erased (an interrupted write) has no name and no data.
		if r.state == 0xff || nameSize == 0xffffffff || dataSize == 0xffffffff || uint32(r.attrs) == 0xffffffff {
			nameSize, dataSize = 0, 0
		}
		nameOff := p + hs
		if uint64(nameSize) > uint64(s.storeEnd-nameOff) {
			return formatErr(s.source, p, "variable name size 0x%x extends past end of store at 0x%x", nameSize, s.storeEnd)
		}
		r.dataOff = nameOff + int(nameSize)
		if uint64(dataSize) > uint64(s.storeEnd-r.dataOff) {
			return formatErr(s.source, p, "variable data size 0x%x extends past end of store at 0x%x", dataSize, s.storeEnd)
		}
		r.dataLen = int(dataSize)
		r.nameRaw = b[nameOff:r.dataOff:r.dataOff]
		r.name = decodeUTF16(r.nameRaw)
		if isLive(r.state) && nameSize < 2 {
			return formatErr(s.source, p, "live variable record with name size %d", nameSize)
		}
		s.recs = append(s.recs, r)
		p = align4(r.dataOff + r.dataLen)
	}
	if p > s.storeEnd {
		p = s.storeEnd
	}
	s.end = p
	s.dirty = false
	for _, c := range b[s.end:s.storeEnd] {
		if c != 0xff {
			s.dirty = true
			break
		}
	}
	return nil
}

// isLive reports whether a record state counts for FindVariableEx: added, or
// added and in deleted transition.
func isLive(state byte) bool {
	return state == stateAdded || state == stateAdded&stateInDeletedTransition
}

// live returns the index of the record edk2 would find for each live
// variable: the first VAR_ADDED record, else the last one in deleted
// transition. The result is in store order.
func (s *VarStore) live() []int {
	type pick struct {
		idx   int
		added bool
	}
	picks := make(map[varKey]pick)
	var order []varKey
	for i, r := range s.recs {
		if !isLive(r.state) {
			continue
		}
		k := varKey{r.name, r.guid}
		p, seen := picks[k]
		if !seen {
			order = append(order, k)
		}
		switch {
		case seen && p.added:
		case r.state == stateAdded:
			picks[k] = pick{i, true}
		default:
			picks[k] = pick{i, false}
		}
	}
	out := make([]int, 0, len(order))
	for _, k := range order {
		out = append(out, picks[k].idx)
	}
	sort.Ints(out) // store order
	return out
}

func (s *VarStore) variable(r record) Variable {
	return Variable{
		Name:       r.name,
		GUID:       r.guid,
		Attributes: r.attrs,
		Data:       bytes.Clone(s.buf[r.dataOff : r.dataOff+r.dataLen]),
	}
}

// Vars returns the live variables.
func (s *VarStore) Vars() *VarSet {
	idx := s.live()
	vars := make([]Variable, 0, len(idx))
	for _, i := range idx {
		vars = append(vars, s.variable(s.recs[i]))
	}
	return newVarSet(s.source, vars)
}

// Bytes returns a copy of the whole file image, the same length as read.
func (s *VarStore) Bytes() []byte { return bytes.Clone(s.buf) }

// Free is the number of bytes after the last record, the room for new records
// without compaction.
func (s *VarStore) Free() int { return s.storeEnd - s.end }

// Authenticated reports whether the store uses the authenticated record
// format (gEfiAuthenticatedVariableGuid), as every OVMF store does.
func (s *VarStore) Authenticated() bool { return s.auth }

// StoreLayout describes where the parts of a variable store sit in the file.
type StoreLayout struct {
	StoreOffset int // VARIABLE_STORE_HEADER
	StoreEnd    int // end of the store (StoreOffset + Size)
	FirstRecord int
	End         int // first byte after the last record
	Records     int // records, live or not
	Live        int // live variables
	FileSize    int
}

// Layout reports the offsets of the store.
func (s *VarStore) Layout() StoreLayout {
	return StoreLayout{
		StoreOffset: s.storeOff,
		StoreEnd:    s.storeEnd,
		FirstRecord: align4(s.storeOff + storeHeaderSize),
		End:         s.end,
		Records:     len(s.recs),
		Live:        len(s.live()),
		FileSize:    len(s.buf),
	}
}

// find returns the indexes of the live records of a variable.
func (s *VarStore) find(name string, guid GUID) []int {
	var out []int
	for i, r := range s.recs {
		if isLive(r.state) && r.guid == guid && r.name == name {
			out = append(out, i)
		}
	}
	return out
}

// Set adds or replaces a non-volatile variable. A replaced authenticated
// variable keeps its record's timestamp, monotonic count and public key index;
// a new one gets zeroes (any later signed update is newer). Setting a
// variable to its current value and attributes changes nothing.
func (s *VarStore) Set(v Variable) error {
	if err := s.checkVariable(v); err != nil {
		return err
	}
	old := s.find(v.Name, v.GUID)
	nr := record{attrs: v.Attributes, name: v.Name, guid: v.GUID}
	if len(old) > 0 {
		cur := s.recs[s.pick(old)]
		if cur.attrs == v.Attributes && bytes.Equal(s.buf[cur.dataOff:cur.dataOff+cur.dataLen], v.Data) {
			return nil
		}
		nr.monotone, nr.time, nr.pubKey = cur.monotone, cur.time, cur.pubKey
	}
	return s.write(nr, v.Data, old)
}

// pick chooses among live records of one variable the one edk2 reads.
func (s *VarStore) pick(idx []int) int {
	for _, i := range idx {
		if s.recs[i].state == stateAdded {
			return i
		}
	}
	return idx[len(idx)-1]
}

func (s *VarStore) checkVariable(v Variable) error {
	if v.Name == "" {
		return fmt.Errorf("efi: %s: empty variable name", s.source)
	}
	for _, c := range v.Name {
		if c == 0 {
			return fmt.Errorf("efi: %s: variable name %q contains NUL", s.source, v.Name)
		}
	}
	if v.Attributes&NonVolatile == 0 {
		return fmt.Errorf("efi: %s: %s: a variable store holds only non-volatile variables (attributes %s)", s.source, v.Name, v.Attributes)
	}
	if v.Attributes&RuntimeAccess != 0 && v.Attributes&BootServiceAccess == 0 {
		return fmt.Errorf("efi: %s: %s: runtime access without boot service access (attributes %s)", s.source, v.Name, v.Attributes)
	}
	if v.Attributes&AppendWrite != 0 {
		return fmt.Errorf("efi: %s: %s: append-write is not a stored attribute; use AppendSignatureList", s.source, v.Name)
	}
	if v.Attributes&(TimeBasedAuthenticatedWriteAccess|AuthenticatedWriteAccess|EnhancedAuthenticatedAccess) != 0 && !s.auth {
		return fmt.Errorf("efi: %s: %s: authenticated attributes %s need an authenticated variable store", s.source, v.Name, v.Attributes)
	}
	if v.Attributes&^0xff != 0 {
		return fmt.Errorf("efi: %s: %s: unknown attribute bits %s", s.source, v.Name, v.Attributes)
	}
	if len(v.Data) == 0 {
		return fmt.Errorf("efi: %s: %s: empty data deletes a variable; use Delete", s.source, v.Name)
	}
	return nil
}

// AppendSignatureList appends l to a signature database variable (db, dbx,
// KEK, MokList...) the way SetVariable with EFI_VARIABLE_APPEND_WRITE does:
// entries already present are skipped, the rest merge into an existing list of
// the same type, header and size or form a new list. A missing variable is
// created NV|BS|RT|AT (NV|BS|RT in a plain store).
func (s *VarStore) AppendSignatureList(name string, guid GUID, l SignatureList) error {
	old := s.find(name, guid)
	var cur []byte
	attrs := NonVolatile | BootServiceAccess | RuntimeAccess
	if s.auth {
		attrs |= TimeBasedAuthenticatedWriteAccess
	}
	if len(old) > 0 {
		r := s.recs[s.pick(old)]
		cur = s.buf[r.dataOff : r.dataOff+r.dataLen]
		attrs = r.attrs
	}
	data, err := appendSignatureLists(cur, l)
	if err != nil {
		return fmt.Errorf("efi: %s: %s: %w", s.source, name, err)
	}
	if len(data) == 0 {
		return nil
	}
	return s.Set(Variable{Name: name, GUID: guid, Attributes: attrs, Data: bytes.Clone(data)})
}

// Delete removes a variable by marking its records deleted. A missing variable
// is ErrNotFound.
func (s *VarStore) Delete(name string, guid GUID) error {
	old := s.find(name, guid)
	if len(old) == 0 {
		return fmt.Errorf("efi: %s: %s-%s: %w", s.source, name, guid, ErrNotFound)
	}
	for _, i := range old {
		s.setState(i, s.recs[i].state&stateDeleted)
	}
	return nil
}

func (s *VarStore) setState(i int, st byte) {
	s.recs[i].state = st
	s.buf[s.recs[i].off+2] = st
}

// encodeRecord builds a record: header, name, data (no trailing padding).
func (s *VarStore) encodeRecord(r record, data []byte) []byte {
	name := encodeUTF16Z(r.name)
	hs := s.hdrSize()
	out := make([]byte, hs+len(name)+len(data))
	binary.LittleEndian.PutUint16(out[0:], varStartID)
	out[2] = r.state
	binary.LittleEndian.PutUint32(out[4:], uint32(r.attrs))
	if s.auth {
		binary.LittleEndian.PutUint64(out[8:], r.monotone)
		copy(out[16:32], r.time[:])
		binary.LittleEndian.PutUint32(out[32:], r.pubKey)
		binary.LittleEndian.PutUint32(out[36:], uint32(len(name)))
		binary.LittleEndian.PutUint32(out[40:], uint32(len(data)))
		copy(out[44:60], r.guid[:])
	} else {
		binary.LittleEndian.PutUint32(out[8:], uint32(len(name)))
		binary.LittleEndian.PutUint32(out[12:], uint32(len(data)))
		copy(out[16:32], r.guid[:])
	}
	copy(out[hs:], name)
	copy(out[hs+len(name):], data)
	return out
}

// write appends a new record for nr and retires the records in old, as edk2's
// UpdateVariable does: old -> IN_DELETED_TRANSITION, new record written and
// ADDED, old -> DELETED. It compacts first when the free space is too small.
func (s *VarStore) write(nr record, data []byte, old []int) error {
	nr.state = stateAdded
	rec := s.encodeRecord(nr, data)
	if !s.dirty && s.end+len(rec) <= s.storeEnd {
		for _, i := range old {
			s.setState(i, s.recs[i].state&stateInDeletedTransition)
		}
		copy(s.buf[s.end:], rec)
		for _, i := range old {
			s.setState(i, s.recs[i].state&stateDeleted)
		}
		return s.rescan()
	}
	return s.compact(rec, old)
}

// compact rewrites the store with its live records, then rec, and 0xFF fill,
// as edk2's Reclaim does (records in deleted transition without an added twin
// are kept and become ADDED). The buffer is unchanged on error.
func (s *VarStore) compact(rec []byte, drop []int) error {
	skip := make(map[int]bool, len(drop))
	for _, i := range drop {
		skip[i] = true
	}
	area := make([]byte, s.storeEnd-s.storeOff)
	for i := range area {
		area[i] = 0xff
	}
	copy(area, s.buf[s.storeOff:s.storeOff+storeHeaderSize])
	p := align4(s.storeOff+storeHeaderSize) - s.storeOff
	put := func(b []byte) bool {
		if p+len(b) > len(area) {
			return false
		}
		copy(area[p:], b)
		p = align4(s.storeOff+p+len(b)) - s.storeOff
		return true
	}
	liveBytes := 0
	for _, i := range s.live() {
		if skip[i] {
			continue
		}
		r := s.recs[i]
		end := r.dataOff + r.dataLen
		b := bytes.Clone(s.buf[r.off:end])
		b[2] = stateAdded
		liveBytes += align4(len(b))
		if !put(b) {
			return fmt.Errorf("efi: %s: live variables need more than the store's 0x%x bytes: %w", s.source, s.storeEnd-s.storeOff, ErrStoreFull)
		}
	}
	if rec != nil && !put(rec) {
		free := len(area) - (align4(s.storeOff+storeHeaderSize) - s.storeOff) - liveBytes
		return fmt.Errorf("efi: %s: record of %d bytes does not fit (%d bytes free after compaction): %w", s.source, len(rec), free, ErrStoreFull)
	}
	copy(s.buf[s.storeOff:s.storeEnd], area)
	return s.rescan()
}

// Compact rewrites the store with only its live records and 0xFF fill.
func (s *VarStore) Compact() error { return s.compact(nil, nil) }

func (s *VarStore) rescan() error {
	if err := s.scan(); err != nil {
		// Our own writes must always parse back.
		return fmt.Errorf("efi: %s: store does not parse after update: %w", s.source, err)
	}
	return nil
}
