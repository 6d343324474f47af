package imagetest

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// problemPatterns are the kernel and userspace crash signatures looked for on
// the console and in the journal, the "badness" kola checks after every test
// (coreos-assembler mantle/kola/harness.go: kernel panic, Oops, WARNING,
// emergency shell, segfault, OOM). Sources of the exact texts: the kernel's
// panic.c (`Kernel panic - not syncing`, `WARNING: CPU: %d PID: %d at`),
// arch/x86/kernel/dumpstack.c (`Oops: `, `Call Trace:`), lib/bug.c (`kernel
// BUG at`), arch/x86/mm/fault.c (`BUG: unable to handle`, `segfault at`),
// mm/oom_kill.c (`Out of memory: Killed process`), systemd-coredump ("dumped
// core"), systemd's emergency.service and sulogin.
var problemPatterns = []struct {
	reason string
	re     *regexp.Regexp
}{
	{"kernel panic", regexp.MustCompile(`Kernel panic - not syncing`)},
	{"kernel Oops", regexp.MustCompile(`\bOops: |Internal error: Oops`)},
	{"kernel BUG", regexp.MustCompile(`\bBUG: |kernel BUG at `)},
	{"kernel WARNING", regexp.MustCompile(`WARNING: CPU: \d+ PID: \d+ at `)},
	{"kernel call trace", regexp.MustCompile(`Call Trace:`)},
	{"general protection fault", regexp.MustCompile(`general protection fault`)},
	{"segfault", regexp.MustCompile(`segfault at [0-9a-f]+ `)},
	{"core dump", regexp.MustCompile(`systemd-coredump\[\d+\]: Process \d+ .* dumped core`)},
	{"out of memory", regexp.MustCompile(`Out of memory: Kill(ed)? process`)},
	{"emergency shell", regexp.MustCompile(`You are in emergency mode|Entering emergency mode|(Starting|Started) emergency\.service|Dropping to a shell`)},
}

// Problem is one line that matched a problem pattern.
type Problem struct {
	Line   int // 1-based within what was scanned
	Reason string
	Text   string
}

func (p Problem) String() string { return fmt.Sprintf("line %d: %s: %s", p.Line, p.Reason, p.Text) }

// ScanProblems returns the lines of log that show a crash, an Oops, a kernel
// warning or an emergency shell. Lines that record our own commands (sudo's
// COMMAND= log) are ignored, so a command line can never match itself.
func ScanProblems(log []string) []Problem {
	var out []Problem
	for i, l := range log {
		if strings.Contains(l, "COMMAND=") {
			continue
		}
		for _, p := range problemPatterns {
			if p.re.MatchString(l) {
				out = append(out, Problem{Line: i + 1, Reason: p.reason, Text: strings.TrimSpace(l)})
				break
			}
		}
	}
	return out
}

// SecureBootState is the guest's Secure Boot state as one source shows it.
type SecureBootState int

// States.
const (
	SBUnknown  SecureBootState = iota
	SBEnabled                  // enforced
	SBDisabled                 // UEFI without Secure Boot
	SBNoEFI                    // booted through legacy BIOS
)

func (s SecureBootState) String() string {
	switch s {
	case SBEnabled:
		return "enabled"
	case SBDisabled:
		return "disabled"
	case SBNoEFI:
		return "no UEFI"
	}
	return "unknown"
}

var (
	// arch/x86/kernel/setup.c / drivers/firmware/efi: "secureboot: Secure
	// boot enabled", "... disabled", "... could not be determined".
	reKernelSB = regexp.MustCompile(`secureboot: Secure boot (enabled|disabled|could not be determined)`)
	// The EFI stub (drivers/firmware/efi/libstub/secureboot.c) prints this
	// only when Secure Boot is on.
	reStubSB = regexp.MustCompile(`EFI stub: UEFI Secure Boot is enabled`)
	// The kernel's first line: it started.
	reLinuxVersion = regexp.MustCompile(`Linux version \d+\.\d+`)
	reCmdline      = regexp.MustCompile(`Kernel command line: (.*)$`)
	reLogin        = regexp.MustCompile(`\S login: ?$`)
)

// ConsoleSecureBoot reads the Secure Boot state from the kernel's messages on
// the console, with the line that says it.
func ConsoleSecureBoot(console []string) (SecureBootState, string) {
	stub := ""
	for _, l := range console {
		if m := reKernelSB.FindStringSubmatch(l); m != nil {
			switch m[1] {
			case "enabled":
				return SBEnabled, strings.TrimSpace(l)
			case "disabled":
				return SBDisabled, strings.TrimSpace(l)
			}
			return SBUnknown, strings.TrimSpace(l)
		}
		if stub == "" && reStubSB.MatchString(l) {
			stub = strings.TrimSpace(l)
		}
	}
	if stub != "" {
		return SBEnabled, stub
	}
	return SBUnknown, ""
}

