package authenticodetest

import (
	"debug/pe"
	"encoding/binary"
)

// Section is one section of an image built by NewPE.
type Section struct {
	Name        string // at most 8 bytes
	Data        []byte
	VirtualSize uint32 // 0: len(Data)
}

// Layout of images built by NewPE.
const (
	fileAlignment    = 0x200
	sectionAlignment = 0x1000
	headersSize      = 0x400
	peOffset         = 0x80
)

// NewPE builds a minimal, unsigned EFI application image for machine with the
// given sections (a single ".text" section of 0xc3 bytes, "ret", when none are
// given): PE32+ for 64-bit machines (x86-64, ARM64, RISC-V 64, LoongArch 64),
// PE32 otherwise. Section data is padded to the 0x200 file alignment; all 16
// data directories are present and empty. Such an image is a few KiB and
// acceptable to edk2's PE/COFF loader, sbsign/sbverify and pesign.
func NewPE(machine uint16, sections ...Section) []byte {
	if len(sections) == 0 {
		sections = []Section{{Name: ".text", Data: []byte{0xc3}}}
	}
	plus := machine == pe.IMAGE_FILE_MACHINE_AMD64 || machine == pe.IMAGE_FILE_MACHINE_ARM64 ||
		machine == pe.IMAGE_FILE_MACHINE_RISCV64 || machine == pe.IMAGE_FILE_MACHINE_LOONGARCH64
	optSize := 224 // PE32 with 16 data directories
	if plus {
		optSize = 240
	}

	fileOff := uint32(headersSize)
	rva := uint32(sectionAlignment)
	type placed struct {
		s             Section
		off, rva, raw uint32
		vsize         uint32
	}
	var ps []placed
	for _, s := range sections {
		raw := align(uint32(len(s.Data)), fileAlignment)
		vs := s.VirtualSize
		if vs == 0 {
			vs = uint32(len(s.Data))
		}
		ps = append(ps, placed{s: s, off: fileOff, rva: rva, raw: raw, vsize: vs})
		fileOff += raw
		rva += align(max(vs, raw), sectionAlignment)
	}
	sizeOfImage := rva

	b := make([]byte, fileOff)
	le := binary.LittleEndian
	b[0], b[1] = 'M', 'Z'
	le.PutUint32(b[0x3c:], peOffset)
	copy(b[peOffset:], "PE\x00\x00")
	fh := b[peOffset+4:]
	le.PutUint16(fh[0:], machine)
	le.PutUint16(fh[2:], uint16(len(sections)))
	le.PutUint16(fh[16:], uint16(optSize))
	characteristics := uint16(pe.IMAGE_FILE_EXECUTABLE_IMAGE | pe.IMAGE_FILE_LINE_NUMS_STRIPPED | pe.IMAGE_FILE_LOCAL_SYMS_STRIPPED | pe.IMAGE_FILE_DEBUG_STRIPPED)
	if !plus {
		characteristics |= pe.IMAGE_FILE_32BIT_MACHINE
	}
	le.PutUint16(fh[18:], characteristics)

	oh := b[peOffset+24:]
	var code uint32
	for _, p := range ps {
		code += p.raw
	}
	if plus {
		le.PutUint16(oh[0:], 0x20b)
	} else {
		le.PutUint16(oh[0:], 0x10b)
	}
	oh[2] = 2                               // linker version
	le.PutUint32(oh[4:], code)              // SizeOfCode
	le.PutUint32(oh[16:], sectionAlignment) // AddressOfEntryPoint
	le.PutUint32(oh[20:], sectionAlignment) // BaseOfCode
	le.PutUint32(oh[32:], sectionAlignment) // SectionAlignment
	le.PutUint32(oh[36:], fileAlignment)    // FileAlignment
	le.PutUint32(oh[56:], sizeOfImage)      // SizeOfImage
	le.PutUint32(oh[60:], headersSize)      // SizeOfHeaders
	le.PutUint16(oh[68:], 10)               // Subsystem: EFI application
	if plus {
		le.PutUint64(oh[24:], 0x10000000) // ImageBase
		le.PutUint64(oh[72:], 0x10000)    // stack reserve
		le.PutUint64(oh[80:], 0x10000)    // stack commit
		le.PutUint32(oh[108:], 16)        // NumberOfRvaAndSizes
	} else {
		le.PutUint32(oh[24:], sectionAlignment) // BaseOfData
		le.PutUint32(oh[28:], 0x10000000)       // ImageBase
		le.PutUint32(oh[72:], 0x10000)
		le.PutUint32(oh[76:], 0x10000)
		le.PutUint32(oh[92:], 16)
	}

	sh := b[peOffset+24+optSize:]
	for i, p := range ps {
		h := sh[i*40:]
		copy(h[0:8], p.s.Name)
		le.PutUint32(h[8:], p.vsize)
		le.PutUint32(h[12:], p.rva)
		le.PutUint32(h[16:], p.raw)
		le.PutUint32(h[20:], p.off)
		le.PutUint32(h[36:], pe.IMAGE_SCN_CNT_CODE|pe.IMAGE_SCN_MEM_EXECUTE|pe.IMAGE_SCN_MEM_READ)
		copy(b[p.off:], p.s.Data)
	}
	return b
}

func align(n, a uint32) uint32 { return (n + a - 1) / a * a }
