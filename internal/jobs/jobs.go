// Package jobs is vouch serve's image-validation job service (issue 13), in
// the reference service's model (Azure Image Testing for Linux over LISA): job
// templates select test cases of the imagetest catalogue; a job runs them
// against an image on a worker; its provisioningState and per-case results
// are read back while it runs. Jobs wait in a queue kept in the server's
// database (store.JobStore): remote `vouch worker` processes claim them over
// HTTP and hold each under a lease they renew by heartbeat, so a worker that
// dies leaves no job stuck (the lease expires; the job is queued again or
// failed with the reason). This package holds the documents, their
// validation against the case catalogue, and the worker loop.
package jobs

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/vouch-dev/vouch/internal/imagetest"
	"github.com/vouch-dev/vouch/internal/store"
)

// Firmware states a job can boot with.
const (
	FirmwareDefault = ""               // OVMF with Microsoft's 2011 CAs as Debian ships it
	FirmwareMatrix  = "matrix"         // the three profiles, compared with the prediction
	FirmwareVars    = "variable-store" // an uploaded variable store (Firmware.VarsDigest)
)

// Firmware is the firmware state a job boots with.
type Firmware struct {
	// Profile is microsoft-2011, microsoft-2023, microsoft-both, "matrix"
	// (all three, next to vouch's prediction) or "" (OVMF_VARS_4M.ms.fd).
	Profile string `json:"profile,omitempty"`
	// Vars is a variable store file on the workers' shared storage.
	Vars string `json:"vars,omitempty"`
	// SecureBoot off boots OVMF without Secure Boot.
	SecureBoot *bool `json:"secureBoot,omitempty"`
}

// TemplateProperties are what a template fixes (and a job may give inline).
type TemplateProperties struct {
	Selections        []imagetest.Selection `json:"selections"`
	TestIterations    int                   `json:"testIterations,omitempty"`
	RetryCount        int                   `json:"retryCount,omitempty"`
	IgnoreFailure     bool                  `json:"ignoreFailure,omitempty"`
	Concurrency       int                   `json:"concurrency,omitempty"`
	UseNewEnvironment bool                  `json:"useNewEnvironment,omitempty"`
	Firmware          Firmware              `json:"firmware,omitempty"`
}

// Template is a named, reusable selection.
type Template struct {
	Name       string             `json:"name"`
	Properties TemplateProperties `json:"properties"`
	CreatedAt  time.Time          `json:"createdAt,omitzero"`
	UpdatedAt  time.Time          `json:"updatedAt,omitzero"`
}

// Image is what a job tests: a path on the workers' shared storage, or an
// image the server keeps (an upload, or a URL it fetched), named by its
// SHA-256, which workers download from the server.
type Image struct {
	Path string `json:"path,omitempty"`
	// URL is fetched by the server (from the networks its admin allows)
	// into its image directory; Path then names the copy.
	URL string `json:"url,omitempty"`
	// SHA256 and Size name an image the server keeps: the server sets
	// them for a path in its image directory (or fills Path when only
	// SHA256 is given); a worker downloads the image, checks the digest
	// and caches it by digest.
	SHA256 string `json:"sha256,omitempty"`
	Size   int64  `json:"size,omitempty"`
}

// Spec is a job as asked: everything the worker needs to run it.
type Spec struct {
	Template     string             `json:"jobTemplateName,omitempty"`
	Image        Image              `json:"image"`
	Properties   TemplateProperties `json:"templateProperties"`
	Cases        []string           `json:"cases"` // resolved, in run order
	Requirements store.Needs        `json:"requirements"`
	// CPUs and MemoryMiB size the VM.
	CPUs      int    `json:"cpus,omitempty"`
	MemoryMiB int    `json:"memoryMiB,omitempty"`
	Accel     string `json:"accel,omitempty"`
}

// Result is one case's result in a job.
type Result struct {
	TestName        string           `json:"testName"`
	Status          imagetest.Status `json:"status"`
	Message         string           `json:"message"`
	DurationSeconds float64          `json:"durationSeconds"`
	Area            string           `json:"area,omitempty"`
	Priority        int              `json:"priority"`
	Iteration       int              `json:"iteration,omitempty"` // 1-based, with testIterations > 1
	// Attempts is how many runs the case took (retryCount reruns a failure);
	// Flaky is a case that failed and then passed on a retry.
	Attempts int      `json:"attempts,omitempty"`
	Flaky    bool     `json:"flaky,omitempty"`
	Log      []string `json:"log,omitempty"`
}

// Report is what a run adds beside the results: how the VM booted and, for
// a matrix job, the firmware matrix.
type Report struct {
	Run    *imagetest.RunInfo `json:"run,omitempty"`
	Matrix *imagetest.Matrix  `json:"firmwareMatrix,omitempty"`
}

