// Package measure reads the TPM event log that UEFI firmware, shim and GRUB
// write (TCG PC Client crypto-agile format), replays it per PCR bank,
// compares it with the PCRs the TPM holds, explains PCR 7 (the Secure Boot
// state and the authorities that let each boot application run) and PCR 4
// (the boot applications), and predicts both after a db, dbx, SbatLevel,
// shim, GRUB or kernel change.
//
// Parsing is github.com/google/go-attestation's (attest.ParseEventLog), and
// its EventLog.Verify is used as a second opinion on a replay against the
// TPM's PCRs. What it lacks is written here, each for a reason:
//   - the values the log replays to (it only verifies against known PCRs, and
//     a prediction needs values nobody has measured yet);
//   - which event broke a replay, and where a log stops parsing (its errors
//     carry no event number or offset): boundary.go walks the event headers;
//   - decoding of the event data (UEFI_VARIABLE_DATA, UEFI_IMAGE_LOAD_EVENT,
//     tagged events, GRUB's strings): its decoders are in an internal package.
package measure

import (
	"bytes"
	"crypto"
	_ "crypto/sha1" // the banks of a TPM 2.0 log
	_ "crypto/sha256"
	_ "crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"github.com/google/go-attestation/attest"
)

// Bank is a PCR bank by the name Linux uses in /sys/class/tpm/tpm0/pcr-NAME.
type Bank string

// The banks vouch replays.
const (
	SHA1   Bank = "sha1"
	SHA256 Bank = "sha256"
	SHA384 Bank = "sha384"
	SHA512 Bank = "sha512"
)

// Hash is the bank's hash function.
func (b Bank) Hash() crypto.Hash {
	switch b {
	case SHA1:
		return crypto.SHA1
	case SHA256:
		return crypto.SHA256
	case SHA384:
		return crypto.SHA384
	case SHA512:
		return crypto.SHA512
	}
	return 0
}

func bankOf(a attest.HashAlg) (Bank, bool) {
	switch a {
	case attest.HashSHA1:
		return SHA1, true
	case attest.HashSHA256:
		return SHA256, true
	case attest.HashSHA384:
		return SHA384, true
	case attest.HashSHA512:
		return SHA512, true
	}
	return "", false
}

// NumPCRs is the number of PCRs of a PC Client TPM.
const NumPCRs = 24

// Log is a parsed event log.
type Log struct {
	// Banks are the digest algorithms the log's Spec ID event declares, in
	// its order (a SHA-1-only TPM 1.2 log has just SHA1).
	Banks []Bank
	// Events are the log's events after the Spec ID event, in order.
	Events []*Event
	// Locality is the locality TPM2_Startup ran at (a StartupLocality
	// EV_NO_ACTION event); PCR 0 starts at it.
	Locality byte
	// Findings are what is wrong with the log that does not stop it from
	// parsing: unknown event types, events without a digest for a bank,
	// events whose digest does not match their data.
	Findings []Finding

	el *attest.EventLog
}

// Event is one measurement.
type Event struct {
	// Seq numbers the events from 1 (the Spec ID event is 0), as
	// tpm2_eventlog numbers them.
	Seq      int             `json:"seq"`
	PCR      int             `json:"pcr"`
	Type     EventType       `json:"-"`
	TypeName string          `json:"type"`
	Digests  map[Bank]Digest `json:"digests"`
	Data     []byte          `json:"-"`
	// Description is the event data decoded in one line.
	Description string `json:"description,omitempty"`
	// Variable is the decoded UEFI_VARIABLE_DATA of a variable event.
	Variable *Variable `json:"variable,omitempty"`
	// Image is the decoded UEFI_IMAGE_LOAD_EVENT of an image event.
	Image *ImageLoad `json:"image,omitempty"`
}

// Digest is a digest printed as lower-case hex.
type Digest []byte

func (d Digest) String() string { return hex.EncodeToString(d) }

// MarshalText prints lower-case hex without 0x.
func (d Digest) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(d)), nil }

// Finding is something wrong in a log, tied to an event when there is one.
type Finding struct {
	Seq    int    `json:"seq,omitempty"` // 0: the log as a whole
	PCR    int    `json:"pcr"`
	Type   string `json:"type,omitempty"`
	Reason string `json:"reason"`
}

func (f Finding) String() string {
	if f.Seq == 0 {
		return f.Reason
	}
	return fmt.Sprintf("event %d (%s, PCR %d): %s", f.Seq, f.Type, f.PCR, f.Reason)
}

// ParseError is a log that does not parse: it names the event and its offset
// when the header walk finds them.
type ParseError struct {
	Source string
	Seq    int   // the event that does not parse; -1 unknown
	Offset int64 // its offset in the log; -1 unknown
	Reason string
	Err    error
}

