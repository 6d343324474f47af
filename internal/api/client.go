package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/vouch-dev/vouch/internal/fleet"
)

// Client calls a vouch server.
type Client struct {
	Base  string // http(s)://host:port
	Token string
	HTTP  *http.Client
}

// NewClient returns a client; caFile, when set, is the PEM CA (or
// self-signed certificate) the server's TLS certificate must chain to.
func NewClient(base, token, caFile string) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("api: server URL %q: want http(s)://HOST:PORT", base)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64 // many agents (the simulator) share one client
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("api: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("api: %s: no PEM certificate", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &Client{Base: strings.TrimRight(base, "/"), Token: token, HTTP: &http.Client{Transport: tr, Timeout: 5 * time.Minute}}, nil
}

// StatusError is a non-2xx answer.
type StatusError struct {
	Code    int
	Message string
	// RetryAfter is the server's Retry-After (whole seconds), 0 when absent.
	RetryAfter time.Duration
}

func (e *StatusError) Error() string { return fmt.Sprintf("server answered %d: %s", e.Code, e.Message) }

// Retryable reports whether trying again later may succeed.
func (e *StatusError) Retryable() bool { return e.Code == http.StatusTooManyRequests || e.Code >= 500 }

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, ctype string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, body)
	if err != nil {
		return fmt.Errorf("api: %w", err)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("api: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 512<<20))
	if err != nil {
		return fmt.Errorf("api: reading the answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		se := &StatusError{Code: resp.StatusCode, Message: e.Error}
		if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && n > 0 {
			se.RetryAfter = time.Duration(n) * time.Second
		}
		return se
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("api: answer of %s %s: %w", method, path, err)
		}
	}
	return nil
}

func (c *Client) json(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("api: %w", err)
		}
		body = bytes.NewReader(b)
	}
	return c.do(ctx, method, path, body, "application/json", out)
}

// CreateToken asks for a new token of a role (admin only).
func (c *Client) CreateToken(ctx context.Context, role, note string) (string, error) {
	var r TokenResponse
	err := c.json(ctx, http.MethodPost, "/v1/tokens", TokenRequest{Role: role, Note: note}, &r)
	return r.Token, err
}

// Enroll exchanges the client's enrolment token for a host credential.
func (c *Client) Enroll(ctx context.Context, hostname string) (*EnrollResponse, error) {
	var r EnrollResponse
	err := c.json(ctx, http.MethodPost, "/v1/enroll", EnrollRequest{Hostname: hostname}, &r)
	return &r, err
}

// MissingBlobs returns the digests the server lacks.
func (c *Client) MissingBlobs(ctx context.Context, ds []string) ([]string, error) {
	var r BlobsResponse
	err := c.json(ctx, http.MethodPost, "/v1/blobs/missing", BlobsRequest{Digests: ds}, &r)
	return r.Missing, err
}

// PutBlob uploads one blob (kind "var" or "file").
func (c *Client) PutBlob(ctx context.Context, digest, kind string, data []byte) error {
	return c.do(ctx, http.MethodPut, "/v1/blobs/"+digest+"?kind="+url.QueryEscape(kind), bytes.NewReader(data), "application/octet-stream", nil)
}

// Report sends a report (already encoded).
func (c *Client) Report(ctx context.Context, body []byte) (*fleet.Ack, error) {
	var a fleet.Ack
	err := c.do(ctx, http.MethodPost, "/v1/reports", bytes.NewReader(body), "application/json", &a)
	return &a, err
}

// Seen says the host's facts are unchanged since the report with digest.
func (c *Client) Seen(ctx context.Context, digest string) error {
	return c.json(ctx, http.MethodPost, "/v1/seen", SeenRequest{ReportDigest: digest}, nil)
}

// Values builds URL parameters from a selector.
func Values(q fleet.Query) url.Values {
	v := url.Values{}
	for k, x := range q.Dims {
		v.Set(k, x)
	}
	if q.Status != "" {
		v.Set("status", q.Status)
	}
	if q.Hostname != "" {
		v.Set("hostname", q.Hostname)
	}
	for _, id := range q.IDs {
		v.Add("id", id)
	}
	return v
}

// Hosts lists hosts.
func (c *Client) Hosts(ctx context.Context, q fleet.Query) (*HostsResponse, error) {
	return c.HostsPage(ctx, q, fleet.Page{})
}

// HostsPage lists one page of hosts (Limit 0: all after After).
func (c *Client) HostsPage(ctx context.Context, q fleet.Query, p fleet.Page) (*HostsResponse, error) {
	v := Values(q)
	if p.After != "" {
		v.Set("after", p.After)
	}
	if p.Limit > 0 {
		v.Set("limit", strconv.Itoa(p.Limit))
	}
	var r HostsResponse
	err := c.json(ctx, http.MethodGet, "/v1/hosts?"+v.Encode(), nil, &r)
	return &r, err
}

// Host returns one host's detail as raw JSON.
func (c *Client) Host(ctx context.Context, id string) (json.RawMessage, error) {
	var r json.RawMessage
	err := c.json(ctx, http.MethodGet, "/v1/hosts/"+url.PathEscape(id), nil, &r)
	return r, err
}

// Readiness returns readiness counts grouped by dims.
func (c *Client) Readiness(ctx context.Context, by []string, q fleet.Query) (*fleet.Readiness, error) {
	v := Values(q)
	if len(by) > 0 {
		v.Set("by", strings.Join(by, ","))
	}
	var r fleet.Readiness
	err := c.json(ctx, http.MethodGet, "/v1/readiness?"+v.Encode(), nil, &r)
	return &r, err
}

// WhatIf judges a change fleet-wide.
func (c *Client) WhatIf(ctx context.Context, req fleet.ChangeRequest) (*fleet.WhatIf, error) {
	var r fleet.WhatIf
	err := c.json(ctx, http.MethodPost, "/v1/whatif", req, &r)
	return &r, err
}

// Canaries picks canary hosts.
func (c *Client) Canaries(ctx context.Context, o fleet.CanaryOptions) (*fleet.Canaries, error) {
	v := Values(o.Query)
	v.Set("dims", strings.Join(o.Dims, ","))
	if o.Pairwise {
		v.Set("pairwise", "true")
	}
	if o.PerGroup > 0 {
		v.Set("perGroup", fmt.Sprint(o.PerGroup))
	}
	if o.SeenWithin > 0 {
		v.Set("seenWithin", o.SeenWithin.String())
	}
	var r fleet.Canaries
	err := c.json(ctx, http.MethodGet, "/v1/canaries?"+v.Encode(), nil, &r)
	return &r, err
}
