// Package elfscan reads the executables and shared libraries of a root file
// system and reports, per binary, the hardening properties checksec 2.6.0
// reports: RELRO and immediate binding, stack canary, NX stack, PIE, FORTIFY
// (measured against the target's own libc) and the CET/BTI GNU properties.
// It reads through an io/fs.FS, so the same scan serves an image, a directory
// and the live host, and it never trusts a binary: a malformed one is listed
// as unreadable, never a panic.
package elfscan

import (
	"debug/elf"
	"fmt"
	"io/fs"
	"path"
	"runtime"
	"strings"
	"sync"
)

// elfDirs are the system paths whose executables and shared libraries the
// ELF rules read. On a merged-/usr system bin, sbin and lib are symlinks to
// their /usr counterparts and are read once.
var elfDirs = []string{"bin", "sbin", "usr/bin", "usr/sbin", "usr/lib", "usr/libexec", "lib", "lib64", "usr/lib64"}

// skipSuffixes are file names that are never executables or shared
// libraries: kernel modules (relocatable ELF) and common data files.
var skipSuffixes = []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz", ".py", ".pyc", ".pm", ".pl", ".txt", ".gz", ".xz", ".zst", ".json", ".conf", ".h", ".mo", ".png", ".svg", ".html"}

// Info is what vouch reads from one executable or shared library. Each
// property is defined as checksec 2.6.0 defines it (see the field comments);
// where vouch's rule deviates, the rule's comment says so.
type Info struct {
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
func (e *Info) NX() bool { return e.GNUStack && e.StackFlags&elf.PF_X == 0 }

// FullRelro is RELRO plus immediate binding (any of the three flags).
func (e *Info) FullRelro() bool { return e.Relro && (e.BindNow || e.Flags1Now) }

// PIE returns checksec's PIE verdict: "no" (ET_EXEC), "yes" (ET_DYN with
// DT_DEBUG), "dso" (other ET_DYN).
func (e *Info) PIE() string {
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
func (e *Info) Executable() bool {
	return e.Type == elf.ET_EXEC || e.Debug || e.PIEFlag
}

// Result is what Scan read from every binary of the system paths.
type Result struct {
	Binaries   []*Info
	Unreadable []string // "path: reason"
	Libc       string   // the libc whose _chk functions FORTIFY is measured against
}

// FS is a root file system that resolves symbolic links inside itself
// (rootfs.FS), so that merged-/usr links are read once.
type FS interface {
	fs.ReadDirFS
	fs.ReadFileFS
	Resolve(name string, follow bool) (string, error)
}

// Scan reads the executables and shared libraries under the system paths
// of root with a pool of GOMAXPROCS readers.
func Scan(root FS) (*Result, error) {
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
			return nil, fmt.Errorf("elfscan: walk %s: %w", d, err)
		}
	}
	sc := &Result{}
	chk, libc := libcChk(root)
	sc.Libc = libc
	type result struct {
		info *Info
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
