package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/vouch-dev/vouch/internal/container"
	"github.com/vouch-dev/vouch/internal/disk"
	"github.com/vouch-dev/vouch/internal/imagetest"
	"github.com/vouch-dev/vouch/internal/nvram"
	"github.com/vouch-dev/vouch/internal/store"
)

// Service is the job service over a store's job queue.
type Service struct {
	Store     store.JobStore
	Catalogue []imagetest.Case
	// Lease is how long a claim lasts without a heartbeat (default 30 s).
	Lease time.Duration
	// MaxAttempts is how many workers may try a job whose worker vanished
	// (default 2: one retry on another worker).
	MaxAttempts int
	// MaxLogBytes bounds a job's stored log (default 64 MiB); later lines
	// are counted and dropped.
	MaxLogBytes int64
	Now         func() time.Time

	logMu   sync.Mutex
	logWake chan struct{} // closed and replaced when a job's log or state changes
}

// NewService returns the service over js with the imagetest catalogue.
func NewService(js store.JobStore) *Service {
	return &Service{Store: js, Catalogue: imagetest.All(), Lease: 30 * time.Second, MaxAttempts: 2, MaxLogBytes: 64 << 20, Now: time.Now}
}

func (s *Service) now() time.Time { return s.Now().UTC() }

// PutTemplate validates and stores a template (created or replaced).
func (s *Service) PutTemplate(ctx context.Context, t Template) (Template, bool, error) {
	if err := ValidName("template", t.Name); err != nil {
		return t, false, err
	}
	if _, err := Resolve(t.Properties, s.Catalogue); err != nil {
		return t, false, err
	}
	now := s.now()
	body, err := json.Marshal(t.Properties)
	if err != nil {
		return t, false, fmt.Errorf("jobs: %w", err)
	}
	created, err := s.Store.PutTemplate(ctx, store.Template{Name: t.Name, Body: body, CreatedAt: now, UpdatedAt: now})
	if err != nil {
		return t, false, err
	}
	got, err := s.Template(ctx, t.Name)
	return got, created, err
}

// PatchTemplate applies a JSON merge patch (RFC 7396) to a template's
// properties, validates the result and stores it.
func (s *Service) PatchTemplate(ctx context.Context, name string, patch []byte) (Template, error) {
	cur, err := s.Store.Template(ctx, name)
	if err != nil {
		return Template{}, err
	}
	var doc, p map[string]any
	if err := json.Unmarshal(cur.Body, &doc); err != nil {
		return Template{}, fmt.Errorf("jobs: stored template %s: %w", name, err)
	}
	var wrapper struct {
		Properties map[string]any `json:"properties"`
	}
	if err := json.Unmarshal(patch, &wrapper); err != nil || wrapper.Properties == nil {
		return Template{}, inputf("patch: want {\"properties\": {...}} (a JSON merge patch)")
	}
	p = wrapper.Properties
	merge(doc, p)
	b, _ := json.Marshal(doc)
	var props TemplateProperties
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&props); err != nil {
		return Template{}, inputf("patch: %v", err)
	}
	t, _, err := s.PutTemplate(ctx, Template{Name: name, Properties: props})
	return t, err
}

func merge(dst, patch map[string]any) {
	for k, v := range patch {
		if v == nil {
			delete(dst, k)
			continue
		}
		if pm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				merge(dm, pm)
				continue
			}
		}
		dst[k] = v
	}
}

// Template reads a template.
func (s *Service) Template(ctx context.Context, name string) (Template, error) {
	st, err := s.Store.Template(ctx, name)
	if err != nil {
		return Template{}, err
	}
	return templateOf(st)
}

func templateOf(st store.Template) (Template, error) {
	t := Template{Name: st.Name, CreatedAt: st.CreatedAt, UpdatedAt: st.UpdatedAt}
	if err := json.Unmarshal(st.Body, &t.Properties); err != nil {
		return t, fmt.Errorf("jobs: stored template %s: %w", st.Name, err)
	}
	return t, nil
}

