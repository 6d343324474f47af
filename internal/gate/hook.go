package gate

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/vouch-dev/vouch/internal/secureboot"
)

// AptArchives reads what apt writes on the standard input of a
// DPkg::Pre-Install-Pkgs command (apt.conf(5), apt-pkg/deb/dpkgpm.cc
// RunScriptsWithPkgs) and returns the .deb files about to be unpacked.
//
// Version 1 (the default): one file name per line. Versions 2 and 3 (asked
// for with DPkg::Tools::Options::CMD::Version): a "VERSION N" line, the
// configuration space as "Key=Value" lines up to an empty line, then one line
// per package whose last field is the .deb file name, or **CONFIGURE** or
// **REMOVE** for packages that are not unpacked.
func AptArchives(r io.Reader) ([]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var (
		out     []string
		version = 1
		inConf  bool
		first   = true
	)
	for sc.Scan() {
		line := sc.Text()
		if first {
			first = false
			if v, ok := strings.CutPrefix(line, "VERSION "); ok {
				switch strings.TrimSpace(v) {
				case "2":
					version = 2
				case "3":
					version = 3
				default:
					return nil, fmt.Errorf("gate: apt hook protocol %q is not supported (want 1, 2 or 3)", strings.TrimSpace(v))
				}
				inConf = true
				continue
			}
		}
		if inConf {
			if strings.TrimSpace(line) == "" {
				inConf = false
			}
			continue
		}
		if version == 1 {
			if s := strings.TrimSpace(line); s != "" {
				out = append(out, s)
			}
			continue
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		last := f[len(f)-1]
		if last == "**CONFIGURE**" || last == "**REMOVE**" || !strings.HasPrefix(last, "/") && !strings.HasSuffix(last, ".deb") {
			continue
		}
		out = append(out, last)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("gate: reading apt's package list: %w", err)
	}
	return out, nil
}

// DpkgArgs are the archive arguments of a dpkg command line.
type DpkgArgs struct {
	// Install is true for the actions that unpack archives: -i/--install
	// and --unpack.
	Install bool
	// Recursive is -R/--recursive: Paths are directories searched for
	// *.deb.
	Recursive bool
	// Paths are the non-option arguments, as given (relative to dpkg's
	// working directory).
	Paths []string
}

// dpkgLongWithValue are dpkg's long options that take a value, which may be
// the next argument (dpkg's lib/dpkg/options.c accepts "--opt value" and
// "--opt=value").
var dpkgLongWithValue = map[string]bool{
	"admindir": true, "instdir": true, "root": true, "abort-after": true, "debug": true,
	"ignore-depends": true, "log": true, "status-fd": true, "status-logger": true,
	"pre-invoke": true, "post-invoke": true, "path-exclude": true, "path-include": true,
	"verify-format": true, "force": false,
}

// ParseDpkgArgs reads dpkg's argv (argv[0] included) the way dpkg's option
// parser does, enough to find the archives of an install or unpack action.
func ParseDpkgArgs(argv []string) DpkgArgs {
	var a DpkgArgs
	for i := 1; i < len(argv); i++ {
		s := argv[i]
		switch {
		case s == "--":
			a.Paths = append(a.Paths, argv[i+1:]...)
			return a
		case strings.HasPrefix(s, "--"):
			name, _, hasValue := strings.Cut(s[2:], "=")
			switch name {
			case "install", "unpack":
				a.Install = true
			case "recursive":
				a.Recursive = true
			}
			if dpkgLongWithValue[name] && !hasValue {
				i++
			}
		case strings.HasPrefix(s, "-") && len(s) > 1:
			for j := 1; j < len(s); j++ {
				switch s[j] {
				case 'i':
					a.Install = true
				case 'R':
					a.Recursive = true
				case 'D':
					// -Doctal: the value is the rest, or the next argument.
					if j == len(s)-1 {
						i++
					}
					j = len(s)
				}
			}
		default:
			a.Paths = append(a.Paths, s)
		}
	}
	return a
}

// HookConfig is what install-hook writes into a system's package-manager
// configuration.
type HookConfig struct {
	// Vouch is the absolute path of the vouch binary as the hooks see it.
	Vouch string
	// Args are the firmware flags every hook passes (--vars FILE ...).
	Args []string
}

// Validate refuses what cannot be written safely into the configuration
// syntaxes (apt's quoted strings, dpkg.cfg lines, Python literals).
func (c HookConfig) Validate() error {
	if !filepath.IsAbs(c.Vouch) {
		return fmt.Errorf("gate: the vouch path %q is not absolute", c.Vouch)
	}
	for _, s := range append([]string{c.Vouch}, c.Args...) {
		if strings.ContainsAny(s, "\"\n\r\\'\x00") {
			return fmt.Errorf("gate: %q contains a quote, backslash or line break, which the hook configuration cannot carry", s)
		}
	}
	return nil
}

// HookOptions are install-hook's choices.
type HookOptions struct {
	// Root is the system configured (absolute).
	Root string
	// Vouch is vouch's absolute path inside Root; "" takes Executable.
	Vouch string
	// Executable is the running vouch (symlinks resolved), which must lie
	// under Root when Vouch is "".
	Executable string
	// Firmware is what the hooks judge against; its files are paths
	// inside Root and must exist (a hook that cannot read them would stop
	// every install). None: the hooks read the running system's efivarfs.
	Firmware   secureboot.FirmwareSource
	SBATPolicy string
}

// NewHookConfig checks install-hook's choices against the system and
// returns the configuration to write. Errors say what to change.
func NewHookConfig(o HookOptions) (HookConfig, error) {
	var cfg HookConfig
	vouch := o.Vouch
	if vouch == "" {
		exe := o.Executable
		if tmp, err := filepath.EvalSymlinks(os.TempDir()); err == nil && o.Root == "/" && strings.HasPrefix(exe, tmp+string(filepath.Separator)) {
			return cfg, fmt.Errorf("gate: the running vouch (%s) is a temporary build (go run?): install it and give --vouch /PATH/INSIDE/ROOT", exe)
		}
		rel, err := filepath.Rel(o.Root, exe)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			return cfg, fmt.Errorf("gate: the running vouch (%s) is not inside --root %s: copy it there and give --vouch /PATH/INSIDE/ROOT", exe, o.Root)
		}
		vouch = "/" + rel
	} else if info, err := os.Stat(filepath.Join(o.Root, vouch)); err != nil || info.IsDir() {
		return cfg, fmt.Errorf("gate: --vouch %s: no such file under %s", vouch, o.Root)
	}
	cfg.Vouch = vouch
	src := o.Firmware
	n := 0
	for _, f := range []struct{ flag, v string }{{"--vars", src.Vars}, {"--efivars", src.EFIVars}, {"--firmware", src.Profile}} {
		if f.v == "" {
			continue
		}
		n++
		if f.flag != "--firmware" {
			if !filepath.IsAbs(f.v) {
				return cfg, fmt.Errorf("gate: %s %s: give the absolute path inside --root", f.flag, f.v)
			}
			if _, err := os.Stat(filepath.Join(o.Root, f.v)); err != nil {
				return cfg, fmt.Errorf("gate: %s %s: no such file under %s (a hook that cannot read it would stop every install)", f.flag, f.v, o.Root)
			}
		} else if _, err := secureboot.FromProfile(f.v); err != nil {
			return cfg, fmt.Errorf("gate: --firmware: %w", err)
		}
		cfg.Args = append(cfg.Args, f.flag, f.v)
	}
	if n > 1 {
		return cfg, fmt.Errorf("gate: give one of --vars, --efivars and --firmware")
	}
	if _, err := secureboot.ParseSBATPolicy(o.SBATPolicy); err != nil {
		return cfg, fmt.Errorf("gate: --sbat-policy: %w", err)
	}
	if o.SBATPolicy != "" && o.SBATPolicy != "automatic" {
		cfg.Args = append(cfg.Args, "--sbat-policy", o.SBATPolicy)
	}
	return cfg, cfg.Validate()
}

