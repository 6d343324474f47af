package secureboot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"unicode/utf16"

	"github.com/vouch-dev/vouch/internal/authenticode"
	"github.com/vouch-dev/vouch/internal/efi"
	"github.com/vouch-dev/vouch/internal/target"
)

// Stage roles.
const (
	RoleShim     = "shim"
	RoleGRUB     = "grub"
	RoleFallback = "fallback"
	RoleLoader   = "loader" // another EFI application
	RoleKernel   = "kernel"
)

// Who verifies a stage.
const (
	ByFirmware     = "firmware"
	ByShim         = "shim"
	ByShimProtocol = "shim protocol (GRUB)"
)

// Boot path kinds.
const (
	KindNVRAM     = "nvram"
	KindRemovable = "removable"
	KindVendor    = "vendor"
)

// Stage is one binary of a boot chain and the verdict of whoever loads it.
type Stage struct {
	Role     string      `json:"role"`
	Path     string      `json:"path"` // in the ESP ("EFI/BOOT/BOOTX64.EFI") or the root ("boot/vmlinuz-…-amd64")
	FS       string      `json:"fs"`   // "esp" or "root"
	LoadedBy string      `json:"loadedBy"`
	Signers  []string    `json:"signers"`  // signer subjects, one per signature
	SignedBy []string    `json:"signedBy"` // known-CA IDs
	SBAT     []SBATEntry `json:"sbat,omitempty"`
	// Decision is the loader's verdict; nil when it cannot be known (the
	// firmware is unknown) or the file is missing.
	Decision *Decision `json:"decision,omitempty"`
	// SelfCheck is shim's SBAT check of itself, for shim stages.
	SelfCheck *Decision `json:"selfCheck,omitempty"`
	Error     string    `json:"error,omitempty"`
	// Absent marks an NVRAM entry's file that is not on this ESP (it may
	// be on another disk): the path cannot be judged.
	Absent bool `json:"absent,omitempty"`

	img *authenticode.Image
}

// Image returns the parsed binary, nil when it could not be read.
func (s *Stage) Image() *authenticode.Image { return s.img }

// allowed is the stage's outcome: 1 allowed, 0 refused, -1 unknown.
func (s *Stage) allowed() int {
	switch {
	case s.Absent:
		return -1
	case s.Error != "":
		return 0
	case s.Decision == nil:
		return -1
	case !s.Decision.Allowed:
		return 0
	case s.SelfCheck != nil && !s.SelfCheck.Allowed:
		return 0
	}
	return 1
}

// BootPath is one way the firmware can start the system: an NVRAM boot
// entry, the removable-media path, or a vendor directory, with every stage
// down to the kernels of the root file system.
type BootPath struct {
	Name    string  `json:"name"`
	Kind    string  `json:"kind"`
	Entry   string  `json:"entry"` // the first stage's ESP path
	Stages  []Stage `json:"stages"`
	Kernels []Stage `json:"kernels,omitempty"`
	// Boots is true when every stage and the newest kernel are allowed,
	// false when one is refused or missing, nil when unknown.
	Boots   *bool  `json:"boots"`
	Verdict string `json:"verdict"`
}

