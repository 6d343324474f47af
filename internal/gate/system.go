package gate

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// DpkgInvocation is the dpkg process a pre-invoke hook runs under, read from
// procfs: dpkg tells a hook only the action (DPKG_HOOK_ACTION), not the
// archives, so the hook reads them from dpkg's command line.
type DpkgInvocation struct {
	// Proc is the procfs mount ("/proc"), PID dpkg's process ID.
	Proc string
	PID  int
	Args DpkgArgs
	// Parent is the command name (comm) of dpkg's parent, "" if unknown.
	Parent string
}

// FindDpkg walks up from pid (the hook's parent) to the dpkg process and
// reads its command line (PROC/PID/cmdline). dpkg runs hooks through sh -c,
// which may or may not exec the command, so dpkg is the parent or the
// grandparent; a few more levels are allowed for wrappers.
func FindDpkg(proc string, pid int) (*DpkgInvocation, error) {
	for depth := 0; depth < 8 && pid > 1; depth++ {
		b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "cmdline"))
		if err != nil {
			return nil, fmt.Errorf("gate: %s not readable (is procfs mounted?): %w", proc, err)
		}
		argv := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(argv) > 0 && filepath.Base(argv[0]) == "dpkg" {
			inv := &DpkgInvocation{Proc: proc, PID: pid, Args: ParseDpkgArgs(argv)}
			if pp, err := parentPID(proc, pid); err == nil {
				if comm, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pp), "comm")); err == nil {
					inv.Parent = strings.TrimSpace(string(comm))
				}
			}
			return inv, nil
		}
		if pid, err = parentPID(proc, pid); err != nil {
			return nil, err
		}
	}
	return nil, errors.New("gate: no dpkg process among the hook's parents")
}

// parentPID reads the fourth field of PROC/PID/stat (after the command name
// in parentheses, which may itself hold spaces and parentheses; proc(5)).
func parentPID(proc string, pid int) (int, error) {
	p := filepath.Join(proc, strconv.Itoa(pid), "stat")
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, fmt.Errorf("gate: %w", err)
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("gate: %s: unexpected format", p)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0, fmt.Errorf("gate: %s: unexpected format", p)
	}
	return strconv.Atoi(f[1])
}

// ParentIsApt reports that dpkg was started by an apt front end.
func (d *DpkgInvocation) ParentIsApt() bool {
	switch d.Parent {
	case "apt", "apt-get", "aptitude", "unattended-upgr", "packagekitd":
		return true
	}
	return false
}

// Archives resolves dpkg's path arguments against its working directory
// (PROC/PID/cwd, which stays right inside a chroot) and, with -R, finds the
// *.deb files below directories as dpkg does. Only arguments that are
// Debian archives by content count, so an option value is never taken for
// a package. display holds the paths as dpkg was given them.
func (d *DpkgInvocation) Archives() (files, display []string) {
	a := d.Args
	if !a.Install {
		return nil, nil
	}
	cwd := filepath.Join(d.Proc, strconv.Itoa(d.PID), "cwd")
	for _, arg := range a.Paths {
		p := arg
		if !filepath.IsAbs(p) {
			p = filepath.Join(cwd, p)
		}
		if a.Recursive {
			filepath.WalkDir(p, func(q string, e fs.DirEntry, err error) error {
				if err == nil && e.Type().IsRegular() && strings.HasSuffix(q, ".deb") {
					files = append(files, q)
					display = append(display, filepath.Join(arg, strings.TrimPrefix(q, p)))
				}
				return nil
			})
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		head := make([]byte, 24)
		k, _ := io.ReadFull(f, head)
		f.Close()
		if IsDeb(head[:k]) {
			files = append(files, p)
			display = append(display, arg)
		}
	}
	return files, display
}

// Where install-hook writes, relative to the root.
const (
	AptConfPath   = "etc/apt/apt.conf.d/05vouch-gate"
	DpkgCfgPath   = "etc/dpkg/dpkg.cfg.d/vouch-gate"
	DnfConfPath   = "etc/dnf/plugins/vouch_gate.conf"
	dnfPluginName = "vouch_gate.py"
)

// HookFile is one file install-hook writes.
type HookFile struct {
	Kind    string // "apt", "dpkg", "dnf"
	Path    string // relative to the root
	Content func(HookConfig) string
}

// PlanHooks lists the hook files for the system under root: for kinds
// ("apt", "dpkg", "dnf"), or when kinds is empty for what the system has
// (etc/apt, etc/dpkg, a dnf-plugins directory of python3-dnf).
func PlanHooks(root string, kinds []string) ([]HookFile, error) {
	exists := func(p string) bool { _, err := os.Stat(filepath.Join(root, p)); return err == nil }
	var dnfDirs []string
	for _, g := range []string{"usr/lib/python3*/site-packages/dnf-plugins", "usr/lib/python3/dist-packages/dnf-plugins"} {
		m, _ := filepath.Glob(filepath.Join(root, g))
		for _, d := range m {
			if rel, err := filepath.Rel(root, d); err == nil {
				dnfDirs = append(dnfDirs, rel)
			}
		}
	}
	want := map[string]bool{}
	if len(kinds) == 0 {
		want["apt"] = exists("etc/apt")
		want["dpkg"] = exists("etc/dpkg")
		want["dnf"] = len(dnfDirs) > 0
	}
	for _, k := range kinds {
		switch k {
		case "apt", "dpkg", "dnf":
			want[k] = true
		default:
			return nil, fmt.Errorf("--kind %q: want apt, dpkg or dnf", k)
		}
	}
	var plan []HookFile
	if want["apt"] {
		plan = append(plan, HookFile{"apt", AptConfPath, AptConf})
	}
	if want["dpkg"] {
		plan = append(plan, HookFile{"dpkg", DpkgCfgPath, DpkgCfg})
	}
	if want["dnf"] {
		if len(dnfDirs) == 0 {
			return nil, fmt.Errorf("--kind dnf: no dnf-plugins directory under %s (is python3-dnf installed?)", root)
		}
		plan = append(plan, HookFile{"dnf", DnfConfPath, func(HookConfig) string { return DnfPluginConf() }})
		for _, d := range dnfDirs {
			plan = append(plan, HookFile{"dnf", filepath.Join(d, dnfPluginName), DnfPlugin})
		}
	}
	if len(plan) == 0 {
		return nil, fmt.Errorf("%s has no apt, dpkg or dnf configuration to hook into (give --kind)", root)
	}
	return plan, nil
}
