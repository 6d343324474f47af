package elfscan

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"
)

// readELF reads one file; (nil, nil) when it is not an ELF executable or
// shared library.
func readELF(root fs.FS, p string, chk map[string]bool) (info *Info, err error) {
	f, err := root.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var hdr [20]byte
	var ra io.ReaderAt
	if x, ok := f.(io.ReaderAt); ok {
		n, _ := x.ReadAt(hdr[:], 0)
		if n < 4 || string(hdr[:4]) != elf.ELFMAG {
			return nil, nil
		}
		if n < 18 {
			return nil, errors.New("truncated ELF header")
		}
		ra = x
	} else {
		n, _ := io.ReadFull(f, hdr[:])
		if n < 4 || string(hdr[:4]) != elf.ELFMAG {
			return nil, nil
		}
		if n < 18 {
			return nil, errors.New("truncated ELF header")
		}
		rest, err := io.ReadAll(f)
		if err != nil {
			return nil, err
		}
		ra = bytes.NewReader(append(hdr[:n:n], rest...))
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if hdr[elf.EI_DATA] == byte(elf.ELFDATA2MSB) {
		bo = binary.BigEndian
	}
	if t := elf.Type(bo.Uint16(hdr[16:18])); t != elf.ET_EXEC && t != elf.ET_DYN {
		return nil, nil
	}
	defer func() {
		if r := recover(); r != nil {
			info, err = nil, fmt.Errorf("malformed ELF (%v)", r)
		}
	}()
	return parseELF(ra, p, chk)
}

func parseELF(ra io.ReaderAt, p string, chk map[string]bool) (*Info, error) {
	ef, err := elf.NewFile(ra)
	if err != nil {
		return nil, err
	}
	defer ef.Close()
	e := &Info{Path: p, Type: ef.Type, Machine: ef.Machine, Class: ef.Class}
	for _, sec := range ef.Sections {
		// A compressed section states its uncompressed size; a crafted one
		// (a zlib bomb) would make reading the symbol tables take gigabytes.
		if sec.Flags&elf.SHF_COMPRESSED != 0 && sec.Size > 64<<20 {
			return nil, fmt.Errorf("section %s claims %d bytes uncompressed", sec.Name, sec.Size)
		}
	}
	for _, prog := range ef.Progs {
		switch prog.Type {
		case elf.PT_GNU_RELRO:
			e.Relro = true
		case elf.PT_GNU_STACK:
			e.GNUStack, e.StackFlags = true, prog.Flags
		case elf.PT_INTERP:
			e.Interp = true
		case elf.PT_DYNAMIC:
			e.Dynamic = true
		}
	}
	if ds := ef.Section(".dynamic"); ds != nil && ds.Type != elf.SHT_NOBITS {
		if _, err := ds.Data(); err != nil {
			return nil, fmt.Errorf("dynamic section: %w", err)
		}
		if v, _ := ef.DynValue(elf.DT_BIND_NOW); len(v) > 0 {
			e.BindNow = true
		}
		if v, _ := ef.DynValue(elf.DT_FLAGS); len(v) > 0 && v[0]&uint64(elf.DF_BIND_NOW) != 0 {
			e.BindNow = true
		}
		if v, _ := ef.DynValue(elf.DT_FLAGS_1); len(v) > 0 {
			e.Flags1Now = v[0]&uint64(elf.DF_1_NOW) != 0
			e.PIEFlag = v[0]&uint64(elf.DF_1_PIE) != 0
		}
		if v, _ := ef.DynValue(elf.DT_DEBUG); len(v) > 0 {
			e.Debug = true
		}
	}
	canary := func(n string) bool {
		return strings.Contains(n, "__stack_chk_fail") || strings.Contains(n, "__stack_chk_guard") || strings.Contains(n, "__intel_security_cookie")
	}
	syms, err := ef.Symbols()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return nil, fmt.Errorf("symbol table: %w", err)
	}
	for _, s := range syms {
		if canary(s.Name) {
			e.Canary = true
			break
		}
	}
	dyn, err := ef.DynamicSymbols()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return nil, fmt.Errorf("dynamic symbol table: %w", err)
	}
	for _, s := range dyn {
		if canary(s.Name) {
			e.Canary = true
		}
		n := strings.TrimLeft(s.Name, "_")
		if strings.HasSuffix(n, "_chk") {
			e.FortifySource = true
		}
		if chk[n] {
			e.Fortified++
			e.Fortifiable++
		} else if chk[n+"\x00plain"] {
			e.Fortifiable++
		}
	}
	if err := readProperties(ef, e); err != nil {
		return nil, err
	}
	return e, nil
}

