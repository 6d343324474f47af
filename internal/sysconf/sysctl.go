package sysconf

import (
	"fmt"
	"path"
	"strings"
)

// SysctlSetting is one assignment of a sysctl.d(5) file.
type SysctlSetting struct {
	Key, Value, Where string // Key with dots; Where is "file:line"
	File              string
	Line              int
	Pattern           bool // Key holds a glob (net.ipv4.conf.*.rp_filter)
}

// ParseSysctl returns the assignments of one sysctl.d file in order. A line
// without "=" is ignored, as systemd-sysctl warns and ignores it; a leading
// "-" (ignore a failure to set) is dropped.
func ParseSysctl(file, text string) []SysctlSetting {
	var out []SysctlSetting
	for i, l := range Lines(text) {
		t := strings.TrimSpace(l)
		if t == "" || t[0] == '#' || t[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(t, "=")
		if !ok {
			continue // systemd-sysctl warns and ignores the line
		}
		k = strings.TrimPrefix(strings.TrimSpace(k), "-")
		k = NormSysctlKey(k)
		out = append(out, SysctlSetting{Key: k, Value: strings.TrimSpace(v), File: file, Line: i + 1,
			Where: fmt.Sprintf("%s:%d", file, i+1), Pattern: strings.ContainsAny(k, "*?[")})
	}
	return out
}

// NormSysctlKey writes a key with dots: "net/ipv4/ip_forward" and
// "net.ipv4.ip_forward" are the same key. A key with slashes keeps dots inside
// elements (interface names) as they are.
func NormSysctlKey(k string) string {
	if strings.Contains(k, "/") {
		return strings.ReplaceAll(strings.Trim(k, "/"), "/", ".")
	}
	return k
}

// Matches reports whether the setting assigns key (directly or by a glob).
func (st SysctlSetting) Matches(key string) bool {
	if !st.Pattern {
		return st.Key == key
	}
	ok, _ := path.Match(strings.ReplaceAll(st.Key, ".", "/"), strings.ReplaceAll(key, ".", "/"))
	return ok
}
