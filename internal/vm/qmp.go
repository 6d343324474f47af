package vm

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// QMP is a client of the QEMU Machine Protocol on the VM's unix socket
// (docs/interop/qmp-spec.rst): one JSON object per line; the server greets with
// {"QMP": {...}}, the client sends qmp_capabilities, then {"execute": ...}
// commands answered in order by {"return": ...} or {"error": {"class", "desc"}},
// with asynchronous {"event": ...} messages interleaved.
type QMP struct {
	conn net.Conn
	enc  *json.Encoder

	cmdMu sync.Mutex // one command in flight; ids match answers to commands
	resp  chan qmpMessage
	id    uint64

	mu      sync.Mutex
	events  []Event
	changed chan struct{}
	err     error // set when the connection is gone
}

// Event is an asynchronous QMP event (RESET, SHUTDOWN, STOP, ...).
type Event struct {
	Name string
	Data map[string]any
	Time time.Time
}

// QMPError is an error answer to a command.
type QMPError struct {
	Command string
	Class   string
	Desc    string
}

func (e *QMPError) Error() string {
	return fmt.Sprintf("vm: qmp %s: %s: %s", e.Command, e.Class, e.Desc)
}

// qmpMessage is any message the server sends.
type qmpMessage struct {
	Greeting  json.RawMessage `json:"QMP"`
	Return    json.RawMessage `json:"return"`
	Error     *qmpErrorBody   `json:"error"`
	ID        *uint64         `json:"id"`
	Event     string          `json:"event"`
	Data      map[string]any  `json:"data"`
	Timestamp *struct {
		Seconds      int64 `json:"seconds"`
		Microseconds int64 `json:"microseconds"`
	} `json:"timestamp"`
}

type qmpErrorBody struct {
	Class string `json:"class"`
	Desc  string `json:"desc"`
}

// maxQMPLine bounds one message from the server.
const maxQMPLine = 4 << 20

// parseQMP decodes one line from the server.
func parseQMP(line []byte) (qmpMessage, error) {
	var m qmpMessage
	if err := json.Unmarshal(line, &m); err != nil {
		return m, fmt.Errorf("vm: qmp: bad message: %w", err)
	}
	switch {
	case m.Greeting != nil, m.Return != nil, m.Error != nil, m.Event != "":
		return m, nil
	}
	return m, errors.New("vm: qmp: message is neither greeting, return, error nor event")
}

