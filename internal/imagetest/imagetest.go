// Package imagetest validates an OS image the way an image publisher does before
// it ships: it boots the image under QEMU (internal/vm) on a chosen firmware and
// runs test cases against the serial console, the guest over SSH and the image
// itself, like LISA's and kola's suites.
//
// A test case is a Go value with LISA's metadata (name, area, priority 0–5,
// tags, requirements, timeout, known-issue marker) in one explicit list, All.
// Select picks cases the way a job service's selections do (name, area,
// priority, tag; include and exclude). Run orders the selected cases so the VM
// boots once (offline cases while it boots, console cases, guest cases, reboot
// cases last), runs them and reports each through an Observer as its status
// moves QUEUED → ASSIGNED → RUNNING → PASSED, FAILED, SKIPPED or ATTEMPTED (a
// failure of a case marked as a known issue). The Report renders as JSON, JUnit
// XML, HTML with the console log embedded, or a table.
//
// RunMatrix boots an image on several firmware trust states (the Microsoft
// 2011-only, 2023-only and both-CA profiles) and sets what booted beside what
// internal/secureboot predicts for the same image.
package imagetest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Status is where a case is in its life. The names are LISA's (and the job
// service's): QUEUED (created), ASSIGNED (given an environment: the VM is being
// started), RUNNING, then one final status.
type Status string

// Statuses.
const (
	Queued    Status = "QUEUED"
	Assigned  Status = "ASSIGNED"
	Running   Status = "RUNNING"
	Passed    Status = "PASSED"
	Failed    Status = "FAILED"
	Skipped   Status = "SKIPPED"
	Attempted Status = "ATTEMPTED" // failed, but the case is marked as a known issue
)

// Final reports whether s ends a case.
func (s Status) Final() bool {
	switch s {
	case Passed, Failed, Skipped, Attempted:
		return true
	}
	return false
}

// Requirement is something a case needs to run; a case whose requirement is not
// met is SKIPPED with the reason.
type Requirement uint

// Requirements, combined with |.
const (
	NeedImage      Requirement = 1 << iota // the image's file systems readable offline
	NeedBoot                               // the VM booted
	NeedUEFI                               // UEFI firmware (not legacy BIOS)
	NeedSecureBoot                         // Secure Boot enforced by the firmware
	NeedCloudInit                          // cloud-init in the image (it provisions the SSH user)
	NeedSSH                                // an SSH session to the guest
)

var requirementNames = []struct {
	r    Requirement
	name string
}{
	{NeedImage, "image"},
	{NeedBoot, "boot"},
	{NeedUEFI, "uefi"},
	{NeedSecureBoot, "secure-boot"},
	{NeedCloudInit, "cloud-init"},
	{NeedSSH, "ssh"},
}

// Names lists the requirements in r.
func (r Requirement) Names() []string {
	out := []string{}
	for _, x := range requirementNames {
		if r&x.r != 0 {
			out = append(out, x.name)
		}
	}
	return out
}

func (r Requirement) String() string { return strings.Join(r.Names(), ",") }

// Phase orders cases so the VM boots as few times as possible.
type Phase int

// Phases, in run order.
const (
	PhaseOffline Phase = iota // reads the image file; runs while the VM boots
	PhaseBoot                 // decides the boot
	PhaseConsole              // reads the serial console of the first boot
	PhaseGuest                // runs commands over SSH
	PhaseReboot               // restarts the VM: last
)

func (p Phase) String() string {
	switch p {
	case PhaseOffline:
		return "offline"
	case PhaseBoot:
		return "boot"
	case PhaseConsole:
		return "console"
	case PhaseGuest:
		return "guest"
	case PhaseReboot:
		return "reboot"
	}
	return fmt.Sprintf("phase(%d)", int(p))
}

// Case is one test case.
type Case struct {
	Name        string // unique, "area.what"
	Area        string
	Priority    int // 0 (smoke, most important) to 5
	Tags        []string
	Description string
	Requires    Requirement
	Phase       Phase
	// Timeout bounds Run; 0 means DefaultCaseTimeout.
	Timeout time.Duration
	// KnownIssue marks a case whose failure is known and accepted: a failure
	// is reported as ATTEMPTED with this text.
	KnownIssue string
	Run        func(ctx context.Context, env *Env) Outcome
}

// DefaultCaseTimeout bounds a case without its own Timeout.
const DefaultCaseTimeout = 2 * time.Minute

// Outcome is what a case's Run returns.
type Outcome struct {
	Status  Status // Passed, Failed or Skipped
	Message string
	Log     []string // the lines that decided it
}