// BootPaths finds the boot paths of an ESP: the active NVRAM Boot####
// entries whose file is on this ESP (in BootOrder; when vars are given), the
// removable-media paths EFI/BOOT/BOOTX64.EFI and BOOTAA64.EFI, and the vendor
// directories EFI/*/ holding shim (or, without shim, GRUB). Behind shim come
// its second stage beside it (grubx64.efi), or, for shim on the removable
// path with fbx64.efi beside it, fallback and the loader the first
// EFI/*/BOOTX64.CSV names. Paths that reach GRUB get the kernels of root
// (boot/vmlinuz-*, newest first). esp or root may be nil.
func BootPaths(esp fs.FS, root fs.FS, vars *efi.VarSet) []BootPath {
	if esp == nil {
		return nil
	}
	f := &finder{esp: esp, root: root, cache: map[string]*loaded{}}
	var paths []BootPath
	seen := map[string]bool{}
	if vars != nil {
		order, _ := vars.BootOrder()
		nums := order
		inOrder := map[uint16]bool{}
		for _, n := range order {
			inOrder[n] = true
		}
		for _, n := range vars.BootEntries() {
			if !inOrder[n] {
				nums = append(nums, n)
			}
		}
		done := map[uint16]bool{}
		for _, n := range nums {
			if done[n] {
				continue
			}
			done[n] = true
			lo, err := vars.BootEntry(n)
			if err != nil || !lo.Active() {
				continue
			}
			fp := lo.FilePath.FilePath()
			if fp == "" {
				continue // firmware applications, network and removable devices
			}
			p := strings.TrimLeft(strings.ReplaceAll(fp, `\`, "/"), "/")
			name := fmt.Sprintf("Boot%04X %s", n, lo.Description)
			bp := f.chain(name, KindNVRAM, p)
			if actual, ok := f.resolve(p); ok {
				seen[strings.ToLower(actual)] = true
			}
			paths = append(paths, bp)
		}
	}
	for _, p := range []string{"EFI/BOOT/BOOTX64.EFI", "EFI/BOOT/BOOTAA64.EFI"} {
		if actual, ok := f.resolve(p); ok {
			paths = append(paths, f.chain("removable media "+actual, KindRemovable, actual))
		}
	}
	for _, dir := range f.vendorDirs() {
		var first string
		for _, name := range []string{"shimx64.efi", "shimaa64.efi", "grubx64.efi", "grubaa64.efi"} {
			if actual, ok := f.resolve(dir + "/" + name); ok {
				first = actual
				break
			}
		}
		if first == "" || seen[strings.ToLower(first)] {
			continue
		}
		paths = append(paths, f.chain("vendor directory "+dir, KindVendor, first))
	}
	return paths
}

type loaded struct {
	img *authenticode.Image
	err error
}

type finder struct {
	esp, root fs.FS
	cache     map[string]*loaded
	kernels   []Stage
	kernelsOK bool
}

// resolve finds p in the ESP case-insensitively (FAT is; a directory target
// is not) and returns its real path.
func (f *finder) resolve(p string) (string, bool) {
	return resolveFold(f.esp, p)
}

func resolveFold(fsys fs.FS, p string) (string, bool) {
	if fsys == nil || !fs.ValidPath(p) {
		return "", false
	}
	if info, err := fs.Stat(fsys, p); err == nil && !info.IsDir() {
		return p, true
	}
	cur := "."
	for _, elem := range strings.Split(p, "/") {
		entries, err := fs.ReadDir(fsys, cur)
		if err != nil {
			return "", false
		}
		found := ""
		for _, e := range entries {
			if strings.EqualFold(e.Name(), elem) {
				found = e.Name()
				break
			}
		}
		if found == "" {
			return "", false
		}
		cur = path.Join(cur, found)
	}
	if info, err := fs.Stat(fsys, cur); err != nil || info.IsDir() {
		return "", false
	}
	return cur, true
}

func (f *finder) load(fsys fs.FS, p string) (*authenticode.Image, error) {
	key := fmt.Sprintf("%p:%s", fsys, p)
	if l, ok := f.cache[key]; ok {
		return l.img, l.err
	}
	b, err := fs.ReadFile(fsys, p)
	var img *authenticode.Image
	if err == nil {
		img, err = authenticode.Parse(b)
	}
	f.cache[key] = &loaded{img, err}
	return img, err
}

// stage reads a binary into a stage.
func (f *finder) stage(fsys fs.FS, fsName, p, loadedBy string) Stage {
	st := Stage{Path: p, FS: fsName, LoadedBy: loadedBy, Signers: []string{}, SignedBy: []string{}}
	img, err := f.load(fsys, p)
	if err != nil {
		st.Role = RoleLoader
		if errors.Is(err, fs.ErrNotExist) {
			st.Error = "file not found"
		} else {
			st.Error = err.Error()
		}
		return st
	}
	st.img = img
	st.Role = roleOf(p, img)
	for _, s := range topLevel(img.Signatures()) {
		if s.Signer != nil {
			st.Signers = append(st.Signers, s.Signer.Subject.String())
		} else {
			st.Signers = append(st.Signers, "(signer not embedded)")
		}
	}
	st.SignedBy = nonNil(SignedBy(img))
	if b, ok := img.SectionData(".sbat"); ok {
		st.SBAT, _ = ParseSBAT(b)
	}
	return st
}

func roleOf(p string, img *authenticode.Image) string {
	base := strings.ToLower(path.Base(p))
	switch {
	case strings.HasPrefix(base, "fb"):
		return RoleFallback // part of shim's build, with shim's SBAT
	case strings.HasPrefix(base, "mm"):
		return RoleLoader // MokManager
	case IsShim(img):
		return RoleShim
	case strings.HasPrefix(base, "grub"):
		return RoleGRUB
	case strings.HasPrefix(base, "vmlinuz"):
		return RoleKernel
	}
	if b, ok := img.SectionData(".sbat"); ok {
		if entries, err := ParseSBAT(b); err == nil {
			for _, e := range entries {
				if e.Component == "grub" {
					return RoleGRUB
				}
			}
		}
	}
	return RoleLoader
}

// arch returns the architecture suffix of a loader name ("x64", "aa64").
func arch(p string) string {
	base := strings.ToLower(path.Base(p))
	if strings.Contains(base, "aa64") {
		return "aa64"
	}
	return "x64"
}

// chain builds a boot path starting at first (an ESP path).
func (f *finder) chain(name, kind, first string) BootPath {
	bp := BootPath{Name: name, Kind: kind, Entry: first}
	actual, ok := f.resolve(first)
	if !ok {
		st := f.stage(f.esp, "esp", first, ByFirmware)
		st.Error, st.Absent = "file not on this ESP", true
		bp.Stages = append(bp.Stages, st)
		return bp
	}
	bp.Entry = actual
	st := f.stage(f.esp, "esp", actual, ByFirmware)
	bp.Stages = append(bp.Stages, st)
	f.follow(&bp, st, 0)
	return bp
}

// follow appends what stage st starts.
func (f *finder) follow(bp *BootPath, st Stage, depth int) {
	if st.Error != "" || depth > 3 {
		return
	}
	dir := path.Dir(st.Path)
	a := arch(st.Path)
	switch st.Role {
	case RoleShim:
		if strings.EqualFold(dir, "EFI/BOOT") {
			if fb, ok := f.resolve(dir + "/fb" + a + ".efi"); ok {
				fst := f.stage(f.esp, "esp", fb, ByShim)
				bp.Stages = append(bp.Stages, fst)
				if fst.Error != "" {
					return
				}
				target, ok := f.csvTarget(a)
				if !ok {
					return
				}
				next := f.stage(f.esp, "esp", target, ByFirmware)
				bp.Stages = append(bp.Stages, next)
				f.follow(bp, next, depth+1)
				return
			}
		}
		second := dir + "/grub" + a + ".efi"
		actual, ok := f.resolve(second)
		if !ok {
			missing := Stage{Role: RoleGRUB, Path: second, FS: "esp", LoadedBy: ByShim, Signers: []string{}, SignedBy: []string{}, Error: "shim's second stage is missing"}
			bp.Stages = append(bp.Stages, missing)
			return
		}
		next := f.stage(f.esp, "esp", actual, ByShim)
		bp.Stages = append(bp.Stages, next)
		f.follow(bp, next, depth+1)
	case RoleGRUB:
		bp.Kernels = f.rootKernels()
	}
}

// csvTarget is what fallback boots: the first line of the first
// EFI/*/BOOT<ARCH>.CSV (UTF-16LE: filename,label,options,description).
func (f *finder) csvTarget(a string) (string, bool) {
	for _, dir := range f.vendorDirs() {
		csv, ok := f.resolve(dir + "/BOOT" + strings.ToUpper(a) + ".CSV")
		if !ok {
			continue
		}
		b, err := fs.ReadFile(f.esp, csv)
		if err != nil {
			continue
		}
		for _, line := range strings.FieldsFunc(decodeUTF16LE(b), func(r rune) bool { return r == '\n' || r == '\r' }) {
			file := strings.TrimSpace(strings.SplitN(line, ",", 2)[0])
			if file == "" {
				continue
			}
			if actual, ok := f.resolve(dir + "/" + file); ok {
				return actual, true
			}
			return dir + "/" + file, true
		}
	}
	return "", false
}

func decodeUTF16LE(b []byte) string {
	b = []byte(strings.TrimPrefix(string(b), "\xff\xfe"))
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		u = append(u, binary.LittleEndian.Uint16(b[i:]))
	}
	return string(utf16.Decode(u))
}

// vendorDirs lists EFI/* directories other than BOOT, sorted.
func (f *finder) vendorDirs() []string {
	efiDir, ok := resolveDirFold(f.esp, "EFI")
	if !ok {
		return nil
	}
	entries, err := fs.ReadDir(f.esp, efiDir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && !strings.EqualFold(e.Name(), "BOOT") {
			out = append(out, efiDir+"/"+e.Name())
		}
	}
	sort.Strings(out)
	return out
}

func resolveDirFold(fsys fs.FS, name string) (string, bool) {
	if info, err := fs.Stat(fsys, name); err == nil && info.IsDir() {
		return name, true
	}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return "", false
	}
	for _, e := range entries {
		if e.IsDir() && strings.EqualFold(e.Name(), name) {
			return e.Name(), true
		}
	}
	return "", false
}

// rootKernels reads boot/vmlinuz-* of the root file system, newest first
// (target.Kernels).
func (f *finder) rootKernels() []Stage {
	if f.kernelsOK {
		return append([]Stage(nil), f.kernels...)
	}
	f.kernelsOK = true
	if f.root == nil {
		return nil
	}
	for _, p := range target.Kernels(f.root) {
		st := f.stage(f.root, "root", p, ByShimProtocol)
		st.Role = RoleKernel
		f.kernels = append(f.kernels, st)
	}
	return append([]Stage(nil), f.kernels...)
}
