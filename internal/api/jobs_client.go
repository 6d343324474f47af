package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"

	"github.com/vouch-dev/vouch/internal/jobs"
	"github.com/vouch-dev/vouch/internal/store"
)

// PutTemplate creates or replaces a template.
func (c *Client) PutTemplate(ctx context.Context, t jobs.Template) (jobs.Template, error) {
	var out jobs.Template
	err := c.json(ctx, http.MethodPut, "/v1/templates/"+url.PathEscape(t.Name), t, &out)
	return out, err
}

// Template reads a template.
func (c *Client) Template(ctx context.Context, name string) (jobs.Template, error) {
	var out jobs.Template
	err := c.json(ctx, http.MethodGet, "/v1/templates/"+url.PathEscape(name), nil, &out)
	return out, err
}

// Templates lists the templates.
func (c *Client) Templates(ctx context.Context) ([]jobs.Template, error) {
	var out struct {
		Value []jobs.Template `json:"value"`
	}
	err := c.json(ctx, http.MethodGet, "/v1/templates", nil, &out)
	return out.Value, err
}

// DeleteTemplate removes a template.
func (c *Client) DeleteTemplate(ctx context.Context, name string) error {
	return c.json(ctx, http.MethodDelete, "/v1/templates/"+url.PathEscape(name), nil, nil)
}

// UploadImage sends an image file; the answer names the path jobs use.
func (c *Client) UploadImage(ctx context.Context, path string) (ImageUpload, error) {
	var out ImageUpload
	f, err := os.Open(path)
	if err != nil {
		return out, fmt.Errorf("api: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return out, fmt.Errorf("api: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Base+"/v1/images", f)
	if err != nil {
		return out, fmt.Errorf("api: %w", err)
	}
	req.ContentLength = st.Size()
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return out, fmt.Errorf("api: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		json.Unmarshal(b, &e)
		return out, &StatusError{Code: resp.StatusCode, Message: e.Error}
	}
	err = json.Unmarshal(b, &out)
	return out, err
}

// CreateJob queues a job.
func (c *Client) CreateJob(ctx context.Context, req jobs.CreateRequest) (jobs.Job, error) {
	var out jobs.Job
	err := c.json(ctx, http.MethodPost, "/v1/jobs", req, &out)
	return out, err
}

// Job reads a job.
func (c *Client) Job(ctx context.Context, name string) (jobs.Job, error) {
	var out jobs.Job
	err := c.json(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(name), nil, &out)
	return out, err
}

// Jobs lists jobs, newest first.
func (c *Client) Jobs(ctx context.Context, f store.JobFilter) ([]jobs.Job, error) {
	v := url.Values{}
	if f.State != "" {
		v.Set("state", f.State)
	}
	if f.Template != "" {
		v.Set("template", f.Template)
	}
	if f.Limit > 0 {
		v.Set("limit", strconv.Itoa(f.Limit))
	}
	var out struct {
		Value []jobs.Job `json:"value"`
	}
	err := c.json(ctx, http.MethodGet, "/v1/jobs?"+v.Encode(), nil, &out)
	return out.Value, err
}

// JobEvents lists a job's state changes in order.
func (c *Client) JobEvents(ctx context.Context, name string) ([]store.JobEvent, error) {
	var out struct {
		Value []store.JobEvent `json:"value"`
	}
	err := c.json(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(name)+"/events", nil, &out)
	return out.Value, err
}

// JobLog returns log lines after seq (of one case when caseName is set) and
// the job's state.
func (c *Client) JobLog(ctx context.Context, name, caseName string, after int64) ([]store.JobLogLine, string, error) {
	v := url.Values{"after": {strconv.FormatInt(after, 10)}}
	if caseName != "" {
		v.Set("case", caseName)
	}
	var out struct {
		Value []store.JobLogLine `json:"value"`
		State string             `json:"provisioningState"`
	}
	err := c.json(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(name)+"/logs?"+v.Encode(), nil, &out)
	return out.Value, out.State, err
}

// CancelJob asks for a job to stop.
func (c *Client) CancelJob(ctx context.Context, name string) (jobs.Job, error) {
	var out jobs.Job
	err := c.json(ctx, http.MethodPost, "/v1/jobs/"+url.PathEscape(name)+"/cancel", nil, &out)
	return out, err
}

// DeleteJob removes an ended job.
func (c *Client) DeleteJob(ctx context.Context, name string) error {
	return c.json(ctx, http.MethodDelete, "/v1/jobs/"+url.PathEscape(name), nil, nil)
}

// Claim asks for a job (a worker token); nil when none waits.
func (c *Client) Claim(ctx context.Context, caps store.Caps) (*jobs.Claim, error) {
	var out jobs.Claim
	err := c.json(ctx, http.MethodPost, "/v1/worker/claim", caps, &out)
	if err != nil {
		return nil, err
	}
	if out.Lease == "" { // 204: none
		return nil, nil
	}
	return &out, nil
}

// Update sends a worker's heartbeat and progress; a 409 is jobs.ErrLeaseLost.
func (c *Client) Update(ctx context.Context, name string, u jobs.Update) (jobs.UpdateAnswer, error) {
	var out jobs.UpdateAnswer
	err := c.json(ctx, http.MethodPost, "/v1/worker/jobs/"+url.PathEscape(name), u, &out)
	var se *StatusError
	if errors.As(err, &se) && (se.Code == http.StatusConflict || se.Code == http.StatusNotFound) {
		return out, fmt.Errorf("%w: %s", jobs.ErrLeaseLost, se.Message)
	}
	return out, err
}
