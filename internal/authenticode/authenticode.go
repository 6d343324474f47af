// Package authenticode reads PE/COFF images the way UEFI firmware does when it
// enforces Secure Boot: the Authenticode image digest exactly as edk2's
// DxeImageVerificationLib (HashPeImage) computes it, every signature of the
// attribute certificate table (several WIN_CERTIFICATE entries and the nested
// signatures inside them), the signer chain and its cryptographic verification
// with edk2's semantics (partial chains, no time check, any key usage), and the
// well-known Microsoft UEFI certificate authorities.
//
// References: Microsoft PE/COFF specification ("The Attribute Certificate
// Table", appendix "Calculating the PE Image Hash"), Authenticode_PE.docx,
// edk2 SecurityPkg/Library/DxeImageVerificationLib/DxeImageVerificationLib.c
// (HashPeImage, HashPeImageByType, DxeImageVerificationHandler) and
// CryptoPkg/Library/BaseCryptLib/Pk/CryptAuthenticode.c, CryptPkcs7Verify*.c.
//
// Nothing here trusts the input: every length, offset and count read from the
// file is bounds-checked, and malformed input yields a *FormatError.
package authenticode

import (
	"bytes"
	"crypto"
	"debug/pe"
	"encoding/binary"
	"fmt"
	"sync"
)

// FormatError reports malformed input: what is wrong and the file offset where
// it was found.
type FormatError struct {
	Offset int64
	Reason string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("authenticode: %s (offset 0x%x)", e.Reason, e.Offset)
}

func formatErr(off int64, format string, args ...any) *FormatError {
	return &FormatError{Offset: off, Reason: fmt.Sprintf(format, args...)}
}

// Section describes one entry of the section table.
type Section struct {
	Name           string
	VirtualAddress uint32
	VirtualSize    uint32
	Offset         uint32 // PointerToRawData
	Size           uint32 // SizeOfRawData
}

// PE/COFF layout constants (PE/COFF specification, "Optional Header").
const (
	dosLfanewOffset      = 0x3c
	fileHeaderSize       = 20
	sectionHeaderSize    = 40
	magicPE32            = 0x10b
	magicPE32Plus        = 0x20b
	checksumFieldOffset  = 64 // from the start of the optional header, both formats
	sizeOfHeadersOffset  = 60
	numRvaOffsetPE32     = 92
	numRvaOffsetPE32Plus = 108
	securityDirIndex     = 4 // EFI_IMAGE_DIRECTORY_ENTRY_SECURITY
	dataDirEntrySize     = 8
)

// Image is a parsed PE/COFF image. It keeps a reference to the bytes given to
// Parse, which must not be modified afterwards. An Image is safe for
// concurrent use.
type Image struct {
	b        []byte
	machine  uint16
	pe32Plus bool

	checksumOff   int    // file offset of OptionalHeader.CheckSum
	numRva        uint32 // OptionalHeader.NumberOfRvaAndSizes
	secDirOff     int    // file offset of the security data directory entry; -1 when NumberOfRvaAndSizes <= 4
	sizeOfHeaders uint32
	certVA        uint32 // security directory VirtualAddress (a file offset)
	certSize      uint32 // security directory Size

	headers  []pe.SectionHeader32 // in table order
	sections []Section

	entries []certEntry // the walked WIN_CERTIFICATE entries
	certErr error

	sigOnce sync.Once
	sigs    []*Signature

	digestMu sync.Mutex
	digests  map[crypto.Hash][]byte
}

