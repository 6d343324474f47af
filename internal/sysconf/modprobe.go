package sysconf

import (
	"fmt"
	"path"
	"strings"
)

// ModprobeRule is one command of a modprobe.d(5) file: install, blacklist,
// options, alias...
type ModprobeRule struct {
	Kind, Module, Arg, Where string // Module with underscores; Where is "file:line"
}

// ParseModprobe returns the commands of one modprobe.d file in order.
func ParseModprobe(file, text string) []ModprobeRule {
	var out []ModprobeRule
	for i, l := range Lines(text) {
		fl := strings.Fields(l)
		if len(fl) < 2 || strings.HasPrefix(fl[0], "#") {
			continue
		}
		r := ModprobeRule{Kind: fl[0], Module: ModName(fl[1]), Where: fmt.Sprintf("%s:%d", file, i+1)}
		if len(fl) > 2 {
			r.Arg = strings.Join(fl[2:], " ")
		}
		out = append(out, r)
	}
	return out
}

// ModName is a module's canonical name: kmod treats "-" and "_" alike.
func ModName(s string) string { return strings.ReplaceAll(s, "-", "_") }

// ModuleFromPath is the module name of a path in modules.dep or
// modules.builtin (kernel/fs/cramfs/cramfs.ko.xz -> cramfs).
func ModuleFromPath(p string) string {
	b := path.Base(strings.TrimSpace(p))
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return ModName(b)
}
