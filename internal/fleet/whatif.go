package fleet

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/vouch-dev/vouch/internal/gate"
	"github.com/vouch-dev/vouch/internal/mscerts"
	"github.com/vouch-dev/vouch/internal/secureboot"
	"github.com/vouch-dev/vouch/internal/store"
)

// ChangeRequest is the wire form of a proposed change (POST /v1/whatif):
// the contents of the files of a secureboot.ChangeFiles and their names.
// The server turns it into a secureboot.Change with the loader of `vouch
// gate` (gate.LoadChangeBytes).
type ChangeRequest struct {
	ShimPackage     []byte   `json:"shimPackage,omitempty"`
	ShimPackageName string   `json:"shimPackageName,omitempty"`
	Shim            []byte   `json:"shim,omitempty"`
	ShimName        string   `json:"shimName,omitempty"`
	GRUB            []byte   `json:"grub,omitempty"`
	GRUBName        string   `json:"grubName,omitempty"`
	Kernel          []byte   `json:"kernel,omitempty"`
	KernelName      string   `json:"kernelName,omitempty"`
	DBXUpdate       []byte   `json:"dbxUpdate,omitempty"`
	DBXUpdateName   string   `json:"dbxUpdateName,omitempty"`
	SBATLevel       []byte   `json:"sbatLevel,omitempty"` // a file's contents
	SBATLevelName   string   `json:"sbatLevelName,omitempty"`
	SBATKeyword     string   `json:"sbatKeyword,omitempty"` // latest or automatic
	SBATPick        string   `json:"sbatPick,omitempty"`    // DATESTAMP or latest of a history file
	DBAdd           [][]byte `json:"dbAdd,omitempty"`       // empty for a built-in name
	DBAddNames      []string `json:"dbAddNames,omitempty"`
	Hosts           string   `json:"hosts,omitempty"` // selector
}

// NewChangeRequest reads the files f names into a request; built-in
// --db-add names (mscerts) travel as names. Errors name the file.
func NewChangeRequest(f secureboot.ChangeFiles, hosts string) (ChangeRequest, error) {
	r := ChangeRequest{Hosts: hosts}
	var err error
	read := func(p string, b *[]byte, name *string) {
		if p == "" || err != nil {
			return
		}
		if *b, err = os.ReadFile(p); err != nil {
			err = inputErr("%v", err)
		}
		*name = filepath.Base(p)
	}
	read(f.ShimPackage, &r.ShimPackage, &r.ShimPackageName)
	read(f.Shim, &r.Shim, &r.ShimName)
	read(f.GRUB, &r.GRUB, &r.GRUBName)
	read(f.Kernel, &r.Kernel, &r.KernelName)
	read(f.DBXUpdate, &r.DBXUpdate, &r.DBXUpdateName)
	switch f.SBATLevel {
	case "":
	case "latest", "automatic":
		r.SBATKeyword = f.SBATLevel
	default:
		file, pick := f.SBATLevel, ""
		if _, serr := os.Stat(file); serr != nil {
			file, pick = secureboot.SplitSBATArg(file)
		}
		read(file, &r.SBATLevel, &r.SBATLevelName)
		r.SBATPick = pick
	}
	for _, p := range f.DBAdd {
		var b []byte
		name := p
		if _, ok := mscerts.Lookup(p); !ok {
			read(p, &b, &name)
		}
		r.DBAdd = append(r.DBAdd, b)
		r.DBAddNames = append(r.DBAddNames, name)
	}
	return r, err
}

