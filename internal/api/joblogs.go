package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vouch-dev/vouch/internal/jobs"
	"github.com/vouch-dev/vouch/internal/store"
)

// Logs streamed while a job runs, and the images the server keeps served to
// remote workers.

// followWake bounds how long a follower waits without a change it was told
// of (another server on the same PostgreSQL, a lease that expired), and
// paces the keep-alive comments.
const followWake = 2 * time.Second

// followBatch is how many lines one read of a followed log takes.
const followBatch = 1000

// appendJobLog stores a chunk of a job's log sent by the worker holding it.
func (s *Server) appendJobLog(w http.ResponseWriter, r *http.Request, _ *principal) error {
	js, err := s.jobsOrErr()
	if err != nil {
		return err
	}
	var a jobs.LogAppend
	if err := decode(r, &a); err != nil {
		return err
	}
	ans, err := js.AppendLog(r.Context(), r.PathValue("name"), a)
	if errors.Is(err, store.ErrLogGap) {
		return errorf(http.StatusUnprocessableEntity, "log lines missing: the job's log expects line %d next, the append starts at %d", ans.Next, a.From)
	}
	if err != nil {
		return jobError(err)
	}
	writeJSON(w, http.StatusOK, ans)
	return nil
}

// jobLogs answers GET /v1/jobs/{name}/logs: the lines after a sequence
// number as JSON, or with follow=1 a stream of them (server-sent events)
// until the job ends.
func (s *Server) jobLogs(w http.ResponseWriter, r *http.Request, _ *principal) error {
	js, err := s.jobsOrErr()
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	j, err := js.Job(r.Context(), name)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	var after int64
	if v := q.Get("after"); v != "" {
		if after, err = strconv.ParseInt(v, 10, 64); err != nil || after < 0 {
			return errorf(http.StatusBadRequest, "after %q: want a log sequence number", v)
		}
	}
	switch q.Get("follow") {
	case "", "0", "false":
	case "1", "true":
		return s.FollowJobLog(w, r, name, q.Get("case"), after)
	default:
		return errorf(http.StatusBadRequest, "follow %q: want 1 or 0", q.Get("follow"))
	}
	lines, err := js.Store.JobLog(r.Context(), name, q.Get("case"), after, 10000)
	if err != nil {
		return err
	}
	if lines == nil {
		lines = []store.JobLogLine{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": lines, "provisioningState": j.Properties.ProvisioningState})
	return nil
}

// FollowJobLog streams a job's log lines after seq (of one case when
// caseName is set) as server-sent events until the job ends: "line" events
// whose data is a store.JobLogLine and whose id its sequence number (a
// reconnecting EventSource resumes after it), then one "end" event with the
// final state (jobs.LogEnd). The dashboard uses it too.
func (s *Server) FollowJobLog(w http.ResponseWriter, r *http.Request, name, caseName string, after int64) error {
	js, err := s.jobsOrErr()
	if err != nil {
		return err
	}
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > after {
			after = n
		}
	}
	if _, err := js.Job(r.Context(), name); err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	// Each write gets its own deadline; none is left on a kept-alive
	// connection.
	defer rc.SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(format string, args ...any) error {
		rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := fmt.Fprintf(w, format, args...); err != nil {
			return err
		}
		return rc.Flush()
	}
	ctx := r.Context()
	for {
		// The state before the lines: a job seen ended has sent its
		// whole log (workers flush it before the final state).
		wake := js.LogChanged()
		j, err := js.Job(ctx, name)
		if err != nil {
			return nil // the response has begun: end the stream
		}
		lines, err := js.Store.JobLog(ctx, name, caseName, after, followBatch)
		if err != nil {
			return nil
		}
		for _, l := range lines {
			b, _ := json.Marshal(l)
			if err := send("id: %d\nevent: line\ndata: %s\n\n", l.Seq, b); err != nil {
				return nil
			}
			after = l.Seq
		}
		if len(lines) == followBatch {
			continue
		}
		if p := j.Properties; store.JobFinal(p.ProvisioningState) {
			b, _ := json.Marshal(jobs.LogEnd{State: p.ProvisioningState, Reason: p.Reason})
			send("event: end\ndata: %s\n\n", b)
			return nil
		}
		t := time.NewTimer(followWake)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-wake:
			t.Stop()
		case <-t.C:
			if err := send(": waiting for job %s (%s)\n\n", name, j.Properties.ProvisioningState); err != nil {
				return nil
			}
		}
	}
}

// workerImage serves an image the server keeps, by digest, to workers
// (and admins): with ranges, so that a cut-off download resumes.
func (s *Server) workerImage(w http.ResponseWriter, r *http.Request, _ *principal) error {
	d := r.PathValue("sha256")
	if !jobs.ValidDigest(d) {
		return errorf(http.StatusBadRequest, "image %q: want a lower-case hex SHA-256", d)
	}
	if s.ImageDir == "" {
		return errorf(http.StatusNotFound, "this server keeps no images")
	}
	f, err := os.Open(filepath.Join(s.ImageDir, d+".img"))
	if errors.Is(err, os.ErrNotExist) {
		return errorf(http.StatusNotFound, "no image %s on this server", d)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("ETag", `"`+d+`"`)
	http.ServeContent(w, r, d+".img", st.ModTime(), f)
	return nil
}

// keptImage fills the digest and size of a job's image the server keeps:
// a path in its image directory, or only a digest (the path is filled).
func (s *Server) keptImage(img *jobs.Image) error {
	if img.SHA256 == "" && img.Path != "" && s.ImageDir != "" {
		dir, base := filepath.Split(filepath.Clean(img.Path))
		if filepath.Clean(dir) == filepath.Clean(s.ImageDir) && strings.HasSuffix(base, ".img") && jobs.ValidDigest(strings.TrimSuffix(base, ".img")) {
			img.SHA256 = strings.TrimSuffix(base, ".img")
		}
	}
	if img.SHA256 == "" {
		return nil
	}
	if !jobs.ValidDigest(img.SHA256) {
		return errorf(http.StatusBadRequest, "image: sha256 %q is not a lower-case hex SHA-256", img.SHA256)
	}
	if s.ImageDir == "" {
		return errorf(http.StatusBadRequest, "image: this server keeps no images (no data directory)")
	}
	kept := filepath.Join(s.ImageDir, img.SHA256+".img")
	if img.Path != "" && filepath.Clean(img.Path) != kept {
		return errorf(http.StatusBadRequest, "image: path %s is not the server's image %s", img.Path, img.SHA256)
	}
	st, err := os.Stat(kept)
	if err != nil {
		return errorf(http.StatusBadRequest, "image: no image %s on this server (upload it first)", img.SHA256)
	}
	img.Path, img.Size = kept, st.Size()
	return nil
}
