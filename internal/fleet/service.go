package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/vouch-dev/vouch/internal/store"
)

// Service answers fleet questions from a store.
type Service struct {
	Store store.Store
	Eval  *Evaluator
	// Now is the clock (tests set it).
	Now func() time.Time
}

// NewService returns a service over s.
func NewService(s store.Store) *Service {
	return &Service{Store: s, Eval: NewEvaluator(s), Now: time.Now}
}

// Ack is the server's answer to an accepted report.
type Ack struct {
	HostID        string `json:"hostId"`
	ReportDigest  string `json:"reportDigest"`
	FirmwareState string `json:"firmwareState"`
	BootChain     string `json:"bootChain"`
}

// DecodeReport parses a report strictly: unknown fields, trailing data and
// truncated JSON are input errors naming the problem.
func DecodeReport(b []byte) (*Report, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var r Report
	if err := dec.Decode(&r); err != nil {
		return nil, inputErr("report is not valid JSON: %v", err)
	}
	if dec.More() {
		return nil, inputErr("report has data after the JSON object")
	}
	return &r, nil
}

// ReportDigest is the digest of a report's canonical JSON: what the agent
// compares to send only what changed.
func ReportDigest(r *Report) string {
	c := *r
	c.HostID = ""
	b, _ := json.Marshal(&c)
	return Digest(b)
}

// Ingest validates and stores a report of host hostID, all or nothing.
func (s *Service) Ingest(ctx context.Context, hostID string, body []byte) (*Ack, error) {
	r, err := DecodeReport(body)
	if err != nil {
		return nil, err
	}
	if r.HostID != "" && r.HostID != hostID {
		return nil, &ForbiddenError{Reason: fmt.Sprintf("this credential belongs to host %s, not %s", hostID, r.HostID)}
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	fwD, fwDoc, chD, chDoc := r.StateDocs()
	// The facts kept are the canonical JSON (the host ID is the row's):
	// one encoding gives both them and the digest.
	c := *r
	c.HostID = ""
	facts, _ := json.Marshal(&c)
	rep := store.Report{HostID: hostID, Hostname: r.Hostname, Digest: Digest(facts), ReceivedAt: s.Now(),
		FirmwareState: fwD, BootChain: chD, Dims: r.Dims(), PCR7Sealed: r.TPM.PCR7Sealed, Facts: facts,
		Blobs: []store.Blob{{Digest: chD, Kind: "boot-chain", Data: chDoc}}, Needs: r.Needs()}
	if fwDoc != nil {
		rep.Blobs = append(rep.Blobs, store.Blob{Digest: fwD, Kind: "firmware-state", Data: fwDoc})
	}
	if err := s.Store.PutReport(ctx, rep); err != nil {
		var mb *store.MissingBlobsError
		if errors.As(err, &mb) {
			return nil, inputErr("the report names %d blob(s) the server does not have (upload them first): %s", len(mb.Digests), strings.Join(mb.Digests, ", "))
		}
		return nil, err
	}
	return &Ack{HostID: hostID, ReportDigest: rep.Digest, FirmwareState: fwD, BootChain: chD}, nil
}

// ForbiddenError is a request the caller's credential does not allow.
type ForbiddenError struct{ Reason string }

func (e *ForbiddenError) Error() string { return "fleet: " + e.Reason }

// Query selects hosts for a question.
type Query struct {
	Dims     map[string]string `json:"where,omitempty"`
	IDs      []string          `json:"ids,omitempty"`
	Hostname string            `json:"hostname,omitempty"`
	Status   string            `json:"status,omitempty"`
}

// ParseSelector parses "platform=azure,release=debian-12,status=only2011,
// hostname=web,id=h1" (the CLI's --hosts).
func ParseSelector(sel string) (Query, error) {
	q := Query{Dims: map[string]string{}}
	if strings.TrimSpace(sel) == "" {
		return q, nil
	}
	for _, part := range strings.Split(sel, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return q, inputErr("host selector %q: want KEY=VALUE[,KEY=VALUE...]", part)
		}
		switch {
		case k == "status":
			q.Status = v
		case k == "hostname":
			q.Hostname = v
		case k == "id":
			q.IDs = append(q.IDs, v)
		case store.ValidDim(k):
			q.Dims[k] = v
		default:
			return q, inputErr("host selector: unknown key %q (want status, hostname, id or one of %s)", k, strings.Join(store.Dims(), ", "))
		}
	}
	return q, nil
}

func (q Query) filter() store.Filter {
	return store.Filter{Dims: q.Dims, IDs: q.IDs, Hostname: q.Hostname, Reported: true}
}

// HostAnswer is one host in `vouch fleet hosts`; the first keys are a contract.
type HostAnswer struct {
	ID                    string            `json:"id"`
	Hostname              string            `json:"hostname"`
	SecureBootEnabled     bool              `json:"secureBootEnabled"`
	BootsToday            bool              `json:"bootsToday"`
	BootsWith2023OnlyShim bool              `json:"bootsWith2023OnlyShim"`
	FirmwareTrusts        []string          `json:"firmwareTrusts"`
	FirmwareKnown         bool              `json:"firmwareKnown"`
	TestPK                bool              `json:"testPK"`
	PCR7Sealed            bool              `json:"pcr7Sealed"`
	LastSeen              time.Time         `json:"lastSeen"`
	Dims                  map[string]string `json:"dims"`

	pair store.StatePair
}

