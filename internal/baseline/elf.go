package baseline

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/vouch-dev/vouch/internal/check"
)

// elfDirs are the system paths whose executables and shared libraries the
// ELF rules read. On a merged-/usr system bin, sbin and lib are symlinks to
// their /usr counterparts and are read once.
var elfDirs = []string{"bin", "sbin", "usr/bin", "usr/sbin", "usr/lib", "usr/libexec", "lib", "lib64", "usr/lib64"}

// skipSuffixes are file names that are never executables or shared
// libraries: kernel modules (relocatable ELF) and common data files.
var skipSuffixes = []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz", ".py", ".pyc", ".pm", ".pl", ".txt", ".gz", ".xz", ".zst", ".json", ".conf", ".h", ".mo", ".png", ".svg", ".html"}

// ELFInfo is what vouch reads from one executable or shared library. Each
// property is defined as checksec 2.6.0 defines it (see the field comments);
// where vouch's rule deviates, the rule's comment says so.
type ELFInfo struct {
	Path    string
	Type    elf.Type
	Machine elf.Machine
	Class   elf.Class

	Relro      bool // a PT_GNU_RELRO segment
	BindNow    bool // DT_BIND_NOW, or DF_BIND_NOW in DT_FLAGS (what checksec greps as "BIND_NOW")
	Flags1Now  bool // DF_1_NOW in DT_FLAGS_1 (ld -z now sets it together with DF_BIND_NOW)
	GNUStack   bool // a PT_GNU_STACK segment
	StackFlags elf.ProgFlag
	Debug      bool // DT_DEBUG: checksec's test of PIE executable versus shared library
	PIEFlag    bool // DF_1_PIE in DT_FLAGS_1
	Interp     bool // a PT_INTERP segment
	Dynamic    bool // a PT_DYNAMIC segment
	Canary     bool // a symbol containing __stack_chk_fail, __stack_chk_guard or __intel_security_cookie
	// FORTIFY, as checksec: Fortified counts dynamic symbols that are __X_chk
	// functions of the target's libc, Fortifiable adds the plain X functions,
	// FortifySource is any dynamic symbol ending in _chk.
	FortifySource bool
	Fortified     int
	Fortifiable   int
	Property      bool // a GNU property note
	IBT, SHSTK    bool // GNU_PROPERTY_X86_FEATURE_1_AND bits
	BTI           bool // GNU_PROPERTY_AARCH64_FEATURE_1_AND bit
}

// NX is checksec's NX: a PT_GNU_STACK without the execute flag.
func (e *ELFInfo) NX() bool { return e.GNUStack && e.StackFlags&elf.PF_X == 0 }

// FullRelro is RELRO plus immediate binding (any of the three flags).
func (e *ELFInfo) FullRelro() bool { return e.Relro && (e.BindNow || e.Flags1Now) }

// PIE returns checksec's PIE verdict: "no" (ET_EXEC), "yes" (ET_DYN with
// DT_DEBUG), "dso" (other ET_DYN).
func (e *ELFInfo) PIE() string {
	switch {
	case e.Type == elf.ET_EXEC:
		return "no"
	case e.Debug:
		return "yes"
	}
	return "dso"
}

// Executable reports whether e is a program rather than a shared library:
// ET_EXEC, or a position-independent executable (DT_DEBUG or DF_1_PIE).
func (e *ELFInfo) Executable() bool {
	return e.Type == elf.ET_EXEC || e.Debug || e.PIEFlag
}

// ELFScan is the result of reading every binary of the system paths.
type ELFScan struct {
	Binaries   []*ELFInfo
	Unreadable []string // "path: reason"
	Libc       string   // the libc whose _chk functions FORTIFY is measured against
}

// ELFScanOf reads the binaries of a root once per state.
func (s *State) elfScan() (*ELFScan, error) {
	return cached(s, "elf", func() (*ELFScan, error) { return ScanELF(s.Root) })
}

type readLinkFS interface {
	fs.ReadDirFS
	fs.ReadFileFS
	Resolve(name string, follow bool) (string, error)
}