func (e *ParseError) Error() string {
	s := "measure: " + e.Source + ": "
	if e.Seq >= 0 {
		s += fmt.Sprintf("event %d at offset %d: ", e.Seq, e.Offset)
	}
	s += e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *ParseError) Unwrap() error { return e.Err }

// maxLog bounds the log vouch reads: Linux's securityfs log is a few KiB
// to a few hundred; 64 MiB is far past any real one.
const maxLog = 64 << 20

// Parse parses an event log (binary_bios_measurements). source names it in
// errors.
func Parse(b []byte, source string) (lg *Log, err error) {
	if len(b) == 0 {
		return nil, &ParseError{Source: source, Seq: -1, Offset: -1, Reason: "empty event log"}
	}
	if len(b) > maxLog {
		return nil, &ParseError{Source: source, Seq: -1, Offset: -1, Reason: fmt.Sprintf("%d bytes is more than the %d an event log may have", len(b), maxLog)}
	}
	// A boundary walk first: it names the event a bad log breaks at, which
	// go-attestation's errors do not.
	if err := walk(b, source); err != nil {
		return nil, err
	}
	defer func() {
		// go-attestation is fuzzed upstream; a panic on bytes our walk
		// accepted is still an error here, not a crash.
		if r := recover(); r != nil {
			lg, err = nil, &ParseError{Source: source, Seq: -1, Offset: -1, Reason: fmt.Sprintf("go-attestation panicked: %v", r)}
		}
	}()
	el, err := attest.ParseEventLog(b)
	if err != nil {
		return nil, &ParseError{Source: source, Seq: -1, Offset: -1, Reason: "go-attestation", Err: err}
	}
	lg = &Log{el: el}
	for _, a := range el.Algs {
		bk, ok := bankOf(a)
		if !ok {
			return nil, &ParseError{Source: source, Seq: -1, Offset: -1, Reason: fmt.Sprintf("the log declares digest algorithm 0x%04x, which vouch cannot replay", uint16(a))}
		}
		lg.Banks = append(lg.Banks, bk)
	}
	// Events(alg) returns every event in order, with that bank's digest.
	for i, a := range el.Algs {
		evs := el.Events(a)
		if i == 0 {
			lg.Events = make([]*Event, len(evs))
			for j, e := range evs {
				lg.Events[j] = &Event{
					Seq: j + 1, PCR: e.Index, Type: EventType(e.Type), TypeName: EventType(e.Type).String(),
					Data: e.Data, Digests: map[Bank]Digest{},
				}
			}
		}
		if len(evs) != len(lg.Events) {
			return nil, &ParseError{Source: source, Seq: -1, Offset: -1, Reason: "go-attestation returned a different number of events per bank"}
		}
		for j, e := range evs {
			if e.Digest != nil {
				lg.Events[j].Digests[lg.Banks[i]] = Digest(e.Digest)
			}
		}
	}
	for _, e := range lg.Events {
		decode(e)
		lg.check(e)
	}
	return lg, nil
}

// check records an unknown type, a missing bank and a digest that does not
// match data it should be the hash of.
func (lg *Log) check(e *Event) {
	if e.Type == evNoAction {
		if e.PCR == 0 && len(e.Data) == 17 && bytes.HasPrefix(e.Data, []byte("StartupLocality")) {
			lg.Locality = e.Data[16]
		}
		return
	}
	add := func(format string, args ...any) {
		lg.Findings = append(lg.Findings, Finding{Seq: e.Seq, PCR: e.PCR, Type: e.TypeName, Reason: fmt.Sprintf(format, args...)})
	}
	if !e.Type.Known() {
		add("unknown event type 0x%08x", uint32(e.Type))
	}
	if e.Type == evSeparator && !separatorOK(e) {
		add("separator %x is not 00000000: the firmware signalled an error before the OS took over", e.Data)
	}
	if e.PCR < 0 || e.PCR >= NumPCRs {
		add("PCR index %d is not one of a PC Client TPM's 0-23", e.PCR)
	}
	for _, bk := range lg.Banks {
		d, ok := e.Digests[bk]
		if !ok {
			add("no %s digest: the %s bank of PCR %d cannot be replayed", bk, bk, e.PCR)
			continue
		}
		if want, ok := dataDigests(e, bk); ok && !slices.ContainsFunc(want, func(w []byte) bool { return bytes.Equal(w, d) }) {
			add("the %s digest %x is not the hash of the event data", bk, []byte(d))
		}
	}
}

