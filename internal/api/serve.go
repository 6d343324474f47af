package api

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/vouch-dev/vouch/internal/fleet"
	"github.com/vouch-dev/vouch/internal/store"
)

// ServeOptions configure `vouch serve`.
type ServeOptions struct {
	Listen string // host:port; port 0 picks one
	// DataDir holds the SQLite database (vouch.db) and admin.token.
	DataDir string
	// Database is a postgres:// URL; "" is SQLite under DataDir.
	Database        string
	TLSCert, TLSKey string
	Limits          Limits
	Log             *slog.Logger
	// Ready is called with the listening address once the server accepts
	// connections, and the admin token file's path.
	Ready func(addr, adminTokenFile string)
	// JobLease is how long a worker's claim on a job lasts without a
	// heartbeat (default 30s).
	JobLease time.Duration
	// ImageURLAllow lists the networks (CIDRs or addresses) job image URLs
	// may be fetched from; empty: none.
	ImageURLAllow []string
	// Routes adds routes (the dashboard) to the server's mux.
	Routes func(*Server)
}

// Serve runs the server until ctx ends, then shuts down gracefully.
func Serve(ctx context.Context, o ServeOptions) error {
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return fmt.Errorf("api: give both --tls-cert and --tls-key, or neither")
	}
	dsn := o.Database
	if dsn == "" {
		dsn = filepath.Join(o.DataDir, "vouch.db")
	}
	st, err := store.Open(ctx, dsn)
	if err != nil {
		return err
	}
	defer st.Close()
	tokFile, err := EnsureAdminToken(ctx, st, o.DataDir)
	if err != nil {
		return err
	}
	srv := New(st, o.Limits, o.Log)
	srv.ImageDir = filepath.Join(o.DataDir, "images")
	if err := srv.setJobLease(o.JobLease); err != nil {
		return err
	}
	if srv.ImageAllow, err = ParseImageAllow(o.ImageURLAllow); err != nil {
		return err
	}
	if o.Routes != nil {
		o.Routes(srv)
	}
	// Each distinct state is judged once per process. Judge the stored ones
	// now, in the background, so that the first readiness after a start
	// answers from memory (under a millisecond for 100,000 hosts, where
	// judging their 7 states took 0.3-0.5 s). Done before the store closes.
	warm := make(chan struct{})
	go func() {
		defer close(warm)
		if _, err := srv.Fleet.Readiness(ctx, nil, fleet.Query{}); err != nil && ctx.Err() == nil {
			srv.Log.Warn("judging the stored states at start", "err", err)
		}
	}()
	defer func() { <-warm }()
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		MaxHeaderBytes: 64 << 10, ErrorLog: nil}
	if o.Log != nil {
		hs.ErrorLog = slog.NewLogLogger(o.Log.Handler(), slog.LevelWarn)
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("api: %w", err)
	}
	scheme := "http"
	if o.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
		if err != nil {
			ln.Close()
			return fmt.Errorf("api: TLS certificate %s / key %s: %w", o.TLSCert, o.TLSKey, err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		scheme = "https"
	}
	if o.Ready != nil {
		o.Ready(scheme+"://"+ln.Addr().String(), tokFile)
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("api: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = hs.Shutdown(sctx)
	if e := <-errc; err == nil && !errors.Is(e, http.ErrServerClosed) {
		err = e
	}
	return err
}

// discard is a logger that drops everything.
func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
