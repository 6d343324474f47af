package sysconf

import (
	"strconv"
	"strings"
)

// Account is one line of /etc/passwd, /etc/shadow or /etc/group. Shadow
// entries keep the hash in Pass and the aging fields, unparsed and
// colon-joined, in Shell (read them with ShadowField); group entries keep the
// members in Shell.
type Account struct {
	Name, Pass   string
	UID, GID     int
	Home, Shell  string
	Line         int
	Legacy, Bad  bool // '+'/'-' NIS entries; malformed lines
	Raw          string
	ValidNumbers bool
}

// ParsePasswd parses /etc/passwd.
func ParsePasswd(text string) []Account {
	return parseColon(text, 7, func(f []string, e *Account) {
		e.Pass, e.Home, e.Shell = f[1], f[5], f[6]
		u, err1 := strconv.Atoi(f[2])
		g, err2 := strconv.Atoi(f[3])
		e.UID, e.GID, e.ValidNumbers = u, g, err1 == nil && err2 == nil
	})
}

// ParseShadow parses /etc/shadow.
func ParseShadow(text string) []Account {
	return parseColon(text, 2, func(f []string, e *Account) {
		e.Pass = f[1]
		e.Shell = strings.Join(f[2:], ":")
	})
}

// ParseGroup parses /etc/group.
func ParseGroup(text string) []Account {
	return parseColon(text, 4, func(f []string, e *Account) {
		e.Pass = f[1]
		g, err := strconv.Atoi(f[2])
		e.GID, e.ValidNumbers = g, err == nil
		e.Shell = f[3] // members
	})
}

// parseColon splits the non-blank lines of a colon-separated file; a line
// with fewer than nfields fields is kept with Bad set.
func parseColon(text string, nfields int, fill func([]string, *Account)) []Account {
	var out []Account
	for i, l := range Lines(text) {
		if strings.TrimSpace(l) == "" {
			continue
		}
		e := Account{Line: i + 1, Raw: l}
		f := strings.Split(l, ":")
		e.Name = f[0]
		if strings.HasPrefix(l, "+") || strings.HasPrefix(l, "-") {
			e.Legacy = true
		}
		if len(f) < nfields {
			e.Bad = true
			out = append(out, e)
			continue
		}
		fill(f, &e)
		out = append(out, e)
	}
	return out
}

// ShadowField returns aging field i of a shadow entry (0 = last change, 1 =
// min, 2 = max, 3 = warn, 4 = inactive, 5 = expire).
func ShadowField(e Account, i int) string {
	f := strings.Split(e.Shell, ":")
	if i < len(f) {
		return f[i]
	}
	return ""
}
