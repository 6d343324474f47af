package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/vouch-dev/vouch/internal/fleet"
	"github.com/vouch-dev/vouch/internal/store"
)

func (s *Server) routes() {
	l := s.Limits
	s.handle("GET /healthz", nil, 0, func(w http.ResponseWriter, r *http.Request, _ *principal) error {
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "database": s.Store.Driver()})
		return nil
	})
	s.handle("GET /openapi.json", nil, 0, func(w http.ResponseWriter, r *http.Request, _ *principal) error {
		w.Header().Set("Content-Type", "application/json")
		_, err := w.Write(openapi)
		return err
	})
	s.handle("POST /v1/tokens", admins, l.MaxJSON, s.createToken)
	s.handle("POST /v1/enroll", enrol, l.MaxJSON, s.enroll)
	s.handle("POST /v1/blobs/missing", hosts, l.MaxReport, s.missingBlobs)
	s.handle("PUT /v1/blobs/{digest}", hosts, l.MaxBlob, s.putBlob)
	s.handle("POST /v1/reports", hosts, l.MaxReport, s.report)
	s.handle("POST /v1/seen", hosts, l.MaxJSON, s.seen)
	s.handle("GET /v1/hosts", readers, 0, s.hosts)
	s.handle("GET /v1/hosts/{id}", readers, 0, s.host)
	s.handle("GET /v1/readiness", readers, 0, s.readiness)
	s.handle("POST /v1/whatif", readers, l.MaxWhatIf, s.whatif)
	s.handle("GET /v1/canaries", readers, 0, s.canaries)
	s.jobRoutes()
}

// decode reads a JSON body strictly.
func decode(r *http.Request, v any) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return errorf(http.StatusBadRequest, "reading the request body: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errorf(http.StatusBadRequest, "request body is not valid JSON: %v", err)
	}
	if dec.More() {
		return errorf(http.StatusBadRequest, "request body has data after the JSON object")
	}
	return nil
}

// TokenRequest asks for a new token.
type TokenRequest struct {
	Role string `json:"role"`
	Note string `json:"note,omitempty"`
}

// TokenResponse carries a new secret; only its hash is kept.
type TokenResponse struct {
	Token string `json:"token"`
	Role  string `json:"role"`
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request, _ *principal) error {
	var req TokenRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	ok := false
	for _, role := range store.Roles() {
		ok = ok || role == req.Role
	}
	if !ok {
		return errorf(http.StatusBadRequest, "role %q: want one of %s", req.Role, strings.Join(store.Roles(), ", "))
	}
	secret, h := NewToken()
	if err := s.Store.CreateToken(r.Context(), store.Token{Hash: h, Role: req.Role, Note: req.Note, CreatedAt: time.Now()}); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, TokenResponse{Token: secret, Role: req.Role})
	return nil
}

// EnrollRequest is an agent's first call.
type EnrollRequest struct {
	Hostname string `json:"hostname"`
}

// EnrollResponse gives the host its ID and credential.
type EnrollResponse struct {
	HostID     string `json:"hostId"`
	Credential string `json:"credential"`
}

func (s *Server) enroll(w http.ResponseWriter, r *http.Request, _ *principal) error {
	var req EnrollRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if strings.TrimSpace(req.Hostname) == "" || len(req.Hostname) > 253 {
		return errorf(http.StatusBadRequest, "hostname is empty or longer than 253 bytes")
	}
	secret, h := NewToken()
	hostID := newHostID()
	now := time.Now()
	cred := store.Token{Hash: h, Role: store.RoleHost, HostID: hostID, Note: "enrolled " + req.Hostname, CreatedAt: now}
	if err := s.Store.Enroll(r.Context(), store.Host{ID: hostID, Hostname: req.Hostname, EnrolledAt: now}, cred); err != nil {
		return err
	}
	// The agent's next calls use the credential at once.
	s.tokens.put(cred, now)
	writeJSON(w, http.StatusCreated, EnrollResponse{HostID: hostID, Credential: secret})
	return nil
}

// BlobsRequest lists digests; BlobsResponse the ones the server lacks.
type BlobsRequest struct {
	Digests []string `json:"digests"`
}

// BlobsResponse lists the blobs to upload.
type BlobsResponse struct {
	Missing []string `json:"missing"`
}

func (s *Server) missingBlobs(w http.ResponseWriter, r *http.Request, _ *principal) error {
	var req BlobsRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if len(req.Digests) > fleet.MaxFiles+fleet.MaxVars {
		return errorf(http.StatusBadRequest, "%d digests: at most %d", len(req.Digests), fleet.MaxFiles+fleet.MaxVars)
	}
	for _, d := range req.Digests {
		if !fleet.ValidDigest(d) {
			return errorf(http.StatusBadRequest, "digest %q is not a lower-case hex SHA-256", d)
		}
	}
	miss, err := s.Store.MissingBlobs(r.Context(), req.Digests)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, BlobsResponse{Missing: miss})
	return nil
}

