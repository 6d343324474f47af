// Package check defines what a check is and runs a list of them against a target.
//
// A check is a small value: an ID, a title, the suite it belongs to, what it needs
// from a target (a root file system, an ESP, firmware variables, the running
// system), and a Run function. The runner never calls Run on a target that lacks
// a need; it records "not applicable" with the reason instead.
package check

import (
	"context"
	"fmt"
	"runtime/debug"
	"sort"
	"strings"
	"sync"

	"github.com/vouch-dev/vouch/internal/finding"
	"github.com/vouch-dev/vouch/internal/target"
)

// Need is something a check requires of a target.
type Need uint

// Needs, combined with |.
const (
	NeedRoot     Need = 1 << iota // a root file system
	NeedESP                       // an EFI System Partition
	NeedFirmware                  // firmware variables (live efivarfs, a store file, a profile)
	NeedLive                      // the running system
	NeedImage                     // a disk image (partition table, container)
)

var needNames = []struct {
	n    Need
	name string
}{
	{NeedRoot, "a root file system"},
	{NeedESP, "an EFI System Partition"},
	{NeedFirmware, "firmware variables"},
	{NeedLive, "the running system"},
	{NeedImage, "a disk image"},
}

func (n Need) String() string {
	var out []string
	for _, x := range needNames {
		if n&x.n != 0 {
			out = append(out, x.name)
		}
	}
	return strings.Join(out, ", ")
}

// Env is what a check runs against: the target plus the facts the command
// adds (firmware variables chosen on the command line, a vulnerability
// database) and those the checks compute once and share (Fact).
type Env struct {
	Target *target.Target
	// Firmware is true when firmware variables are available to the checks that
	// read them (set by the secure boot layer).
	Firmware bool

	mu    sync.Mutex
	facts map[any]*factBox
}

// Fact is one typed fact of a run, declared by the domain package that owns
// it (`var firmware = check.NewFact[*Firmware]("secureboot.firmware")`):
// set by the command before the checks run, or computed once on first use
// and shared by the checks of that run. Safe for concurrent checks.
type Fact[T any] struct{ name string }

// NewFact declares a fact; name is for messages.
func NewFact[T any](name string) *Fact[T] { return &Fact[T]{name: name} }

func (f *Fact[T]) String() string { return f.name }

type factBox struct {
	once sync.Once
	v    any
}

func (e *Env) box(key any, create bool) *factBox {
	e.mu.Lock()
	defer e.mu.Unlock()
	b := e.facts[key]
	if b == nil && create {
		if e.facts == nil {
			e.facts = map[any]*factBox{}
		}
		b = &factBox{}
		e.facts[key] = b
	}
	return b
}

// Set gives the fact a value in env, replacing any.
func (f *Fact[T]) Set(env *Env, v T) {
	b := &factBox{v: v}
	b.once.Do(func() {})
	env.mu.Lock()
	defer env.mu.Unlock()
	if env.facts == nil {
		env.facts = map[any]*factBox{}
	}
	env.facts[f] = b
}

// Reset forgets the fact's value (a fact computed from others that changed).
func (f *Fact[T]) Reset(env *Env) {
	env.mu.Lock()
	defer env.mu.Unlock()
	delete(env.facts, f)
}

// Get returns the fact's value and whether it has one.
func (f *Fact[T]) Get(env *Env) (T, bool) {
	var zero T
	b := env.box(f, false)
	if b == nil {
		return zero, false
	}
	b.once.Do(func() {}) // wait for a computation under way
	v, ok := b.v.(T)
	if !ok {
		return zero, false
	}
	return v, true
}

// Once returns the fact's value, computing it with compute on first use;
// concurrent callers wait for that one computation.
func (f *Fact[T]) Once(env *Env, compute func() T) T {
	b := env.box(f, true)
	b.once.Do(func() { b.v = compute() })
	v, _ := b.v.(T)
	return v
}

