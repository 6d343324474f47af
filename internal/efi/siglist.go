package efi

import (
	"bytes"
	"encoding/binary"
)

// sigListHeaderSize is sizeof(EFI_SIGNATURE_LIST): type GUID, list size,
// header size, signature size.
const sigListHeaderSize = 16 + 4 + 4 + 4

// SignatureList is one EFI_SIGNATURE_LIST (UEFI 2.10 §32.4.1).
type SignatureList struct {
	Type          GUID
	Header        []byte // SignatureHeader; empty for every type the spec defines
	SignatureSize uint32 // size of one entry, owner GUID included
	Signatures    []SignatureData
}

// SignatureData is one EFI_SIGNATURE_DATA: the owner and the certificate or
// hash.
type SignatureData struct {
	Owner GUID
	Data  []byte
}

// TypeName is SignatureTypeName(l.Type).
func (l SignatureList) TypeName() string { return SignatureTypeName(l.Type) }

// ParseSignatureLists parses a concatenation of EFI_SIGNATURE_LISTs, the value
// of db, dbx, KEK, PK, MokList and friends. Lists of unknown types are kept.
// The returned slices alias b.
func ParseSignatureLists(b []byte) ([]SignatureList, error) {
	return parseSignatureLists(b, "signature list")
}

func parseSignatureLists(b []byte, source string) ([]SignatureList, error) {
	var out []SignatureList
	off := 0
	for off < len(b) {
		rest := len(b) - off
		if rest < sigListHeaderSize {
			return nil, formatErr(source, off, "truncated signature list header: %d bytes left, need %d", rest, sigListHeaderSize)
		}
		var l SignatureList
		copy(l.Type[:], b[off:off+16])
		listSize := binary.LittleEndian.Uint32(b[off+16:])
		hdrSize := binary.LittleEndian.Uint32(b[off+20:])
		l.SignatureSize = binary.LittleEndian.Uint32(b[off+24:])
		if uint64(listSize) > uint64(rest) {
			return nil, formatErr(source, off, "signature list size %d extends past end of data (%d bytes left)", listSize, rest)
		}
		if uint64(listSize) < sigListHeaderSize+uint64(hdrSize) {
			return nil, formatErr(source, off, "signature list size %d smaller than its header (%d + %d)", listSize, sigListHeaderSize, hdrSize)
		}
		if l.SignatureSize < 16 {
			return nil, formatErr(source, off, "signature size %d smaller than the owner guid", l.SignatureSize)
		}
		body := listSize - sigListHeaderSize - hdrSize
		if body%l.SignatureSize != 0 {
			return nil, formatErr(source, off, "signature list body of %d bytes is not a multiple of signature size %d", body, l.SignatureSize)
		}
		if st, ok := knownSigType(l.Type); ok {
			if hdrSize != 0 {
				return nil, formatErr(source, off, "%s signature list with a %d-byte header", st.name, hdrSize)
			}
			if st.size != 0 && l.SignatureSize != st.size {
				return nil, formatErr(source, off, "%s signature size %d, want %d", st.name, l.SignatureSize, st.size)
			}
		}
		p := off + sigListHeaderSize
		l.Header = b[p : p+int(hdrSize) : p+int(hdrSize)]
		p += int(hdrSize)
		n := int(body / l.SignatureSize)
		l.Signatures = make([]SignatureData, 0, n)
		for i := 0; i < n; i++ {
			var s SignatureData
			copy(s.Owner[:], b[p:p+16])
			end := p + int(l.SignatureSize)
			s.Data = b[p+16 : end : end]
			l.Signatures = append(l.Signatures, s)
			p = end
		}
		out = append(out, l)
		off += int(listSize)
	}
	return out, nil
}

// MarshalSignatureLists encodes lists as EFI_SIGNATURE_LISTs. Each list's
// SignatureSize is 16 plus the longest Data when it is zero or too small for
// an entry; shorter Data is zero-padded to it. Entries of one list should have
// one size, as the spec requires.
func MarshalSignatureLists(ls []SignatureList) []byte {
	var buf bytes.Buffer
	for _, l := range ls {
		size := l.SignatureSize
		for _, s := range l.Signatures {
			if uint64(len(s.Data))+16 > uint64(size) {
				size = uint32(len(s.Data)) + 16
			}
		}
		if size < 16 {
			size = 16
		}
		listSize := uint32(sigListHeaderSize+len(l.Header)) + uint32(len(l.Signatures))*size
		var hdr [sigListHeaderSize]byte
		copy(hdr[:16], l.Type[:])
		binary.LittleEndian.PutUint32(hdr[16:], listSize)
		binary.LittleEndian.PutUint32(hdr[20:], uint32(len(l.Header)))
		binary.LittleEndian.PutUint32(hdr[24:], size)
		buf.Write(hdr[:])
		buf.Write(l.Header)
		for _, s := range l.Signatures {
			buf.Write(s.Owner[:])
			buf.Write(s.Data)
			buf.Write(make([]byte, int(size)-16-len(s.Data)))
		}
	}
	return buf.Bytes()
}

// appendSignatureLists merges add into the lists encoded in old, the way
// SetVariable with EFI_VARIABLE_APPEND_WRITE treats a signature database:
// entries already present (same type and data) are skipped; the rest join
// the first existing list of the same type, header and signature size, or
// form a new list at the end.
func appendSignatureLists(old []byte, add SignatureList) ([]byte, error) {
	lists, err := ParseSignatureLists(old)
	if err != nil {
		return nil, err
	}
	if add.SignatureSize == 0 {
		for _, s := range add.Signatures {
			if uint64(len(s.Data))+16 > uint64(add.SignatureSize) {
				add.SignatureSize = uint32(len(s.Data)) + 16
			}
		}
	}
	present := func(d []byte) bool {
		for _, l := range lists {
			if l.Type != add.Type {
				continue
			}
			for _, s := range l.Signatures {
				if bytes.Equal(s.Data, d) {
					return true
				}
			}
		}
		return false
	}
	var fresh []SignatureData
	for _, s := range add.Signatures {
		if uint64(len(s.Data))+16 != uint64(add.SignatureSize) {
			return nil, formatErr("signature list", 0, "entry of %d bytes in a list of %d-byte signatures", len(s.Data)+16, add.SignatureSize)
		}
		dup := present(s.Data)
		for _, f := range fresh {
			if bytes.Equal(f.Data, s.Data) {
				dup = true
			}
		}
		if !dup {
			fresh = append(fresh, s)
		}
	}
	if len(fresh) == 0 {
		return old, nil
	}
	// Validate what we are about to write the same way we parse.
	if _, err := ParseSignatureLists(MarshalSignatureLists([]SignatureList{{Type: add.Type, Header: add.Header, SignatureSize: add.SignatureSize, Signatures: fresh}})); err != nil {
		return nil, err
	}
	for i, l := range lists {
		if l.Type == add.Type && l.SignatureSize == add.SignatureSize && bytes.Equal(l.Header, add.Header) {
			merged := append(append([]SignatureData(nil), l.Signatures...), fresh...)
			lists[i].Signatures = merged
			return MarshalSignatureLists(lists), nil
		}
	}
	lists = append(lists, SignatureList{Type: add.Type, Header: add.Header, SignatureSize: add.SignatureSize, Signatures: fresh})
	return MarshalSignatureLists(lists), nil
}
