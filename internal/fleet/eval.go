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
	// running are the evaluations under way.
	running map[store.StatePair]*running
	files   blobCache
}

// blobCacheMax bounds the bytes of the blobs an evaluator keeps.
const blobCacheMax = 128 << 20

// blobCache keeps the blobs (state documents, variables, EFI binaries,
// kernels) the last machines were built from, oldest out first, up to blobCacheMax bytes. A fleet's
// distinct states share their boot chains (one image under several firmware
// states): reading the same kernel back out of the database for each state
// was nine tenths of a cold readiness. Blobs are content-addressed, so a
// kept one is never stale; the engine only reads them.
type blobCache struct {
	mu    sync.Mutex
	data  map[string][]byte
	order []string
	size  int
}

func (c *blobCache) get(digest string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.data[digest]
	return b, ok
}

func (c *blobCache) put(digest string, b []byte) {
	if len(b) > blobCacheMax/4 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.data[digest]; ok {
		return
	}
	if c.data == nil {
		c.data = map[string][]byte{}
	}
	for c.size+len(b) > blobCacheMax && len(c.order) > 0 {
		c.size -= len(c.data[c.order[0]])
		delete(c.data, c.order[0])
		c.order = c.order[1:]
	}
	c.data[digest] = b
	c.order = append(c.order, digest)
	c.size += len(b)
}

// sharedFS is a MapFS whose ReadFile returns the file's data itself, not a
// copy: the data is a cached blob that every state sharing the boot chain
// reads, and the engine parses binaries without writing to them (copying a
// kernel per state was the largest part of a cold readiness after the
// reads). fs.ReadFileFS asks for a copy; this file system is the fleet
// evaluator's own and goes nowhere else. A pointer, as the engine keys its
// cache by the file system's address.
type sharedFS struct{ fstest.MapFS }

func (f *sharedFS) ReadFile(name string) ([]byte, error) {
	if m, ok := f.MapFS[name]; ok && m.Mode.IsRegular() {
		return m.Data, nil
	}
	return f.MapFS.ReadFile(name)
}

// file returns a blob's data, from the cache when it is there; callers
// only read it.
func (e *Evaluator) file(ctx context.Context, digest string) ([]byte, error) {
	if b, ok := e.files.get(digest); ok {
		return b, nil
	}
	fb, err := e.Blobs.Blob(ctx, digest)
	if err != nil {
		return nil, err
	}
	e.files.put(digest, fb.Data)
	return fb.Data, nil
}

// NewEvaluator returns an evaluator reading blobs from b.
func NewEvaluator(b Blobs) *Evaluator {
	return &Evaluator{Blobs: b, states: map[store.StatePair]*State{}}
}

// Machine rebuilds a distinct state from its blobs.
func (e *Evaluator) Machine(ctx context.Context, p store.StatePair) (*Machine, error) {
	m := &Machine{}
	if p.FirmwareState != "" {
		b, err := e.file(ctx, p.FirmwareState)
		if err != nil {
			return nil, fmt.Errorf("fleet: firmware state %s: %w", p.FirmwareState, err)
		}
		var st FirmwareState
		if err := json.Unmarshal(b, &st); err != nil {
			return nil, fmt.Errorf("fleet: firmware state %s: %w", p.FirmwareState, err)
		}
		var vars []efi.Variable
		for _, v := range st.Vars {
			g, err := efi.ParseGUID(v.GUID)
			if err != nil {
				return nil, fmt.Errorf("fleet: firmware state %s: %w", p.FirmwareState, err)
			}
			vb, err := e.file(ctx, v.Digest)
			if err != nil {
				return nil, fmt.Errorf("fleet: variable %s: %w", v.Name, err)
			}
			vars = append(vars, efi.Variable{Name: v.Name, GUID: g, Attributes: efi.Attributes(v.Attributes), Data: vb[:len(vb):len(vb)]})
		}
		fw, err := secureboot.FromVars(efi.NewVarSet("firmware state "+p.FirmwareState[:12], vars))
		if err != nil {
			return nil, fmt.Errorf("fleet: firmware state %s: %w", p.FirmwareState, err)
		}
		m.Firmware = fw
	}
	if p.BootChain != "" {
		b, err := e.file(ctx, p.BootChain)
		if err != nil {
			return nil, fmt.Errorf("fleet: boot chain %s: %w", p.BootChain, err)
		}
		var ch bootChain
		if err := json.Unmarshal(b, &ch); err != nil {
			return nil, fmt.Errorf("fleet: boot chain %s: %w", p.BootChain, err)
		}
		load := func(files []File) (fs.FS, error) {
			if len(files) == 0 {
				return nil, nil
			}
			mfs := fstest.MapFS{}
			for _, f := range files {
				data, err := e.file(ctx, f.Digest)
				if err != nil {
					return nil, fmt.Errorf("fleet: %s: %w", f.Path, err)
				}
				mfs[f.Path] = &fstest.MapFile{Data: data, Mode: 0o644}
			}
			return &sharedFS{mfs}, nil
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
// A call for a state being evaluated waits for that evaluation (the server
// judges the stored states at start while questions may already come).
func (e *Evaluator) State(ctx context.Context, p store.StatePair) *State {
	e.mu.Lock()
	if s, ok := e.states[p]; ok {
		e.mu.Unlock()
		return s
	}
	if w, ok := e.running[p]; ok {
		e.mu.Unlock()
		select {
		case <-w.done:
			return w.s
		case <-ctx.Done():
			return &State{Pair: p, FirmwareTrusts: []string{}, KEKTrusts: []string{}, ShimSignedBy: []string{}, Err: ctx.Err().Error()}
		}
	}
	w := &running{done: make(chan struct{})}
	if e.running == nil {
		e.running = map[store.StatePair]*running{}
	}
	e.running[p] = w
	e.mu.Unlock()
	s := e.evaluate(ctx, p)
	e.mu.Lock()
	if s.Err == "" || ctx.Err() == nil {
		e.states[p] = s
	}
	delete(e.running, p)
	e.mu.Unlock()
	w.s = s
	close(w.done)
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

// running is an evaluation under way.
type running struct {
	done chan struct{}
	s    *State
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