// GNU property note constants (the Linux x86-64 and AArch64 psABIs).
const (
	ntGNUPropertyType0  = 5
	ptGNUProperty       = 0x6474e553
	propX86Feature1And  = 0xc0000002
	propAArch64Feature1 = 0xc0000000
)

func readProperties(ef *elf.File, e *Info) error {
	var data []byte
	if s := ef.Section(".note.gnu.property"); s != nil && s.Type != elf.SHT_NOBITS {
		d, err := s.Data()
		if err != nil {
			return fmt.Errorf(".note.gnu.property: %w", err)
		}
		data = d
	} else {
		for _, prog := range ef.Progs {
			if prog.Type == ptGNUProperty {
				d := make([]byte, min(prog.Filesz, 1<<16))
				if _, err := prog.ReadAt(d, 0); err != nil {
					return fmt.Errorf("PT_GNU_PROPERTY: %w", err)
				}
				data = d
			}
		}
	}
	align := 4
	if ef.Class == elf.ELFCLASS64 {
		align = 8
	}
	bo := ef.ByteOrder
	for len(data) >= 12 {
		namesz, descsz, typ := bo.Uint32(data), bo.Uint32(data[4:]), bo.Uint32(data[8:])
		nameEnd := 12 + alignUp(int(namesz), 4)
		if namesz > 1<<16 || descsz > 1<<20 || nameEnd > len(data) {
			return errors.New("malformed .note.gnu.property")
		}
		descEnd := nameEnd + int(descsz)
		if descEnd > len(data) {
			return errors.New("malformed .note.gnu.property")
		}
		name := string(bytes.TrimRight(data[12:12+namesz], "\x00"))
		if name == "GNU" && typ == ntGNUPropertyType0 {
			e.Property = true
			desc := data[nameEnd:descEnd]
			for len(desc) >= 8 {
				pt, sz := bo.Uint32(desc), bo.Uint32(desc[4:])
				if int(sz) > len(desc)-8 {
					return errors.New("malformed GNU property")
				}
				if sz >= 4 {
					v := bo.Uint32(desc[8:])
					switch {
					case pt == propX86Feature1And:
						e.IBT, e.SHSTK = v&1 != 0, v&2 != 0
					case pt == propAArch64Feature1:
						e.BTI = v&1 != 0
					}
				}
				next := 8 + alignUp(int(sz), align)
				if next > len(desc) {
					break
				}
				desc = desc[next:]
			}
		}
		next := alignUp(descEnd, align)
		if next > len(data) || next <= 0 {
			break
		}
		data = data[next:]
	}
	return nil
}

func alignUp(n, a int) int { return (n + a - 1) &^ (a - 1) }

// libcChk returns the fortifiable functions of the target's libc, as checksec
// derives them from `readelf -s libc.so.6`: "X_chk" for every default-version
// __X_chk symbol, and "X\x00plain" for its unchecked counterpart.
func libcChk(root fs.FS) (map[string]bool, string) {
	var cands []string
	for _, g := range []string{"lib/libc.so.6", "lib64/libc.so.6", "usr/lib/*/libc.so.6", "lib/*/libc.so.6", "usr/lib64/libc.so.6"} {
		m, _ := fs.Glob(root, g)
		cands = append(cands, m...)
	}
	sort.Strings(cands)
	for _, c := range cands {
		b, err := fs.ReadFile(root, c)
		if err != nil {
			continue
		}
		ef, err := elf.NewFile(bytes.NewReader(b))
		if err != nil {
			continue
		}
		syms, err := ef.DynamicSymbols()
		if err != nil {
			continue
		}
		out := map[string]bool{}
		for _, s := range syms {
			if s.Section == elf.SHN_UNDEF || !strings.HasSuffix(s.Name, "_chk") || (s.HasVersion && s.VersionIndex.IsHidden()) {
				continue
			}
			i := strings.LastIndex(s.Name, "__")
			if i < 0 {
				continue
			}
			n := s.Name[i+2:]
			out[n] = true
			out[strings.ReplaceAll(n, "_chk", "")+"\x00plain"] = true
		}
		return out, c
	}
	return map[string]bool{}, ""
}
