package baseline

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/vouch-dev/vouch/internal/check"
	"github.com/vouch-dev/vouch/internal/remediate"
	"github.com/vouch-dev/vouch/internal/sysconf"
)

// ---- kernel modules -----------------------------------------------------------

const vouchModprobeFile = "etc/modprobe.d/60-vouch.conf"

// moduleDisabled audits CIS's "module not available": either no installed
// kernel ships it, or modprobe.d both makes loading it run /bin/false (install)
// and blacklists it. On the live host a loaded module fails.
func moduleDisabled(mod string) Control {
	m := sysconf.ModName(mod)
	return Control{
		Remedy: fmt.Sprintf("Add `install %s /bin/false` and `blacklist %s` to /%s (and rmmod it if loaded).", mod, mod, vouchModprobeFile),
		Audit: func(s *State) check.Result {
			km, err := s.modules()
			if err != nil {
				return errorf("%v", err)
			}
			if s.Live {
				text, ok, err := s.readText("proc/modules")
				if err != nil {
					return errorf("%v", err)
				}
				if ok {
					for _, l := range sysconf.Lines(text) {
						if f := strings.Fields(l); len(f) > 0 && sysconf.ModName(f[0]) == m {
							return fail(mod+" is loaded in the running kernel", "/proc/modules: "+l)
						}
					}
				}
			}
			if v, ok := km.builtin[m]; ok {
				return fail(fmt.Sprintf("%s is built into kernel %s; modprobe.d cannot keep it from running", mod, v), "lib/modules/"+v+"/modules.builtin")
			}
			v, ok := km.loadable[m]
			if !ok {
				if len(km.kernels) == 0 {
					return pass(mod+": no kernel modules are installed", "no lib/modules/*/modules.dep")
				}
				return pass(mod+" is not shipped by the installed kernels ("+strings.Join(km.kernels, ", ")+")", "not in modules.dep")
			}
			rules, err := s.modprobe()
			if err != nil {
				return errorf("%v", err)
			}
			var install, blacklist string
			for _, r := range rules {
				if r.Module != m {
					continue
				}
				if r.Kind == "install" && install == "" {
					install = r.Where + ": install " + mod + " " + r.Arg
					if !isFalseCmd(r.Arg) {
						install = "!" + install
					}
				}
				if r.Kind == "blacklist" {
					blacklist = r.Where
				}
			}
			ev := []string{fmt.Sprintf("kernel %s ships %s", v, mod)}
			var missing []string
			if install == "" || strings.HasPrefix(install, "!") {
				missing = append(missing, "install "+mod+" /bin/false")
			}
			if install != "" {
				ev = append(ev, strings.TrimPrefix(install, "!"))
			}
			if blacklist == "" {
				missing = append(missing, "blacklist "+mod)
			} else {
				ev = append(ev, blacklist+": blacklist "+mod)
			}
			if len(missing) > 0 {
				return fail(fmt.Sprintf("%s can be loaded: modprobe.d lacks %s", mod, strings.Join(missing, " and ")), ev...)
			}
			return pass(mod+" cannot be loaded (install /bin/false, blacklisted)", ev...)
		},
		Fix: func(s *State, c *remediate.Changer) error {
			km, err := s.modules()
			if err != nil {
				return err
			}
			if v, ok := km.builtin[m]; ok {
				return fmt.Errorf("baseline: %s is built into kernel %s; only a kernel without it removes it", mod, v)
			}
			rules, err := s.modprobe()
			if err != nil {
				return err
			}
			var add []string
			hasInstall, hasBlacklist := false, false
			for _, r := range rules {
				if r.Module == m && r.Kind == "install" && !hasInstall {
					hasInstall = true
					if !isFalseCmd(r.Arg) {
						return fmt.Errorf("baseline: %s has `install %s %s`, which vouch does not override", r.Where, mod, r.Arg)
					}
				}
				if r.Module == m && r.Kind == "blacklist" {
					hasBlacklist = true
				}
			}
			if !hasInstall {
				add = append(add, "install "+mod+" /bin/false")
			}
			if !hasBlacklist {
				add = append(add, "blacklist "+mod)
			}
			return c.AppendLines(vouchModprobeFile, "# Kernel modules disabled by vouch baseline remediate.", add...)
		},
	}
}

func isFalseCmd(arg string) bool {
	f := strings.Fields(arg)
	if len(f) == 0 {
		return false
	}
	switch f[0] {
	case "/bin/false", "/usr/bin/false", "/bin/true", "/usr/bin/true", "false", "true":
		return true
	}
	return false
}

