package baseline

import (
	"errors"

	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/vouch-dev/vouch/internal/check"
	"github.com/vouch-dev/vouch/internal/remediate"
	"github.com/vouch-dev/vouch/internal/sysconf"
)

// sysctlDirs are systemd-sysctl's directories (sysctl.d(5)), highest
// precedence first: a file name in an earlier directory hides the same name in
// a later one.
var sysctlDirs = []string{"etc/sysctl.d", "run/sysctl.d", "usr/local/lib/sysctl.d", "usr/lib/sysctl.d", "lib/sysctl.d"}

// vouchSysctlFile is where remediation sets kernel parameters.
const vouchSysctlFile = "etc/sysctl.d/60-vouch-hardening.conf"

// sysctlConfig returns every assignment in the order systemd-sysctl applies
// them: all *.conf files sorted by name across the directories, then
// etc/sysctl.conf when no drop-in links to it (as `sysctl --system` reads it
// last).
func (s *State) sysctlConfig() ([]sysconf.SysctlSetting, error) {
	return cached(s, "sysctl", func() ([]sysconf.SysctlSetting, error) {
		byName, names, err := s.dropIns(sysctlDirs, ".conf")
		if err != nil {
			return nil, err
		}
		files := make([]string, 0, len(names)+1)
		linksConf := false
		for _, n := range names {
			f := byName[n]
			files = append(files, f)
			if t, err := s.Root.ReadLink(f); err == nil && path.Base(t) == "sysctl.conf" {
				linksConf = true
			}
		}
		if !linksConf {
			files = append(files, "etc/sysctl.conf")
		}
		var out []sysconf.SysctlSetting
		for _, f := range files {
			text, ok, err := s.readText(f)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			out = append(out, sysconf.ParseSysctl(f, text)...)
		}
		return out, nil
	})
}

// sysctlValue is an effective kernel parameter with where it came from.
type sysctlValue struct {
	Value   string
	Source  string // "/proc/sys (running kernel)", "etc/sysctl.d/x.conf:3", "kernel default"
	Setting *sysconf.SysctlSetting
	Set     bool // false: not configured, Value is the kernel default ("" if unknown)
}

// sysctl returns the value of key that applies: on the live host the running
// value from /proc/sys; offline the last assignment of the boot
// configuration, else the kernel's default.
func (s *State) sysctl(key string) (sysctlValue, error) {
	if s.Live {
		p := "proc/sys/" + strings.ReplaceAll(key, ".", "/")
		text, ok, err := s.readText(p)
		if err != nil {
			return sysctlValue{}, err
		}
		if ok {
			return sysctlValue{Value: strings.Join(strings.Fields(text), " "), Source: "/" + p + " (running kernel)", Set: true}, nil
		}
		return sysctlValue{}, &fs.PathError{Op: "read", Path: "/" + p, Err: fs.ErrNotExist}
	}
	settings, err := s.sysctlConfig()
	if err != nil {
		return sysctlValue{}, err
	}
	var last *sysconf.SysctlSetting
	for i := range settings {
		if settings[i].Matches(key) {
			last = &settings[i]
		}
	}
	if last != nil {
		return sysctlValue{Value: last.Value, Source: last.Where + " (boot configuration; offline target)", Setting: last, Set: true}, nil
	}
	d, note := s.sysctlDefault(key)
	src := "not set in any sysctl.d file: kernel default"
	if note != "" {
		src += " (" + note + ")"
	}
	return sysctlValue{Value: d, Source: src + "; offline target"}, nil
}

// sysctlDefault is the kernel's built-in default of a parameter, taking the
// kernel configuration into account where it decides the default.
func (s *State) sysctlDefault(key string) (string, string) {
	kc, _ := s.kernelConfig()
	cfg := func(name string) string {
		if kc == nil {
			return ""
		}
		return kc.Values[name]
	}
	switch key {
	case "kernel.dmesg_restrict":
		if cfg("CONFIG_SECURITY_DMESG_RESTRICT") == "y" {
			return "1", "CONFIG_SECURITY_DMESG_RESTRICT=y"
		}
		return "0", ""
	case "kernel.unprivileged_bpf_disabled":
		if cfg("CONFIG_BPF_UNPRIV_DEFAULT_OFF") == "y" {
			return "2", "CONFIG_BPF_UNPRIV_DEFAULT_OFF=y"
		}
		return "0", ""
	case "kernel.yama.ptrace_scope":
		if cfg("CONFIG_SECURITY_YAMA") == "y" {
			return "1", "CONFIG_SECURITY_YAMA=y"
		}
		return "", "no Yama in the kernel"
	case "dev.tty.ldisc_autoload":
		if cfg("CONFIG_LDISC_AUTOLOAD") == "n" {
			return "0", "CONFIG_LDISC_AUTOLOAD is not set"
		}
		return "1", ""
	case "kernel.sysrq":
		if v := cfg("CONFIG_MAGIC_SYSRQ_DEFAULT_ENABLE"); v != "" {
			if n, err := strconv.ParseInt(v, 0, 64); err == nil {
				return strconv.FormatInt(n, 10), "CONFIG_MAGIC_SYSRQ_DEFAULT_ENABLE=" + v
			}
		}
		return "1", ""
	case "kernel.perf_event_paranoid":
		if cfg("CONFIG_SECURITY_PERF_EVENTS_RESTRICT") == "y" {
			return "3", "CONFIG_SECURITY_PERF_EVENTS_RESTRICT=y"
		}
		return "2", ""
	}
	if d, ok := kernelDefaults[key]; ok {
		return d, ""
	}
	return "", "unknown"
}

