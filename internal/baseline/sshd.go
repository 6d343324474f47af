package baseline

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/vouch-dev/vouch/internal/check"
	"github.com/vouch-dev/vouch/internal/remediate"
	"github.com/vouch-dev/vouch/internal/sysconf"
)

const (
	sshdConfig    = "etc/ssh/sshd_config"
	vouchSSHDFile = "etc/ssh/sshd_config.d/60-vouch.conf"
)

// sshd parses the sshd configuration as sshd reads it (sysconf.ReadSSHD); nil
// when the root has no sshd_config.
func (s *State) sshd() (*sysconf.SSHD, error) {
	return cached(s, "sshd", func() (*sysconf.SSHD, error) {
		if _, ok, err := s.readText(sshdConfig); err != nil {
			return nil, err
		} else if !ok {
			return nil, nil
		}
		return sysconf.ReadSSHD(s.Root, s.readText, sshdConfig)
	})
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
			v, where := conf.Effective(key)
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
