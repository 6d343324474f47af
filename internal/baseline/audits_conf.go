package baseline

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/vouch-dev/vouch/internal/check"
	"github.com/vouch-dev/vouch/internal/sysconf"
)

// ---- key = value files (faillock.conf, pwquality.conf) ------------------------------

// confValue finds "key = value" (or "key value") in the files, the last
// occurrence winning.
func (s *State) confValue(files []string, key string) (sysconf.KV, bool, error) {
	var out sysconf.KV
	found := false
	for _, f := range s.expand(files) {
		text, ok, err := s.readText(f)
		if err != nil {
			return sysconf.KV{}, false, err
		}
		if !ok {
			continue
		}
		if v, has := sysconf.ConfValue(f, text, key); has {
			out, found = v, true
		}
	}
	return out, found, nil
}

func confNumber(files []string, key, op string, want int, fix string) Control {
	return Control{
		Remedy: "Set `" + fix + "` in /" + files[0] + ".",
		Audit: func(s *State) check.Result {
			v, ok, err := s.confValue(files, key)
			if err != nil {
				return errorf("%v", err)
			}
			if !ok {
				return fail(fmt.Sprintf("%s is not set in /%s; want %s %d", key, files[0], op, want))
			}
			ev := fmt.Sprintf("/%s:%d: %s = %s", v.File, v.Line, key, v.Value)
			if sysctlCompare(v.Value, op, strconv.Itoa(want)) {
				return pass(key+" = "+v.Value, ev)
			}
			return fail(fmt.Sprintf("%s = %s, want %s %d", key, v.Value, op, want), ev)
		},
	}
}

func confNumberNonZero(files []string, key string, max int, fix string) Control {
	c := confNumber(files, key, "<=", max, fix)
	inner := c.Audit
	c.Audit = func(s *State) check.Result {
		r := inner(s)
		if r.Status == "pass" && strings.HasSuffix(r.Message, "= 0") {
			return fail(key+" = 0 disables the check; want 1 to "+strconv.Itoa(max), r.Evidence...)
		}
		return r
	}
	return c
}

func confUnlockTime() Control {
	c := confNumber([]string{"etc/security/faillock.conf"}, "unlock_time", ">=", 900, "unlock_time = 900")
	inner := c.Audit
	c.Audit = func(s *State) check.Result {
		v, ok, err := s.confValue([]string{"etc/security/faillock.conf"}, "unlock_time")
		if err == nil && ok && v.Value == "0" {
			return pass("unlock_time = 0: accounts stay locked until an administrator unlocks them")
		}
		return inner(s)
	}
	return c
}
