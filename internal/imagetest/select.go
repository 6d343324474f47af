package imagetest

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
)

// Action is what a selection rule does with the cases it matches.
type Action string

// Actions, as the job service's selections name them.
const (
	Include Action = "include"
	Exclude Action = "exclude"
)

// Selection is one rule: a case matches when it matches every non-empty list
// (and any entry within a list). Names are exact or path.Match patterns
// ("cloud-image.*").
type Selection struct {
	Names      []string `json:"caseName,omitempty"`
	Areas      []string `json:"caseArea,omitempty"`
	Priorities []int    `json:"casePriority,omitempty"`
	Tags       []string `json:"caseTags,omitempty"`
	Action     Action   `json:"action,omitempty"` // "" is Include
}

func (s Selection) empty() bool {
	return len(s.Names) == 0 && len(s.Areas) == 0 && len(s.Priorities) == 0 && len(s.Tags) == 0
}

func (s Selection) matches(c Case) bool {
	if len(s.Names) > 0 && !anyMatch(s.Names, c.Name) {
		return false
	}
	if len(s.Areas) > 0 && !slices.Contains(s.Areas, c.Area) {
		return false
	}
	if len(s.Priorities) > 0 {
		ok := false
		for _, p := range s.Priorities {
			ok = ok || p == c.Priority
		}
		if !ok {
			return false
		}
	}
	if len(s.Tags) > 0 {
		ok := false
		for _, t := range s.Tags {
			ok = ok || slices.Contains(c.Tags, t)
		}
		if !ok {
			return false
		}
	}
	return true
}

func anyMatch(patterns []string, name string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok || p == name {
			return true
		}
	}
	return false
}

// Select applies the rules in order, as LISA's runbook criteria and the job
// service's selections do: the first include rule starts from nothing (with no
// include rule, from every case), each include adds its matches, each exclude
// removes its matches. An entry that matches no case at all (a misspelt name,
// an unknown area or tag, a priority outside 0–5) is an error naming what
// exists. The result keeps all's order.
func Select(all []Case, rules []Selection) ([]Case, error) {
	if err := validate(all, rules); err != nil {
		return nil, err
	}
	chosen := make([]bool, len(all))
	hasInclude := false
	for _, r := range rules {
		if r.Action != Exclude && !r.empty() {
			hasInclude = true
		}
	}
	if !hasInclude {
		for i := range chosen {
			chosen[i] = true
		}
	}
	for _, r := range rules {
		if r.empty() {
			continue
		}
		for i, c := range all {
			if r.matches(c) {
				chosen[i] = r.Action != Exclude
			}
		}
	}
	var out []Case
	for i, c := range all {
		if chosen[i] {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("imagetest: the selection matches no case")
	}
	return out, nil
}

func validate(all []Case, rules []Selection) error {
	areas, tags := map[string]bool{}, map[string]bool{}
	for _, c := range all {
		areas[c.Area] = true
		for _, t := range c.Tags {
			tags[t] = true
		}
	}
	for _, r := range rules {
		if r.Action != "" && r.Action != Include && r.Action != Exclude {
			return fmt.Errorf("imagetest: unknown selection action %q (want include or exclude)", r.Action)
		}
		for _, n := range r.Names {
			if _, err := path.Match(n, ""); err != nil {
				return fmt.Errorf("imagetest: bad case name pattern %q: %v", n, err)
			}
			found := false
			for _, c := range all {
				found = found || anyMatch([]string{n}, c.Name)
			}
			if !found {
				return fmt.Errorf("imagetest: no case named %q (vouch test --list shows them)", n)
			}
		}
		for _, a := range r.Areas {
			if !areas[a] {
				return fmt.Errorf("imagetest: unknown area %q (known: %s)", a, keys(areas))
			}
		}
		for _, t := range r.Tags {
			if !tags[t] {
				return fmt.Errorf("imagetest: unknown tag %q (known: %s)", t, keys(tags))
			}
		}
		for _, p := range r.Priorities {
			if p < 0 || p > 5 {
				return fmt.Errorf("imagetest: priority %d out of range (0 to 5)", p)
			}
		}
	}
	return nil
}

func keys(m map[string]bool) string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}