func pass(msg string, log ...string) Outcome { return Outcome{Passed, msg, log} }
func fail(msg string, log ...string) Outcome { return Outcome{Failed, msg, log} }
func skip(msg string, log ...string) Outcome { return Outcome{Skipped, msg, log} }

// Result is one case's state and, once final, its outcome.
type Result struct {
	Name        string        `json:"name"`
	Area        string        `json:"area"`
	Priority    int           `json:"priority"`
	Tags        []string      `json:"tags,omitempty"`
	Description string        `json:"description,omitempty"`
	Status      Status        `json:"status"`
	Message     string        `json:"message"`
	Duration    time.Duration `json:"-"`
	Log         []string      `json:"log,omitempty"`
	KnownIssue  string        `json:"knownIssue,omitempty"`
}

// MarshalJSON adds durationSeconds.
func (r Result) MarshalJSON() ([]byte, error) {
	type plain Result
	return json.Marshal(struct {
		plain
		DurationSeconds float64 `json:"durationSeconds"`
	}{plain(r), seconds(r.Duration)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (r *Result) UnmarshalJSON(b []byte) error {
	type plain Result
	var v struct {
		plain
		DurationSeconds float64 `json:"durationSeconds"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*r = Result(v.plain)
	r.Duration = time.Duration(v.DurationSeconds * float64(time.Second))
	return nil
}

func seconds(d time.Duration) float64 {
	return float64(d.Round(time.Millisecond)) / float64(time.Second)
}

// Observer learns of every status change of every case, in order; the CLI
// prints a table line per final status, a job service streams them.
type Observer interface {
	Update(r Result)
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(Result)

// Update calls f.
func (f ObserverFunc) Update(r Result) { f(r) }

// RunInfo describes one run: what was booted, how, and how it went.
type RunInfo struct {
	Image      string `json:"image"`
	Format     string `json:"format,omitempty"`
	Boot       string `json:"boot"`     // "uefi" or "bios"
	Firmware   string `json:"firmware"` // the variable store and code used
	SecureBoot bool   `json:"secureBoot"`
	// ExpectSecureBoot is what the firmware's variable store makes of Secure
	// Boot (on when PK is enrolled and SecureBootEnable is not 0).
	ExpectSecureBoot bool          `json:"expectSecureBoot"`
	Accel            string        `json:"accel,omitempty"`
	Booted           bool          `json:"booted"`
	BootTime         time.Duration `json:"-"`
	BootError        string        `json:"bootError,omitempty"`
	CloudInit        bool          `json:"cloudInit"`         // the image has cloud-init (a NoCloud seed was attached)
	SSH              bool          `json:"ssh"`               // an SSH session was established
	HostKey          string        `json:"hostKey,omitempty"` // the guest's SSH host key fingerprint
	ConsoleLog       string        `json:"consoleLog,omitempty"`
	// Console is the serial console (ANSI escapes removed), kept for the
	// HTML report; ConsoleLog is the file it was saved to, if any.
	Console  []string      `json:"-"`
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"-"`
	Notes    []string      `json:"notes,omitempty"`
}

// MarshalJSON adds bootSeconds and durationSeconds.
func (ri RunInfo) MarshalJSON() ([]byte, error) {
	type plain RunInfo
	return json.Marshal(struct {
		plain
		BootSeconds     float64 `json:"bootSeconds"`
		DurationSeconds float64 `json:"durationSeconds"`
	}{plain(ri), seconds(ri.BootTime), seconds(ri.Duration)})
}

// Summary counts final statuses.
type Summary struct {
	Total     int `json:"total"`
	Passed    int `json:"passed"`
	Failed    int `json:"failed"`
	Skipped   int `json:"skipped"`
	Attempted int `json:"attempted"`
}

// Report is a whole run.
type Report struct {
	Run     RunInfo  `json:"run"`
	Summary Summary  `json:"summary"`
	Results []Result `json:"results"`
}

// Summarize counts the results' statuses.
func Summarize(results []Result) Summary {
	s := Summary{Total: len(results)}
	for _, r := range results {
		switch r.Status {
		case Passed:
			s.Passed++
		case Failed:
			s.Failed++
		case Skipped:
			s.Skipped++
		case Attempted:
			s.Attempted++
		}
	}
	return s
}

// OK reports whether every case PASSED, was SKIPPED or ATTEMPTED.
func (r *Report) OK() bool {
	for _, x := range r.Results {
		if x.Status != Passed && x.Status != Skipped && x.Status != Attempted {
			return false
		}
	}
	return true
}
