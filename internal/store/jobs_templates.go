package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
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
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM job_templates WHERE name = ?`), name)
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