// ---- kernel command line and config -------------------------------------------------

// cmdlineHas passes when the kernel command line has key (with one of values
// when given; "" value means a bare flag or any value).
func cmdlineHas(key string, values ...string) Control {
	want := key
	if len(values) > 0 {
		want = key + "=" + strings.Join(values, "|")
	}
	return Control{
		Remedy: fmt.Sprintf("Add %s to GRUB_CMDLINE_LINUX in /etc/default/grub and run update-grub (vouch does not regenerate boot loader configuration).", want),
		Audit: func(s *State) check.Result {
			c, err := s.kernelCmdline()
			if err != nil {
				return errorf("%v", err)
			}
			if c == nil {
				return fail("no kernel command line in the boot configuration (no grub.cfg, etc/kernel/cmdline, loader entries or etc/default/grub); want " + want)
			}
			ev := []string{"source: " + c.Source, "cmdline: " + strings.Join(c.Args, " ")}
			v, ok := c.Param(key)
			if ok && (len(values) == 0 || contains(values, v)) {
				return pass(fmt.Sprintf("kernel command line has %s", strings.TrimSuffix(key+"="+v, "=")), ev...)
			}
			if ok {
				return fail(fmt.Sprintf("kernel command line has %s=%s, want %s", key, v, want), ev...)
			}
			return fail("kernel command line lacks "+want, ev...)
		},
	}
}

// cmdlineLacks passes when the kernel command line has none of the
// key=value pairs (a bare key matches any value).
func cmdlineLacks(bad ...string) Control {
	return Control{
		Remedy: "Remove " + strings.Join(bad, ", ") + " from the kernel command line (/etc/default/grub, then update-grub).",
		Audit: func(s *State) check.Result {
			c, err := s.kernelCmdline()
			if err != nil {
				return errorf("%v", err)
			}
			if c == nil {
				return pass("no kernel command line in the boot configuration; the kernel's defaults apply")
			}
			ev := []string{"source: " + c.Source, "cmdline: " + strings.Join(c.Args, " ")}
			for _, b := range bad {
				k, want, hasVal := strings.Cut(b, "=")
				if v, ok := c.Param(k); ok && (!hasVal || v == want) {
					return fail(fmt.Sprintf("kernel command line has %s=%s", k, v), ev...)
				}
			}
			return pass("kernel command line has none of "+strings.Join(bad, ", "), ev...)
		},
	}
}

// kconfigIs passes when CONFIG_<name> is one of want ("y", "m", "n" for
// unset or not present, or a literal value).
func kconfigIs(name string, want ...string) Control {
	key := "CONFIG_" + name
	return Control{
		Remedy: fmt.Sprintf("Use a kernel built with %s=%s; the configuration cannot be changed after the build.", key, want[0]),
		Audit: func(s *State) check.Result {
			kc, err := s.kernelConfig()
			if err != nil {
				return errorf("%v", err)
			}
			if kc == nil {
				return na("no kernel configuration (boot/config-*) in the root")
			}
			v, ok := kc.Values[key]
			if !ok {
				v = "n"
			}
			ev := fmt.Sprintf("/%s: %s=%s", kc.File, key, v)
			if contains(want, v) {
				return pass(fmt.Sprintf("%s=%s", key, v), ev)
			}
			return fail(fmt.Sprintf("%s=%s, want %s", key, v, strings.Join(want, " or ")), ev)
		},
	}
}

// kconfigAtLeast passes when CONFIG_<name> is an integer >= min.
func kconfigAtLeast(name string, min int64) Control {
	key := "CONFIG_" + name
	return Control{
		Remedy: fmt.Sprintf("Use a kernel built with %s >= %d.", key, min),
		Audit: func(s *State) check.Result {
			kc, err := s.kernelConfig()
			if err != nil {
				return errorf("%v", err)
			}
			if kc == nil {
				return na("no kernel configuration (boot/config-*) in the root")
			}
			v := kc.Values[key]
			n, err := strconv.ParseInt(v, 0, 64)
			ev := fmt.Sprintf("/%s: %s=%s", kc.File, key, v)
			if err == nil && n >= min {
				return pass(fmt.Sprintf("%s=%s", key, v), ev)
			}
			return fail(fmt.Sprintf("%s=%s, want at least %d", key, orDefault(v, "unset"), min), ev)
		},
	}
}
