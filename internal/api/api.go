// Package api is vouch serve's HTTP JSON API: authentication (enrolment
// tokens exchanged once for a per-host credential; reader, admin and worker
// tokens for people and workers; every secret stored as its SHA-256), request
// size and rate limits, and handlers that return errors mapped to responses
// in one place (writeError). The OpenAPI document is served at /openapi.json.
// The Client in this package is what the agent and `vouch fleet` use.
package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vouch-dev/vouch/internal/fleet"
	"github.com/vouch-dev/vouch/internal/jobs"
	"github.com/vouch-dev/vouch/internal/store"
)

//go:embed openapi.json
var openapi []byte

// Limits bound what one request may cost.
type Limits struct {
	MaxJSON   int64   // request bodies of JSON calls (default 64 KiB)
	MaxReport int64   // a report (default 4 MiB)
	MaxBlob   int64   // one blob (default 64 MiB: a kernel fits)
	MaxWhatIf int64   // a what-if request with its files (default 256 MiB)
	Rate      float64 // requests per second per credential (default 50)
	Burst     int     // (default 100)
	// IPRate and IPBurst bound the requests of one remote address, whoever
	// it claims to be (checked before authentication; default 2000 and
	// 4000: generous, as a load balancer or NAT is one address).
	IPRate  float64
	IPBurst int
}

func (l *Limits) defaults() {
	set := func(p *int64, v int64) {
		if *p <= 0 {
			*p = v
		}
	}
	set(&l.MaxJSON, 64<<10)
	set(&l.MaxReport, 4<<20)
	set(&l.MaxBlob, 64<<20)
	set(&l.MaxWhatIf, 256<<20)
	if l.Rate <= 0 {
		l.Rate = 50
	}
	if l.Burst <= 0 {
		l.Burst = 100
	}
	if l.IPRate <= 0 {
		l.IPRate = 2000
	}
	if l.IPBurst <= 0 {
		l.IPBurst = 4000
	}
}

// Server is the API.
type Server struct {
	Store  store.Store
	Fleet  *fleet.Service
	Limits Limits
	Log    *slog.Logger
	// Jobs is the image-validation job service (jobs.go); ImageDir keeps
	// uploaded images.
	Jobs       *jobs.Service
	ImageDir   string
	ImageAllow ImageAllow // networks image URLs may be fetched from
	mux        *http.ServeMux
	limiter    *limiter // per credential
	ipLimiter  *limiter // per remote address
	tokens     tokenCache
	// Extra routes (the dashboard) are added by the caller on Mux.
}

// New builds the API over a store.
func New(s store.Store, lim Limits, log *slog.Logger) *Server {
	lim.defaults()
	if log == nil {
		log = discard()
	}
	srv := &Server{Store: s, Fleet: fleet.NewService(s), Limits: lim, Log: log, mux: http.NewServeMux(),
		limiter:   &limiter{rate: lim.Rate, burst: float64(lim.Burst), buckets: map[string]*bucket{}},
		ipLimiter: &limiter{rate: lim.IPRate, burst: float64(lim.IPBurst), buckets: map[string]*bucket{}}}
	srv.Jobs = newJobService(s)
	srv.routes()
	return srv
}

// Mux is the router, for the dashboard's routes.
func (s *Server) Mux() *http.ServeMux { return s.mux }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// principal is who a request is authenticated as.
type principal struct {
	Role   string
	HostID string
	key    string
}

// Error is an error with the HTTP status and the message the caller sees.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("api: %d %s", e.Status, e.Message) }

func errorf(status int, format string, args ...any) error {
	return &Error{Status: status, Message: fmt.Sprintf(format, args...)}
}

// writeError maps every error a handler returns to a response: the one place
// that decides what a caller is told.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := http.StatusInternalServerError, "internal error"
	var ae *Error
	var ie *fleet.InputError
	var fe *fleet.ForbiddenError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		status, msg = ae.Status, ae.Message
	case errors.As(err, &mbe):
		status, msg = http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", mbe.Limit)
	case errors.As(err, &ie):
		status, msg = http.StatusBadRequest, ie.Reason
	case errors.As(err, &fe):
		status, msg = http.StatusForbidden, fe.Reason
	case errors.Is(err, store.ErrNotFound):
		status, msg = http.StatusNotFound, "not found"
	case errors.Is(err, store.ErrStale):
		status, msg = http.StatusConflict, "the stored report differs: send the full report"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		status, msg = http.StatusServiceUnavailable, "request cancelled or timed out"
	}
	if status >= 500 {
		s.Log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	var rl *rateLimitError
	if errors.As(err, &rl) {
		status, msg = http.StatusTooManyRequests, rl.Error()
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(rl.wait.Seconds()))))
	} else if status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

type handler func(w http.ResponseWriter, r *http.Request, p *principal) error

// Role sets.
var (
	readers = []string{store.RoleReader, store.RoleAdmin, store.RoleWorker}
	admins  = []string{store.RoleAdmin}
	hosts   = []string{store.RoleHost}
	enrol   = []string{store.RoleEnroll}
)

// handle registers a route: authentication for roles (none: public), the
// body limit, the rate limit, and error mapping.
func (s *Server) handle(pattern string, roles []string, maxBody int64, h handler) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if maxBody > 0 && r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		}
		if ok, wait := s.ipLimiter.allow("ip:" + remoteIP(r)); !ok {
			s.writeError(w, r, &rateLimitError{what: "this address", rate: s.Limits.IPRate, wait: wait})
			return
		}
		var p *principal
		if roles != nil {
			var err error
			if p, err = s.authenticate(r, roles); err != nil {
				s.writeError(w, r, err)
				return
			}
			if ok, wait := s.limiter.allow(p.key); !ok {
				s.writeError(w, r, &rateLimitError{what: "this credential", rate: s.Limits.Rate, wait: wait})
				return
			}
		}
		if err := h(w, r, p); err != nil {
			s.writeError(w, r, err)
		}
	})
}