// kernelDefaults are built-in defaults of the parameters the rules read
// (Documentation/admin-guide/sysctl and networking/ip-sysctl.rst).
var kernelDefaults = map[string]string{
	"net.ipv4.ip_forward":                        "0",
	"net.ipv6.conf.all.forwarding":               "0",
	"net.ipv4.conf.all.send_redirects":           "1",
	"net.ipv4.conf.default.send_redirects":       "1",
	"net.ipv4.icmp_ignore_bogus_error_responses": "1",
	"net.ipv4.icmp_echo_ignore_broadcasts":       "1",
	"net.ipv4.conf.all.accept_redirects":         "1",
	"net.ipv4.conf.default.accept_redirects":     "1",
	"net.ipv6.conf.all.accept_redirects":         "1",
	"net.ipv6.conf.default.accept_redirects":     "1",
	"net.ipv4.conf.all.secure_redirects":         "1",
	"net.ipv4.conf.default.secure_redirects":     "1",
	"net.ipv4.conf.all.rp_filter":                "0",
	"net.ipv4.conf.default.rp_filter":            "0",
	"net.ipv4.conf.all.accept_source_route":      "0",
	"net.ipv4.conf.default.accept_source_route":  "1",
	"net.ipv6.conf.all.accept_source_route":      "0",
	"net.ipv6.conf.default.accept_source_route":  "0",
	"net.ipv4.conf.all.log_martians":             "0",
	"net.ipv4.conf.default.log_martians":         "0",
	"net.ipv4.tcp_syncookies":                    "1",
	"net.ipv6.conf.all.accept_ra":                "1",
	"net.ipv6.conf.default.accept_ra":            "1",
	"kernel.randomize_va_space":                  "2",
	"kernel.kptr_restrict":                       "0",
	"fs.protected_symlinks":                      "0",
	"fs.protected_hardlinks":                     "0",
	"fs.protected_fifos":                         "0",
	"fs.protected_regular":                       "0",
	"fs.suid_dumpable":                           "0",
	"net.core.bpf_jit_harden":                    "0",
	"kernel.kexec_load_disabled":                 "0",
	"vm.unprivileged_userfaultfd":                "0",
	"kernel.modules_disabled":                    "0",
	"kernel.io_uring_disabled":                   "0",
	"user.max_user_namespaces":                   "",
	"vm.mmap_min_addr":                           "65536",
	"kernel.core_uses_pid":                       "0",
	"net.ipv4.tcp_rfc1337":                       "0",
	"kernel.unprivileged_userns_clone":           "1",
	"net.ipv4.conf.all.arp_ignore":               "0",
	"kernel.panic_on_oops":                       "0",
}

// sysctlCompare says whether got meets want under op ("=", ">=", "<=", "in").
func sysctlCompare(got, op, want string) bool {
	switch op {
	case "=":
		return strings.Join(strings.Fields(got), " ") == want
	case "in":
		for _, w := range strings.Split(want, "|") {
			if strings.TrimSpace(got) == w {
				return true
			}
		}
		return false
	}
	g, err1 := strconv.ParseInt(strings.TrimSpace(got), 0, 64)
	w, err2 := strconv.ParseInt(want, 0, 64)
	if err1 != nil || err2 != nil {
		return false
	}
	if op == ">=" {
		return g >= w
	}
	return g <= w
}

// sysctlRule builds a sysctl audit and its fix: set key = fixValue in
// 60-vouch-hardening.conf, or rewrite the winning assignment in place when it
// sits in a file applied after ours.
func sysctlRule(key, op, want string) Control {
	expect := key + " " + op + " " + want
	if op == "=" {
		expect = key + " = " + want
	}
	fixValue := strings.Split(want, "|")[0]
	return Control{
		Remedy: fmt.Sprintf("Set %s = %s in /%s and apply it with `sysctl --system` (or reboot).", key, fixValue, vouchSysctlFile),
		Audit: func(s *State) check.Result {
			v, err := s.sysctl(key)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return na(fmt.Sprintf("%s does not exist in the running kernel", key))
				}
				return errorf("%v", err)
			}
			if !v.Set && v.Value == "" {
				return fail(fmt.Sprintf("%s is not set and its kernel default is unknown; want %s", key, expect), "source: "+v.Source)
			}
			ev := []string{fmt.Sprintf("%s = %s", key, v.Value), "source: " + v.Source}
			if sysctlCompare(v.Value, op, want) {
				return pass(fmt.Sprintf("%s = %s", key, v.Value), ev...)
			}
			return fail(fmt.Sprintf("%s = %s, want %s", key, v.Value, expect), ev...)
		},
		Fix: func(s *State, c *remediate.Changer) error {
			return setSysctl(s, c, key, fixValue)
		},
	}
}
