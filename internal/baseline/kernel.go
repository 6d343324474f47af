package baseline

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/vouch-dev/vouch/internal/sysconf"
)

// ---- kernel config and command line ---------------------------------------

type kconfig struct {
	File   string
	Values map[string]string // CONFIG_X -> "y", "m", "\"str\"", or "n" for "is not set"
}

// kernelConfig reads the configuration of the newest kernel in boot/ (on the
// live host, the running one).
func (s *State) kernelConfig() (*kconfig, error) {
	return cached(s, "kconfig", func() (*kconfig, error) {
		files, err := s.glob("boot", "")
		if err != nil {
			return nil, err
		}
		var cfgs []string
		for _, f := range files {
			if strings.HasPrefix(path.Base(f), "config-") {
				cfgs = append(cfgs, f)
			}
		}
		if len(cfgs) == 0 {
			return nil, nil
		}
		pick := newestKernelFile(cfgs, "config-")
		if s.Live {
			if rel, ok, _ := s.readText("proc/sys/kernel/osrelease"); ok {
				want := "boot/config-" + strings.TrimSpace(rel)
				for _, c := range cfgs {
					if c == want {
						pick = c
					}
				}
			}
		}
		text, _, err := s.readText(pick)
		if err != nil {
			return nil, err
		}
		return &kconfig{File: pick, Values: sysconf.ParseKconfig(text)}, nil
	})
}

// newestKernelFile picks the file whose version sorts last (numeric parts
// compared as numbers).
func newestKernelFile(files []string, prefix string) string {
	best := files[0]
	for _, f := range files[1:] {
		if versionLess(strings.TrimPrefix(path.Base(best), prefix), strings.TrimPrefix(path.Base(f), prefix)) {
			best = f
		}
	}
	return best
}

func versionLess(a, b string) bool {
	split := func(s string) []string {
		return strings.FieldsFunc(s, func(r rune) bool { return r == '.' || r == '-' || r == '+' || r == '_' })
	}
	pa, pb := split(a), split(b)
	for i := 0; i < len(pa) && i < len(pb); i++ {
		na, ea := strconv.Atoi(pa[i])
		nb, eb := strconv.Atoi(pb[i])
		if ea == nil && eb == nil {
			if na != nb {
				return na < nb
			}
			continue
		}
		if pa[i] != pb[i] {
			return pa[i] < pb[i]
		}
	}
	return len(pa) < len(pb)
}

// kernelCmdline returns the command line the next boot uses: /proc/cmdline on
// the live host; offline, the default entry of the generated GRUB
// configuration, else etc/kernel/cmdline, else Boot Loader Specification
// entries, else what update-grub would generate from etc/default/grub. It is
// nil when the target has none of them.
func (s *State) kernelCmdline() (*sysconf.Cmdline, error) {
	return cached(s, "cmdline", func() (*sysconf.Cmdline, error) {
		if s.Live {
			text, ok, err := s.readText("proc/cmdline")
			if err != nil {
				return nil, err
			}
			if ok {
				return &sysconf.Cmdline{Args: strings.Fields(text), Source: "/proc/cmdline (running kernel)"}, nil
			}
		}
		for _, g := range []string{"boot/grub/grub.cfg", "boot/grub2/grub.cfg"} {
			text, ok, err := s.readText(g)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			if args, n, ok := sysconf.GrubLinuxArgs(text); ok {
				return &sysconf.Cmdline{Args: args, Source: fmt.Sprintf("%s:%d (first menu entry)", g, n)}, nil
			}
		}
		if c := s.espGrubCmdline(); c != nil {
			return c, nil
		}
		if text, ok, err := s.readText("etc/kernel/cmdline"); err != nil {
			return nil, err
		} else if ok {
			return &sysconf.Cmdline{Args: strings.Fields(text), Source: "etc/kernel/cmdline"}, nil
		}
		entries, err := s.glob("boot/loader/entries", ".conf")
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			text, _, err := s.readText(e)
			if err != nil {
				return nil, err
			}
			if args, ok := sysconf.LoaderOptions(text); ok {
				return &sysconf.Cmdline{Args: args, Source: e}, nil
			}
		}
		return s.defaultGrubCmdline()
	})
}

func (s *State) defaultGrubCmdline() (*sysconf.Cmdline, error) {
	files := []string{"etc/default/grub"}
	more, err := s.glob("etc/default/grub.d", ".cfg")
	if err != nil {
		return nil, err
	}
	files = append(files, more...)
	var defs sysconf.GrubDefaults
	found := false
	for _, f := range files {
		text, ok, err := s.readText(f)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		found = true
		if err := defs.Parse(f, text); err != nil {
			return nil, err
		}
	}
	if !found {
		return nil, nil
	}
	return &sysconf.Cmdline{Args: defs.Cmdline(), Source: "etc/default/grub (GRUB_CMDLINE_LINUX and GRUB_CMDLINE_LINUX_DEFAULT; no generated grub.cfg in the root)"}, nil
}

// espGrubCmdline reads the first linux line of a GRUB configuration on the
// ESP (EFI/<vendor>/grub.cfg, then EFI/BOOT/grub.cfg), as images whose GRUB
// configuration lives on the ESP have.
func (s *State) espGrubCmdline() *sysconf.Cmdline {
	if s.ESP == nil {
		return nil
	}
	cfgs, _ := fs.Glob(s.ESP, "EFI/*/grub.cfg")
	sort.Slice(cfgs, func(i, j int) bool { // EFI/BOOT last: the vendor directory is what NVRAM boots
		return !strings.EqualFold(path.Base(path.Dir(cfgs[i])), "BOOT") && strings.EqualFold(path.Base(path.Dir(cfgs[j])), "BOOT")
	})
	for _, g := range cfgs {
		b, err := fs.ReadFile(s.ESP, g)
		if err != nil || !isText(b) {
			continue
		}
		if args, n, ok := sysconf.GrubLinuxArgs(string(b)); ok {
			return &sysconf.Cmdline{Args: args, Source: fmt.Sprintf("ESP (%s) %s:%d (first menu entry)", s.ESPPath, g, n)}
		}
	}
	return nil
}
