package sysconf

import "strings"

// ParseLoginDefs parses login.defs(5): "KEY VALUE" lines, the last occurrence
// winning as shadow-utils' getdef does; quotes around the value are dropped.
func ParseLoginDefs(file, text string) map[string]KV {
	return parseKeyValues(file, text, func(l string) (string, string, bool) {
		f := strings.Fields(l)
		if len(f) < 2 {
			return "", "", false
		}
		return f[0], strings.Trim(f[1], `"`), true
	})
}

func parseKeyValues(file, text string, split func(string) (string, string, bool)) map[string]KV {
	m := map[string]KV{}
	for i, l := range Lines(text) {
		t := strings.TrimSpace(l)
		if t == "" || t[0] == '#' {
			continue
		}
		if k, v, ok := split(t); ok {
			m[k] = KV{v, file, i + 1}
		}
	}
	return m
}

// ConfValue finds the last "key = value" (or "key value") line of a
// key-value file such as faillock.conf or pwquality.conf.
func ConfValue(file, text, key string) (KV, bool) {
	var out KV
	found := false
	for i, l := range Lines(text) {
		t := strings.TrimSpace(l)
		if t == "" || t[0] == '#' {
			continue
		}
		k, v, has := strings.Cut(t, "=")
		if !has {
			f := strings.Fields(t)
			if len(f) < 2 {
				continue
			}
			k, v = f[0], f[1]
		}
		if strings.TrimSpace(k) == key {
			out, found = KV{strings.TrimSpace(v), file, i + 1}, true
		}
	}
	return out, found
}

// INIValue returns the last assignment of key in section of a systemd-style
// configuration file (journald.conf, coredump.conf, timesyncd.conf and their
// drop-ins).
func INIValue(file, text, section, key string) (KV, bool) {
	var found KV
	ok := false
	cur := ""
	for i, l := range Lines(text) {
		t := strings.TrimSpace(l)
		if t == "" || t[0] == '#' || t[0] == ';' {
			continue
		}
		if t[0] == '[' {
			cur = strings.Trim(t, "[]")
			continue
		}
		k, v, has := strings.Cut(t, "=")
		if has && cur == section && strings.TrimSpace(k) == key {
			found, ok = KV{strings.TrimSpace(v), file, i + 1}, true
		}
	}
	return found, ok
}

// ParseAssignments parses the KEY=VALUE lines of a shell-style defaults file
// (etc/default/useradd), the last occurrence winning; quotes around the value
// are dropped.
func ParseAssignments(file, text string) map[string]KV {
	return parseKeyValues(file, text, func(l string) (string, string, bool) {
		k, v, ok := strings.Cut(l, "=")
		return strings.TrimSpace(k), strings.Trim(strings.TrimSpace(v), `"`), ok
	})
}
