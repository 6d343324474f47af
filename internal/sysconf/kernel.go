package sysconf

import "strings"

// ParseKconfig parses a kernel configuration (boot/config-*): CONFIG_X to
// "y", "m", a literal value, or "n" for "# CONFIG_X is not set".
func ParseKconfig(text string) map[string]string {
	m := map[string]string{}
	for _, l := range Lines(text) {
		if strings.HasPrefix(l, "# CONFIG_") && strings.HasSuffix(l, " is not set") {
			m[strings.TrimSuffix(strings.TrimPrefix(l, "# "), " is not set")] = "n"
			continue
		}
		if key, v, ok := strings.Cut(l, "="); ok && strings.HasPrefix(key, "CONFIG_") {
			m[key] = v
		}
	}
	return m
}

// Cmdline is a kernel command line and where it was read.
type Cmdline struct {
	Args   []string
	Source string
}

// Param returns the last value of a kernel parameter (key=value), or "" with
// present true for a bare flag. The kernel treats "-" and "_" in a name
// alike.
func (c *Cmdline) Param(key string) (val string, present bool) {
	for _, a := range c.Args {
		k, v, _ := strings.Cut(a, "=")
		if k == key || strings.ReplaceAll(k, "-", "_") == strings.ReplaceAll(key, "-", "_") {
			val, present = v, true
		}
	}
	return val, present
}

// GrubLinuxArgs returns the kernel arguments of the first linux (or
// linuxefi) line of a GRUB configuration, the first menu entry's, and its
// 1-based line number.
func GrubLinuxArgs(text string) (args []string, line int, ok bool) {
	for i, l := range Lines(text) {
		f := strings.Fields(l)
		if len(f) >= 2 && (f[0] == "linux" || f[0] == "linuxefi") {
			return f[2:], i + 1, true
		}
	}
	return nil, 0, false
}

// LoaderOptions returns the kernel arguments of the first options line of a
// Boot Loader Specification entry (boot/loader/entries/*.conf).
func LoaderOptions(text string) ([]string, bool) {
	for _, l := range Lines(text) {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "options" {
			return f[1:], true
		}
	}
	return nil, false
}

// GrubDefaults are the shell assignments of etc/default/grub and
// etc/default/grub.d/*.cfg, read in order.
type GrubDefaults struct {
	vals map[string]string
}

// maxGrubValue bounds a value: self-references double it per line.
const maxGrubValue = 1 << 16

// Parse reads one file's assignments, expanding a self-reference such as
// GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX x". A value that grows past 64 KiB
// is an *Error.
func (g *GrubDefaults) Parse(file, text string) error {
	if g.vals == nil {
		g.vals = map[string]string{}
	}
	vals := g.vals
	for _, l := range Lines(text) {
		k, v, ok := strings.Cut(strings.TrimSpace(l), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		v = strings.Trim(strings.TrimSpace(v), `"'`)
		v = strings.ReplaceAll(v, "$"+k, vals[k])
		v = strings.ReplaceAll(v, "${"+k+"}", vals[k])
		if len(v) > maxGrubValue {
			// Self-references double a value per line; stop a file that
			// would grow it without bound.
			return &Error{Path: file, Reason: k + " expands to more than 64 KiB"}
		}
		vals[k] = v
	}
	return nil
}

// Cmdline is the command line update-grub would generate: "ro", then
// GRUB_CMDLINE_LINUX and GRUB_CMDLINE_LINUX_DEFAULT.
func (g *GrubDefaults) Cmdline() []string {
	return strings.Fields("ro " + g.vals["GRUB_CMDLINE_LINUX"] + " " + g.vals["GRUB_CMDLINE_LINUX_DEFAULT"])
}