// GuestSecureBoot reads the output of secureBootCommand.
func GuestSecureBoot(out string) (SecureBootState, error) {
	out = strings.TrimSpace(out)
	switch {
	case out == "no-efi":
		return SBNoEFI, nil
	case out == "no-var":
		// UEFI without the SecureBoot variable: the firmware does not
		// support Secure Boot, so it is off (UEFI 2.10 §3.3).
		return SBDisabled, nil
	case strings.Contains(out, "SecureBoot enabled"):
		return SBEnabled, nil
	case strings.Contains(out, "SecureBoot disabled"):
		return SBDisabled, nil
	}
	// od -An -tu1: the 4 attribute bytes, then the value.
	f := strings.Fields(out)
	if len(f) != 5 {
		return SBUnknown, fmt.Errorf("imagetest: unexpected SecureBoot variable dump %q", out)
	}
	v, err := strconv.Atoi(f[4])
	if err != nil {
		return SBUnknown, fmt.Errorf("imagetest: unexpected SecureBoot variable dump %q", out)
	}
	if v == 1 {
		return SBEnabled, nil
	}
	return SBDisabled, nil
}

// secureBootCommand prints "no-efi" without UEFI, mokutil's answer when it is
// installed, else the SecureBoot variable (EFI global variable GUID) as
// decimal bytes. efivarfs files are readable by everyone.
const secureBootCommand = `if [ ! -d /sys/firmware/efi ]; then echo no-efi; ` +
	`elif command -v mokutil >/dev/null 2>&1; then mokutil --sb-state 2>&1; ` +
	`elif [ -r /sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c ]; then ` +
	`od -An -tu1 /sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c; ` +
	`else echo no-var; fi`

// ConsoleCmdline returns the kernel command line printed on the console.
func ConsoleCmdline(console []string) (string, bool) {
	for _, l := range console {
		if m := reCmdline.FindStringSubmatch(l); m != nil {
			return strings.TrimSpace(m[1]), true
		}
	}
	return "", false
}

// SerialConsoleArg returns the console= argument naming a serial port
// (ttyS*, ttyAMA*, hvc*), the last one (the kernel's /dev/console), if any.
func SerialConsoleArg(cmdline string) (string, bool) {
	found := ""
	for _, a := range strings.Fields(cmdline) {
		v, ok := strings.CutPrefix(a, "console=")
		if !ok {
			continue
		}
		if strings.HasPrefix(v, "ttyS") || strings.HasPrefix(v, "ttyAMA") || strings.HasPrefix(v, "hvc") {
			found = a
		}
	}
	return found, found != ""
}

// FstabRoot finds the entry for / in an fstab(5) and says whether it names
// the file system by a stable identifier (UUID= or PARTUUID=, or the
// /dev/disk/by-uuid and by-partuuid links), which survives the disk showing up
// as /dev/sda, /dev/vda or /dev/nvme0n1 on another hypervisor.
func FstabRoot(fstab string) (spec string, stable bool, found bool) {
	for _, l := range strings.Split(fstab, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		f := strings.Fields(l)
		if len(f) < 2 || f[1] != "/" {
			continue
		}
		spec = f[0]
		up := strings.ToUpper(spec)
		stable = strings.HasPrefix(up, "UUID=") || strings.HasPrefix(up, "PARTUUID=") ||
			strings.HasPrefix(spec, "/dev/disk/by-uuid/") || strings.HasPrefix(spec, "/dev/disk/by-partuuid/")
		found = true
	}
	return spec, stable, found
}

// FailedUnits parses `systemctl list-units --state=failed --plain --no-legend`.
func FailedUnits(out string) []string {
	var units []string
	for _, l := range lines(out) {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		// Without --plain older systemd prefixes a bullet.
		if f[0] == "●" || f[0] == "*" {
			f = f[1:]
		}
		if len(f) > 0 {
			units = append(units, f[0])
		}
	}
	return units
}

// DynamicAddresses returns the global IPv4 addresses of `ip -4 -o addr show
// scope global` that came from DHCP (iproute2 marks them "dynamic": they have
// a lease lifetime).
func DynamicAddresses(out string) (dynamic, static []string) {
	for _, l := range lines(out) {
		f := strings.Fields(l)
		addr, dev := "", ""
		if len(f) > 1 {
			dev = f[1]
		}
		for i, x := range f {
			if x == "inet" && i+1 < len(f) {
				addr = f[i+1]
			}
		}
		if addr == "" {
			continue
		}
		label := addr + " on " + dev
		if slices.Contains(f, "dynamic") {
			dynamic = append(dynamic, label)
		} else {
			static = append(static, label)
		}
	}
	return dynamic, static
}

// Swaps lists the active swap areas of /proc/swaps.
func Swaps(procSwaps string) []string {
	var out []string
	for i, l := range lines(procSwaps) {
		if i == 0 && strings.HasPrefix(l, "Filename") {
			continue
		}
		if f := strings.Fields(l); len(f) > 0 {
			out = append(out, f[0])
		}
	}
	return out
}

// MountOptions returns the options of `findmnt -n -o OPTIONS /`.
func MountOptions(out string) []string {
	return strings.Split(strings.TrimSpace(out), ",")
}