// shellWords quotes words for sh -c.
func shellWords(words []string) string {
	out := make([]string, len(words))
	for i, w := range words {
		if w != "" && strings.Trim(w, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == "" {
			out[i] = w
		} else {
			out[i] = "'" + w + "'"
		}
	}
	return strings.Join(out, " ")
}

func (c HookConfig) command(sub ...string) string {
	return shellWords(append(append([]string{c.Vouch, "gate"}, sub...), c.Args...))
}

const header = "Written by `vouch gate install-hook`: refuse a shim this machine's firmware would not boot.\nRemove this file (or run `vouch gate install-hook --remove`) to turn the gate off.\n"

func commented(prefix string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(header), "\n") {
		b.WriteString(prefix + l + "\n")
	}
	return b.String()
}

// AptConf is /etc/apt/apt.conf.d/NNvouch-gate: apt runs the command with the
// .deb files on its standard input (protocol version 1) before it calls dpkg,
// and aborts the whole operation when the command exits non-zero.
func AptConf(c HookConfig) string {
	cmd := c.command("apt-hook")
	return commented("// ") +
		fmt.Sprintf("DPkg::Pre-Install-Pkgs { \"%s\"; };\n", cmd) +
		fmt.Sprintf("DPkg::Tools::Options::%s::Version \"1\";\n", c.Vouch)
}