func (s *Server) putBlob(w http.ResponseWriter, r *http.Request, _ *principal) error {
	d := r.PathValue("digest")
	if !fleet.ValidDigest(d) {
		return errorf(http.StatusBadRequest, "digest %q is not a lower-case hex SHA-256", d)
	}
	kind := r.URL.Query().Get("kind")
	if kind != "var" && kind != "file" {
		return errorf(http.StatusBadRequest, "kind %q: want var or file", kind)
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return errorf(http.StatusBadRequest, "reading the blob: %v", err)
	}
	if got := fleet.Digest(b); got != d {
		return errorf(http.StatusBadRequest, "blob digest mismatch: the body's SHA-256 is %s, not %s", got, d)
	}
	if err := s.Store.PutBlob(r.Context(), store.Blob{Digest: d, Kind: kind, Data: b}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) report(w http.ResponseWriter, r *http.Request, p *principal) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return errorf(http.StatusBadRequest, "reading the report: %v", err)
	}
	ack, err := s.Fleet.Ingest(r.Context(), p.HostID, b)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ack)
	return nil
}

// SeenRequest says the host's facts are unchanged.
type SeenRequest struct {
	ReportDigest string `json:"reportDigest"`
}

func (s *Server) seen(w http.ResponseWriter, r *http.Request, p *principal) error {
	var req SeenRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := s.Store.Seen(r.Context(), p.HostID, req.ReportDigest, time.Now()); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// query reads a host selection from URL parameters: status, hostname, id
// (repeatable) and any dimension.
func query(r *http.Request) (fleet.Query, error) {
	v := r.URL.Query()
	q := fleet.Query{Dims: map[string]string{}, Status: v.Get("status"), Hostname: v.Get("hostname"), IDs: v["id"]}
	for k, vals := range v {
		switch {
		case k == "status" || k == "hostname" || k == "id" || k == "by" || k == "limit" || k == "after" || k == "dims" || k == "pairwise" || k == "perGroup" || k == "seenWithin":
		case store.ValidDim(k):
			q.Dims[k] = vals[0]
		default:
			return q, errorf(http.StatusBadRequest, "unknown parameter %q", k)
		}
	}
	return q, nil
}

// HostsResponse is the host list; its shape is a contract. Next, with a
// limit, is the cursor of the next page (the after parameter), absent on
// the last.
type HostsResponse struct {
	Hosts []fleet.HostAnswer `json:"hosts"`
	Next  string             `json:"next,omitempty"`
}

func (s *Server) hosts(w http.ResponseWriter, r *http.Request, _ *principal) error {
	q, err := query(r)
	if err != nil {
		return err
	}
	v := r.URL.Query()
	p := fleet.Page{After: v.Get("after")}
	if l := v.Get("limit"); l != "" {
		if p.Limit, err = strconv.Atoi(l); err != nil || p.Limit < 1 || p.Limit > fleet.MaxPage {
			return errorf(http.StatusBadRequest, "limit %q: want 1 to %d", l, fleet.MaxPage)
		}
	}
	hs, next, err := s.Fleet.HostsPage(r.Context(), q, p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, HostsResponse{Hosts: hs, Next: next})
	return nil
}

func (s *Server) host(w http.ResponseWriter, r *http.Request, _ *principal) error {
	d, err := s.Fleet.Host(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (s *Server) readiness(w http.ResponseWriter, r *http.Request, _ *principal) error {
	q, err := query(r)
	if err != nil {
		return err
	}
	rd, err := s.Fleet.Readiness(r.Context(), splitList(r.URL.Query().Get("by")), q)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rd)
	return nil
}

func (s *Server) whatif(w http.ResponseWriter, r *http.Request, _ *principal) error {
	var req fleet.ChangeRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	c, err := req.Parse()
	if err != nil {
		return err
	}
	q, err := fleet.ParseSelector(req.Hosts)
	if err != nil {
		return err
	}
	res, err := s.Fleet.WhatIf(r.Context(), c, q)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

func (s *Server) canaries(w http.ResponseWriter, r *http.Request, _ *principal) error {
	q, err := query(r)
	if err != nil {
		return err
	}
	v := r.URL.Query()
	o := fleet.CanaryOptions{Dims: splitList(v.Get("dims")), Query: q}
	if p := v.Get("pairwise"); p != "" {
		if o.Pairwise, err = strconv.ParseBool(p); err != nil {
			return errorf(http.StatusBadRequest, "pairwise %q: want true or false", p)
		}
	}
	if n := v.Get("perGroup"); n != "" {
		if o.PerGroup, err = strconv.Atoi(n); err != nil || o.PerGroup < 1 || o.PerGroup > 1000 {
			return errorf(http.StatusBadRequest, "perGroup %q: want 1 to 1000", n)
		}
	}
	if d := v.Get("seenWithin"); d != "" {
		if o.SeenWithin, err = time.ParseDuration(d); err != nil || o.SeenWithin <= 0 {
			return errorf(http.StatusBadRequest, "seenWithin %q: want a positive duration such as 168h", d)
		}
	}
	c, err := s.Fleet.Canaries(r.Context(), o)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}
