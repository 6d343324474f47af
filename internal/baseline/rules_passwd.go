package baseline

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/vouch-dev/vouch/internal/check"
	"github.com/vouch-dev/vouch/internal/sysconf"
)

// ---- the password and group databases -----------------------------------------

func shadowed(s *State) check.Result {
	pw, ok, err := s.passwd()
	if err != nil {
		return errorf("%v", err)
	}
	if !ok {
		return na("no /etc/passwd")
	}
	var bad []string
	for _, e := range pw {
		if !e.Legacy && !e.Bad && e.Pass != "x" {
			bad = append(bad, e.Name)
		}
	}
	if len(bad) > 0 {
		return fail("accounts whose password is not in /etc/shadow: "+strings.Join(bad, ", "), bad...)
	}
	return pass("every account's password field is x")
}

func noEmptyPasswords(s *State) check.Result {
	sh, ok, err := s.shadow()
	if err != nil {
		return errorf("%v", err)
	}
	if !ok {
		return na("no /etc/shadow")
	}
	var bad []string
	for _, e := range sh {
		if !e.Legacy && e.Pass == "" {
			bad = append(bad, e.Name)
		}
	}
	if len(bad) > 0 {
		return fail("accounts with an empty password field: "+strings.Join(bad, ", "), bad...)
	}
	return pass(fmt.Sprintf("none of %d accounts has an empty password field", len(sh)))
}

func groupsExist(s *State) check.Result {
	pw, ok, err := s.passwd()
	if err != nil {
		return errorf("%v", err)
	}
	gr, gok, err := s.groups()
	if err != nil {
		return errorf("%v", err)
	}
	if !ok || !gok {
		return na("no /etc/passwd or /etc/group")
	}
	have := map[int]bool{}
	for _, g := range gr {
		have[g.GID] = true
	}
	var bad []string
	for _, e := range pw {
		if e.ValidNumbers && !have[e.GID] {
			bad = append(bad, fmt.Sprintf("%s (gid %d)", e.Name, e.GID))
		}
	}
	if len(bad) > 0 {
		return fail("primary groups missing from /etc/group: "+strings.Join(bad, ", "), bad...)
	}
	return pass("every primary group exists")
}

func shadowGroupEmpty(s *State) check.Result {
	gr, ok, err := s.groups()
	if err != nil {
		return errorf("%v", err)
	}
	if !ok {
		return na("no /etc/group")
	}
	pw, _, _ := s.passwd()
	for _, g := range gr {
		if g.Name != "shadow" {
			continue
		}
		var bad []string
		if g.Shell != "" {
			bad = append(bad, "members: "+g.Shell)
		}
		for _, e := range pw {
			if e.GID == g.GID {
				bad = append(bad, e.Name+" has shadow as primary group")
			}
		}
		if len(bad) > 0 {
			return fail(strings.Join(bad, "; "), bad...)
		}
		return pass("group shadow has no members")
	}
	return na("no shadow group")
}

func uniq(file, field string) Audit {
	return func(s *State) check.Result {
		var ents []sysconf.Account
		var ok bool
		var err error
		if file == "passwd" {
			ents, ok, err = s.passwd()
		} else {
			ents, ok, err = s.groups()
		}
		if err != nil {
			return errorf("%v", err)
		}
		if !ok {
			return na("no /etc/" + file)
		}
		seen := map[string][]string{}
		var order []string
		for _, e := range ents {
			if e.Legacy || e.Bad {
				continue
			}
			k := e.Name
			switch field {
			case "uid":
				k = strconv.Itoa(e.UID)
			case "gid":
				k = strconv.Itoa(e.GID)
			}
			if _, dup := seen[k]; !dup {
				order = append(order, k)
			}
			seen[k] = append(seen[k], e.Name)
		}
		var bad []string
		for _, k := range order {
			if len(seen[k]) > 1 {
				bad = append(bad, fmt.Sprintf("%s %s: %s", field, k, strings.Join(seen[k], ", ")))
			}
		}
		if len(bad) > 0 {
			return fail("duplicate "+field+"s in /etc/"+file+": "+strings.Join(bad, "; "), bad...)
		}
		return pass(fmt.Sprintf("%d entries, no duplicate %s", len(ents), field))
	}
}
