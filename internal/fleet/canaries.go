package fleet

import (
	"context"
	"strings"
	"time"

	"github.com/vouch-dev/vouch/internal/store"
)

// CanaryOptions ask for a canary set.
type CanaryOptions struct {
	Dims []string
	// Pairwise covers every observed pair of values of two dimensions
	// instead of every observed combination of all of them.
	Pairwise bool
	// PerGroup is how many hosts must cover each combination (or pair);
	// fewer when fewer hosts have it. Default 1.
	PerGroup int
	// SeenWithin keeps hosts that reported within this window (default 7 days).
	SeenWithin time.Duration
	Query      Query
}

// Canary is one chosen host.
type Canary struct {
	ID       string            `json:"id"`
	Hostname string            `json:"hostname"`
	Dims     map[string]string `json:"dims"`
	LastSeen time.Time         `json:"lastSeen"`
}

// Canaries is the answer; Hosts and LowerBound are a contract.
type Canaries struct {
	Hosts      []Canary `json:"hosts"`
	LowerBound int      `json:"lowerBound"`
	// Gap is len(Hosts) - LowerBound: how far greedy set cover may be
	// from the optimum.
	Gap int `json:"gap"`
	// Elements is how many combinations (or pairs) had to be covered.
	Elements   int      `json:"elements"`
	Dims       []string `json:"dims"`
	Pairwise   bool     `json:"pairwise"`
	PerGroup   int      `json:"perGroup"`
	Candidates int64    `json:"candidates"`
}

type combo struct {
	values []string
	hosts  int64
	elems  []string
	recent []store.Host // newest first
}

// Canaries picks the smallest set of real, recently seen hosts that covers
// every observed combination of dims (or, pairwise, every observed pair of
// values), each PerGroup times: greedy set cover, deterministic (ties go to
// the combination that sorts first, then to the most recently seen host,
// then the smallest ID). The lower bound is, pairwise, the most demand any
// one pair of dimensions has (a host covers one pair of each); otherwise the
// summed demand of the combinations.
func (s *Service) Canaries(ctx context.Context, o CanaryOptions) (*Canaries, error) {
	if len(o.Dims) == 0 {
		return nil, inputErr("canaries need at least one dimension")
	}
	seen := map[string]bool{}
	for _, d := range o.Dims {
		if !store.ValidDim(d) {
			return nil, inputErr("unknown dimension %q (want one of %s)", d, strings.Join(store.Dims(), ", "))
		}
		if seen[d] {
			return nil, inputErr("dimension %q given twice", d)
		}
		seen[d] = true
	}
	if o.PerGroup <= 0 {
		o.PerGroup = 1
	}
	if o.SeenWithin <= 0 {
		o.SeenWithin = 7 * 24 * time.Hour
	}
	f := o.Query.filter()
	f.SeenSince = s.Now().Add(-o.SeenWithin)
	// One read gives every combination's count and its newest hosts.
	found, err := s.Store.Combos(ctx, o.Dims, f, o.PerGroup)
	if err != nil {
		return nil, err
	}
	combos := make([]*combo, 0, len(found))
	var total int64
	for _, c := range found { // ordered by values
		combos = append(combos, &combo{values: c.Values, hosts: c.Hosts, recent: c.Recent})
		total += c.Hosts
	}
	// Elements each combination covers, and the demand of each element:
	// PerGroup, or every host that has it when fewer.
	supply := map[string]int64{}
	for _, c := range combos {
		c.elems = elements(c.values, o.Pairwise)
		for _, e := range c.elems {
			supply[e] += c.hosts
		}
	}
	demand := map[string]int64{}
	for e, n := range supply {
		demand[e] = min(int64(o.PerGroup), n)
	}
	lower := lowerBound(demand)
	// Greedy: take a host of the combination covering the most unmet
	// demand, until none is left.
	used := map[*combo]int64{}
	picks := map[*combo]int{}
	var order []*combo
	for {
		var best *combo
		bestGain := 0
		for _, c := range combos {
			if used[c] >= c.hosts {
				continue
			}
			gain := 0
			for _, e := range c.elems {
				if demand[e] > 0 {
					gain++
				}
			}
			if gain > bestGain {
				best, bestGain = c, gain
			}
		}
		if best == nil {
			break
		}
		used[best]++
		if picks[best] == 0 {
			order = append(order, best)
		}
		picks[best]++
		for _, e := range best.elems {
			if demand[e] > 0 {
				demand[e]--
			}
		}
	}
	out := &Canaries{Hosts: []Canary{}, Dims: o.Dims, Pairwise: o.Pairwise, PerGroup: o.PerGroup, Elements: len(supply), Candidates: total}
	for _, c := range order {
		for _, h := range c.recent[:min(len(c.recent), picks[c])] {
			dims := map[string]string{}
			for _, d := range o.Dims {
				dims[d] = h.Dims[d]
			}
			out.Hosts = append(out.Hosts, Canary{ID: h.ID, Hostname: h.Hostname, Dims: dims, LastSeen: h.LastSeen})
		}
	}
	out.LowerBound = lower
	out.Gap = len(out.Hosts) - lower
	return out, nil
}

// elements are what one combination covers: itself, or each pair of its
// values (each single value when there is one dimension).
func elements(values []string, pairwise bool) []string {
	if !pairwise || len(values) == 1 {
		if len(values) == 1 {
			return []string{"0=" + values[0]}
		}
		return []string{"all=" + strings.Join(values, "\x00")}
	}
	var out []string
	for i := 0; i < len(values); i++ {
		for j := i + 1; j < len(values); j++ {
			out = append(out, pairKey(i, j)+"="+values[i]+"\x00"+values[j])
		}
	}
	return out
}

func pairKey(i, j int) string { return string(rune('a'+i)) + string(rune('a'+j)) }

// lowerBound: a host covers exactly one element of each dimension pair (or
// one combination), so no cover is smaller than the demand of the
// neediest dimension pair.
func lowerBound(demand map[string]int64) int {
	per := map[string]int64{}
	for e, d := range demand {
		k, _, _ := strings.Cut(e, "=")
		per[k] += d
	}
	var best int64
	for _, v := range per {
		best = max(best, v)
	}
	return int(best)
}