func answer(h store.Host, st *State) HostAnswer {
	return HostAnswer{ID: h.ID, Hostname: h.Hostname, SecureBootEnabled: st.SecureBootEnabled, BootsToday: st.BootsToday,
		BootsWith2023OnlyShim: st.BootsWith2023OnlyShim, FirmwareTrusts: st.FirmwareTrusts, FirmwareKnown: st.FirmwareKnown,
		TestPK: st.TestPK, PCR7Sealed: h.PCR7Sealed, LastSeen: h.LastSeen, Dims: h.Dims,
		pair: store.StatePair{FirmwareState: h.FirmwareState, BootChain: h.BootChain}}
}

// pairs returns the state pairs behind a query with their states, keeping
// those whose state can have the status.
func (s *Service) pairs(ctx context.Context, q Query) ([]store.StatePair, map[store.StatePair]*State, error) {
	groups, err := s.Store.Groups(ctx, nil, q.filter())
	if err != nil {
		return nil, nil, err
	}
	states := map[store.StatePair]*State{}
	var keep []store.StatePair
	s.Eval.Prepare(ctx, groupPairs(groups))
	for _, g := range groups {
		st := s.Eval.State(ctx, g.State)
		states[g.State] = st
		ok, err := st.Is(q.Status, true)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			keep = append(keep, g.State)
		}
	}
	return keep, states, nil
}

// Hosts lists the hosts a query selects, with their readiness.
func (s *Service) Hosts(ctx context.Context, q Query) ([]HostAnswer, error) {
	out, _, err := s.HostsPage(ctx, q, Page{})
	return out, err
}

// Page is a window of a host list ordered by ID: the hosts after the ID
// After, at most Limit (0: all).
type Page struct {
	After string
	Limit int
}

// MaxPage bounds one page of hosts.
const MaxPage = 10000