// Has reports what of Need the environment offers.
func (e *Env) Has(n Need) Need {
	t := e.Target
	var have Need
	if t.Root != nil {
		have |= NeedRoot
	}
	if t.ESP != nil {
		have |= NeedESP
	}
	if e.Firmware {
		have |= NeedFirmware
	}
	if t.Kind == target.KindLive {
		have |= NeedLive
	}
	if t.Image != nil {
		have |= NeedImage
	}
	return have & n
}

// Result is what Run returns for one subject; the runner adds the check's
// identity to make a finding.finding.
type Result struct {
	Status      finding.Status
	Subject     string
	Message     string
	Evidence    []string
	Remediation string // overrides the check's remediation when set
	Severity    *finding.Severity
}

// Check is one check.
type Check struct {
	ID          string
	Suite       string
	Title       string
	Severity    finding.Severity
	Needs       Need
	Remediation string
	References  []string
	Run         func(ctx context.Context, env *Env) []Result
}

// Pass, Fail, NA and Errorf build single results.
func Pass(msg string, evidence ...string) []Result {
	return []Result{{Status: finding.Pass, Message: msg, Evidence: evidence}}
}

// Fail builds a single failing result.
func Fail(msg string, evidence ...string) []Result {
	return []Result{{Status: finding.Fail, Message: msg, Evidence: evidence}}
}

// NA builds a single not-applicable result.
func NA(msg string) []Result {
	return []Result{{Status: finding.NotApplicable, Message: msg}}
}

// Errorf builds a single error result.
func Errorf(format string, args ...any) []Result {
	return []Result{{Status: finding.Error, Message: fmt.Sprintf(format, args...)}}
}

// Run runs checks against env in list order and returns their findings. A check
// that panics yields an error finding; the others still run.
func Run(ctx context.Context, env *Env, checks []Check) []finding.Finding {
	var out []finding.Finding
	for _, c := range checks {
		if ctx.Err() != nil {
			break
		}
		out = append(out, runOne(ctx, env, c)...)
	}
	return out
}

func runOne(ctx context.Context, env *Env, c Check) (fs []finding.Finding) {
	base := finding.Finding{ID: c.ID, Suite: c.Suite, Title: c.Title, Severity: c.Severity,
		Remediation: c.Remediation, References: c.References}
	if missing := c.Needs &^ env.Has(c.Needs); missing != 0 {
		f := base
		f.Status = finding.NotApplicable
		f.Message = "needs " + missing.String() + ", which this target does not have"
		f.Remediation = ""
		return []finding.Finding{f}
	}
	defer func() {
		if r := recover(); r != nil {
			f := base
			f.Status = finding.Error
			f.Message = fmt.Sprintf("check failed internally: %v", r)
			f.Evidence = []string{firstFrames(string(debug.Stack()))}
			fs = []finding.Finding{f}
		}
	}()
	for _, r := range c.Run(ctx, env) {
		f := base
		f.Status, f.Subject, f.Message, f.Evidence = r.Status, r.Subject, r.Message, r.Evidence
		if r.Remediation != "" {
			f.Remediation = r.Remediation
		}
		if r.Severity != nil {
			f.Severity = *r.Severity
		}
		if f.Status != finding.Fail && f.Status != finding.Error {
			f.Remediation = ""
		}
		fs = append(fs, f)
	}
	return fs
}

func firstFrames(stack string) string {
	lines := strings.Split(stack, "\n")
	if len(lines) > 12 {
		lines = lines[:12]
	}
	return strings.Join(lines, "\n")
}

// Select returns the checks of the named suites (all when suites is empty), in
// list order. An unknown suite name is an error naming the known ones.
func Select(all []Check, suites []string) ([]Check, error) {
	if len(suites) == 0 {
		return all, nil
	}
	known := map[string]bool{}
	for _, c := range all {
		known[c.Suite] = true
	}
	want := map[string]bool{}
	for _, s := range suites {
		if !known[s] {
			names := make([]string, 0, len(known))
			for k := range known {
				names = append(names, k)
			}
			sort.Strings(names)
			return nil, fmt.Errorf("check: unknown suite %q (known: %s)", s, strings.Join(names, ", "))
		}
		want[s] = true
	}
	var out []Check
	for _, c := range all {
		if want[c.Suite] {
			out = append(out, c)
		}
	}
	return out, nil
}
