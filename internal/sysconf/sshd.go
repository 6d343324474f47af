package sysconf

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// SSHDMaxInclude is how deep sshd follows Include (OpenSSH's
// READCONF_MAX_DEPTH).
const SSHDMaxInclude = 16

// SSHDDirective is one keyword line of sshd's configuration.
type SSHDDirective struct {
	Key   string // lower case
	Args  []string
	File  string
	Line  int
	Order int // position in sshd's reading order
	Match bool
}

// SSHD is sshd's configuration in reading order.
type SSHD struct {
	All []SSHDDirective
	// IncludeAt is the position (Order) at which sshd_config.d/*.conf is
	// read, -1 when sshd_config does not include it.
	IncludeAt int
}

// ReadSSHD parses the sshd configuration main (etc/ssh/sshd_config) as sshd
// reads it: Include expanded in place (globs over fsys sorted, relative
// patterns taken from etc/ssh), directives inside Match blocks kept apart from
// the global ones. Files are read with read; a missing included file is no
// directives. An Include loop or nesting deeper than SSHDMaxInclude is an
// *Error.
func ReadSSHD(fsys fs.FS, read ReadFunc, main string) (*SSHD, error) {
	c := &SSHD{IncludeAt: -1}
	if err := c.file(fsys, read, main, nil, false); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *SSHD) file(fsys fs.FS, read ReadFunc, name string, stack []string, inMatch bool) error {
	for _, f := range stack {
		if f == name {
			return &Error{Path: name, Reason: "Include loop: " + strings.Join(append(stack, name), " -> ")}
		}
	}
	if len(stack) >= SSHDMaxInclude {
		return &Error{Path: name, Reason: fmt.Sprintf("Include nested deeper than %d", SSHDMaxInclude)}
	}
	stack = append(stack, name)
	text, ok, err := read(name)
	if err != nil {
		return err
	}
	if !ok {
		return nil
	}
	match := inMatch
	for i, l := range Lines(text) {
		key, args := SplitSSHD(l)
		if key == "" {
			continue
		}
		if key == "match" {
			match = true
			continue
		}
		if key == "include" {
			for _, pat := range args {
				if !strings.HasPrefix(pat, "/") {
					pat = "/etc/ssh/" + pat
				}
				pat = strings.TrimPrefix(path.Clean(pat), "/")
				if pat == "etc/ssh/sshd_config.d/*.conf" && c.IncludeAt < 0 {
					c.IncludeAt = len(c.All)
				}
				files, err := fs.Glob(fsys, pat)
				if err != nil {
					return &Error{Path: name, Reason: fmt.Sprintf("line %d: bad Include pattern %q", i+1, pat)}
				}
				sort.Strings(files)
				for _, f := range files {
					if info, err := fs.Stat(fsys, f); err == nil && info.IsDir() {
						continue
					}
					if err := c.file(fsys, read, f, stack, match); err != nil {
						return err
					}
				}
			}
			continue
		}
		c.All = append(c.All, SSHDDirective{Key: key, Args: args, File: name, Line: i + 1, Order: len(c.All), Match: match})
	}
	return nil
}

// SplitSSHD splits a configuration line into its lower-case keyword and
// arguments ("Key value", "Key=value", quoted arguments); the keyword is ""
// for a blank or comment line.
func SplitSSHD(l string) (string, []string) {
	t := strings.TrimSpace(l)
	if t == "" || t[0] == '#' {
		return "", nil
	}
	end := strings.IndexAny(t, " \t=")
	if end < 0 {
		return strings.ToLower(t), nil
	}
	key := strings.ToLower(t[:end])
	rest := strings.TrimLeft(t[end:], " \t")
	rest = strings.TrimPrefix(rest, "=")
	var args []string
	for rest = strings.TrimSpace(rest); rest != ""; rest = strings.TrimSpace(rest) {
		if rest[0] == '"' {
			if j := strings.IndexByte(rest[1:], '"'); j >= 0 {
				args = append(args, rest[1:j+1])
				rest = rest[j+2:]
				continue
			}
		}
		j := strings.IndexAny(rest, " \t")
		if j < 0 {
			args = append(args, rest)
			break
		}
		args = append(args, rest[:j])
		rest = rest[j:]
	}
	return key, args
}

// Global returns the first global occurrence of key: sshd keeps the first
// value it reads.
func (c *SSHD) Global(key string) *SSHDDirective {
	key = strings.ToLower(key)
	for i := range c.All {
		if d := &c.All[i]; d.Key == key && !d.Match {
			return d
		}
	}
	return nil
}

// sshdDefaults are OpenSSH 9.x's compiled-in defaults of the options the
// rules read (sshd_config(5)).
var sshdDefaults = map[string]string{
	"permitrootlogin":              "prohibit-password",
	"passwordauthentication":       "yes",
	"permitemptypasswords":         "no",
	"hostbasedauthentication":      "no",
	"ignorerhosts":                 "yes",
	"x11forwarding":                "no",
	"maxauthtries":                 "6",
	"maxstartups":                  "10:30:100",
	"maxsessions":                  "10",
	"logingracetime":               "120",
	"clientaliveinterval":          "0",
	"clientalivecountmax":          "3",
	"banner":                       "none",
	"loglevel":                     "INFO",
	"usepam":                       "no",
	"disableforwarding":            "no",
	"allowtcpforwarding":           "yes",
	"allowagentforwarding":         "yes",
	"gssapiauthentication":         "no",
	"permituserenvironment":        "no",
	"strictmodes":                  "yes",
	"kbdinteractiveauthentication": "yes",
	"ciphers":                      "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,aes128-gcm@openssh.com,aes256-gcm@openssh.com",
	"macs":                         "umac-64-etm@openssh.com,umac-128-etm@openssh.com,hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,hmac-sha1-etm@openssh.com,umac-64@openssh.com,umac-128@openssh.com,hmac-sha2-256,hmac-sha2-512,hmac-sha1",
	"kexalgorithms":                "sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,diffie-hellman-group-exchange-sha256,diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,diffie-hellman-group14-sha256",
	"protocol":                     "2",
}

// Effective returns the effective global value of key and where it came
// from, applying the +/-/^ list modifiers of Ciphers, MACs and KexAlgorithms
// to OpenSSH's defaults.
func (c *SSHD) Effective(key string) (string, string) {
	key = strings.ToLower(key)
	d := c.Global(key)
	def := sshdDefaults[key]
	if d == nil {
		return def, "sshd default (not set in the configuration)"
	}
	v := strings.Join(d.Args, " ")
	where := fmt.Sprintf("%s:%d", d.File, d.Line)
	switch key {
	case "ciphers", "macs", "kexalgorithms":
		if v != "" && strings.ContainsAny(v[:1], "+-^") {
			v = applyListModifier(def, v)
		}
	}
	return v, where
}

func applyListModifier(def, mod string) string {
	list := strings.Split(def, ",")
	items := strings.Split(mod[1:], ",")
	switch mod[0] {
	case '+':
		return strings.Join(append(list, items...), ",")
	case '^':
		return strings.Join(append(items, list...), ",")
	}
	var out []string
	for _, l := range list {
		drop := false
		for _, it := range items {
			if ok, _ := path.Match(it, l); ok {
				drop = true
			}
		}
		if !drop {
			out = append(out, l)
		}
	}
	return strings.Join(out, ",")
}