// ScanELF reads the executables and shared libraries under the system paths
// of root with a pool of GOMAXPROCS readers.
func ScanELF(root readLinkFS) (*ELFScan, error) {
	var files []string
	seen := map[string]bool{}
	for _, d := range elfDirs {
		r, err := root.Resolve(d, true)
		if err != nil {
			continue
		}
		if seen[r] {
			continue
		}
		seen[r] = true
		err = fs.WalkDir(root, r, func(p string, de fs.DirEntry, err error) error {
			if err != nil {
				if p == r {
					return err
				}
				files = append(files, "!"+p+": "+err.Error())
				return nil
			}
			if de.IsDir() {
				if p != r && (seen[p] || strings.HasSuffix(p, "/modules") && path.Dir(p) == "usr/lib") {
					return fs.SkipDir // kernel modules are relocatable objects, not executables
				}
				return nil
			}
			if !de.Type().IsRegular() {
				return nil
			}
			for _, suf := range skipSuffixes {
				if strings.HasSuffix(p, suf) {
					return nil
				}
			}
			files = append(files, p)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("baseline: walk %s: %w", d, err)
		}
	}
	sc := &ELFScan{}
	chk, libc := libcChk(root)
	sc.Libc = libc
	type result struct {
		info *ELFInfo
		err  string
	}
	results := make([]result, len(files))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				p := files[i]
				if strings.HasPrefix(p, "!") {
					results[i].err = p[1:]
					continue
				}
				info, err := readELF(root, p, chk)
				if err != nil {
					results[i].err = p + ": " + err.Error()
					continue
				}
				results[i].info = info
			}
		}()
	}
	for i := range files {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	for _, r := range results {
		switch {
		case r.err != "":
			sc.Unreadable = append(sc.Unreadable, r.err)
		case r.info != nil:
			sc.Binaries = append(sc.Binaries, r.info)
		}
	}
	return sc, nil
}

// readELF reads one file; (nil, nil) when it is not an ELF executable or
// shared library.
func readELF(root fs.FS, p string, chk map[string]bool) (info *ELFInfo, err error) {
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

func parseELF(ra io.ReaderAt, p string, chk map[string]bool) (*ELFInfo, error) {
	ef, err := elf.NewFile(ra)
	if err != nil {
		return nil, err
	}
	defer ef.Close()
	e := &ELFInfo{Path: p, Type: ef.Type, Machine: ef.Machine, Class: ef.Class}
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

func readProperties(ef *elf.File, e *ELFInfo) error {
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

// elfRule aggregates one property over all binaries: applies selects the
// binaries the property is about, bad the ones that lack it.
func elfRule(what string, applies func(*ELFInfo) bool, bad func(*ELFInfo) bool, why string) Control {
	return Control{
		Remedy: "Rebuild the listed binaries with the distribution's hardening flags (" + why + "); a built binary cannot be fixed in place, so vouch does not remediate this.",
		Audit: func(s *State) check.Result {
			sc, err := s.elfScan()
			if err != nil {
				return errorf("%v", err)
			}
			n := 0
			var failing []string
			for _, b := range sc.Binaries {
				if !applies(b) {
					continue
				}
				n++
				if bad(b) {
					failing = append(failing, "/"+b.Path)
				}
			}
			var unread []string
			for _, u := range sc.Unreadable {
				unread = append(unread, "unreadable: /"+u)
			}
			if n == 0 && len(unread) == 0 {
				return na("no binary in the system paths that " + what + " applies to")
			}
			if len(failing) > 0 {
				return fail(fmt.Sprintf("%d of %d binaries lack %s", len(failing), n, what), append(failing, unread...)...)
			}
			if len(unread) > 0 {
				r := errorf("%d binaries could not be read (%s); the %d that could all have %s", len(unread), strings.TrimPrefix(unread[0], "unreadable: "), n, what)
				r.Evidence = unread
				return r
			}
			return pass(fmt.Sprintf("all %d binaries have %s", n, what))
		},
	}
}
