package fleet

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"sort"
	"strings"

	"github.com/vouch-dev/vouch/internal/gate"
	"github.com/vouch-dev/vouch/internal/secureboot"
	"github.com/vouch-dev/vouch/internal/store"
)

// Change is a proposed rollout judged fleet-wide: a new shim package, a dbx
// update, a new SbatLevel, certificates added to db. (The engine's
// secureboot.Change, once on main, replaces this.)
type Change struct {
	ShimPackage *gate.Package
	DBX         *secureboot.DBXUpdate
	SBAT        *secureboot.SBATUpdate
	DBAdd       []*x509.Certificate
	DBAddNames  []string
}

// ChangeRequest is the wire form of a change (POST /v1/whatif): file
// contents and their names.
type ChangeRequest struct {
	ShimPackage     []byte   `json:"shimPackage,omitempty"`
	ShimPackageName string   `json:"shimPackageName,omitempty"`
	DBXUpdate       []byte   `json:"dbxUpdate,omitempty"`
	DBXUpdateName   string   `json:"dbxUpdateName,omitempty"`
	SBATLevel       []byte   `json:"sbatLevel,omitempty"` // a file's contents
	SBATLevelName   string   `json:"sbatLevelName,omitempty"`
	SBATKeyword     string   `json:"sbatKeyword,omitempty"` // latest or automatic
	SBATPick        string   `json:"sbatPick,omitempty"`    // DATESTAMP or latest of a history file
	DBAdd           [][]byte `json:"dbAdd,omitempty"`
	DBAddNames      []string `json:"dbAddNames,omitempty"`
	Hosts           string   `json:"hosts,omitempty"` // selector
}