// Properties is a job's state as the API shows it.
type Properties struct {
	Spec
	ProvisioningState string    `json:"provisioningState"`
	Results           []Result  `json:"results"`
	Report            Report    `json:"report,omitzero"`
	Reason            string    `json:"reason,omitempty"`
	Worker            string    `json:"worker,omitempty"`
	Attempt           int       `json:"attempt"`
	MaxAttempts       int       `json:"maxAttempts"`
	CancelRequested   bool      `json:"cancelRequested,omitempty"`
	CreatedAt         time.Time `json:"createdAt"`
	StartedAt         time.Time `json:"startedAt,omitzero"`
	FinishedAt        time.Time `json:"finishedAt,omitzero"`
}

// Job is the API's job document.
type Job struct {
	Name       string     `json:"name"`
	ID         string     `json:"id"`
	Properties Properties `json:"properties"`
}

// FromRecord builds the API's document from a stored job.
func FromRecord(r store.JobRecord) (Job, error) {
	j := Job{Name: r.ID, ID: "/jobs/" + r.ID}
	p := &j.Properties
	if err := json.Unmarshal(r.Spec, &p.Spec); err != nil {
		return j, fmt.Errorf("jobs: job %s: stored spec: %w", r.ID, err)
	}
	if err := json.Unmarshal(r.Results, &p.Results); err != nil {
		return j, fmt.Errorf("jobs: job %s: stored results: %w", r.ID, err)
	}
	if len(r.Report) > 0 {
		if err := json.Unmarshal(r.Report, &p.Report); err != nil {
			return j, fmt.Errorf("jobs: job %s: stored report: %w", r.ID, err)
		}
	}
	if p.Results == nil {
		p.Results = []Result{}
	}
	p.ProvisioningState, p.Reason, p.Worker = r.State, r.Reason, r.Worker
	p.Attempt, p.MaxAttempts, p.CancelRequested = r.Attempt, r.MaxAttempts, r.CancelRequested
	p.CreatedAt, p.StartedAt, p.FinishedAt = r.CreatedAt, r.StartedAt, r.FinishedAt
	return j, nil
}

// InputError is a request the service refuses, with the reason (a 4xx).
type InputError struct{ Reason string }

func (e *InputError) Error() string { return "jobs: " + e.Reason }

func inputf(format string, args ...any) error {
	return &InputError{Reason: fmt.Sprintf(format, args...)}
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// ValidName checks a template's or job's name.
func ValidName(kind, name string) error {
	if !nameRE.MatchString(name) {
		return inputf("%s name %q: use 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit", kind, name)
	}
	return nil
}

// Resolve validates template properties against the case catalogue and
// returns the selected cases in run order: an unknown case, area or tag, or
// a selection that leaves nothing, is an *InputError with the reason.
func Resolve(p TemplateProperties, catalogue []imagetest.Case) ([]imagetest.Case, error) {
	if len(p.Selections) == 0 {
		return nil, inputf("no selections: give at least one of caseName, caseArea, casePriority, caseTags")
	}
	for i, s := range p.Selections {
		if len(s.Names) == 0 && len(s.Areas) == 0 && len(s.Priorities) == 0 && len(s.Tags) == 0 {
			return nil, inputf("selection %d names no caseName, caseArea, casePriority or caseTags", i+1)
		}
	}
	cases, err := imagetest.Select(catalogue, p.Selections)
	if err != nil {
		return nil, inputf("%s", strings.TrimPrefix(err.Error(), "imagetest: "))
	}
	switch {
	case p.TestIterations < 0 || p.TestIterations > 100:
		return nil, inputf("testIterations %d out of range (0 to 100)", p.TestIterations)
	case p.RetryCount < 0 || p.RetryCount > 10:
		return nil, inputf("retryCount %d out of range (0 to 10)", p.RetryCount)
	case p.Concurrency < 0 || p.Concurrency > 64:
		return nil, inputf("concurrency %d out of range (0 to 64)", p.Concurrency)
	}
	switch p.Firmware.Profile {
	case "", FirmwareMatrix:
	default:
		ok := false
		for _, m := range imagetest.MatrixProfiles {
			ok = ok || m == p.Firmware.Profile
		}
		if !ok {
			return nil, inputf("firmware profile %q: want %s or matrix", p.Firmware.Profile, strings.Join(imagetest.MatrixProfiles, ", "))
		}
	}
	if p.Firmware.Profile != "" && p.Firmware.Vars != "" {
		return nil, inputf("firmware: give a profile or a variable store, not both")
	}
	return imagetest.Order(cases), nil
}

// Summary counts a job's results by status.
func Summary(rs []Result) map[imagetest.Status]int {
	m := map[imagetest.Status]int{}
	for _, r := range rs {
		m[r.Status]++
	}
	return m
}
