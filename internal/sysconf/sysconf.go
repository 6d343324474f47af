// Package sysconf parses the Linux configuration files vouch's baseline
// reads, as the programs that read them do: sshd_config (Include expanded in
// place, Match blocks kept apart, first value wins), sysctl.d, modprobe.d,
// login.defs, PAM stacks, /etc/passwd, shadow and group, fstab and systemd
// mount units, systemd-style ini files, key = value files (faillock.conf,
// pwquality.conf), the kernel configuration, GRUB's generated and default
// configuration, Boot Loader Specification entries and the kernel command
// line.
//
// Parsers take the text of one file; the caller reads the files (and decides
// which apply), so the same parser serves an image, a directory and the live
// host. A line the reading program would ignore is ignored; where the program
// rejects a file, the parser returns an *Error naming the file. No input
// makes a parser panic (each has a fuzz test).
package sysconf

import (
	"bufio"
	"path"
	"sort"
	"strings"
)

// Error is a configuration file the program reading it would reject, or that
// vouch cannot follow: an Include loop, a malformed fstab line.
type Error struct {
	Path   string
	Reason string
}

func (e *Error) Error() string { return "sysconf: " + e.Path + ": " + e.Reason }

// ReadFunc reads a text file of the root being audited; exists is false for
// a missing file.
type ReadFunc func(name string) (text string, exists bool, err error)

// KV is a value and where it was set.
type KV struct {
	Value, File string
	Line        int
}

// Lines splits text into lines without trailing CR.
func Lines(text string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64*1024), 4<<20)
	for sc.Scan() {
		out = append(out, strings.TrimRight(sc.Text(), "\r"))
	}
	return out
}

// DropIns applies the drop-in precedence of systemd and kmod to the files of
// each directory, given highest precedence first: a file name in an earlier
// directory hides the same name in a later one, and the files are applied in
// name order. It returns the chosen path per name and the names sorted.
func DropIns(dirs [][]string) (map[string]string, []string) {
	byName := map[string]string{}
	for _, files := range dirs {
		for _, f := range files {
			if _, seen := byName[path.Base(f)]; !seen {
				byName[path.Base(f)] = f
			}
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return byName, names
}
