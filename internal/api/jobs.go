package api

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/vouch-dev/vouch/internal/jobs"
	"github.com/vouch-dev/vouch/internal/store"
)

// MaxImage is the largest image upload accepted.
const MaxImage = 64 << 30

var workers = []string{store.RoleWorker}

// newJobService builds the job service over the server's store.
func newJobService(st store.Store) *jobs.Service {
	js, err := store.Jobs(st)
	if err != nil {
		return nil
	}
	return jobs.NewService(js)
}

// jobRoutes adds the image-validation job service (issue 13): templates and
// jobs for admins (reads for readers), claim and update for workers.
func (s *Server) jobRoutes() {
	l := s.Limits
	s.handle("GET /v1/templates", readers, 0, s.listTemplates)
	s.handle("GET /v1/templates/{name}", readers, 0, s.getTemplate)
	s.handle("PUT /v1/templates/{name}", admins, l.MaxJSON, s.putTemplate)
	s.handle("PATCH /v1/templates/{name}", admins, l.MaxJSON, s.patchTemplate)
	s.handle("DELETE /v1/templates/{name}", admins, 0, s.deleteTemplate)
	s.handle("POST /v1/images", admins, MaxImage, s.uploadImage)
	s.handle("POST /v1/jobs", admins, l.MaxJSON, s.createJob)
	s.handle("GET /v1/jobs", readers, 0, s.listJobs)
	s.handle("GET /v1/jobs/{name}", readers, 0, s.getJob)
	s.handle("GET /v1/jobs/{name}/events", readers, 0, s.jobEvents)
	s.handle("GET /v1/jobs/{name}/logs", readers, 0, s.jobLogs)
	s.handle("POST /v1/jobs/{name}/cancel", admins, 0, s.cancelJob)
	s.handle("DELETE /v1/jobs/{name}", admins, 0, s.deleteJob)
	s.handle("POST /v1/worker/claim", workers, l.MaxJSON, s.claimJob)
	s.handle("POST /v1/worker/jobs/{name}", workers, l.MaxReport, s.updateJob)
	s.handle("POST /v1/worker/jobs/{name}/logs", workers, l.MaxReport, s.appendJobLog)
	s.handle("GET /v1/worker/images/{sha256}", append([]string{store.RoleAdmin}, workers...), 0, s.workerImage)
}

// jobError maps the job service's errors; the rest go to writeError as
// they are.
func jobError(err error) error {
	var ie *jobs.InputError
	switch {
	case errors.As(err, &ie):
		return errorf(http.StatusBadRequest, "%s", ie.Reason)
	case errors.Is(err, store.ErrLeaseLost):
		return errorf(http.StatusConflict, "lease lost: the job was given back or ended (its lease expired, or it was canceled)")
	case errors.Is(err, store.ErrJobActive):
		return errorf(http.StatusConflict, "the job has not ended: cancel it first")
	case errors.Is(err, store.ErrBadTransition):
		return errorf(http.StatusConflict, "%v", err)
	}
	return err
}

func (s *Server) jobsOrErr() (*jobs.Service, error) {
	if s.Jobs == nil {
		return nil, errorf(http.StatusNotImplemented, "this server's database has no job queue")
	}
	return s.Jobs, nil
}

