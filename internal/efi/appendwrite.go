package efi

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"
)

// AuthInfo is what an authenticated store keeps beside a variable's data.
type AuthInfo struct {
	MonotonicCount uint64
	// TimeStamp is the raw EFI_TIME of the last time-based authenticated
	// write; all zero for a variable never written that way.
	TimeStamp   [16]byte
	PubKeyIndex uint32
}

// Time decodes TimeStamp; the zero time when it is all zero or invalid.
func (a AuthInfo) Time() time.Time {
	t, err := ParseEFITime(a.TimeStamp[:])
	if err != nil {
		return time.Time{}
	}
	return t
}

// AuthInfo returns the authentication fields of the record edk2 reads for a
// variable; false when the variable is missing or the store is not in the
// authenticated format.
func (s *VarStore) AuthInfo(name string, guid GUID) (AuthInfo, bool) {
	old := s.find(name, guid)
	if len(old) == 0 || !s.auth {
		return AuthInfo{}, false
	}
	r := s.recs[s.pick(old)]
	return AuthInfo{MonotonicCount: r.monotone, TimeStamp: r.time, PubKeyIndex: r.pubKey}, true
}

// isSignatureDatabase reports the variables whose appends edk2 filters
// (AuthServiceInternalUpdateVariableWithTimeStamp in SecurityPkg's
// AuthVariableLib/AuthService.c): db, dbx and dbt of the image security
// database and KEK.
func isSignatureDatabase(name string, guid GUID) bool {
	switch guid {
	case ImageSecurityDatabaseGUID:
		return name == "db" || name == "dbx" || name == "dbt"
	case GlobalVariableGUID:
		return name == "KEK"
	}
	return false
}

// AppendWrite does what SetVariable with EFI_VARIABLE_APPEND_WRITE does to a
// variable of the store, the way edk2 does it:
//
//   - for db, dbx, dbt and KEK, FilterSignatureList (AuthService.c) drops each
//     EFI_SIGNATURE_DATA of payload that is already present, byte for byte
//     (owner GUID and data), in an existing list of the same type and
//     signature size; lists left empty are dropped; entries repeated inside
//     payload itself are kept, as edk2 keeps them;
//   - the Variable driver (MdeModulePkg/Universal/Variable/RuntimeDxe/Variable.c,
//     UpdateVariable) then writes a new record holding the old data followed
//     by what is left, keeping the old attributes, and the later of the old
//     and the new timestamp.
//
// A missing variable is created with attrs (less AppendWrite) and the
// filtered payload. timeStamp is the EFI_TIME of the update's
// EFI_VARIABLE_AUTHENTICATION_2, nil for none. AppendWrite returns the bytes
// actually appended; when that is empty and the timestamp would not move,
// the store is unchanged. The payload of a signature database must be
// well-formed signature lists.
func (s *VarStore) AppendWrite(name string, guid GUID, attrs Attributes, payload []byte, timeStamp []byte) ([]byte, error) {
	var ts [16]byte
	if timeStamp != nil {
		if len(timeStamp) != efiTimeSize {
			return nil, fmt.Errorf("efi: %s: %s: timestamp of %d bytes, want %d", s.source, name, len(timeStamp), efiTimeSize)
		}
		copy(ts[:], timeStamp)
	}
	old := s.find(name, guid)
	var cur []byte
	nr := record{attrs: attrs &^ AppendWrite, name: name, guid: guid, time: ts}
	if len(old) > 0 {
		r := s.recs[s.pick(old)]
		cur = s.buf[r.dataOff : r.dataOff+r.dataLen]
		nr.attrs, nr.monotone, nr.pubKey, nr.time = r.attrs, r.monotone, r.pubKey, r.time
		if timeStamp != nil && timeNewer(ts, r.time) {
			nr.time = ts
		}
	}
	add := payload
	if isSignatureDatabase(name, guid) {
		if _, err := parseSignatureLists(payload, s.source+": "+name+" update"); err != nil {
			return nil, err
		}
		var err error
		if add, err = filterSignatureList(cur, payload); err != nil {
			return nil, fmt.Errorf("efi: %s: %s: %w", s.source, name, err)
		}
	}
	if len(old) > 0 && len(add) == 0 && nr.time == s.recs[s.pick(old)].time {
		return nil, nil
	}
	data := append(bytes.Clone(cur), add...)
	if len(data) == 0 {
		return nil, fmt.Errorf("efi: %s: %s: appending nothing to a missing variable", s.source, name)
	}
	if err := s.checkVariable(Variable{Name: name, GUID: guid, Attributes: nr.attrs, Data: data}); err != nil {
		return nil, err
	}
	if err := s.write(nr, data, old); err != nil {
		return nil, err
	}
	return add, nil
}

// timeNewer reports whether EFI_TIME a is later than b, comparing the
// fields edk2's VariableCompareTimeStampInternal compares (year to second).
func timeNewer(a, b [16]byte) bool {
	key := func(t [16]byte) [6]int {
		return [6]int{int(binary.LittleEndian.Uint16(t[0:])), int(t[2]), int(t[3]), int(t[4]), int(t[5]), int(t[6])}
	}
	ka, kb := key(a), key(b)
	for i := range ka {
		if ka[i] != kb[i] {
			return ka[i] > kb[i]
		}
	}
	return false
}

// filterSignatureList is edk2's FilterSignatureList: the lists of add with
// every entry already present in old (same type, same signature size, same
// owner and data) removed, and lists left empty dropped. Both must be
// well-formed signature lists.
func filterSignatureList(old, add []byte) ([]byte, error) {
	have, err := ParseSignatureLists(old)
	if err != nil {
		return nil, err
	}
	lists, err := ParseSignatureLists(add)
	if err != nil {
		return nil, err
	}
	present := func(l SignatureList, sd SignatureData) bool {
		for _, h := range have {
			if h.Type != l.Type || h.SignatureSize != l.SignatureSize {
				continue
			}
			for _, e := range h.Signatures {
				if e.Owner == sd.Owner && bytes.Equal(e.Data, sd.Data) {
					return true
				}
			}
		}
		return false
	}
	var out []SignatureList
	for _, l := range lists {
		var keep []SignatureData
		for _, sd := range l.Signatures {
			if !present(l, sd) {
				keep = append(keep, sd)
			}
		}
		if len(keep) > 0 {
			l.Signatures = keep
			out = append(out, l)
		}
	}
	return MarshalSignatureLists(out), nil
}
