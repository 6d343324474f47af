package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"runtime"
	"strings"
	"sync"
	"testing/fstest"

	"github.com/vouch-dev/vouch/internal/efi"
	"github.com/vouch-dev/vouch/internal/secureboot"
	"github.com/vouch-dev/vouch/internal/store"
)

// Blobs is where the evaluator reads blobs.
type Blobs interface {
	Blob(ctx context.Context, digest string) (store.Blob, error)
}

// Machine is one distinct state rebuilt from blobs: the firmware the engine
// loads (nil when unknown) and the ESP and root as file systems holding the
// host's EFI binaries and kernels.
type Machine struct {
	Firmware  *secureboot.Firmware
	ESP, Root fs.FS
}

// State is the readiness of one distinct (firmware state, boot chain), as
// the secureboot engine answers it.
type State struct {
	Pair          store.StatePair `json:"-"`
	FirmwareKnown bool            `json:"firmwareKnown"`
	// The transition verdict, with the IDs of `vouch secureboot` JSON.
	SecureBootEnabled     bool     `json:"secureBootEnabled"`
	BootsToday            bool     `json:"bootsToday"`
	BootsWith2023OnlyShim bool     `json:"bootsWith2023OnlyShim"`
	FirmwareTrusts        []string `json:"firmwareTrusts"`
	KEKTrusts             []string `json:"kekTrusts"`
	ShimSignedBy          []string `json:"shimSignedBy"`
	// CanAcceptDBUpdate: KEK holds a Microsoft KEK CA, so Microsoft's
	// KEK-signed db update (adding the 2023 CAs) can be applied.
	CanAcceptDBUpdate bool `json:"canAcceptDBUpdate"`
	On2023            bool `json:"on2023"`
	Only2011          bool `json:"only2011"`
	TestPK            bool `json:"testPK"`
	Advice            string
	Report            *secureboot.Report `json:"-"`
	Err               string             `json:"error,omitempty"`
}

// Evaluator rebuilds and judges distinct states, each once.
type Evaluator struct {
	Blobs   Blobs
	Options secureboot.Options

	mu     sync.Mutex
	states map[store.StatePair]*State

	// blobs caches what Machine read: states share most of their blobs
	// (one boot chain's kernels under several firmware states), a what-if
	// rebuilds every state, and blobs never change (content-addressed).
	blobMu    sync.Mutex
	blobs     map[string]store.Blob
	blobBytes int
}

// maxBlobCache bounds the cached blobs' bytes: a fleet's distinct boot
// chains and firmware states are few, their kernels a few MiB each.
const maxBlobCache = 256 << 20

func (e *Evaluator) blob(ctx context.Context, d string) (store.Blob, error) {
	e.blobMu.Lock()
	b, ok := e.blobs[d]
	e.blobMu.Unlock()
	if ok {
		return b, nil
	}
	b, err := e.Blobs.Blob(ctx, d)
	if err != nil {
		return b, err
	}
	e.blobMu.Lock()
	if e.blobs == nil {
		e.blobs = map[string]store.Blob{}
	}
	if _, ok := e.blobs[d]; !ok && e.blobBytes+len(b.Data) <= maxBlobCache {
		b.Data = b.Data[:len(b.Data):len(b.Data)] // an append by a reader copies
		e.blobs[d] = b
		e.blobBytes += len(b.Data)
	}
	e.blobMu.Unlock()
	return b, nil
}

// NewEvaluator returns an evaluator reading blobs from b.
func NewEvaluator(b Blobs) *Evaluator {
	return &Evaluator{Blobs: b, states: map[store.StatePair]*State{}}
}

