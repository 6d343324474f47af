// Package efi reads and writes UEFI firmware variables: EFI signature lists
// (db, dbx, KEK, PK, MokList), variable attributes, efivarfs and exported
// variable directories, edk2 authenticated variable stores inside firmware
// volumes (OVMF *_VARS*.fd), EFI_VARIABLE_AUTHENTICATION_2 update payloads, and
// boot entries (EFI_LOAD_OPTION with their device paths).
//
// Every parser takes untrusted bytes: each length, offset and count is bounds
// checked, and bad input yields a *FormatError naming the offset.
package efi

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
)

// GUID is an EFI_GUID as UEFI stores it: the first three fields little-endian,
// the last eight bytes in order.
type GUID [16]byte

// String returns the canonical lower-case form, e.g.
// "8be4df61-93ca-11d2-aa0d-00e098032b8c".
func (g GUID) String() string {
	var b [36]byte
	hex.Encode(b[0:8], []byte{g[3], g[2], g[1], g[0]})
	b[8] = '-'
	hex.Encode(b[9:13], []byte{g[5], g[4]})
	b[13] = '-'
	hex.Encode(b[14:18], []byte{g[7], g[6]})
	b[18] = '-'
	hex.Encode(b[19:23], g[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], g[10:16])
	return string(b[:])
}

// ParseGUID parses the canonical text form (either case).
func ParseGUID(s string) (GUID, error) {
	var g GUID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return g, fmt.Errorf("efi: malformed guid %q", s)
	}
	var raw [16]byte
	src := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36]
	if _, err := hex.Decode(raw[:], []byte(src)); err != nil {
		return g, fmt.Errorf("efi: malformed guid %q", s)
	}
	binary.LittleEndian.PutUint32(g[0:4], binary.BigEndian.Uint32(raw[0:4]))
	binary.LittleEndian.PutUint16(g[4:6], binary.BigEndian.Uint16(raw[4:6]))
	binary.LittleEndian.PutUint16(g[6:8], binary.BigEndian.Uint16(raw[6:8]))
	copy(g[8:], raw[8:])
	return g, nil
}

// mustGUID is for the package's own constants only.
func mustGUID(s string) GUID {
	g, err := ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

// Vendor GUIDs of the variables vouch reads.
var (
	// GlobalVariableGUID is EFI_GLOBAL_VARIABLE: PK, KEK, SecureBoot, SetupMode,
	// Boot####, BootOrder, *Default.
	GlobalVariableGUID = mustGUID("8be4df61-93ca-11d2-aa0d-00e098032b8c")
	// ImageSecurityDatabaseGUID is EFI_IMAGE_SECURITY_DATABASE_GUID: db, dbx, dbt, dbr.
	ImageSecurityDatabaseGUID = mustGUID("d719b2cb-3d3a-4596-a3bc-dad00e67656f")
	// ShimLockGUID is shim's vendor GUID: MokList, MokListX, SbatLevel.
	ShimLockGUID = mustGUID("605dab50-e046-4300-abb6-3dd810dd8b23")
)

// Signature types (UEFI 2.10 §32.4.1) and the PKCS#7 certificate type of
// WIN_CERTIFICATE_UEFI_GUID.
var (
	CertX509GUID          = mustGUID("a5c059a1-94e4-4aa7-87b5-ab155c2bf072")
	CertSHA1GUID          = mustGUID("826ca512-cf10-4ac9-b187-be01496631bd")
	CertSHA224GUID        = mustGUID("0b6e5233-a65c-44c9-9407-d9ab83bfc8bd")
	CertSHA256GUID        = mustGUID("c1c41626-504c-4092-aca9-41f936934328")
	CertSHA384GUID        = mustGUID("ff3e5307-9fd0-48c9-85f1-8ad56c701e01")
	CertSHA512GUID        = mustGUID("093e0fae-a6c4-4f50-9f1b-d41e2b89c19a")
	CertRSA2048GUID       = mustGUID("3c5766e8-269c-4e34-aa14-ed776e85b3b6")
	CertRSA2048SHA1GUID   = mustGUID("67f8444f-8743-48f1-a328-1eaab8736080")
	CertRSA2048SHA256GUID = mustGUID("e2b36190-879b-4a3d-ad8d-f2e7bba32784")
	CertX509SHA256GUID    = mustGUID("3bd2a492-96c0-4079-b420-fcf98ef103ed")
	CertX509SHA384GUID    = mustGUID("7076876e-80c2-4ee6-aad2-28b349a6865b")
	CertX509SHA512GUID    = mustGUID("446dbf63-2502-4cda-bcfa-2465d2b0fe9d")
	CertTypePKCS7GUID     = mustGUID("4aafd29d-68df-49ee-8aa9-347d375665a7")
)

// sigType describes a known signature type: its name and, for fixed-size
// types, the size of one EFI_SIGNATURE_DATA (owner GUID included), as the
// table mSupportSigItem in edk2's AuthVariableLib has it.
type sigType struct {
	name string
	size uint32 // 0: variable (X509)
}

func knownSigType(t GUID) (sigType, bool) {
	switch t {
	case CertX509GUID:
		return sigType{"X509", 0}, true
	case CertSHA1GUID:
		return sigType{"SHA1", 16 + 20}, true
	case CertSHA224GUID:
		return sigType{"SHA224", 16 + 28}, true
	case CertSHA256GUID:
		return sigType{"SHA256", 16 + 32}, true
	case CertSHA384GUID:
		return sigType{"SHA384", 16 + 48}, true
	case CertSHA512GUID:
		return sigType{"SHA512", 16 + 64}, true
	case CertRSA2048GUID:
		return sigType{"RSA2048", 16 + 256}, true
	case CertRSA2048SHA1GUID:
		return sigType{"RSA2048_SHA1", 16 + 256}, true
	case CertRSA2048SHA256GUID:
		return sigType{"RSA2048_SHA256", 16 + 256}, true
	case CertX509SHA256GUID:
		return sigType{"X509_SHA256", 16 + 32 + 16}, true
	case CertX509SHA384GUID:
		return sigType{"X509_SHA384", 16 + 48 + 16}, true
	case CertX509SHA512GUID:
		return sigType{"X509_SHA512", 16 + 64 + 16}, true
	}
	return sigType{}, false
}

// SignatureTypeName names a signature type GUID: "X509", "SHA256",
// "X509_SHA256", ... or "unknown".
func SignatureTypeName(t GUID) string {
	if st, ok := knownSigType(t); ok {
		return st.name
	}
	return "unknown"
}

// ErrStoreFull reports that a variable does not fit in a variable store even
// after compaction. Test for it with errors.Is; the package always wraps it
// in an "efi: ..." error naming the store.
var ErrStoreFull = errors.New("variable store full")

// ErrNotFound reports that a variable does not exist. Test for it with
// errors.Is; the package always wraps it in an "efi: ..." error naming the
// variable.
var ErrNotFound = errors.New("variable not found")

// FormatError reports malformed input: where it came from, the byte offset of
// the problem and what is wrong.
type FormatError struct {
	Source string // file, variable or structure name; may be empty
	Offset int64
	Reason string
}

func (e *FormatError) Error() string {
	if e.Source == "" {
		return fmt.Sprintf("efi: %s (offset 0x%x)", e.Reason, e.Offset)
	}
	return fmt.Sprintf("efi: %s: %s (offset 0x%x)", e.Source, e.Reason, e.Offset)
}

func formatErr(source string, off int, format string, args ...any) error {
	return &FormatError{Source: source, Offset: int64(off), Reason: fmt.Sprintf(format, args...)}
}