// Parse turns a request into a change with gate.LoadChangeBytes; bad files
// are input errors naming them.
func (r *ChangeRequest) Parse() (*secureboot.Change, error) {
	var f secureboot.ChangeFiles
	mem := map[string][]byte{}
	used := map[string]bool{}
	// put names b (unique among the request's files) and returns the name.
	put := func(b []byte, name, def string) string {
		if name == "" {
			name = def
		}
		n := name
		for i := 2; used[n]; i++ {
			n = fmt.Sprintf("%s (%d)", name, i)
		}
		used[n] = true
		mem[n] = b
		return n
	}
	if len(r.ShimPackage) > 0 {
		f.ShimPackage = put(r.ShimPackage, r.ShimPackageName, "shim package")
	}
	if len(r.Shim) > 0 {
		f.Shim = put(r.Shim, r.ShimName, "shim")
	}
	if len(r.GRUB) > 0 {
		f.GRUB = put(r.GRUB, r.GRUBName, "GRUB")
	}
	if len(r.Kernel) > 0 {
		f.Kernel = put(r.Kernel, r.KernelName, "kernel")
	}
	if len(r.DBXUpdate) > 0 {
		f.DBXUpdate = put(r.DBXUpdate, r.DBXUpdateName, "dbx update")
	}
	switch {
	case r.SBATKeyword != "":
		if r.SBATKeyword != "latest" && r.SBATKeyword != "automatic" {
			return nil, inputErr("sbat level keyword %q: want latest or automatic", r.SBATKeyword)
		}
		f.SBATLevel = r.SBATKeyword
	case len(r.SBATLevel) > 0:
		f.SBATLevel = put(r.SBATLevel, r.SBATLevelName, "SbatLevel")
		if r.SBATPick != "" {
			// The loader splits FILE#PICK for a name it was not sent.
			f.SBATLevel += "#" + r.SBATPick
		}
	}
	for i, b := range r.DBAdd {
		n := fmt.Sprintf("db certificate %d", i+1)
		if i < len(r.DBAddNames) && r.DBAddNames[i] != "" {
			n = r.DBAddNames[i]
		}
		if len(b) == 0 {
			if _, ok := mscerts.Lookup(n); !ok {
				return nil, inputErr("%s: neither sent nor a built-in certificate", n)
			}
			f.DBAdd = append(f.DBAdd, n)
			continue
		}
		f.DBAdd = append(f.DBAdd, put(b, n, n))
	}
	if f.Empty() {
		return nil, inputErr("no change given: name a shim package, a dbx update, an SBAT level or a db certificate")
	}
	c, err := gate.LoadChangeBytes(f, mem)
	if err != nil {
		return nil, inputErr("%v", err)
	}
	return c, nil
}

// Outcome is the verdict of a change on one distinct state.
type Outcome struct {
	Known       bool   `json:"known"`
	BootsBefore bool   `json:"bootsBefore"`
	BootsAfter  bool   `json:"bootsAfter"`
	Reason      string `json:"reason"`
}

// Judge evaluates the change on one machine with the engine: the revocation
// analysis of `vouch secureboot --dbx-update/--sbat-level`, the gate of
// `vouch gate` for a shim package, and db additions as --db-cert does.
func (e *Evaluator) Judge(m *Machine, c *secureboot.Change) Outcome {
	return e.judge(m, nil, c)
}