func (s *Server) listTemplates(w http.ResponseWriter, r *http.Request, _ *principal) error {
	js, err := s.jobsOrErr()
	if err != nil {
		return err
	}
	ts, err := js.Templates(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": ts})
	return nil
}

func (s *Server) getTemplate(w http.ResponseWriter, r *http.Request, _ *principal) error {
	js, err := s.jobsOrErr()
	if err != nil {
		return err
	}
	t, err := js.Template(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (s *Server) putTemplate(w http.ResponseWriter, r *http.Request, _ *principal) error {
	js, err := s.jobsOrErr()
	if err != nil {
		return err
	}
	var t jobs.Template
	if err := decode(r, &t); err != nil {
		return err
	}
	name := r.PathValue("name")
	if t.Name != "" && t.Name != name {
		return errorf(http.StatusBadRequest, "the body names template %q, the URL %q", t.Name, name)
	}
	t.Name = name
	t, created, err := js.PutTemplate(r.Context(), t)
	if err != nil {
		return jobError(err)
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, t)
	return nil
}

func (s *Server) patchTemplate(w http.ResponseWriter, r *http.Request, _ *principal) error {
	js, err := s.jobsOrErr()
	if err != nil {
		return err
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return errorf(http.StatusBadRequest, "reading the request body: %v", err)
	}
	t, err := js.PatchTemplate(r.Context(), r.PathValue("name"), b)
	if err != nil {
		return jobError(err)
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (s *Server) deleteTemplate(w http.ResponseWriter, r *http.Request, _ *principal) error {
	js, err := s.jobsOrErr()
	if err != nil {
		return err
	}
	if err := js.Store.DeleteTemplate(r.Context(), r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ImageUpload is the answer to an upload: the path jobs name.
type ImageUpload struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	fresh  bool   // fetched now (not stored before)
}

// uploadImage stores an image sent as the body (Content-Length required):
// written to a temporary file, checked whole (length, disk image), then
// renamed to images/SHA256; an upload cut off or not a disk image leaves
// nothing.
func (s *Server) uploadImage(w http.ResponseWriter, r *http.Request, _ *principal) error {
	if s.ImageDir == "" {
		return errorf(http.StatusNotImplemented, "this server keeps no uploads (no data directory)")
	}
	if r.ContentLength <= 0 {
		return errorf(http.StatusLengthRequired, "give the image's size in Content-Length")
	}
	if err := os.MkdirAll(s.ImageDir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(s.ImageDir, ".upload-*")
	if err != nil {
		return err
	}
	keep := false
	defer func() {
		if !keep {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), r.Body)
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return err
	case err != nil || n != r.ContentLength:
		return errorf(http.StatusBadRequest, "upload cut off after %d of %d bytes: nothing was stored", n, r.ContentLength)
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := jobs.CheckImage(tmp.Name()); err != nil {
		var ie *jobs.InputError
		if errors.As(err, &ie) {
			return errorf(http.StatusBadRequest, "upload: %s", ie.Reason)
		}
		return err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	final := filepath.Join(s.ImageDir, sum+".img")
	if err := os.Rename(tmp.Name(), final); err != nil {
		return err
	}
	keep = true
	writeJSON(w, http.StatusCreated, ImageUpload{Path: final, SHA256: sum, Size: n})
	return nil
}

func (s *Server) createJob(w http.ResponseWriter, r *http.Request, _ *principal) error {
	js, err := s.jobsOrErr()
	if err != nil {
		return err
	}
	var req jobs.CreateRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	img := &req.Properties.Image
	var fetched ImageUpload
	if img.URL != "" {
		if img.Path != "" {
			return errorf(http.StatusBadRequest, "image: give path or url, not both")
		}
		if fetched, err = s.fetchImage(r.Context(), img.URL); err != nil {
			return err
		}
		img.Path, img.SHA256 = fetched.Path, ""
	}
	if err := s.keptImage(img); err != nil {
		if fetched.fresh {
			os.Remove(fetched.Path)
		}
		return err
	}
	j, err := js.CreateJob(r.Context(), req)
	if err != nil {
		if fetched.fresh {
			os.Remove(fetched.Path) // nothing kept for a refused job
		}
		return jobError(err)
	}
	writeJSON(w, http.StatusCreated, j)
	return nil
}

func (s *Server) listJobs(w http.ResponseWriter, r *http.Request, _ *principal) error {
	js, err := s.jobsOrErr()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := store.JobFilter{State: q.Get("state"), Template: q.Get("template")}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			return errorf(http.StatusBadRequest, "limit %q: want 1 to 10000", v)
		}
		f.Limit = n
	} else {
		f.Limit = 1000
	}
	list, err := js.Jobs(r.Context(), f)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": list})
	return nil
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request, _ *principal) error {
	js, err := s.jobsOrErr()
	if err != nil {
		return err
	}
	j, err := js.Job(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, j)
	return nil
}

func (s *Server) jobEvents(w http.ResponseWriter, r *http.Request, _ *principal) error {
	js, err := s.jobsOrErr()
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	if _, err := js.Job(r.Context(), name); err != nil {
		return err
	}
	ev, err := js.Store.JobEvents(r.Context(), name)
	if err != nil {
		return err
	}
	if ev == nil {
		ev = []store.JobEvent{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": ev})
	return nil
}

func (s *Server) cancelJob(w http.ResponseWriter, r *http.Request, _ *principal) error {
	js, err := s.jobsOrErr()
	if err != nil {
		return err
	}
	j, err := js.Cancel(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, j)
	return nil
}

func (s *Server) deleteJob(w http.ResponseWriter, r *http.Request, _ *principal) error {
	js, err := s.jobsOrErr()
	if err != nil {
		return err
	}
	if err := js.Store.DeleteJob(r.Context(), r.PathValue("name")); err != nil {
		return jobError(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) claimJob(w http.ResponseWriter, r *http.Request, _ *principal) error {
	js, err := s.jobsOrErr()
	if err != nil {
		return err
	}
	var caps store.Caps
	if err := decode(r, &caps); err != nil {
		return err
	}
	cl, err := js.Claim(r.Context(), caps)
	if err != nil {
		return jobError(err)
	}
	if cl == nil {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	writeJSON(w, http.StatusOK, cl)
	return nil
}

func (s *Server) updateJob(w http.ResponseWriter, r *http.Request, _ *principal) error {
	js, err := s.jobsOrErr()
	if err != nil {
		return err
	}
	var u jobs.Update
	if err := decode(r, &u); err != nil {
		return err
	}
	ans, err := js.Update(r.Context(), r.PathValue("name"), u)
	if err != nil {
		return jobError(err)
	}
	writeJSON(w, http.StatusOK, ans)
	return nil
}

// jobLeaseFor sets the job lease (vouch serve --job-lease).
func (s *Server) setJobLease(d time.Duration) error {
	if d <= 0 || s.Jobs == nil {
		return nil
	}
	if d < time.Second {
		return fmt.Errorf("api: --job-lease %s: at least 1s", d)
	}
	s.Jobs.Lease = d
	return nil
}