// Machine rebuilds a distinct state from its blobs.
func (e *Evaluator) Machine(ctx context.Context, p store.StatePair) (*Machine, error) {
	m := &Machine{}
	if p.FirmwareState != "" {
		b, err := e.blob(ctx, p.FirmwareState)
		if err != nil {
			return nil, fmt.Errorf("fleet: firmware state %s: %w", p.FirmwareState, err)
		}
		var st FirmwareState
		if err := json.Unmarshal(b.Data, &st); err != nil {
			return nil, fmt.Errorf("fleet: firmware state %s: %w", p.FirmwareState, err)
		}
		var vars []efi.Variable
		for _, v := range st.Vars {
			g, err := efi.ParseGUID(v.GUID)
			if err != nil {
				return nil, fmt.Errorf("fleet: firmware state %s: %w", p.FirmwareState, err)
			}
			vb, err := e.blob(ctx, v.Digest)
			if err != nil {
				return nil, fmt.Errorf("fleet: variable %s: %w", v.Name, err)
			}
			vars = append(vars, efi.Variable{Name: v.Name, GUID: g, Attributes: efi.Attributes(v.Attributes), Data: vb.Data})
		}
		fw, err := secureboot.FromVars(efi.NewVarSet("firmware state "+p.FirmwareState[:12], vars))
		if err != nil {
			return nil, fmt.Errorf("fleet: firmware state %s: %w", p.FirmwareState, err)
		}
		m.Firmware = fw
	}
	if p.BootChain != "" {
		b, err := e.blob(ctx, p.BootChain)
		if err != nil {
			return nil, fmt.Errorf("fleet: boot chain %s: %w", p.BootChain, err)
		}
		var ch bootChain
		if err := json.Unmarshal(b.Data, &ch); err != nil {
			return nil, fmt.Errorf("fleet: boot chain %s: %w", p.BootChain, err)
		}
		load := func(files []File) (fs.FS, error) {
			if len(files) == 0 {
				return nil, nil
			}
			mfs := fstest.MapFS{}
			for _, f := range files {
				fb, err := e.blob(ctx, f.Digest)
				if err != nil {
					return nil, fmt.Errorf("fleet: %s: %w", f.Path, err)
				}
				mfs[f.Path] = &fstest.MapFile{Data: fb.Data, Mode: 0o644}
			}
			return mfs, nil
		}
		if m.ESP, err = load(ch.ESP); err != nil {
			return nil, err
		}
		if m.Root, err = load(ch.Root); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Analyze runs the engine on a machine, as `vouch secureboot` does.
func (e *Evaluator) Analyze(m *Machine) *secureboot.Report {
	return secureboot.Analyze(m.ESP, m.Root, m.Firmware, e.Options)
}

// State evaluates a distinct state once; later calls return the same answer.
func (e *Evaluator) State(ctx context.Context, p store.StatePair) *State {
	e.mu.Lock()
	if s, ok := e.states[p]; ok {
		e.mu.Unlock()
		return s
	}
	e.mu.Unlock()
	s := e.evaluate(ctx, p)
	e.mu.Lock()
	if s.Err == "" || ctx.Err() == nil {
		e.states[p] = s
	}
	e.mu.Unlock()
	return s
}

// Prepare evaluates the pairs not evaluated yet, as many at once as there
// are CPUs: each is independent engine work (hashing every boot stage),
// and a cold question would otherwise judge its states one by one.
func (e *Evaluator) Prepare(ctx context.Context, pairs []store.StatePair) {
	forEach(pairs, func(p store.StatePair) {
		e.mu.Lock()
		_, ok := e.states[p]
		e.mu.Unlock()
		if !ok {
			e.State(ctx, p)
		}
	})
}

// forEach calls f on each distinct pair, GOMAXPROCS at a time.
func forEach(pairs []store.StatePair, f func(store.StatePair)) {
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	seen := map[store.StatePair]bool{}
	for _, p := range pairs {
		if seen[p] {
			continue
		}
		seen[p] = true
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			f(p)
		}()
	}
	wg.Wait()
}

func (e *Evaluator) evaluate(ctx context.Context, p store.StatePair) *State {
	s := &State{Pair: p, FirmwareTrusts: []string{}, KEKTrusts: []string{}, ShimSignedBy: []string{}}
	m, err := e.Machine(ctx, p)
	if err != nil {
		s.Err = err.Error()
		return s
	}
	r := e.Analyze(m)
	s.Report = r
	tr := r.Transition
	s.FirmwareKnown = tr.FirmwareKnown
	s.SecureBootEnabled, s.BootsToday, s.BootsWith2023OnlyShim = tr.SecureBootEnabled, tr.BootsToday, tr.BootsWith2023OnlyShim
	s.FirmwareTrusts, s.ShimSignedBy, s.Advice = nonNil(tr.FirmwareTrusts), nonNil(tr.ShimSignedBy), tr.Advice
	if fw := m.Firmware; fw != nil {
		s.KEKTrusts = nonNil(fw.KEKCAs)
		for _, k := range fw.KEKCAs {
			if k == "microsoft-kek-ca-2011" || k == "microsoft-kek-2k-ca-2023" {
				s.CanAcceptDBUpdate = true
			}
		}
		s.On2023 = fw.TrustsCA(secureboot.CAUEFI2023)
		s.Only2011 = fw.TrustsCA(secureboot.CAUEFI2011) && !s.On2023
		for _, pk := range fw.Summarize().PK {
			u := strings.ToUpper(pk)
			if strings.Contains(u, "DO NOT TRUST") || strings.Contains(u, "DO NOT SHIP") {
				s.TestPK = true
			}
		}
	}
	return s
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Statuses are the readiness conditions a host list can be asked for.
var Statuses = []string{"secureBootOff", "bootsToday", "notBootingToday", "survives2023OnlyShim", "stopsWith2023OnlyShim",
	"canAcceptDBUpdate", "cannotAcceptDBUpdate", "on2023", "only2011", "testPK", "pcr7Sealed", "unknownFirmware"}

// Is reports whether a host in state s (sealed to PCR 7 or not) has status.
func (s *State) Is(status string, pcr7 bool) (bool, error) {
	known := s.FirmwareKnown
	switch status {
	case "", "all":
		return true, nil
	case "secureBootOff":
		return known && !s.SecureBootEnabled, nil
	case "bootsToday":
		return known && s.BootsToday, nil
	case "notBootingToday":
		return known && !s.BootsToday, nil
	case "survives2023OnlyShim":
		return known && s.BootsWith2023OnlyShim, nil
	case "stopsWith2023OnlyShim":
		return known && s.BootsToday && !s.BootsWith2023OnlyShim, nil
	case "canAcceptDBUpdate":
		return known && s.CanAcceptDBUpdate, nil
	case "cannotAcceptDBUpdate":
		return known && !s.CanAcceptDBUpdate, nil
	case "on2023":
		return s.On2023, nil
	case "only2011":
		return s.Only2011, nil
	case "testPK":
		return s.TestPK, nil
	case "pcr7Sealed":
		return pcr7, nil
	case "unknownFirmware":
		return !known, nil
	}
	return false, inputErr("unknown status %q (want one of %s)", status, strings.Join(Statuses, ", "))
}