// judge is Judge with the machine's analysis when the caller has it (a
// State's Report: the same engine on the same blobs).
func (e *Evaluator) judge(m *Machine, r *secureboot.Report, c *secureboot.Change) Outcome {
	if m.Firmware == nil {
		return Outcome{Reason: "firmware state unknown (the agent read no UEFI variables): not judged"}
	}
	if r == nil {
		r = e.Analyze(m)
	}
	o := Outcome{Known: true, BootsBefore: r.Transition.BootsToday, BootsAfter: r.Transition.BootsToday}
	var reasons []string
	fw := m.Firmware
	if len(c.DBAdd) > 0 {
		rebuilt := *m
		cp, err := secureboot.FromVars(m.Firmware.Vars)
		if err == nil {
			for _, d := range c.DBAdd {
				cp.AddDBCert(d.Cert, "--db-add "+d.Source)
			}
			rebuilt.Firmware = cp
			after := e.Analyze(&rebuilt)
			o.BootsAfter = after.Transition.BootsToday
			fw = cp
			if o.BootsBefore && !o.BootsAfter {
				reasons = append(reasons, "after the db addition: "+after.Transition.Advice)
			}
		}
	}
	if rev := c.Revocation(); rev != nil {
		imp, err := secureboot.AnalyzeRevocation(m.ESP, r.BootPaths, fw, e.Options, *rev)
		if err != nil {
			o.Known = false
			return Outcome{Reason: err.Error()}
		}
		if !imp.BootsAfter {
			o.BootsAfter = false
			reasons = append(reasons, imp.Verdict)
		}
	}
	if c.ChangesBootChain() {
		stages := gate.TargetStages(m.ESP, m.Root, "")
		if c.GRUB != nil {
			stages.GRUB = c.GRUB
		}
		if c.Kernel != nil {
			stages.Kernel = c.Kernel
		}
		if c.Shim != nil {
			// Every boot stage the package installs: each shim with the
			// next stages, then MokManager and fallback as the new shim
			// verifies them when it loads them.
			shimBoots := true
			for _, shim := range append([]*secureboot.Binary{c.Shim}, c.ShimsAlso...) {
				v := gate.Judge(gate.Request{Shim: shim, GRUB: stages.GRUB, Kernel: stages.Kernel, Firmware: fw, SBATPolicy: e.Options.SBATPolicy})
				if !v.Boots {
					o.BootsAfter, shimBoots = false, false
					reasons = append(reasons, shim.Name+": "+v.Message)
				}
			}
			if shimBoots && fw.Enforcing() {
				for _, h := range c.Helpers {
					d := secureboot.ShimVerifyWith(c.Shim.Image, fw, h.Image, secureboot.ShimOptions{SBATPolicy: e.Options.SBATPolicy})
					if !d.Allowed {
						o.BootsAfter = false
						reasons = append(reasons, fmt.Sprintf("%s: the new shim would refuse it: %s", h.Name, cmp.Or(d.DeniedBy, d.Reason)))
					}
				}
			}
		}
	}
	switch {
	case len(reasons) > 0:
		o.Reason = strings.Join(reasons, "; ")
	case !o.BootsBefore:
		o.Reason = "does not boot today: " + r.Transition.Advice
	default:
		o.Reason = "still boots"
	}
	return o
}

// WhatIfGroup is the hosts that share one reason.
type WhatIfGroup struct {
	Reason string   `json:"reason"`
	Hosts  int      `json:"hosts"`
	Stop   bool     `json:"stopBooting"`
	Sample []string `json:"sample"`
}

// WhatIf is a change's fleet-wide answer. StopBooting is a contract.
type WhatIf struct {
	StopBooting    []string      `json:"stopBooting"`
	KeepBooting    int           `json:"keepBooting"`
	AlreadyBroken  []string      `json:"alreadyNotBooting"`
	Unknown        []string      `json:"unknown"`
	Groups         []WhatIfGroup `json:"groups"`
	DistinctStates int           `json:"distinctStates"`
	Hosts          int           `json:"hosts"`
}

