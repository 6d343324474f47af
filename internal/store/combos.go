package store

import (
	"context"
	"database/sql"
	"sort"
	"strings"
)

// Combos counts the reported hosts f selects by combination of dims values
// and picks each combination's newest hosts (what canaries need).
//
// At a million hosts the hosts table is the cost, so it is read as few
// times as possible, and never sorted: one GROUP BY gives each
// combination's count and newest report time; for one host per
// combination a second pass reads only the hosts seen at one of those
// times (a few per combination), and the least ID among a combination's
// newest is picked here. More hosts per combination, or so many
// combinations that their newest times cover much of the fleet, take the
// window query of RecentByGroup.
func (s *sqlStore) Combos(ctx context.Context, dims []string, f Filter, perGroup int) ([]Combo, error) {
	cols, err := dimCols(dims)
	if err != nil {
		return nil, err
	}
	if len(cols) == 0 {
		return nil, wrap("combos", errNoDims)
	}
	f.Reported = true
	w, args, err := s.where(f)
	if err != nil {
		return nil, err
	}
	list := strings.Join(cols, ", ")
	type agg struct {
		c      Combo
		newest int64
	}
	aggs, err := queryAll(ctx, s, "combos", `SELECT `+list+`, COUNT(*), MAX(last_seen) FROM hosts`+w+` GROUP BY `+list, args, []*agg(nil),
		func(r *sql.Rows) (*agg, error) {
			a := &agg{c: Combo{Values: make([]string, len(cols)), Recent: []Host{}}}
			dest := make([]any, 0, len(cols)+2)
			for i := range a.c.Values {
				dest = append(dest, &a.c.Values[i])
			}
			return a, r.Scan(append(dest, &a.c.Hosts, &a.newest)...)
		})
	if err != nil {
		return nil, err
	}
	idx := make(map[string]*agg, len(aggs))
	times := map[int64]bool{}
	for _, a := range aggs {
		idx[comboKey(a.c.Values)] = a
		times[a.newest] = true
	}
	var hosts []Host
	if perGroup <= 1 && len(times) <= maxNewestTimes {
		ts := make([]int64, 0, len(times))
		for t := range times {
			ts = append(ts, t)
		}
		sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
		// One statement (one pass over the hosts): maxNewestTimes
		// parameters are within both drivers' limits.
		q := `SELECT ` + hostCols + ` FROM hosts` + w + ` AND last_seen IN (` + marks(len(ts)) + `)`
		a := append([]any(nil), args...)
		for _, t := range ts {
			a = append(a, t)
		}
		hosts, err = queryAll(ctx, s, "combos", q, a, hosts, func(r *sql.Rows) (Host, error) { return scanHost(r, false) })
		if err != nil {
			return nil, err
		}
		for _, h := range hosts {
			a := idx[comboKey(hostValues(h, dims))]
			if a == nil || h.LastSeen.Unix() != a.newest {
				continue // not its combination's newest (or reported since the count)
			}
			if len(a.c.Recent) == 0 {
				a.c.Recent = append(a.c.Recent, h)
			} else if h.ID < a.c.Recent[0].ID {
				a.c.Recent[0] = h
			}
		}
	} else {
		hosts, err := s.RecentByGroup(ctx, dims, f, perGroup)
		if err != nil {
			return nil, err
		}
		for _, h := range hosts { // newest first, then by ID
			if a := idx[comboKey(hostValues(h, dims))]; a != nil {
				a.c.Recent = append(a.c.Recent, h)
			}
		}
	}
	out := make([]Combo, len(aggs))
	for i, a := range aggs {
		out[i] = a.c
	}
	sort.Slice(out, func(i, j int) bool { return comboKey(out[i].Values) < comboKey(out[j].Values) })
	return out, nil
}

// maxNewestTimes bounds the distinct newest report times Combos looks up
// by value: beyond it the hosts seen then are much of the fleet, and the
// statement's parameters many (SQLite allows 32766, PostgreSQL 65535).
const maxNewestTimes = 5000

func comboKey(values []string) string { return strings.Join(values, "\x00") }

func hostValues(h Host, dims []string) []string {
	v := make([]string, len(dims))
	for i, d := range dims {
		v[i] = h.Dims[d]
	}
	return v
}