// Parse turns a request into a change; bad files are input errors naming them.
func (r *ChangeRequest) Parse() (*Change, error) {
	c := &Change{}
	name := func(n, def string) string {
		if n == "" {
			return def
		}
		return n
	}
	var err error
	if len(r.ShimPackage) > 0 {
		n := name(r.ShimPackageName, "shim package")
		switch {
		case gate.IsDeb(r.ShimPackage):
			c.ShimPackage, err = gate.ReadDeb(bytes.NewReader(r.ShimPackage), n, gate.ReadOptions{})
		case gate.IsRPM(r.ShimPackage):
			c.ShimPackage, err = gate.ReadRPM(bytes.NewReader(r.ShimPackage), n, gate.ReadOptions{})
		default:
			return nil, inputErr("%s: not a .deb or .rpm package", n)
		}
		if err != nil {
			return nil, inputErr("%v", err)
		}
		if len(c.ShimPackage.Shims()) == 0 {
			return nil, inputErr("%s: holds no signed shim", n)
		}
	}
	if len(r.DBXUpdate) > 0 {
		if c.DBX, err = secureboot.ParseDBXUpdate(r.DBXUpdate, name(r.DBXUpdateName, "dbx update")); err != nil {
			return nil, inputErr("%v", err)
		}
	}
	switch {
	case r.SBATKeyword != "":
		if r.SBATKeyword != "latest" && r.SBATKeyword != "automatic" {
			return nil, inputErr("sbat level keyword %q: want latest or automatic", r.SBATKeyword)
		}
		c.SBAT, _ = secureboot.ParseSBATUpdateArg(r.SBATKeyword)
	case len(r.SBATLevel) > 0:
		if c.SBAT, err = secureboot.ParseSBATUpdate(r.SBATLevel, name(r.SBATLevelName, "SbatLevel"), r.SBATPick); err != nil {
			return nil, inputErr("%v", err)
		}
	}
	for i, b := range r.DBAdd {
		n := fmt.Sprintf("db certificate %d", i+1)
		if i < len(r.DBAddNames) {
			n = r.DBAddNames[i]
		}
		if blk, _ := pem.Decode(b); blk != nil {
			b = blk.Bytes
		}
		cert, err := x509.ParseCertificate(b)
		if err != nil {
			return nil, inputErr("%s: not an X.509 certificate: %v", n, err)
		}
		c.DBAdd = append(c.DBAdd, cert)
		c.DBAddNames = append(c.DBAddNames, n)
	}
	if c.ShimPackage == nil && c.DBX == nil && c.SBAT == nil && len(c.DBAdd) == 0 {
		return nil, inputErr("no change given: name a shim package, a dbx update, an SBAT level or a db certificate")
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
func (e *Evaluator) Judge(m *Machine, c *Change) Outcome {
	if m.Firmware == nil {
		return Outcome{Reason: "firmware state unknown (the agent read no UEFI variables): not judged"}
	}
	r := e.Analyze(m)
	o := Outcome{Known: true, BootsBefore: r.Transition.BootsToday, BootsAfter: r.Transition.BootsToday}
	var reasons []string
	fw := m.Firmware
	if len(c.DBAdd) > 0 {
		rebuilt := *m
		cp, err := secureboot.FromVars(m.Firmware.Vars)
		if err == nil {
			for i, cert := range c.DBAdd {
				cp.AddDBCert(cert, c.DBAddNames[i])
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
	if c.DBX != nil || c.SBAT != nil {
		imp, err := secureboot.AnalyzeRevocation(m.ESP, r.BootPaths, fw, e.Options, secureboot.Revocation{DBX: c.DBX, SBAT: c.SBAT})
		if err != nil {
			o.Known = false
			return Outcome{Reason: err.Error()}
		}
		if !imp.BootsAfter {
			o.BootsAfter = false
			reasons = append(reasons, imp.Verdict)
		}
	}
	if c.ShimPackage != nil {
		stages := gate.TargetStages(m.ESP, m.Root, "")
		for _, sh := range pickShims(c.ShimPackage, m) {
			v := gate.Judge(gate.Request{Shim: c.ShimPackage.Binary(sh), GRUB: stages.GRUB, Kernel: stages.Kernel, Firmware: fw, SBATPolicy: e.Options.SBATPolicy})
			if !v.Boots {
				o.BootsAfter = false
				reasons = append(reasons, sh.Path+": "+v.Message)
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

// pickShims keeps the package's shims for the machine's architecture (by
// the ESP's file names), all of them when that is unknown.
func pickShims(p *gate.Package, m *Machine) []*gate.EFIFile {
	shims := p.Shims()
	arch := ""
	if m.ESP != nil {
		for _, a := range []string{"x64", "aa64", "ia32"} {
			for _, n := range []string{"EFI/BOOT/BOOT" + strings.ToUpper(a) + ".EFI"} {
				if f, err := m.ESP.Open(n); err == nil {
					f.Close()
					arch = a
				}
			}
		}
	}
	if arch == "" {
		return shims
	}
	var out []*gate.EFIFile
	for _, s := range shims {
		if strings.Contains(strings.ToLower(s.Path), arch+".efi") {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return shims
	}
	return out
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
// multiplied.
func (s *Service) WhatIf(ctx context.Context, c *Change, q Query) (*WhatIf, error) {
	keep, _, err := s.pairs(ctx, q)
	if err != nil {
		return nil, err
	}
	outcomes := map[store.StatePair]Outcome{}
	for _, p := range keep {
		m, err := s.Eval.Machine(ctx, p)
		if err != nil {
			outcomes[p] = Outcome{Reason: err.Error()}
			continue
		}
		outcomes[p] = s.Eval.Judge(m, c)
	}
	hosts, err := s.Hosts(ctx, q)
	if err != nil {
		return nil, err
	}
	w := &WhatIf{StopBooting: []string{}, AlreadyBroken: []string{}, Unknown: []string{}, Groups: []WhatIfGroup{}, DistinctStates: len(keep), Hosts: len(hosts)}
	byReason := map[string]int{}
	for _, h := range hosts {
		o := outcomes[h.pair]
		stop := o.Known && o.BootsBefore && !o.BootsAfter
		switch {
		case !o.Known:
			w.Unknown = append(w.Unknown, h.ID)
		case stop:
			w.StopBooting = append(w.StopBooting, h.ID)
		case !o.BootsBefore:
			w.AlreadyBroken = append(w.AlreadyBroken, h.ID)
		default:
			w.KeepBooting++
		}
		i, ok := byReason[o.Reason]
		if !ok {
			i = len(w.Groups)
			byReason[o.Reason] = i
			w.Groups = append(w.Groups, WhatIfGroup{Reason: o.Reason, Stop: stop, Sample: []string{}})
		}
		w.Groups[i].Hosts++
		if len(w.Groups[i].Sample) < 10 {
			w.Groups[i].Sample = append(w.Groups[i].Sample, h.ID)
		}
	}
	sort.SliceStable(w.Groups, func(i, j int) bool {
		if w.Groups[i].Stop != w.Groups[j].Stop {
			return w.Groups[i].Stop
		}
		return w.Groups[i].Hosts > w.Groups[j].Hosts
	})
	return w, nil
}
