package efi

import (
	"encoding/binary"
	"fmt"
	"time"
)

const (
	efiTimeSize        = 16
	winCertHeaderSize  = 8  // WIN_CERTIFICATE: dwLength, wRevision, wCertificateType
	winCertUEFIGUIDHdr = 24 // WIN_CERTIFICATE_UEFI_GUID up to CertData
	winCertTypeEFIGUID = 0x0ef1
)

// AuthVar2 is an EFI_VARIABLE_AUTHENTICATION_2 descriptor and the variable
// data it signs (UEFI 2.10 §8.2.2), the format of signed db/dbx/KEK updates
// such as Microsoft's DBXUpdate.bin.
type AuthVar2 struct {
	Timestamp time.Time // UTC; zero when the EFI_TIME is all zero
	CertType  GUID      // always CertTypePKCS7GUID once parsed
	PKCS7     []byte    // DER SignedData, without a ContentInfo wrapper
	Payload   []byte    // the new variable data, usually signature lists
}

// ParseAuthVar2 parses an EFI_VARIABLE_AUTHENTICATION_2 header followed by its
// payload. Like edk2's VerifyTimeBasedPayload it requires the
// WIN_CERT_TYPE_EFI_GUID certificate type with the PKCS#7 GUID. The returned
// slices alias b.
func ParseAuthVar2(b []byte) (*AuthVar2, error) {
	const src = "authenticated variable"
	if len(b) < efiTimeSize+winCertUEFIGUIDHdr {
		return nil, formatErr(src, 0, "%d bytes is too short for EFI_VARIABLE_AUTHENTICATION_2 (%d)", len(b), efiTimeSize+winCertUEFIGUIDHdr)
	}
	ts, err := ParseEFITime(b[:efiTimeSize])
	if err != nil {
		return nil, formatErr(src, 0, "%v", err)
	}
	c := b[efiTimeSize:]
	length := binary.LittleEndian.Uint32(c)
	certType := binary.LittleEndian.Uint16(c[6:])
	if certType != winCertTypeEFIGUID {
		return nil, formatErr(src, efiTimeSize+6, "certificate type 0x%04x, want WIN_CERT_TYPE_EFI_GUID 0x%04x", certType, winCertTypeEFIGUID)
	}
	a := &AuthVar2{Timestamp: ts}
	copy(a.CertType[:], c[8:24])
	if a.CertType != CertTypePKCS7GUID {
		return nil, formatErr(src, efiTimeSize+8, "certificate guid %s, want EFI_CERT_TYPE_PKCS7_GUID %s", a.CertType, CertTypePKCS7GUID)
	}
	if length < winCertUEFIGUIDHdr || uint64(length) > uint64(len(c)) {
		return nil, formatErr(src, efiTimeSize, "certificate length %d out of range [%d, %d]", length, winCertUEFIGUIDHdr, len(c))
	}
	a.PKCS7 = c[winCertUEFIGUIDHdr:length:length]
	a.Payload = c[length:]
	return a, nil
}

// ParseEFITime decodes a 16-byte EFI_TIME as UTC. The TimeZone and Daylight
// fields are ignored: authenticated variables and revocation times carry
// them as zero. All zero is the zero time.Time.
func ParseEFITime(b []byte) (time.Time, error) {
	if len(b) < efiTimeSize {
		return time.Time{}, fmt.Errorf("efi: EFI_TIME of %d bytes, want %d", len(b), efiTimeSize)
	}
	allZero := true
	for _, c := range b[:efiTimeSize] {
		if c != 0 {
			allZero = false
			break
		}
	}
	if allZero {
		return time.Time{}, nil
	}
	year := int(binary.LittleEndian.Uint16(b))
	month, day, hour, minute, sec := int(b[2]), int(b[3]), int(b[4]), int(b[5]), int(b[6])
	nsec := binary.LittleEndian.Uint32(b[8:])
	if month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || sec > 59 || nsec > 999999999 {
		return time.Time{}, fmt.Errorf("efi: invalid EFI_TIME %04d-%02d-%02d %02d:%02d:%02d.%09d", year, month, day, hour, minute, sec, nsec)
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, int(nsec), time.UTC), nil
}
