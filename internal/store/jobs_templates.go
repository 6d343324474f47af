package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Job templates, and a job's events and log lines.

func (s *sqlStore) PutTemplate(ctx context.Context, t Template) (bool, error) {
	created := false
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE job_templates SET body = ?, updated_at = ? WHERE name = ?`), string(t.Body), ms(t.UpdatedAt), t.Name)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			return nil
		}
		created = true
		_, err = tx.ExecContext(ctx, s.q(`INSERT INTO job_templates (name, body, created_at, updated_at) VALUES (?, ?, ?, ?)`),
			t.Name, string(t.Body), ms(t.CreatedAt), ms(t.UpdatedAt))
		return err
	})
	return created, wrap("put template", err)
}

func (s *sqlStore) Template(ctx context.Context, name string) (Template, error) {
	t := Template{Name: name}
	var body string
	var c, u int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT body, created_at, updated_at FROM job_templates WHERE name = ?`), name).Scan(&body, &c, &u)
	if errors.Is(err, sql.ErrNoRows) {
		return Template{}, ErrNotFound
	}
	t.Body, t.CreatedAt, t.UpdatedAt = []byte(body), fromMS(c), fromMS(u)
	return t, wrap("template", err)
}

func (s *sqlStore) Templates(ctx context.Context) ([]Template, error) {
	const q = `SELECT name, body, created_at, updated_at FROM job_templates ORDER BY name`
	return queryAll(ctx, s, "templates", q, nil, nil, func(r *sql.Rows) (Template, error) {
		var t Template
		var body string
		var c, u int64
		err := r.Scan(&t.Name, &body, &c, &u)
		t.Body, t.CreatedAt, t.UpdatedAt = []byte(body), fromMS(c), fromMS(u)
		return t, err
	})
}

func (s *sqlStore) DeleteTemplate(ctx context.Context, name string) error {
	defer s.lockWrite()()
	res, err := s.writer().ExecContext(ctx, s.q(`DELETE FROM job_templates WHERE name = ?`), name)
	if err != nil {
		return wrap("delete template", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

func (s *sqlStore) JobEvents(ctx context.Context, id string) ([]JobEvent, error) {
	const q = `SELECT seq, at, state, worker, note FROM job_events WHERE job_id = ? ORDER BY seq`
	return queryAll(ctx, s, "job events", q, []any{id}, nil, func(r *sql.Rows) (JobEvent, error) {
		e := JobEvent{JobID: id}
		var at int64
		err := r.Scan(&e.Seq, &at, &e.State, &e.Worker, &e.Note)
		e.At = fromMS(at)
		return e, err
	})
}

func (s *sqlStore) JobLog(ctx context.Context, id, caseName string, after int64, limit int) ([]JobLogLine, error) {
	q := `SELECT seq, case_name, at, line FROM job_logs WHERE job_id = ? AND seq > ?`
	args := []any{id, after}
	if caseName != "" {
		q += ` AND case_name = ?`
		args = append(args, caseName)
	}
	q += ` ORDER BY seq`
	if limit > 0 {
		q += fmt.Sprintf(` LIMIT %d`, limit)
	}
	return queryAll(ctx, s, "job log", q, args, nil, func(r *sql.Rows) (JobLogLine, error) {
		var l JobLogLine
		var at int64
		err := r.Scan(&l.Seq, &l.Case, &at, &l.Line)
		l.At = fromMS(at)
		return l, err
	})
}

func (s *sqlStore) AppendJobLog(ctx context.Context, id, lease string, from int64, lines []JobLogLine, at time.Time, maxBytes int64) (int64, error) {
	var next int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		j, err := s.jobTx(ctx, tx, id)
		if err != nil {
			return err
		}
		if lease == "" || j.Lease != lease || JobFinal(j.State) {
			return ErrLeaseLost
		}
		next = j.LogNext
		if from > j.LogNext {
			return fmt.Errorf("%w: line %d sent, line %d expected", ErrLogGap, from, j.LogNext)
		}
		skip := j.LogNext - from
		if skip >= int64(len(lines)) {
			return nil // all stored already: a retry
		}
		var size int64
		if err := tx.QueryRowContext(ctx, s.q(`SELECT log_bytes FROM jobs WHERE id = ?`), id).Scan(&size); err != nil {
			return err
		}
		for _, l := range lines[skip:] {
			line := l.Line
			switch {
			case size > maxBytes:
				continue // cut already
			case size+int64(len(line)) > maxBytes:
				line = fmt.Sprintf("(log cut: the job's log reached its limit of %d bytes; later lines were dropped)", maxBytes)
				size = maxBytes + 1
			default:
				size += int64(len(line))
			}
			when := l.At
			if when.IsZero() {
				when = at
			}
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO job_logs (job_id, case_name, at, line) VALUES (?, ?, ?, ?)`), id, l.Case, ms(when), line); err != nil {
				return err
			}
		}
		next = from + int64(len(lines))
		_, err = tx.ExecContext(ctx, s.q(`UPDATE jobs SET log_next = ?, log_bytes = ? WHERE id = ?`), next, size, id)
		return err
	})
	if errors.Is(err, ErrLeaseLost) || errors.Is(err, ErrLogGap) || errors.Is(err, ErrNotFound) {
		return next, err
	}
	return next, wrap("append job log", err)
}