// HostsPage lists one page of the hosts a query selects, ordered by ID, and
// the cursor of the next page ("" when this is the last). A page may hold
// fewer than Limit hosts and still have a next one (hosts whose sealing
// excludes them from a pcr7 status are dropped after the read).
func (s *Service) HostsPage(ctx context.Context, q Query, p Page) ([]HostAnswer, string, error) {
	if _, err := (&State{}).Is(q.Status, false); err != nil {
		return nil, "", err
	}
	if p.Limit < 0 || p.Limit > MaxPage {
		return nil, "", inputErr("limit %d: want 1 to %d", p.Limit, MaxPage)
	}
	keep, states, err := s.pairs(ctx, q)
	if err != nil {
		return nil, "", err
	}
	out := []HostAnswer{}
	if len(keep) == 0 {
		return out, "", nil
	}
	f := q.filter()
	if p.Limit > 0 {
		// One query, so that the store's ID order and limit are the page's.
		f.After, f.Limit = p.After, p.Limit
		if len(keep) < len(states) {
			f.States = keep
		}
		hosts, err := s.Store.Hosts(ctx, f)
		if err != nil {
			return nil, "", err
		}
		for _, h := range hosts {
			st := states[store.StatePair{FirmwareState: h.FirmwareState, BootChain: h.BootChain}]
			if st == nil {
				continue // reported after the groups were read
			}
			if ok, _ := st.Is(q.Status, h.PCR7Sealed); ok {
				out = append(out, answer(h, st))
			}
		}
		next := ""
		if len(hosts) == p.Limit {
			next = hosts[len(hosts)-1].ID
		}
		return out, next, nil
	}
	f.After = p.After
	// One pass over the selected hosts; the state filter only when some
	// pairs are left out (and then at most a few hundred pairs per query).
	chunks := [][]store.StatePair{nil}
	if len(keep) < len(states) {
		chunks = nil
		for start := 0; start < len(keep); start += 200 {
			chunks = append(chunks, keep[start:min(start+200, len(keep))])
		}
	}
	for _, ch := range chunks {
		f.States = ch
		hosts, err := s.Store.Hosts(ctx, f)
		if err != nil {
			return nil, "", err
		}
		for _, h := range hosts {
			st := states[store.StatePair{FirmwareState: h.FirmwareState, BootChain: h.BootChain}]
			if st == nil {
				continue // reported after the groups were read
			}
			if ok, _ := st.Is(q.Status, h.PCR7Sealed); ok {
				out = append(out, answer(h, st))
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, "", nil
}

// Counts are readiness counts.
type Counts struct {
	Hosts                int64 `json:"hosts"`
	SecureBootOff        int64 `json:"secureBootOff"`
	BootsToday           int64 `json:"bootsToday"`
	Survives2023OnlyShim int64 `json:"survives2023OnlyShim"`
	// StopsWith2023OnlyShim boot today and would not with a 2023-only shim.
	StopsWith2023OnlyShim int64 `json:"stopsWith2023OnlyShim"`
	CanAcceptDBUpdate     int64 `json:"canAcceptDBUpdate"`
	On2023                int64 `json:"on2023"`
	Only2011              int64 `json:"only2011"`
	TestPK                int64 `json:"testPK"`
	PCR7Sealed            int64 `json:"pcr7Sealed"`
	UnknownFirmware       int64 `json:"unknownFirmware"`
}

func (c *Counts) add(st *State, n, sealed int64) {
	c.Hosts += n
	c.PCR7Sealed += sealed
	if !st.FirmwareKnown {
		c.UnknownFirmware += n
	}
	for _, x := range []struct {
		ok  bool
		dst *int64
	}{
		{st.FirmwareKnown && !st.SecureBootEnabled, &c.SecureBootOff}, {st.FirmwareKnown && st.BootsToday, &c.BootsToday},
		{st.FirmwareKnown && st.BootsWith2023OnlyShim, &c.Survives2023OnlyShim},
		{st.FirmwareKnown && st.BootsToday && !st.BootsWith2023OnlyShim, &c.StopsWith2023OnlyShim}, {st.FirmwareKnown && st.CanAcceptDBUpdate, &c.CanAcceptDBUpdate},
		{st.On2023, &c.On2023}, {st.Only2011, &c.Only2011}, {st.TestPK, &c.TestPK},
	} {
		if x.ok {
			*x.dst += n
		}
	}
}

// ReadinessGroup is the counts of one group.
type ReadinessGroup struct {
	By map[string]string `json:"by"`
	Counts
}

// Readiness is the fleet's readiness, in total and by group.
type Readiness struct {
	GroupedBy []string         `json:"groupedBy"`
	Total     Counts           `json:"total"`
	Groups    []ReadinessGroup `json:"groups"`
	// DistinctStates is how many distinct (firmware state, boot chain)
	// pairs were evaluated.
	DistinctStates int `json:"distinctStates"`
}

// Readiness counts reported hosts by readiness, grouped by dims.
func (s *Service) Readiness(ctx context.Context, dims []string, q Query) (*Readiness, error) {
	for _, d := range dims {
		if !store.ValidDim(d) {
			return nil, inputErr("unknown dimension %q (want one of %s)", d, strings.Join(store.Dims(), ", "))
		}
	}
	groups, err := s.Store.Groups(ctx, dims, q.filter())
	if err != nil {
		return nil, err
	}
	out := &Readiness{GroupedBy: append([]string{}, dims...), Groups: []ReadinessGroup{}}
	idx := map[string]int{}
	pairs := map[store.StatePair]bool{}
	s.Eval.Prepare(ctx, groupPairs(groups))
	for _, g := range groups {
		st := s.Eval.State(ctx, g.State)
		pairs[g.State] = true
		key := strings.Join(g.Values, "\x00")
		i, ok := idx[key]
		if !ok {
			by := map[string]string{}
			for j, d := range dims {
				by[d] = g.Values[j]
			}
			i = len(out.Groups)
			idx[key] = i
			out.Groups = append(out.Groups, ReadinessGroup{By: by})
		}
		out.Groups[i].add(st, g.Hosts, g.PCR7Sealed)
		out.Total.add(st, g.Hosts, g.PCR7Sealed)
	}
	out.DistinctStates = len(pairs)
	return out, nil
}

// HostDetail is one host's page: its facts, its state's verdict and history.
type HostDetail struct {
	HostAnswer
	Facts   json.RawMessage      `json:"facts"`
	State   *State               `json:"state"`
	Verdict any                  `json:"secureboot"`
	History []store.HistoryEntry `json:"history"`
	// Baseline and Integrity are the summaries in the host's facts (also
	// under facts), nil when its agent did not collect them.
	Baseline  *BaselineSummary  `json:"baseline,omitempty"`
	Integrity *IntegritySummary `json:"integrity,omitempty"`
}

// Host returns one host's detail.
func (s *Service) Host(ctx context.Context, id string) (*HostDetail, error) {
	h, err := s.Store.Host(ctx, id)
	if err != nil {
		return nil, err
	}
	st := s.Eval.State(ctx, store.StatePair{FirmwareState: h.FirmwareState, BootChain: h.BootChain})
	hist, err := s.Store.History(ctx, id, 50)
	if err != nil {
		return nil, err
	}
	d := &HostDetail{HostAnswer: answer(h, st), Facts: json.RawMessage(h.Facts), State: st, Verdict: st.Report, History: hist}
	if len(h.Facts) == 0 {
		d.Facts = json.RawMessage("null")
	} else {
		var sum struct {
			Baseline  *BaselineSummary  `json:"baseline"`
			Integrity *IntegritySummary `json:"integrity"`
		}
		if json.Unmarshal(h.Facts, &sum) == nil {
			d.Baseline, d.Integrity = sum.Baseline, sum.Integrity
		}
	}
	return d, nil
}

// groupPairs lists the state pairs of groups (repeated as they come).
func groupPairs(groups []store.Group) []store.StatePair {
	out := make([]store.StatePair, len(groups))
	for i, g := range groups {
		out[i] = g.State
	}
	return out
}
