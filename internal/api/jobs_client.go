package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

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

// AppendLog sends a chunk of a job's log (a worker token); a 409 or 404 is
// jobs.ErrLeaseLost.
func (c *Client) AppendLog(ctx context.Context, name string, a jobs.LogAppend) (jobs.LogAnswer, error) {
	var out jobs.LogAnswer
	err := c.json(ctx, http.MethodPost, "/v1/worker/jobs/"+url.PathEscape(name)+"/logs", a, &out)
	var se *StatusError
	switch {
	case errors.As(err, &se) && (se.Code == http.StatusConflict || se.Code == http.StatusNotFound):
		return out, fmt.Errorf("%w: %s", jobs.ErrLeaseLost, se.Message)
	case se != nil && se.Code/100 == 4 && se.Code != http.StatusTooManyRequests && se.Code != http.StatusUnauthorized:
		return out, fmt.Errorf("%w: %d %s", jobs.ErrLogRefused, se.Code, se.Message)
	}
	return out, err
}

// streaming is the client without its whole-request time limit, for
// answers that last as long as a job or an image download.
func (c *Client) streaming() *http.Client {
	hc := *c.HTTP
	hc.Timeout = 0
	return &hc
}

// FetchImage writes the image the server keeps under digest, from byte
// offset on, to w (a worker or admin token); it returns the bytes written.
// A server that ignores the range is an error (nothing is written).
func (c *Client) FetchImage(ctx context.Context, digest string, offset int64, w io.Writer) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Base+"/v1/worker/images/"+url.PathEscape(digest), nil)
	if err != nil {
		return 0, fmt.Errorf("api: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if offset > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
	}
	resp, err := c.streaming().Do(req)
	if err != nil {
		return 0, fmt.Errorf("api: %w", err)
	}
	defer resp.Body.Close()
	switch {
	case offset > 0 && resp.StatusCode == http.StatusPartialContent, offset == 0 && resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		return 0, fmt.Errorf("api: image %s: the server has no bytes from %d on", digest, offset)
	default:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var e struct {
			Error string `json:"error"`
		}
		json.Unmarshal(b, &e)
		err := &StatusError{Code: resp.StatusCode, Message: e.Error}
		if resp.StatusCode == http.StatusNotFound {
			return 0, fmt.Errorf("%w: %w", jobs.ErrImageGone, err)
		}
		return 0, err
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("api: image %s: %w", digest, err)
	}
	return n, nil
}

// FollowJobLog calls fn with each of a job's log lines after seq (of one
// case when caseName is set) as the server streams them, until the job
// ends; it returns the job's final state.
func (c *Client) FollowJobLog(ctx context.Context, name, caseName string, after int64, fn func(store.JobLogLine) error) (jobs.LogEnd, error) {
	var end jobs.LogEnd
	v := url.Values{"after": {strconv.FormatInt(after, 10)}, "follow": {"1"}}
	if caseName != "" {
		v.Set("case", caseName)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Base+"/v1/jobs/"+url.PathEscape(name)+"/logs?"+v.Encode(), nil)
	if err != nil {
		return end, fmt.Errorf("api: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.streaming().Do(req)
	if err != nil {
		return end, fmt.Errorf("api: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var e struct {
			Error string `json:"error"`
		}
		json.Unmarshal(b, &e)
		return end, &StatusError{Code: resp.StatusCode, Message: e.Error}
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var event, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			switch event {
			case "line":
				var l store.JobLogLine
				if err := json.Unmarshal([]byte(data), &l); err != nil {
					return end, fmt.Errorf("api: job %s: log event: %w", name, err)
				}
				if err := fn(l); err != nil {
					return end, err
				}
			case "end":
				if err := json.Unmarshal([]byte(data), &end); err != nil {
					return end, fmt.Errorf("api: job %s: end event: %w", name, err)
				}
				return end, nil
			}
			event, data = "", ""
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data += strings.TrimPrefix(line, "data: ")
		}
	}
	if err := sc.Err(); err != nil {
		return end, fmt.Errorf("api: job %s: log stream: %w", name, err)
	}
	return end, fmt.Errorf("api: job %s: the log stream ended before the job did", name)
}
