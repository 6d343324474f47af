package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vouch-dev/vouch/internal/api"
	"github.com/vouch-dev/vouch/internal/fleet"
)

// Options run the agent.
type Options struct {
	Server      string
	EnrollToken string
	StateDir    string
	CAFile      string
	Source      Source
	// Once collects and reports once; otherwise every Interval until ctx ends.
	Once     bool
	Interval time.Duration
	// Attempts per call before the report is spooled (default 6); waits
	// grow from BackoffBase (default 1s) to BackoffMax (default 5m), with
	// full jitter.
	Attempts                int
	BackoffBase, BackoffMax time.Duration
	Log                     io.Writer
}

func (o *Options) defaults() {
	if o.Attempts <= 0 {
		o.Attempts = 6
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = time.Second
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 5 * time.Minute
	}
	if o.Interval <= 0 {
		o.Interval = time.Hour
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
}

// state is what the agent keeps under its state directory.
type state struct {
	Server     string `json:"server"`
	HostID     string `json:"hostId"`
	Credential string `json:"credential"`
	LastDigest string `json:"lastDigest,omitempty"`
}

// Result says what one run did.
type Result struct {
	HostID   string
	Digest   string
	Sent     bool // the full report was sent (otherwise a heartbeat)
	Uploaded int  // blobs uploaded
	Spooled  bool
	// FromSpool counts spooled reports delivered first.
	FromSpool int
}

// Run runs the agent: once, or until ctx ends.
func Run(ctx context.Context, o Options) (*Result, error) {
	o.defaults()
	if err := os.MkdirAll(o.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("agent: state directory: %w", err)
	}
	for {
		res, err := runOnce(ctx, o)
		if o.Once || ctx.Err() != nil {
			return res, err
		}
		if err != nil {
			fmt.Fprintf(o.Log, "vouch agent: %v\n", err)
		}
		t := time.NewTimer(jitter(o.Interval))
		select {
		case <-ctx.Done():
			t.Stop()
			return res, nil
		case <-t.C:
		}
	}
}

func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

func runOnce(ctx context.Context, o Options) (*Result, error) {
	st, err := loadState(o.StateDir)
	if err != nil {
		return nil, err
	}
	res := &Result{}
	if st.Credential == "" {
		if o.EnrollToken == "" {
			return nil, fmt.Errorf("agent: not enrolled yet (no credential in %s): give an enrolment token (--enroll)", o.StateDir)
		}
		c, err := api.NewClient(o.Server, o.EnrollToken, o.CAFile)
		if err != nil {
			return nil, err
		}
		col, err := Collect(ctx, o.Source)
		if err != nil {
			return nil, err
		}
		var er *api.EnrollResponse
		err = retry(ctx, o, "enrol", func() error {
			var err error
			er, err = c.Enroll(ctx, col.Report.Hostname)
			return err
		})
		if err != nil {
			return nil, err
		}
		st = &state{Server: o.Server, HostID: er.HostID, Credential: er.Credential}
		if err := saveState(o.StateDir, st); err != nil {
			return nil, err
		}
		fmt.Fprintf(o.Log, "vouch agent: enrolled as %s\n", st.HostID)
	}
	res.HostID = st.HostID
	c, err := api.NewClient(o.Server, st.Credential, o.CAFile)
	if err != nil {
		return nil, err
	}
	// Spooled reports first, oldest first: they are history the server
	// has not seen.
	spooled, err := spooledReports(o.StateDir)
	if err != nil {
		return nil, err
	}
	for _, sp := range spooled {
		col, err := readSpool(sp)
		if err != nil {
			return nil, err
		}
		sr := &Result{}
		if _, err := send(ctx, o, c, st, col, sr); err != nil {
			return res, err
		}
		res.Uploaded += sr.Uploaded
		if err := os.RemoveAll(sp); err != nil {
			return res, fmt.Errorf("agent: %w", err)
		}
		res.FromSpool++
	}
	col, err := Collect(ctx, o.Source)
	if err != nil {
		return res, err
	}
	col.Report.HostID = st.HostID
	if _, err := send(ctx, o, c, st, col, res); err != nil {
		var se *api.StatusError
		if errors.As(err, &se) && !se.Retryable() {
			return res, err // the server refused it: spooling would not help
		}
		if serr := writeSpool(o.StateDir, col); serr != nil {
			return res, fmt.Errorf("%w; spooling failed too: %v", err, serr)
		}
		res.Spooled = true
		return res, fmt.Errorf("agent: server unavailable, report spooled under %s: %w", filepath.Join(o.StateDir, "spool"), err)
	}
	return res, nil
}

// send delivers one collected report: a heartbeat when nothing changed,
// otherwise the blobs the server lacks, then the report.
func send(ctx context.Context, o Options, c *api.Client, st *state, col *Collected, res *Result) (string, error) {
	col.Report.HostID = st.HostID
	digest := fleet.ReportDigest(col.Report)
	res.Digest = digest
	if digest == st.LastDigest {
		err := retry(ctx, o, "heartbeat", func() error { return c.Seen(ctx, digest) })
		var se *api.StatusError
		if err == nil {
			return digest, nil
		}
		if !errors.As(err, &se) || se.Code != http.StatusConflict {
			return "", err
		}
		// The server's copy differs (restored from a backup?): send it all.
	}
	needs := col.Report.Needs()
	var missing []string
	err := retry(ctx, o, "blob check", func() error {
		var err error
		missing, err = c.MissingBlobs(ctx, needs)
		return err
	})
	if err != nil {
		return "", err
	}
	for _, d := range missing {
		b, ok := col.Blobs[d]
		if !ok {
			return "", fmt.Errorf("agent: the server asks for blob %s, which this report does not name", d)
		}
		if err := retry(ctx, o, "upload", func() error { return c.PutBlob(ctx, d, b.Kind, b.Data) }); err != nil {
			return "", err
		}
		res.Uploaded++
	}
	body, err := json.Marshal(col.Report)
	if err != nil {
		return "", fmt.Errorf("agent: %w", err)
	}
	var ack *fleet.Ack
	err = retry(ctx, o, "report", func() error {
		var err error
		ack, err = c.Report(ctx, body)
		return err
	})
	if err != nil {
		return "", err
	}
	if ack.ReportDigest != digest || ack.HostID != st.HostID {
		return "", fmt.Errorf("agent: the server acknowledged report %s of host %s, not %s of %s", ack.ReportDigest, ack.HostID, digest, st.HostID)
	}
	res.Sent = true
	st.LastDigest = digest
	return digest, saveState(o.StateDir, st)
}

// retry calls f until it succeeds, fails for good (a 4xx other than 429),
// or the attempts are spent; waits grow exponentially with full jitter.
func retry(ctx context.Context, o Options, what string, f func() error) error {
	var err error
	for i := 0; i < o.Attempts; i++ {
		if err = f(); err == nil {
			return nil
		}
		var se *api.StatusError
		if errors.As(err, &se) && !se.Retryable() {
			return err
		}
		if i == o.Attempts-1 {
			break
		}
		wait := min(o.BackoffMax, o.BackoffBase<<i)
		wait = time.Duration(rand.Int64N(int64(wait) + 1))
		fmt.Fprintf(o.Log, "vouch agent: %s: %v (retrying in %s)\n", what, err, wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	return fmt.Errorf("agent: %s: %w", what, err)
}

func loadState(dir string) (*state, error) {
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if errors.Is(err, os.ErrNotExist) {
		return &state{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("agent: %s: %w", filepath.Join(dir, "state.json"), err)
	}
	return &st, nil
}

func saveState(dir string, st *state) error {
	b, _ := json.MarshalIndent(st, "", "  ")
	return writeAtomic(filepath.Join(dir, "state.json"), b)
}

// writeAtomic writes a file (mode 0600) through a synced temporary file and
// a rename, so a crash leaves the old file or the new one.
func writeAtomic(p string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+"-*")
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(b)
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
		return fmt.Errorf("agent: writing %s: %w", p, err)
	}
	return nil
}

// The spool: spool/NNNNNNNNNNNNNNNNNNN/ holds report.json and blobs/DIGEST.KIND.
func writeSpool(dir string, col *Collected) error {
	sp := filepath.Join(dir, "spool", fmt.Sprintf("%019d", time.Now().UnixNano()))
	if err := os.MkdirAll(filepath.Join(sp, "blobs"), 0o700); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	for d, b := range col.Blobs {
		if err := writeAtomic(filepath.Join(sp, "blobs", d+"."+b.Kind), b.Data); err != nil {
			return err
		}
	}
	body, _ := json.Marshal(col.Report)
	return writeAtomic(filepath.Join(sp, "report.json"), body) // last: a spool entry without it is incomplete
}

func spooledReports(dir string) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(dir, "spool"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	var out []string
	for _, e := range ents {
		p := filepath.Join(dir, "spool", e.Name())
		if _, err := os.Stat(filepath.Join(p, "report.json")); err != nil {
			os.RemoveAll(p) // interrupted while spooling
			continue
		}
		out = append(out, p)
	}
	return out, nil // ReadDir sorts by name: oldest first
}

func readSpool(sp string) (*Collected, error) {
	b, err := os.ReadFile(filepath.Join(sp, "report.json"))
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	r, err := fleet.DecodeReport(b)
	if err != nil {
		return nil, fmt.Errorf("agent: spooled %s: %w", sp, err)
	}
	col := &Collected{Report: r, Blobs: map[string]Blob{}}
	ents, err := os.ReadDir(filepath.Join(sp, "blobs"))
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	for _, e := range ents {
		d, kind, _ := strings.Cut(e.Name(), ".")
		data, err := os.ReadFile(filepath.Join(sp, "blobs", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
		if fleet.Digest(data) != d {
			return nil, fmt.Errorf("agent: spooled blob %s is corrupt", e.Name())
		}
		col.Blobs[d] = Blob{Kind: kind, Data: data}
	}
	return col, nil
}
