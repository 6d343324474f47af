package authenticode

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// WIN_CERTIFICATE (PE/COFF specification, "The Attribute Certificate Table";
// UEFI specification, WIN_CERTIFICATE_UEFI_GUID).
const (
	winCertHeaderSize     = 8  // dwLength, wRevision, wCertificateType
	winCertGUIDHeaderSize = 24 // WIN_CERTIFICATE + CertType GUID

	// WinCertTypePKCSSignedData is WIN_CERT_TYPE_PKCS_SIGNED_DATA.
	WinCertTypePKCSSignedData = 0x0002
	// WinCertTypeEFIGUID is WIN_CERT_TYPE_EFI_GUID.
	WinCertTypeEFIGUID = 0x0EF1
)

// certTypePKCS7GUID is EFI_CERT_TYPE_PKCS7_GUID
// 4aafd29d-68df-49ee-8aa9-347d375665a7 in its in-memory (mixed-endian) form.
var certTypePKCS7GUID = [16]byte{
	0x9d, 0xd2, 0xaf, 0x4a, 0xdf, 0x68, 0xee, 0x49,
	0x8a, 0xa9, 0x34, 0x7d, 0x37, 0x56, 0x65, 0xa7,
}

// certEntry is one WIN_CERTIFICATE of the table.
type certEntry struct {
	index    int
	off      uint32 // file offset of the WIN_CERTIFICATE header
	length   uint32 // dwLength
	certType uint16
	data     []byte // the PKCS#7 bytes when the entry carries a signature edk2 evaluates, else nil
}

// padded is the entry's length with its padding to 8 bytes.
func (e certEntry) padded() uint32 { return e.length + align8(e.length) }

// align8 is edk2's ALIGN_SIZE: the padding that brings n to a multiple of 8.
func align8(n uint32) uint32 { return (8 - n%8) % 8 }

// walkCertTable walks the attribute certificate table exactly as edk2's
// DxeImageVerificationHandler does and returns the entries up to the first one
// it gives up on. The error is non-nil when the walk does not end exactly at
// the end of the table, in which case edk2 rejects the image. The caller has
// checked that the table lies within b.
func walkCertTable(b []byte, va, size uint32) ([]certEntry, error) {
	end := va + size // no overflow: va+size <= len(b)
	var entries []certEntry
	off := va
	for off < end {
		left := end - off
		if left <= winCertHeaderSize {
			return entries, formatErr(int64(off), "%d bytes left at the end of the certificate table, too few for a WIN_CERTIFICATE", left)
		}
		e := certEntry{
			index:    len(entries),
			off:      off,
			length:   binary.LittleEndian.Uint32(b[off:]),
			certType: binary.LittleEndian.Uint16(b[off+6:]),
		}
		if left < e.length || left-e.length < align8(e.length) {
			return entries, formatErr(int64(off), "WIN_CERTIFICATE length %d (padded to 8 bytes) exceeds the %d bytes left in the certificate table", e.length, left)
		}
		switch e.certType {
		case WinCertTypePKCSSignedData:
			if e.length <= winCertHeaderSize {
				return entries, formatErr(int64(off), "WIN_CERTIFICATE length %d leaves no room for signed data", e.length)
			}
			e.data = b[off+winCertHeaderSize : off+e.length : off+e.length]
		case WinCertTypeEFIGUID:
			if e.length <= winCertGUIDHeaderSize {
				return entries, formatErr(int64(off), "WIN_CERTIFICATE_UEFI_GUID length %d leaves no room for data", e.length)
			}
			if bytes.Equal(b[off+winCertHeaderSize:off+winCertGUIDHeaderSize], certTypePKCS7GUID[:]) {
				e.data = b[off+winCertGUIDHeaderSize : off+e.length : off+e.length]
			}
		default:
			if e.length < winCertHeaderSize {
				return entries, formatErr(int64(off), "WIN_CERTIFICATE length %d is shorter than its header", e.length)
			}
		}
		entries = append(entries, e)
		off += e.padded()
	}
	return entries, nil
}