// Parse parses a PE32 or PE32+ image (with or without an MS-DOS stub, as edk2
// accepts both) and walks its attribute certificate table. Signatures are
// parsed on first use by Signatures.
func Parse(b []byte) (*Image, error) {
	im := &Image{b: b, secDirOff: -1}
	peOff := 0
	if len(b) >= 2 && b[0] == 'M' && b[1] == 'Z' {
		if len(b) < dosLfanewOffset+4 {
			return nil, formatErr(0, "MS-DOS header truncated")
		}
		peOff = int(binary.LittleEndian.Uint32(b[dosLfanewOffset:]))
	}
	if peOff < 0 || uint64(peOff)+4+fileHeaderSize > uint64(len(b)) {
		return nil, formatErr(int64(peOff), "PE header extends past end of file")
	}
	if !bytes.Equal(b[peOff:peOff+4], []byte("PE\x00\x00")) {
		return nil, formatErr(int64(peOff), "missing PE signature")
	}
	var fh pe.FileHeader
	if _, err := binary.Decode(b[peOff+4:peOff+4+fileHeaderSize], binary.LittleEndian, &fh); err != nil {
		return nil, formatErr(int64(peOff+4), "file header: %v", err)
	}
	im.machine = fh.Machine
	optOff := peOff + 4 + fileHeaderSize
	if optOff+2 > len(b) {
		return nil, formatErr(int64(optOff), "optional header extends past end of file")
	}
	var numRvaOff int
	switch magic := binary.LittleEndian.Uint16(b[optOff:]); magic {
	case magicPE32:
		numRvaOff = optOff + numRvaOffsetPE32
	case magicPE32Plus:
		im.pe32Plus = true
		numRvaOff = optOff + numRvaOffsetPE32Plus
	default:
		return nil, formatErr(int64(optOff), "unknown optional header magic 0x%x", magic)
	}
	// edk2 reads these fields at fixed offsets whatever SizeOfOptionalHeader
	// says, so they must lie inside the file.
	if numRvaOff+4 > len(b) {
		return nil, formatErr(int64(optOff), "optional header extends past end of file")
	}
	im.checksumOff = optOff + checksumFieldOffset
	im.sizeOfHeaders = binary.LittleEndian.Uint32(b[optOff+sizeOfHeadersOffset:])
	im.numRva = binary.LittleEndian.Uint32(b[numRvaOff:])
	if im.numRva > securityDirIndex {
		im.secDirOff = numRvaOff + 4 + securityDirIndex*dataDirEntrySize
		if im.secDirOff+dataDirEntrySize > len(b) {
			return nil, formatErr(int64(im.secDirOff), "certificate table directory entry extends past end of file")
		}
		im.certVA = binary.LittleEndian.Uint32(b[im.secDirOff:])
		im.certSize = binary.LittleEndian.Uint32(b[im.secDirOff+4:])
	}

	secOff := uint64(optOff) + uint64(fh.SizeOfOptionalHeader)
	if secOff+uint64(fh.NumberOfSections)*sectionHeaderSize > uint64(len(b)) {
		return nil, formatErr(int64(secOff), "section table (%d sections) extends past end of file", fh.NumberOfSections)
	}
	im.headers = make([]pe.SectionHeader32, fh.NumberOfSections)
	im.sections = make([]Section, fh.NumberOfSections)
	for i := range im.headers {
		off := int(secOff) + i*sectionHeaderSize
		sh := &im.headers[i]
		if _, err := binary.Decode(b[off:off+sectionHeaderSize], binary.LittleEndian, sh); err != nil {
			return nil, formatErr(int64(off), "section header %d: %v", i, err)
		}
		name := sectionName(b, sh.Name, fh)
		if sh.SizeOfRawData > 0 && uint64(sh.PointerToRawData)+uint64(sh.SizeOfRawData) > uint64(len(b)) {
			return nil, formatErr(int64(sh.PointerToRawData), "section %q data extends past end of file", name)
		}
		im.sections[i] = Section{
			Name:           name,
			VirtualAddress: sh.VirtualAddress,
			VirtualSize:    sh.VirtualSize,
			Offset:         sh.PointerToRawData,
			Size:           sh.SizeOfRawData,
		}
	}

	if im.certSize != 0 {
		if uint64(im.certVA)+uint64(im.certSize) > uint64(len(b)) {
			return nil, formatErr(int64(im.certVA), "certificate table extends past end of file")
		}
		im.entries, im.certErr = walkCertTable(b, im.certVA, im.certSize)
	}
	return im, nil
}

// sectionName returns the section name, resolving "/123" long names through
// the COFF string table when there is one.
func sectionName(b []byte, raw [8]uint8, fh pe.FileHeader) string {
	n := bytes.IndexByte(raw[:], 0)
	if n < 0 {
		n = len(raw)
	}
	name := string(raw[:n])
	if len(name) < 2 || name[0] != '/' || fh.PointerToSymbolTable == 0 {
		return name
	}
	var idx uint64
	for _, c := range name[1:] {
		if c < '0' || c > '9' {
			return name
		}
		idx = idx*10 + uint64(c-'0')
	}
	// The string table follows the symbol table (18 bytes a symbol).
	strtab := uint64(fh.PointerToSymbolTable) + uint64(fh.NumberOfSymbols)*18
	start := strtab + idx
	if start >= uint64(len(b)) {
		return name
	}
	s := b[start:]
	if end := bytes.IndexByte(s, 0); end >= 0 {
		s = s[:end]
	}
	if len(s) > 256 {
		return name
	}
	return string(s)
}

// Machine returns the COFF machine type (0x8664 x86-64, 0xaa64 ARM64, 0x14c
// i386, ...).
func (im *Image) Machine() uint16 { return im.machine }

// Sections returns the section table in file order.
func (im *Image) Sections() []Section {
	return append([]Section(nil), im.sections...)
}

// SectionData returns the raw data of the first section with the given name,
// trimmed to its VirtualSize when that is smaller than SizeOfRawData (the rest
// is file alignment padding), as shim reads .sbat.
func (im *Image) SectionData(name string) ([]byte, bool) {
	for _, s := range im.sections {
		if s.Name != name {
			continue
		}
		size := s.Size
		if s.VirtualSize != 0 && s.VirtualSize < size {
			size = s.VirtualSize
		}
		if size == 0 {
			return []byte{}, true
		}
		return im.b[s.Offset : s.Offset+size : s.Offset+size], true
	}
	return nil, false
}