// WhatIf judges a change on every selected host: once per distinct state,
// multiplied. Hosts are counted from the store's groups; only the hosts
// the answer lists (those that stop booting, do not boot, or are unknown,
// and ten of each reason) are read, so a million hosts that keep booting
// cost one GROUP BY.
func (s *Service) WhatIf(ctx context.Context, c *secureboot.Change, q Query) (*WhatIf, error) {
	if _, err := (&State{}).Is(q.Status, false); err != nil {
		return nil, err
	}
	groups, err := s.Store.Groups(ctx, nil, q.filter())
	if err != nil {
		return nil, err
	}
	type pairInfo struct {
		o      Outcome
		states []store.StatePair
		hosts  int
	}
	outcomes := map[store.StatePair]Outcome{}
	byReason := map[string]*pairInfo{}
	var reasons []string
	w := &WhatIf{StopBooting: []string{}, AlreadyBroken: []string{}, Unknown: []string{}, Groups: []WhatIfGroup{}}
	var listed []store.StatePair
	perHost := q.Status == "pcr7Sealed" // the one status that depends on the host, not its state
	// Each distinct state is judged once, several at once.
	s.Eval.Prepare(ctx, groupPairs(groups))
	var judge []store.StatePair
	for _, g := range groups {
		if ok, _ := s.Eval.State(ctx, g.State).Is(q.Status, true); ok {
			judge = append(judge, g.State)
		}
	}
	var omu sync.Mutex
	forEach(judge, func(p store.StatePair) {
		var o Outcome
		if m, err := s.Eval.Machine(ctx, p); err != nil {
			o = Outcome{Reason: err.Error()}
		} else {
			// Its state's analysis is done (Prepare): judge the change only.
			o = s.Eval.judge(m, s.Eval.State(ctx, p).Report, c)
		}
		omu.Lock()
		outcomes[p] = o
		omu.Unlock()
	})
	w.DistinctStates = len(outcomes)
	for _, g := range groups {
		o, ok := outcomes[g.State]
		if !ok {
			continue // the status excludes its state
		}
		n := int(g.Hosts)
		if perHost {
			n = int(g.PCR7Sealed)
		}
		if n == 0 {
			continue
		}
		w.Hosts += n
		pi := byReason[o.Reason]
		if pi == nil {
			pi = &pairInfo{o: o}
			byReason[o.Reason] = pi
			reasons = append(reasons, o.Reason)
		}
		pi.hosts += n
		pi.states = append(pi.states, g.State)
		if o.Known && o.BootsBefore && o.BootsAfter {
			w.KeepBooting += n
		} else {
			listed = append(listed, g.State)
		}
	}
	// The hosts to list, in ID order: read in no order (one pass over the
	// hosts rather than a sort of all listed ones in the database), then
	// sorted here.
	type hostPair struct {
		id string
		o  *Outcome
	}
	op := make(map[store.StatePair]*Outcome, len(listed))
	for _, p := range listed {
		o := outcomes[p]
		op[p] = &o
	}
	var all []hostPair
	if err := s.eachHost(ctx, q, listed, 0, func(h store.Host, p store.StatePair) {
		all = append(all, hostPair{h.ID, op[p]})
	}); err != nil {
		return nil, err
	}
	slices.SortFunc(all, func(a, b hostPair) int { return strings.Compare(a.id, b.id) })
	samples := map[string][]string{}
	for _, h := range all {
		switch o := h.o; {
		case !o.Known:
			w.Unknown = append(w.Unknown, h.id)
		case !o.BootsBefore:
			w.AlreadyBroken = append(w.AlreadyBroken, h.id)
		default:
			w.StopBooting = append(w.StopBooting, h.id)
		}
		if len(samples[h.o.Reason]) < 10 {
			samples[h.o.Reason] = append(samples[h.o.Reason], h.id)
		}
	}
	for _, r := range reasons {
		pi := byReason[r]
		o := pi.o
		stop := o.Known && o.BootsBefore && !o.BootsAfter
		sample := samples[r]
		if o.Known && o.BootsBefore && o.BootsAfter {
			// Hosts that keep booting are not listed: read ten of them.
			sample = []string{}
			err := s.eachHost(ctx, q, pi.states, 10, func(h store.Host, _ store.StatePair) {
				sample = append(sample, h.ID)
			})
			if err != nil {
				return nil, err
			}
			sort.Strings(sample)
			sample = sample[:min(len(sample), 10)]
		}
		if sample == nil {
			sample = []string{}
		}
		w.Groups = append(w.Groups, WhatIfGroup{Reason: r, Hosts: pi.hosts, Stop: stop, Sample: sample})
	}
	sort.SliceStable(w.Groups, func(i, j int) bool {
		a, b := w.Groups[i], w.Groups[j]
		if a.Stop != b.Stop {
			return a.Stop
		}
		if a.Hosts != b.Hosts {
			return a.Hosts > b.Hosts
		}
		return len(a.Sample) > 0 && len(b.Sample) > 0 && a.Sample[0] < b.Sample[0]
	})
	return w, nil
}

// eachHost calls f for each host q selects whose state is in pairs: with
// limit > 0 the first limit hosts by ID of each chunk of pairs, in ID order;
// without, every such host in no order.
func (s *Service) eachHost(ctx context.Context, q Query, pairs []store.StatePair, limit int, f func(store.Host, store.StatePair)) error {
	fl := q.filter()
	fl.Limit = limit
	fl.Narrow = true
	fl.Unordered = limit == 0 // the caller sorts
	for start := 0; start < len(pairs); start += 200 {
		fl.States = pairs[start:min(start+200, len(pairs))]
		hosts, err := s.Store.Hosts(ctx, fl)
		if err != nil {
			return err
		}
		for _, h := range hosts {
			if q.Status == "pcr7Sealed" && !h.PCR7Sealed {
				continue
			}
			f(h, store.StatePair{FirmwareState: h.FirmwareState, BootChain: h.BootChain})
		}
	}
	return nil
}