// DpkgCfg is /etc/dpkg/dpkg.cfg.d/vouch-gate: dpkg runs pre-invoke
// commands through sh -c before unpack, install, configure and remove runs
// (DPKG_HOOK_ACTION names which), and stops when one fails.
func DpkgCfg(c HookConfig) string {
	return commented("# ") + "pre-invoke=" + c.command("dpkg-hook") + "\n"
}

// DnfPluginConf is /etc/dnf/plugins/vouch_gate.conf.
func DnfPluginConf() string {
	return commented("# ") + "[main]\nenabled=1\n"
}

// DnfPlugin is the dnf 4 Python plugin (dnf-plugins/vouch_gate.py). Its
// pre_transaction hook runs after the packages are downloaded and before
// rpm touches the system; it hands every incoming package file
// (tsi.pkg.localPkg()) to `vouch gate rpm --hook` (with --target for dnf
// --installroot) and raises
// dnf.exceptions.Error, which aborts the transaction, when vouch refuses.
func DnfPlugin(c HookConfig) string {
	args := make([]string, 0, len(c.Args)+4)
	for _, s := range append([]string{c.Vouch, "gate", "rpm", "--hook"}, c.Args...) {
		args = append(args, "'"+s+"'")
	}
	return commented("# ") + `"""vouch gate: refuse a shim this machine's firmware would not boot."""
import subprocess

import dnf
import dnf.exceptions
import dnf.transaction

VOUCH = [` + strings.Join(args, ", ") + `]


class VouchGate(dnf.Plugin):
    name = 'vouch_gate'

    def pre_transaction(self):
        paths = []
        for tsi in self.base.transaction:
            if tsi.action not in dnf.transaction.FORWARD_ACTIONS:
                continue
            path = tsi.pkg.localPkg()
            if path:
                paths.append(path)
        if not paths:
            return
        cmd = list(VOUCH)
        root = self.base.conf.installroot
        if root and root != '/':
            # dnf --installroot: the GRUB and kernels are the installroot's.
            cmd += ['--target', root]
        try:
            code = subprocess.call(cmd + ['--'] + paths)
        except OSError as e:
            raise dnf.exceptions.Error('vouch gate could not run %s: %s' % (VOUCH[0], e))
        if code != 0:
            raise dnf.exceptions.Error(
                'vouch gate refused this transaction (exit %d): see its message above' % code)
`
}
