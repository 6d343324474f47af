package baseline

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/vouch-dev/vouch/internal/check"
	"github.com/vouch-dev/vouch/internal/sysconf"
)

// ---- PAM stacks ----------------------------------------------------------

// pamRule is one rule of a PAM stack file with the text of its first line.
type pamRule struct {
	sysconf.PAMRule
	text string
}

func (r pamRule) where() string { return fmt.Sprintf("/%s:%d", r.File, r.Line) }

// pamRules reads files (sysconf.ParsePAM: comments, continued lines,
// bracketed controls); seen is false when none exists. @include lines are
// not followed: the rules name the stacks they read.
func (s *State) pamRules(files []string) (rules []pamRule, seen bool, err error) {
	for _, f := range s.expand(files) {
		text, ok, err := s.readText(f)
		if err != nil {
			return nil, seen, err
		}
		if !ok {
			continue
		}
		seen = true
		lines := sysconf.Lines(text)
		for _, r := range sysconf.ParsePAM(f, text) {
			if r.Bad || r.Include != "" || r.Line < 1 || r.Line > len(lines) {
				continue
			}
			rules = append(rules, pamRule{r, strings.TrimSpace(lines[r.Line-1])})
		}
	}
	return rules, seen, nil
}

// pamWant is a PAM rule a check looks for: of type typ ("" for any) calling
// module, and, when ok is set, whose control and arguments it accepts.
type pamWant struct {
	typ, module string
	ok          func(sysconf.PAMRule) bool
}

func (w pamWant) match(r sysconf.PAMRule) bool {
	typ := w.typ
	if typ == "" {
		typ = r.Type
	}
	return r.Uses(typ, w.module)
}

func (w pamWant) accepts(r sysconf.PAMRule) bool {
	return w.match(r) && (w.ok == nil || w.ok(r))
}

// hasArg accepts a rule with any of the arguments names.
func hasArg(names ...string) func(sysconf.PAMRule) bool {
	return func(r sysconf.PAMRule) bool {
		for _, n := range names {
			if _, ok := r.Arg(n); ok {
				return true
			}
		}
		return false
	}
}

// pamUses passes when one of files holds a rule w accepts; want describes it
// ("uses pam_unix.so"), missing is the result when no file exists.
func pamUses(files []string, w pamWant, want string, missing check.Result) Control {
	return Control{
		Remedy: "Edit /" + strings.Join(files, " or /") + " so that a line " + want + ".",
		Audit: func(s *State) check.Result {
			rules, seen, err := s.pamRules(files)
			if err != nil {
				return errorf("%v", err)
			}
			for _, r := range rules {
				if w.accepts(r.PAMRule) {
					return pass(r.where()+": "+r.text, r.where())
				}
			}
			if !seen {
				return missing
			}
			var ev []string
			for _, r := range rules {
				if w.match(r.PAMRule) {
					ev = append(ev, r.where()+": "+r.text)
				}
			}
			return fail("no line in /"+strings.Join(files, ", /")+" "+want, ev...)
		},
	}
}

// pamLacks fails when one of files holds a rule w accepts (what describes it:
// "pam_unix.so with nullok").
func pamLacks(files []string, w pamWant, what string) Control {
	return Control{
		Remedy: "Remove the " + what + " from /" + strings.Join(files, " and /") + ".",
		Audit: func(s *State) check.Result {
			rules, seen, err := s.pamRules(files)
			if err != nil {
				return errorf("%v", err)
			}
			if !seen {
				return na("none of /" + strings.Join(files, ", /") + " exists")
			}
			var hits []string
			for _, r := range rules {
				if w.accepts(r.PAMRule) {
					hits = append(hits, r.where()+": "+r.text)
				}
			}
			if len(hits) > 0 {
				return fail(fmt.Sprintf("%s: %s", what, hits[0]), hits...)
			}
			return pass("no " + what + " in /" + strings.Join(files, ", /"))
		},
	}
}

// remembers accepts a rule with remember=N, N >= min.
func remembers(min int) func(sysconf.PAMRule) bool {
	return func(r sysconf.PAMRule) bool {
		v, ok := r.Arg("remember")
		n, err := strconv.Atoi(v)
		return ok && err == nil && n >= min
	}
}

// wheelGroup accepts "auth required pam_wheel.so use_uid group=NAME" (CIS
// 5.2.7): required, so that su fails for others, and a group named.
func wheelGroup(r sysconf.PAMRule) bool {
	g, ok := r.Arg("group")
	_, uid := r.Arg("use_uid")
	return r.Control == "required" && uid && ok && g != ""
}