// Templates lists the templates.
func (s *Service) Templates(ctx context.Context) ([]Template, error) {
	sts, err := s.Store.Templates(ctx)
	if err != nil {
		return nil, err
	}
	out := []Template{}
	for _, st := range sts {
		t, err := templateOf(st)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// CreateRequest asks for a job: from a template (jobTemplateName) or with
// its properties inline (templateProperties), or both (inline fields win
// where given).
type CreateRequest struct {
	Name       string `json:"name,omitempty"`
	Properties struct {
		Template           string              `json:"jobTemplateName,omitempty"`
		TemplateProperties *TemplateProperties `json:"templateProperties,omitempty"`
		Image              Image               `json:"image"`
		Requirements       *store.Needs        `json:"requirements,omitempty"`
		// Priority orders the queue: higher first.
		Priority  int    `json:"priority,omitempty"`
		CPUs      int    `json:"cpus,omitempty"`
		MemoryMiB int    `json:"memoryMiB,omitempty"`
		Accel     string `json:"accel,omitempty"`
	} `json:"properties"`
}

// CreateJob validates a request and queues the job; nothing is stored when
// the request is refused.
func (s *Service) CreateJob(ctx context.Context, req CreateRequest) (Job, error) {
	p := req.Properties
	if req.Name == "" {
		req.Name = newJobName(s.now())
	}
	if err := ValidName("job", req.Name); err != nil {
		return Job{}, err
	}
	spec := Spec{Template: p.Template, Image: p.Image, CPUs: p.CPUs, MemoryMiB: p.MemoryMiB, Accel: p.Accel}
	switch {
	case p.Template != "" && p.TemplateProperties != nil:
		return Job{}, inputf("give jobTemplateName or templateProperties, not both")
	case p.Template != "":
		t, err := s.Template(ctx, p.Template)
		if errors.Is(err, store.ErrNotFound) {
			return Job{}, inputf("no job template named %q", p.Template)
		}
		if err != nil {
			return Job{}, err
		}
		spec.Properties = t.Properties
	case p.TemplateProperties != nil:
		spec.Properties = *p.TemplateProperties
	default:
		return Job{}, inputf("give jobTemplateName or templateProperties (the selections of cases to run)")
	}
	cases, err := Resolve(spec.Properties, s.Catalogue)
	if err != nil {
		return Job{}, err
	}
	for _, c := range cases {
		spec.Cases = append(spec.Cases, c.Name)
	}
	if err := CheckImage(spec.Image.Path); err != nil {
		return Job{}, err
	}
	if v := spec.Properties.Firmware.Vars; v != "" {
		if _, err := nvram.Open(v); err != nil {
			return Job{}, inputf("firmware variable store %s: %v", v, err)
		}
	}
	switch spec.Accel {
	case "", "auto", "kvm", "tcg":
	default:
		return Job{}, inputf("accel %q: want auto, kvm or tcg", spec.Accel)
	}
	if spec.CPUs == 0 {
		spec.CPUs = 2
	}
	if spec.MemoryMiB == 0 {
		spec.MemoryMiB = 1024
	}
	if spec.CPUs < 1 || spec.CPUs > 64 || spec.MemoryMiB < 256 || spec.MemoryMiB > 1<<20 {
		return Job{}, inputf("cpus 1 to 64 and memoryMiB 256 to 1048576")
	}
	if p.Requirements != nil {
		spec.Requirements = *p.Requirements
	} else {
		spec.Requirements = store.Needs{KVM: spec.Accel == "kvm", Cores: 1, MemoryMiB: spec.MemoryMiB + 256, DiskMiB: 1024}
	}
	if r := spec.Requirements; r.Cores < 0 || r.MemoryMiB < 0 || r.DiskMiB < 0 {
		return Job{}, inputf("requirements must not be negative")
	}
	results := make([]Result, len(cases))
	for i, c := range cases {
		results[i] = Result{TestName: c.Name, Status: imagetest.Queued, Area: c.Area, Priority: c.Priority}
	}
	specJSON, _ := json.Marshal(spec)
	resJSON, _ := json.Marshal(results)
	now := s.now()
	rec := store.JobRecord{ID: req.Name, Template: p.Template, Priority: p.Priority, Spec: specJSON, Needs: spec.Requirements,
		MaxAttempts: s.MaxAttempts, Results: resJSON, CreatedAt: now}
	if err := s.Store.CreateJob(ctx, rec); err != nil {
		if errors.Is(err, store.ErrExists) {
			return Job{}, inputf("a job named %q exists", req.Name)
		}
		return Job{}, err
	}
	return s.Job(ctx, req.Name)
}

// CheckImage refuses what is not a readable disk image with a partition
// table: a missing file, a directory, a text file, a truncated qcow2.
func CheckImage(path string) error {
	if path == "" {
		return inputf("image: give image.path (a disk image on the workers' shared storage, or an upload's path)")
	}
	st, err := os.Stat(path)
	if err != nil {
		return inputf("image %s: %v", path, errors.Unwrap(err))
	}
	if st.IsDir() {
		return inputf("image %s is a directory, not a disk image", path)
	}
	img, err := container.Open(path)
	if err != nil {
		return inputf("image %s is not a disk image: %v", path, err)
	}
	defer img.Close()
	tab, err := disk.ReadTable(img, img.Size())
	if err != nil {
		return inputf("image %s is not a bootable disk image (no partition table): %v", path, err)
	}
	if tab.Kind == "none" || len(tab.Partitions) == 0 {
		return inputf("image %s is not a bootable disk image (no partition table)", path)
	}
	return nil
}

func newJobName(t time.Time) string {
	b := make([]byte, 4)
	rand.Read(b)
	return "job-" + t.Format("20060102-150405") + "-" + hex.EncodeToString(b)
}

// Job reads a job, first ending any expired lease so that a job whose
// worker died never reads as Running.
func (s *Service) Job(ctx context.Context, name string) (Job, error) {
	if _, err := s.Store.RescueJobs(ctx, s.now()); err != nil {
		return Job{}, err
	}
	r, err := s.Store.Job(ctx, name)
	if err != nil {
		return Job{}, err
	}
	return FromRecord(r)
}

// Jobs lists jobs, newest first.
func (s *Service) Jobs(ctx context.Context, f store.JobFilter) ([]Job, error) {
	if _, err := s.Store.RescueJobs(ctx, s.now()); err != nil {
		return nil, err
	}
	rs, err := s.Store.Jobs(ctx, f)
	if err != nil {
		return nil, err
	}
	out := []Job{}
	for _, r := range rs {
		j, err := FromRecord(r)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, nil
}

// Cancel cancels a job.
func (s *Service) Cancel(ctx context.Context, name string) (Job, error) {
	r, err := s.Store.CancelJob(ctx, name, s.now())
	if err != nil {
		return Job{}, err
	}
	s.wake()
	return FromRecord(r)
}

// Claim is a job given to a worker.
type Claim struct {
	Job   Job    `json:"job"`
	Lease string `json:"lease"`
	// LeaseSeconds is how long the lease lasts without a heartbeat.
	LeaseSeconds float64 `json:"leaseSeconds"`
	// LogOffset is the number the worker's first log line gets (lines of
	// earlier attempts come before).
	LogOffset int64 `json:"logOffset"`
}

// Claim gives the next fitting job to a worker; nil when none waits.
func (s *Service) Claim(ctx context.Context, caps store.Caps) (*Claim, error) {
	if caps.Worker == "" {
		return nil, inputf("worker: name the worker")
	}
	now := s.now()
	if _, err := s.Store.RescueJobs(ctx, now); err != nil {
		return nil, err
	}
	b := make([]byte, 16)
	rand.Read(b)
	lease := hex.EncodeToString(b)
	for try := 0; try < 3; try++ {
		r, err := s.Store.ClaimJob(ctx, caps, lease, now.Add(s.Lease), now)
		if errors.Is(err, store.ErrNotFound) {
			continue // none, or taken by another worker meanwhile
		}
		if err != nil {
			return nil, err
		}
		j, err := FromRecord(r)
		if err != nil {
			return nil, err
		}
		s.wake()
		return &Claim{Job: j, Lease: lease, LeaseSeconds: s.Lease.Seconds(), LogOffset: r.LogNext}, nil
	}
	return nil, nil
}

// Update is a worker's heartbeat and progress.
type Update struct {
	Lease   string          `json:"lease"`
	State   string          `json:"state,omitempty"`
	Results []Result        `json:"results,omitempty"`
	Report  json.RawMessage `json:"report,omitempty"` // a Report
	Reason  string          `json:"reason,omitempty"`
}

// UpdateAnswer tells the worker whether to stop.
type UpdateAnswer struct {
	Cancel       bool    `json:"cancel"`
	LeaseSeconds float64 `json:"leaseSeconds"`
}

// Update applies a worker's update, renewing its lease.
func (s *Service) Update(ctx context.Context, name string, u Update) (UpdateAnswer, error) {
	switch u.State {
	case "", store.JobProvisioning, store.JobRunning, store.JobSucceeded, store.JobFailed, store.JobCanceled:
	default:
		return UpdateAnswer{}, inputf("state %q: a worker reports Provisioning, Running, Succeeded, Failed or Canceled", u.State)
	}
	now := s.now()
	su := store.JobUpdate{State: u.State, Reason: u.Reason, LeaseUntil: now.Add(s.Lease), At: now}
	if u.Results != nil {
		su.Results, _ = json.Marshal(u.Results)
	}
	if u.Report != nil {
		var rep Report
		if err := json.Unmarshal(u.Report, &rep); err != nil {
			return UpdateAnswer{}, inputf("report: %v", err)
		}
		su.Report = u.Report
	}
	r, err := s.Store.UpdateJob(ctx, name, u.Lease, su)
	if err != nil {
		return UpdateAnswer{}, err
	}
	if u.State != "" {
		s.wake()
	}
	return UpdateAnswer{Cancel: r.CancelRequested, LeaseSeconds: s.Lease.Seconds()}, nil
}
