package baseline

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/vouch-dev/vouch/internal/target"
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
		k := &kconfig{File: pick, Values: map[string]string{}}
		for _, l := range lines(text) {
			if strings.HasPrefix(l, "# CONFIG_") && strings.HasSuffix(l, " is not set") {
				k.Values[strings.TrimSuffix(strings.TrimPrefix(l, "# "), " is not set")] = "n"
				continue
			}
			if key, v, ok := strings.Cut(l, "="); ok && strings.HasPrefix(key, "CONFIG_") {
				k.Values[key] = v
			}
		}
		return k, nil
	})
}

// newestKernelFile picks the file whose version sorts last (numeric parts
// compared as numbers).
func newestKernelFile(files []string, prefix string) string {
	best := files[0]
	for _, f := range files[1:] {
		if target.CompareKernelVersions(strings.TrimPrefix(path.Base(best), prefix), strings.TrimPrefix(path.Base(f), prefix)) < 0 {
			best = f
		}
	}
	return best
}

type cmdline struct {
	Args   []string
	Source string
}

// kernelCmdline returns the command line the next boot uses: /proc/cmdline on
// the live host; offline, the default entry of the generated GRUB
// configuration, else etc/kernel/cmdline, else Boot Loader Specification
// entries, else what update-grub would generate from etc/default/grub. It is
// nil when the target has none of them.
func (s *State) kernelCmdline() (*cmdline, error) {
	return cached(s, "cmdline", func() (*cmdline, error) {
		if s.Live {
			text, ok, err := s.readText("proc/cmdline")
			if err != nil {
				return nil, err
			}
			if ok {
				return &cmdline{strings.Fields(text), "/proc/cmdline (running kernel)"}, nil
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
			for i, l := range lines(text) {
				f := strings.Fields(l)
				if len(f) >= 2 && (f[0] == "linux" || f[0] == "linuxefi") {
					return &cmdline{f[2:], fmt.Sprintf("%s:%d (first menu entry)", g, i+1)}, nil
				}
			}
		}
		if c := s.espGrubCmdline(); c != nil {
			return c, nil
		}
		if text, ok, err := s.readText("etc/kernel/cmdline"); err != nil {
			return nil, err
		} else if ok {
			return &cmdline{strings.Fields(text), "etc/kernel/cmdline"}, nil
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
			for _, l := range lines(text) {
				if f := strings.Fields(l); len(f) > 0 && f[0] == "options" {
					return &cmdline{f[1:], e}, nil
				}
			}
		}
		return s.defaultGrubCmdline()
	})
}

func (s *State) defaultGrubCmdline() (*cmdline, error) {
	files := []string{"etc/default/grub"}
	more, err := s.glob("etc/default/grub.d", ".cfg")
	if err != nil {
		return nil, err
	}
	files = append(files, more...)
	vals := map[string]string{}
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
		for _, l := range lines(text) {
			k, v, ok := strings.Cut(strings.TrimSpace(l), "=")
			if !ok || strings.HasPrefix(k, "#") {
				continue
			}
			v = strings.Trim(strings.TrimSpace(v), `"'`)
			// Expand a self-reference such as GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX x".
			v = strings.ReplaceAll(v, "$"+k, vals[k])
			v = strings.ReplaceAll(v, "${"+k+"}", vals[k])
			if len(v) > 1<<16 {
				// Self-references double a value per line; stop a file that
				// would grow it without bound.
				return nil, &ConfigError{Path: f, Reason: k + " expands to more than 64 KiB"}
			}
			vals[k] = v
		}
	}
	if !found {
		return nil, nil
	}
	args := strings.Fields("ro " + vals["GRUB_CMDLINE_LINUX"] + " " + vals["GRUB_CMDLINE_LINUX_DEFAULT"])
	return &cmdline{args, "etc/default/grub (GRUB_CMDLINE_LINUX and GRUB_CMDLINE_LINUX_DEFAULT; no generated grub.cfg in the root)"}, nil
}

// param returns the last value of a kernel parameter (key=value) or "" with
// present true for a bare flag.
func (c *cmdline) param(key string) (val string, present bool) {
	for _, a := range c.Args {
		k, v, _ := strings.Cut(a, "=")
		if k == key || strings.ReplaceAll(k, "-", "_") == strings.ReplaceAll(key, "-", "_") {
			val, present = v, true
		}
	}
	return val, present
}

// espGrubCmdline reads the first linux line of a GRUB configuration on the
// ESP (EFI/<vendor>/grub.cfg, then EFI/BOOT/grub.cfg), as images whose GRUB
// configuration lives on the ESP have.
func (s *State) espGrubCmdline() *cmdline {
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
		for i, l := range lines(string(b)) {
			f := strings.Fields(l)
			if len(f) >= 2 && (f[0] == "linux" || f[0] == "linuxefi") {
				return &cmdline{f[2:], fmt.Sprintf("ESP (%s) %s:%d (first menu entry)", s.ESPPath, g, i+1)}
			}
		}
	}
	return nil
}