// dataDigests returns what the digest of an event whose digest is the hash
// of its data may be (edk2 hashes EV_EFI_VARIABLE_BOOT's variable data
// alone, other firmware the whole structure: both are accepted).
func dataDigests(e *Event, bk Bank) ([][]byte, bool) {
	h := bk.Hash()
	if !h.Available() {
		return nil, false
	}
	sum := func(b []byte) []byte { w := h.New(); w.Write(b); return w.Sum(nil) }
	switch e.Type {
	case evSeparator, evEFIAction, evEFIVariableDriverConfig, evEFIVariableAuthority, evEFIGPTEvent:
		return [][]byte{sum(e.Data)}, true
	case evEFIVariableBoot, evEFIVariableBoot2:
		out := [][]byte{sum(e.Data)}
		if e.Variable != nil {
			out = append(out, sum(e.Variable.Data))
		}
		return out, true
	}
	return nil, false
}

// PCRs are replayed or read values: bank, then PCR index.
type PCRs map[Bank]map[int]Digest

// Replay extends each bank's PCRs with the log's digests, from zero (PCR 0
// from the startup locality). Only PCRs that some event extends appear.
func (lg *Log) Replay() PCRs {
	out := PCRs{}
	for _, bk := range lg.Banks {
		h := bk.Hash()
		vals := map[int]Digest{}
		for _, e := range lg.Events {
			if e.Type == evNoAction || e.PCR < 0 || e.PCR >= NumPCRs {
				continue
			}
			d, ok := e.Digests[bk]
			if !ok {
				continue
			}
			cur, ok := vals[e.PCR]
			if !ok {
				cur = make(Digest, h.Size())
				if e.PCR == 0 {
					cur[len(cur)-1] = lg.Locality
				}
			}
			w := h.New()
			w.Write(cur)
			w.Write(d)
			vals[e.PCR] = w.Sum(nil)
		}
		out[bk] = vals
	}
	return out
}

// Mismatch is a PCR whose replay differs from the TPM's value.
type Mismatch struct {
	Bank   Bank   `json:"bank"`
	PCR    int    `json:"pcr"`
	Log    Digest `json:"log"`
	TPM    Digest `json:"tpm"`
	Events []int  `json:"events"` // the events that extended it
	// Suspect names events of this PCR whose digest does not match their
	// data (Findings), the likely cause; empty when every event looks right
	// (an event missing from the log, or one the TPM got but the log lost).
	Suspect []Finding `json:"suspect,omitempty"`
}

func (m Mismatch) String() string {
	s := fmt.Sprintf("PCR %d (%s): the log replays to %s, the TPM has %s", m.PCR, m.Bank, m.Log, m.TPM)
	for _, f := range m.Suspect {
		s += "; " + f.String()
	}
	return s
}

// Compare replays the log and compares it with tpm, PCR by PCR in the banks
// both have. PCRs 0-7 the log never extends are compared with their reset
// value; PCRs from 8 up that it never extends are left out (the OS extends
// them with logs of their own: IMA, systemd).
// go-attestation's EventLog.Verify gives its verdict too (verifyErr); it is
// weaker: it counts a PCR verified when any one bank replays, so a log whose
// SHA-256 digests were altered passes it as long as the SHA-1 ones are
// intact. vouch's mismatches cover every bank.
func (lg *Log) Compare(tpm PCRs) (mismatches []Mismatch, verifyErr error) {
	replay := lg.Replay()
	var apcrs []attest.PCR
	for _, bk := range lg.Banks {
		vals, ok := tpm[bk]
		if !ok {
			continue
		}
		for i := 0; i < NumPCRs; i++ {
			t, ok := vals[i]
			if !ok {
				continue
			}
			l, extended := replay[bk][i]
			if !extended && i >= 8 {
				// Not the firmware's: the OS extends PCRs the boot log
				// does not cover (IMA's 10, systemd's 11 and 15), each
				// with a log of its own.
				continue
			}
			if !extended {
				l = make(Digest, bk.Hash().Size())
				if i >= 17 && i <= 22 {
					// Dynamic-launch PCRs reset to all ones.
					for j := range l {
						l[j] = 0xff
					}
				}
			}
			if !bytes.Equal(l, t) {
				m := Mismatch{Bank: bk, PCR: i, Log: l, TPM: t}
				for _, e := range lg.Events {
					if e.PCR == i && e.Type != evNoAction {
						m.Events = append(m.Events, e.Seq)
					}
				}
				for _, f := range lg.Findings {
					if f.PCR == i && f.Seq != 0 {
						m.Suspect = append(m.Suspect, f)
					}
				}
				mismatches = append(mismatches, m)
			}
			if extended {
				apcrs = append(apcrs, attest.PCR{Index: i, Digest: t, DigestAlg: bk.Hash()})
			}
		}
	}
	if len(apcrs) > 0 {
		_, verifyErr = lg.el.Verify(apcrs)
	} else {
		verifyErr = errors.New("measure: no PCR of the log's banks to verify against")
	}
	return mismatches, verifyErr
}
