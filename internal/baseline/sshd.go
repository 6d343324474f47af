package baseline

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/vouch-dev/vouch/internal/check"
	"github.com/vouch-dev/vouch/internal/remediate"
)

const (
	sshdConfig     = "etc/ssh/sshd_config"
	vouchSSHDFile  = "etc/ssh/sshd_config.d/60-vouch.conf"
	sshdMaxInclude = 16 // OpenSSH's READCONF_MAX_DEPTH
)

type sshdDirective struct {
	Key   string // lower case
	Args  []string
	File  string
	Line  int
	Order int // position in sshd's reading order
	Match bool
}

type sshdConf struct {
	all []sshdDirective
	// includeDir is the position (Order) at which sshd_config.d/*.conf is
	// read, -1 when sshd_config does not include it.
	includeAt int
}

// sshd parses the sshd configuration as sshd reads it: Include expanded in
// place (globs sorted, relative to etc/ssh), directives inside Match blocks
// kept apart from the global ones.
func (s *State) sshd() (*sshdConf, error) {
	return cached(s, "sshd", func() (*sshdConf, error) {
		c := &sshdConf{includeAt: -1}
		if _, ok, err := s.readText(sshdConfig); err != nil {
			return nil, err
		} else if !ok {
			return nil, nil
		}
		if err := s.sshdFile(c, sshdConfig, nil, false); err != nil {
			return nil, err
		}
		return c, nil
	})
}

func (s *State) sshdFile(c *sshdConf, name string, stack []string, inMatch bool) error {
	for _, f := range stack {
		if f == name {
			return &ConfigError{Path: name, Reason: "Include loop: " + strings.Join(append(stack, name), " -> ")}
		}
	}
	if len(stack) >= sshdMaxInclude {
		return &ConfigError{Path: name, Reason: fmt.Sprintf("Include nested deeper than %d", sshdMaxInclude)}
	}
	stack = append(stack, name)
	text, ok, err := s.readText(name)
	if err != nil {
		return err
	}
	if !ok {
		return nil
	}
	match := inMatch
	for i, l := range lines(text) {
		key, args := sshdSplit(l)
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
				if pat == "etc/ssh/sshd_config.d/*.conf" && c.includeAt < 0 {
					c.includeAt = len(c.all)
				}
				files, err := fs.Glob(s.Root, pat)
				if err != nil {
					return &ConfigError{Path: name, Reason: fmt.Sprintf("line %d: bad Include pattern %q", i+1, pat)}
				}
				sort.Strings(files)
				for _, f := range files {
					if info, err := s.Root.Stat(f); err == nil && info.IsDir() {
						continue
					}
					if err := s.sshdFile(c, f, stack, match); err != nil {
						return err
					}
				}
			}
			continue
		}
		c.all = append(c.all, sshdDirective{Key: key, Args: args, File: name, Line: i + 1, Order: len(c.all), Match: match})
	}
	return nil
}

// sshdSplit splits a configuration line into its lower-case keyword and
// arguments ("Key value", "Key=value", quoted arguments).
func sshdSplit(l string) (string, []string) {
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

// global returns the first global occurrence of key: sshd keeps the first
// value it reads.
func (c *sshdConf) global(key string) *sshdDirective {
	key = strings.ToLower(key)
	for i := range c.all {
		if d := &c.all[i]; d.Key == key && !d.Match {
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

// sshdEffective returns the effective global value of key and where it came
// from, applying the +/-/^ list modifiers of Ciphers, MACs and KexAlgorithms.
func (c *sshdConf) effective(key string) (string, string) {
	key = strings.ToLower(key)
	d := c.global(key)
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

// sshdCheck is a predicate on an effective value: ok, and the expectation in
// words.
type sshdCheck func(v string) bool

func sshdIs(want ...string) sshdCheck {
	return func(v string) bool {
		for _, w := range want {
			if strings.EqualFold(v, w) {
				return true
			}
		}
		return false
	}
}

func sshdAtMost(n int) sshdCheck {
	return func(v string) bool {
		x, err := strconv.Atoi(v)
		return err == nil && x <= n
	}
}

func sshdBetween(lo, hi int) sshdCheck {
	return func(v string) bool {
		x, err := strconv.Atoi(v)
		return err == nil && x >= lo && x <= hi
	}
}

// sshdNoneOf passes when the comma-separated list holds none of bad.
func sshdNoneOf(bad ...string) sshdCheck {
	return func(v string) bool {
		for _, it := range strings.Split(v, ",") {
			for _, b := range bad {
				if strings.EqualFold(strings.TrimSpace(it), b) {
					return false
				}
			}
		}
		return true
	}
}

var sshdGate = []string{"openssh-server"}
var sshdGateFiles = []string{sshdConfig, "usr/sbin/sshd"}

// sshdOption audits an sshd option's effective global value; fixValue, when
// not empty, is what remediation sets.
func sshdOption(key string, ok sshdCheck, expect, fixValue string) Control {
	c := Control{
		Gate: sshdGate, GateFiles: sshdGateFiles,
		Audit: func(s *State) check.Result {
			conf, err := s.sshd()
			if err != nil {
				return errorf("%v", err)
			}
			if conf == nil {
				return na("no " + sshdConfig)
			}
			v, where := conf.effective(key)
			ev := []string{fmt.Sprintf("%s %s", key, v), "source: " + where}
			if ok(v) {
				return pass(fmt.Sprintf("%s is %s", key, v), ev...)
			}
			return fail(fmt.Sprintf("%s is %s, want %s", key, v, expect), ev...)
		},
	}
	if fixValue != "" {
		c.Remedy = fmt.Sprintf("Set `%s %s` in /%s (read before the rest of sshd_config) and reload sshd.", key, fixValue, vouchSSHDFile)
		c.Fix = func(s *State, ch *remediate.Changer) error { return setSSHD(s, ch, key, fixValue) }
	} else {
		c.Remedy = fmt.Sprintf("Set %s to %s in /etc/ssh/sshd_config and reload sshd.", key, expect)
	}
	return c
}