// dialQMP connects to the socket at path, reads the greeting and negotiates
// capabilities. It retries the connection until ctx ends (QEMU creates the
// socket shortly after it starts).
func dialQMP(ctx context.Context, path string) (*QMP, error) {
	var conn net.Conn
	for {
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", path)
		if err == nil {
			conn = c
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("vm: qmp: connect %s: %w", path, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	q := &QMP{conn: conn, enc: json.NewEncoder(conn), resp: make(chan qmpMessage, 1), changed: make(chan struct{})}
	greeting := make(chan error, 1)
	go q.read(greeting)
	select {
	case err := <-greeting:
		if err != nil {
			conn.Close()
			return nil, err
		}
	case <-ctx.Done():
		conn.Close()
		return nil, fmt.Errorf("vm: qmp: no greeting: %w", ctx.Err())
	}
	if _, err := q.Execute(ctx, "qmp_capabilities", nil); err != nil {
		conn.Close()
		return nil, err
	}
	return q, nil
}

// read dispatches the server's messages until the connection ends.
func (q *QMP) read(greeting chan<- error) {
	sc := bufio.NewScanner(q.conn)
	sc.Buffer(make([]byte, 64<<10), maxQMPLine)
	greeted := false
	var err error
	for sc.Scan() {
		m, perr := parseQMP(sc.Bytes())
		if perr != nil {
			err = perr
			break
		}
		switch {
		case m.Greeting != nil:
			if !greeted {
				greeted = true
				greeting <- nil
			}
		case m.Event != "":
			ev := Event{Name: m.Event, Data: m.Data, Time: time.Now()}
			if m.Timestamp != nil && m.Timestamp.Seconds > 0 {
				ev.Time = time.Unix(m.Timestamp.Seconds, m.Timestamp.Microseconds*1000)
			}
			q.mu.Lock()
			q.events = append(q.events, ev)
			close(q.changed)
			q.changed = make(chan struct{})
			q.mu.Unlock()
		default:
			select {
			case q.resp <- m:
			case <-time.After(time.Second): // nobody waits for it (its caller gave up)
			}
		}
	}
	if err == nil {
		err = sc.Err()
	}
	if err == nil {
		err = io.EOF
	}
	if !greeted {
		greeting <- fmt.Errorf("vm: qmp: no greeting: %w", err)
	}
	q.mu.Lock()
	q.err = fmt.Errorf("vm: qmp: connection closed: %w", err)
	close(q.changed)
	q.changed = make(chan struct{})
	q.mu.Unlock()
	close(q.resp)
}

// Execute runs a QMP command and returns its "return" value.
func (q *QMP) Execute(ctx context.Context, command string, args any) (json.RawMessage, error) {
	q.cmdMu.Lock()
	defer q.cmdMu.Unlock()
	q.id++
	id := q.id
	req := map[string]any{"execute": command, "id": id}
	if args != nil {
		req["arguments"] = args
	}
	if dl, ok := ctx.Deadline(); ok {
		q.conn.SetWriteDeadline(dl)
	} else {
		q.conn.SetWriteDeadline(time.Time{})
	}
	if err := q.enc.Encode(req); err != nil {
		return nil, fmt.Errorf("vm: qmp %s: %w", command, err)
	}
	for {
		select {
		case m, ok := <-q.resp:
			if !ok {
				q.mu.Lock()
				err := q.err
				q.mu.Unlock()
				return nil, fmt.Errorf("vm: qmp %s: %w", command, err)
			}
			if m.ID == nil || *m.ID != id {
				continue // the answer to an earlier command whose caller gave up
			}
			if m.Error != nil {
				return nil, &QMPError{Command: command, Class: m.Error.Class, Desc: m.Error.Desc}
			}
			return m.Return, nil
		case <-ctx.Done():
			return nil, fmt.Errorf("vm: qmp %s: %w", command, ctx.Err())
		}
	}
}

// Status returns the VM's run state ("running", "paused", "shutdown", ...).
func (q *QMP) Status(ctx context.Context) (string, error) {
	raw, err := q.Execute(ctx, "query-status", nil)
	if err != nil {
		return "", err
	}
	var st struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return "", fmt.Errorf("vm: qmp query-status: %w", err)
	}
	return st.Status, nil
}

// Powerdown presses the ACPI power button (system_powerdown).
func (q *QMP) Powerdown(ctx context.Context) error {
	_, err := q.Execute(ctx, "system_powerdown", nil)
	return err
}

// Reset resets the machine like the reset button (system_reset).
func (q *QMP) Reset(ctx context.Context) error {
	_, err := q.Execute(ctx, "system_reset", nil)
	return err
}

// Quit ends QEMU (quit). The connection closes as QEMU exits.
func (q *QMP) Quit(ctx context.Context) error {
	_, err := q.Execute(ctx, "quit", nil)
	if err != nil && errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// Events returns the events received so far.
func (q *QMP) Events() []Event {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]Event(nil), q.events...)
}

// WaitEvent waits for an event called name among those received after the
// first `after` events (use len(Events()) before the action that causes it).
func (q *QMP) WaitEvent(ctx context.Context, name string, after int) (Event, error) {
	for {
		q.mu.Lock()
		for i := max(0, after); i < len(q.events); i++ {
			if q.events[i].Name == name {
				ev := q.events[i]
				q.mu.Unlock()
				return ev, nil
			}
		}
		changed, err := q.changed, q.err
		q.mu.Unlock()
		if err != nil {
			return Event{}, fmt.Errorf("vm: waiting for %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			return Event{}, fmt.Errorf("vm: waiting for %s: %w", name, ctx.Err())
		case <-changed:
		}
	}
}

// Close closes the connection (QEMU keeps running).
func (q *QMP) Close() error { return q.conn.Close() }