func (s *Server) authenticate(r *http.Request, roles []string) (*principal, error) {
	auth := r.Header.Get("Authorization")
	secret, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || secret == "" {
		return nil, errorf(http.StatusUnauthorized, "missing bearer token")
	}
	h := HashToken(secret)
	t, err := s.tokens.get(r.Context(), s.Store, h)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errorf(http.StatusUnauthorized, "unknown token")
	}
	if err != nil {
		return nil, err
	}
	for _, role := range roles {
		if t.Role == role {
			return &principal{Role: t.Role, HostID: t.HostID, key: string(h)}, nil
		}
	}
	return nil, errorf(http.StatusForbidden, "a %s token cannot do this (needs %s)", t.Role, strings.Join(roles, " or "))
}

// NewToken returns a random secret and the hash stored for it.
func NewToken() (secret string, hash []byte) {
	b := make([]byte, 32)
	rand.Read(b)
	secret = "vch_" + base64.RawURLEncoding.EncodeToString(b)
	return secret, HashToken(secret)
}

// newHostID is "h-", the enrolment time (Unix milliseconds, 12 hex digits)
// and 16 random hex digits. Time first, so hosts enrolled together sort
// together: the host rows, their facts and history (all keyed by host ID)
// are appended where the last ones went, not written into random pages of
// each index (a sixth fewer page writes per host on SQLite). The random
// part keeps IDs unguessable and distinct within a millisecond.
func newHostID() string {
	b := make([]byte, 14)
	binary.BigEndian.PutUint64(b, uint64(time.Now().UnixMilli())<<16)
	rand.Read(b[6:])
	return "h-" + hex.EncodeToString(b)
}

// HashToken is the SHA-256 kept for a secret.
func HashToken(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// EnsureAdminToken writes DIR/admin.token (mode 0600) with a new admin token
// when the file does not exist yet, and returns the file's path.
func EnsureAdminToken(ctx context.Context, s store.Store, dir string) (string, error) {
	p := filepath.Join(dir, "admin.token")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("api: %w", err)
	}
	secret, h := NewToken()
	if err := s.CreateToken(ctx, store.Token{Hash: h, Role: store.RoleAdmin, Note: "first start", CreatedAt: time.Now()}); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, ".admin.token-*")
	if err != nil {
		return "", fmt.Errorf("api: %w", err)
	}
	defer os.Remove(tmp.Name())
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.WriteString(secret + "\n")
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), p)
	}
	if err != nil {
		return "", fmt.Errorf("api: writing %s: %w", p, err)
	}
	return p, nil
}

// limiter is a token bucket per credential.
type limiter struct {
	mu          sync.Mutex
	rate, burst float64
	buckets     map[string]*bucket
	swept       time.Time
}

// sweepEvery is how often the limiter and the token cache drop what they
// no longer need: the server's memory follows the hosts active in the last
// seconds, not every host that ever reported (a bucket per credential grew
// by a hundred bytes for each of a million hosts).
const sweepEvery = 5 * time.Second

type bucket struct {
	tokens float64
	last   time.Time
}

// allow takes a token from key's bucket; when there is none it says how
// long until there is.
func (l *limiter) allow(key string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if now.Sub(l.swept) >= sweepEvery {
		// A bucket idle long enough to have refilled is the same as none.
		full := time.Duration(l.burst / l.rate * float64(time.Second))
		for k, b := range l.buckets {
			if now.Sub(b.last) >= full {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) > 1<<20 { // bounded memory: start over
			l.buckets = map[string]*bucket{}
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
	}
	b.tokens--
	return true, 0
}

// rateLimitError is a request over a bucket's rate: 429 with Retry-After.
type rateLimitError struct {
	what string
	rate float64
	wait time.Duration
}

func (e *rateLimitError) Error() string {
	return fmt.Sprintf("rate limit: more than %g requests per second from %s; retry after %s", e.rate, e.what, e.wait.Round(time.Millisecond))
}

// remoteIP is the request's peer address without the port. Forwarding
// headers are not trusted: behind a proxy, the proxy is the address.
func remoteIP(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// tokenCache keeps the tokens found recently: every request is
// authenticated, and a database read per request was a tenth of the ingest
// path's CPU. Only found tokens are kept, for tokenTTL, so a token removed
// from the database stops working within that time.
type tokenCache struct {
	mu    sync.Mutex
	m     map[string]cachedToken
	swept time.Time
}

type cachedToken struct {
	t  store.Token
	at time.Time
}

const (
	tokenTTL      = 30 * time.Second
	tokenCacheMax = 1 << 18
)

func (c *tokenCache) get(ctx context.Context, s store.Store, hash []byte) (store.Token, error) {
	now := time.Now()
	c.mu.Lock()
	e, ok := c.m[string(hash)]
	c.mu.Unlock()
	if ok && now.Sub(e.at) < tokenTTL {
		return e.t, nil
	}
	t, err := s.Token(ctx, hash)
	if err != nil {
		return t, err
	}
	c.put(t, now)
	return t, nil
}

func (c *tokenCache) put(t store.Token, at time.Time) {
	c.mu.Lock()
	if c.m == nil || len(c.m) >= tokenCacheMax { // bounded memory: start over
		c.m = map[string]cachedToken{}
	}
	if at.Sub(c.swept) >= sweepEvery { // expired entries go
		for k, e := range c.m {
			if at.Sub(e.at) >= tokenTTL {
				delete(c.m, k)
			}
		}
		c.swept = at
	}
	c.m[string(t.Hash)] = cachedToken{t: t, at: at}
	c.mu.Unlock()
}