// CertTableErr reports why the WIN_CERTIFICATE entries do not exactly fill the
// certificate table (a *FormatError), or nil when they do or there is no
// table. edk2 rejects an image whose table is malformed even when an earlier
// entry verified; Signatures still returns the entries before the fault.
func (im *Image) CertTableErr() error { return im.certErr }

// RemoveSignature returns a copy of pe without WIN_CERTIFICATE entry index
// (0-based, counting every entry of the table), with the Certificate Table
// directory size reduced accordingly, or the directory entry zeroed and the
// table dropped when it becomes empty. Entries keep their 8-byte alignment
// (each entry's padding goes with it). The PE checksum is recomputed when the
// original one was correct and left alone otherwise. The certificate table must
// be well-formed and at the end of the file, where signing tools put it; the
// Authenticode digest is then unchanged.
func RemoveSignature(pe []byte, index int) ([]byte, error) {
	im, err := Parse(pe)
	if err != nil {
		return nil, err
	}
	if im.certSize == 0 {
		return nil, fmt.Errorf("authenticode: remove signature %d: image has no certificate table", index)
	}
	if im.certErr != nil {
		return nil, fmt.Errorf("authenticode: remove signature %d: %w", index, im.certErr)
	}
	if uint64(im.certVA)+uint64(im.certSize) != uint64(len(pe)) {
		return nil, fmt.Errorf("authenticode: remove signature %d: certificate table at 0x%x is not at the end of the file", index, im.certVA)
	}
	if im.certVA < im.sizeOfHeaders {
		return nil, fmt.Errorf("authenticode: remove signature %d: certificate table at 0x%x overlaps the headers", index, im.certVA)
	}
	for _, s := range im.sections {
		if s.Size == 0 {
			continue
		}
		if uint64(s.Offset)+uint64(s.Size) > uint64(im.certVA) {
			return nil, fmt.Errorf("authenticode: remove signature %d: certificate table at 0x%x overlaps section %q", index, im.certVA, s.Name)
		}
		// The header fields rewritten below would otherwise be hashed as
		// section data (edk2's loader refuses such images anyway).
		if s.Offset < im.sizeOfHeaders {
			return nil, fmt.Errorf("authenticode: remove signature %d: section %q data at 0x%x overlaps the headers", index, s.Name, s.Offset)
		}
	}
	if index < 0 || index >= len(im.entries) {
		return nil, fmt.Errorf("authenticode: remove signature %d: certificate table has %d entries", index, len(im.entries))
	}
	e := im.entries[index]
	checksumWasValid := binary.LittleEndian.Uint32(pe[im.checksumOff:]) == peChecksum(pe, im.checksumOff)

	out := make([]byte, 0, len(pe)-int(e.padded()))
	out = append(out, pe[:e.off]...)
	out = append(out, pe[e.off+e.padded():]...)
	newSize := im.certSize - e.padded()
	if newSize == 0 {
		binary.LittleEndian.PutUint32(out[im.secDirOff:], 0)
		out = out[:im.certVA]
	}
	binary.LittleEndian.PutUint32(out[im.secDirOff+4:], newSize)
	if checksumWasValid {
		binary.LittleEndian.PutUint32(out[im.checksumOff:], peChecksum(out, im.checksumOff))
	}
	return out, nil
}

// peChecksum computes the PE image checksum (imagehlp's CheckSumMappedFile:
// 16-bit words summed with end-around carry, plus the file length) with the
// CheckSum field taken as zero.
func peChecksum(b []byte, checksumOff int) uint32 {
	at := func(i int) uint64 {
		if i >= checksumOff && i < checksumOff+4 {
			return 0
		}
		return uint64(b[i])
	}
	var sum uint64
	i := 0
	for ; i+1 < len(b); i += 2 {
		if i+1 >= checksumOff && i < checksumOff+4 {
			sum += at(i) | at(i+1)<<8
		} else {
			sum += uint64(binary.LittleEndian.Uint16(b[i:]))
		}
		sum = (sum & 0xffff) + (sum >> 16)
	}
	if i < len(b) {
		sum += at(i)
		sum = (sum & 0xffff) + (sum >> 16)
	}
	sum = (sum & 0xffff) + (sum >> 16)
	return uint32(sum) + uint32(len(b))
}
