package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Job states (the reference service's provisioningState).
const (
	JobAccepted     = "Accepted"
	JobQueued       = "Queued"
	JobScheduling   = "Scheduling"
	JobProvisioning = "Provisioning"
	JobRunning      = "Running"
	JobSucceeded    = "Succeeded"
	JobFailed       = "Failed"
	JobCanceled     = "Canceled"
)

// JobFinal reports whether a job in state s is over.
func JobFinal(s string) bool { return s == JobSucceeded || s == JobFailed || s == JobCanceled }

// Errors of the job queue.
var (
	// ErrLeaseLost is a worker's call for a job it no longer holds: its
	// lease expired and the job was put back or failed, or it was never
	// its job.
	ErrLeaseLost = errors.New("store: the job's lease is not held by this worker (expired or taken over)")
	// ErrJobActive is a delete of a job that has not ended.
	ErrJobActive = errors.New("store: the job has not ended (cancel it first)")
	// ErrBadTransition is a state change the job's life does not allow.
	ErrBadTransition = errors.New("store: state change not allowed")
	// ErrLogGap is an append that starts past the job's next log line.
	ErrLogGap = errors.New("store: log lines missing before this append")
)

// Needs is what a job needs of a worker; Caps is what a worker has.
type Needs struct {
	KVM       bool `json:"kvm"`
	Cores     int  `json:"cores"`
	MemoryMiB int  `json:"memoryMiB"`
	DiskMiB   int  `json:"diskMiB"`
}

// Caps is what a worker advertises.
type Caps struct {
	Worker    string `json:"worker"`
	KVM       bool   `json:"kvm"`
	Cores     int    `json:"cores"`
	MemoryMiB int    `json:"memoryMiB"`
	DiskMiB   int    `json:"diskMiB"`
}

// Fits reports whether a worker with c can run a job needing n.
func (c Caps) Fits(n Needs) bool {
	return (c.KVM || !n.KVM) && c.Cores >= n.Cores && c.MemoryMiB >= n.MemoryMiB && c.DiskMiB >= n.DiskMiB
}

// JobRecord is a stored job. Spec, Results and Report are JSON documents the
// jobs package defines; the store keeps them whole.
type JobRecord struct {
	ID, Template    string
	Priority        int
	State           string
	Spec            []byte
	Needs           Needs
	Worker, Lease   string
	LeaseUntil      time.Time
	Attempt         int
	MaxAttempts     int
	CancelRequested bool
	Results, Report []byte
	Reason          string
	CreatedAt       time.Time
	UpdatedAt       time.Time
	StartedAt       time.Time
	FinishedAt      time.Time
	// LogNext is the number of the next line AppendJobLog expects.
	LogNext int64
}

// JobEvent is one state change of a job, in the order they happened.
type JobEvent struct {
	Seq    int64     `json:"seq"`
	JobID  string    `json:"job"`
	At     time.Time `json:"at"`
	State  string    `json:"state"`
	Worker string    `json:"worker,omitempty"`
	Note   string    `json:"note,omitempty"`
}

// JobLogLine is one line of a job's log; Case is "" for the job's own lines.
type JobLogLine struct {
	Seq  int64     `json:"seq"`
	Case string    `json:"case,omitempty"`
	At   time.Time `json:"at"`
	Line string    `json:"line"`
}

// JobFilter selects jobs, newest first.
type JobFilter struct {
	State    string
	Template string
	Limit    int
}

// JobUpdate is a worker's report on a job it holds: a state change (""
// keeps the state), the live results and report (nil keeps them), log lines,
// and the lease's new end.
type JobUpdate struct {
	State           string
	Results, Report []byte
	Reason          string
	Logs            []JobLogLine
	LeaseUntil      time.Time
	At              time.Time
}

// Template is a stored job template document.
type Template struct {
	Name      string
	Body      []byte
	CreatedAt time.Time
	UpdatedAt time.Time
}

// JobStore is the job queue, kept in the same database as the rest. Every
// store Open returns implements it.
type JobStore interface {
	PutTemplate(ctx context.Context, t Template) (created bool, err error)
	Template(ctx context.Context, name string) (Template, error)
	Templates(ctx context.Context) ([]Template, error)
	DeleteTemplate(ctx context.Context, name string) error
	// CreateJob stores a job and its Accepted and Queued events together.
	CreateJob(ctx context.Context, j JobRecord) error
	Job(ctx context.Context, id string) (JobRecord, error)
	Jobs(ctx context.Context, f JobFilter) ([]JobRecord, error)
	// DeleteJob removes an ended job with its events and logs.
	DeleteJob(ctx context.Context, id string) error
	// CancelJob cancels a queued job at once; a job a worker holds gets
	// CancelRequested, which the worker learns on its next update.
	CancelJob(ctx context.Context, id string, at time.Time) (JobRecord, error)
	// ClaimJob gives the oldest queued job of the highest priority that fits
	// caps to that worker, in state Scheduling, with a new lease; ErrNotFound
	// when there is none. No two workers get the same job.
	ClaimJob(ctx context.Context, caps Caps, lease string, until, now time.Time) (JobRecord, error)
	// UpdateJob applies a worker's report if it still holds the lease
	// (ErrLeaseLost otherwise) and returns the job (CancelRequested tells
	// the worker to stop).
	UpdateJob(ctx context.Context, id, lease string, u JobUpdate) (JobRecord, error)
	// RescueJobs ends the leases that expired before now: the job is queued
	// again while attempts remain, else failed with the reason (a job whose
	// cancel was asked becomes Canceled). It returns how many it rescued.
	RescueJobs(ctx context.Context, now time.Time) (int, error)
	JobEvents(ctx context.Context, id string) ([]JobEvent, error)
	// AppendJobLog adds lines numbered from on to a job whose lease the
	// caller holds and returns the number of the next line it expects:
	// lines it already has (a retried append) are skipped, a gap is
	// ErrLogGap. A log past maxBytes keeps counting lines but stores only
	// one line saying it was cut.
	AppendJobLog(ctx context.Context, id, lease string, from int64, lines []JobLogLine, at time.Time, maxBytes int64) (int64, error)
	// JobLog returns lines after seq, of one case when caseName is set.
	JobLog(ctx context.Context, id, caseName string, after int64, limit int) ([]JobLogLine, error)
}

// Jobs returns the job queue of a store.
func Jobs(s Store) (JobStore, error) {
	js, ok := s.(JobStore)
	if !ok {
		return nil, fmt.Errorf("store: the %s driver has no job queue", s.Driver())
	}
	return js, nil
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// allowed lists the states a job may move to from each state by a worker's
// update or finish.
var allowed = map[string][]string{
	JobScheduling:   {JobProvisioning, JobRunning, JobSucceeded, JobFailed, JobCanceled},
	JobProvisioning: {JobRunning, JobSucceeded, JobFailed, JobCanceled},
	JobRunning:      {JobSucceeded, JobFailed, JobCanceled},
}

func canMove(from, to string) bool {
	if from == to {
		return true
	}
	for _, s := range allowed[from] {
		if s == to {
			return true
		}
	}
	return false
}

func (s *sqlStore) event(ctx context.Context, tx *sql.Tx, id string, at time.Time, state, worker, note string) error {
	_, err := tx.ExecContext(ctx, s.q(`INSERT INTO job_events (job_id, at, state, worker, note) VALUES (?, ?, ?, ?, ?)`), id, ms(at), state, worker, note)
	return err
}

func (s *sqlStore) CreateJob(ctx context.Context, j JobRecord) error {
	if j.MaxAttempts < 1 {
		j.MaxAttempts = 1
	}
	if len(j.Results) == 0 {
		j.Results = []byte("[]")
	}
	if len(j.Report) == 0 {
		j.Report = []byte("{}")
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO jobs (id, template, priority, state, spec, need_kvm, need_cores, need_memory_mib, need_disk_mib,
			max_attempts, results, report, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			j.ID, j.Template, j.Priority, JobQueued, string(j.Spec), b2i(j.Needs.KVM), j.Needs.Cores, j.Needs.MemoryMiB, j.Needs.DiskMiB,
			j.MaxAttempts, string(j.Results), string(j.Report), ms(j.CreatedAt), ms(j.CreatedAt))
		if err != nil {
			return err
		}
		if err := s.event(ctx, tx, j.ID, j.CreatedAt, JobAccepted, "", ""); err != nil {
			return err
		}
		return s.event(ctx, tx, j.ID, j.CreatedAt, JobQueued, "", "")
	})
	if err != nil && s.d.isUnique(err) {
		return ErrExists
	}
	return wrap("create job", err)
}

const jobCols = `id, template, priority, state, spec, need_kvm, need_cores, need_memory_mib, need_disk_mib, worker, lease, lease_until,
	attempt, max_attempts, cancel_requested, results, report, reason, created_at, updated_at, started_at, finished_at, log_next`

func scanJob(r scanner) (JobRecord, error) {
	var j JobRecord
	var spec, results, report string
	var kvm, cancel int
	var until, c, u, st, fin int64
	err := r.Scan(&j.ID, &j.Template, &j.Priority, &j.State, &spec, &kvm, &j.Needs.Cores, &j.Needs.MemoryMiB, &j.Needs.DiskMiB,
		&j.Worker, &j.Lease, &until, &j.Attempt, &j.MaxAttempts, &cancel, &results, &report, &j.Reason, &c, &u, &st, &fin, &j.LogNext)
	if err != nil {
		return j, err
	}
	j.Spec, j.Results, j.Report = []byte(spec), []byte(results), []byte(report)
	j.Needs.KVM, j.CancelRequested = kvm != 0, cancel != 0
	j.LeaseUntil, j.CreatedAt, j.UpdatedAt, j.StartedAt, j.FinishedAt = fromMS(until), fromMS(c), fromMS(u), fromMS(st), fromMS(fin)
	return j, nil
}

func (s *sqlStore) jobTx(ctx context.Context, tx *sql.Tx, id string) (JobRecord, error) {
	lock := ""
	if s.d.dollar {
		lock = " FOR UPDATE"
	}
	j, err := scanJob(tx.QueryRowContext(ctx, s.q(`SELECT `+jobCols+` FROM jobs WHERE id = ?`+lock), id))
	if errors.Is(err, sql.ErrNoRows) {
		return j, ErrNotFound
	}
	return j, err
}

func (s *sqlStore) Job(ctx context.Context, id string) (JobRecord, error) {
	j, err := scanJob(s.db.QueryRowContext(ctx, s.q(`SELECT `+jobCols+` FROM jobs WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return j, ErrNotFound
	}
	return j, wrap("job", err)
}

func (s *sqlStore) Jobs(ctx context.Context, f JobFilter) ([]JobRecord, error) {
	q := `SELECT ` + jobCols + ` FROM jobs WHERE 1 = 1`
	var args []any
	if f.State != "" {
		q += ` AND state = ?`
		args = append(args, f.State)
	}
	if f.Template != "" {
		q += ` AND template = ?`
		args = append(args, f.Template)
	}
	q += ` ORDER BY created_at DESC, id DESC`
	if f.Limit > 0 {
		q += fmt.Sprintf(` LIMIT %d`, f.Limit)
	}
	return queryAll(ctx, s, "jobs", q, args, nil, func(r *sql.Rows) (JobRecord, error) { return scanJob(r) })
}

func (s *sqlStore) DeleteJob(ctx context.Context, id string) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		j, err := s.jobTx(ctx, tx, id)
		if err != nil {
			return err
		}
		if !JobFinal(j.State) {
			return ErrJobActive
		}
		for _, t := range []string{"job_logs", "job_events"} {
			if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM `+t+` WHERE job_id = ?`), id); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, s.q(`DELETE FROM jobs WHERE id = ?`), id)
		return err
	})
	if errors.Is(err, ErrJobActive) {
		return err
	}
	return wrap("delete job", err)
}

func (s *sqlStore) CancelJob(ctx context.Context, id string, at time.Time) (JobRecord, error) {
	var out JobRecord
	err := s.tx(ctx, func(tx *sql.Tx) error {
		j, err := s.jobTx(ctx, tx, id)
		if err != nil {
			return err
		}
		switch {
		case JobFinal(j.State):
		case j.State == JobQueued:
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE jobs SET state = ?, cancel_requested = 1, reason = ?, updated_at = ?, finished_at = ? WHERE id = ?`),
				JobCanceled, "canceled before a worker took it", ms(at), ms(at), id); err != nil {
				return err
			}
			if err := s.event(ctx, tx, id, at, JobCanceled, "", "canceled while queued"); err != nil {
				return err
			}
		default:
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ?`), ms(at), id); err != nil {
				return err
			}
		}
		out, err = s.jobTx(ctx, tx, id)
		return err
	})
	return out, wrap("cancel job", err)
}

func (s *sqlStore) ClaimJob(ctx context.Context, c Caps, lease string, until, now time.Time) (JobRecord, error) {
	var out JobRecord
	err := s.tx(ctx, func(tx *sql.Tx) error {
		q := `SELECT id FROM jobs WHERE state = ? AND need_kvm <= ? AND need_cores <= ? AND need_memory_mib <= ? AND need_disk_mib <= ?
			ORDER BY priority DESC, created_at, id LIMIT 1`
		if s.d.dollar {
			q += ` FOR UPDATE SKIP LOCKED`
		}
		var id string
		err := tx.QueryRowContext(ctx, s.q(q), JobQueued, b2i(c.KVM), c.Cores, c.MemoryMiB, c.DiskMiB).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, s.q(`UPDATE jobs SET state = ?, worker = ?, lease = ?, lease_until = ?, attempt = attempt + 1,
			updated_at = ?, started_at = ? WHERE id = ? AND state = ?`),
			JobScheduling, c.Worker, lease, ms(until), ms(now), ms(now), id, JobQueued)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return ErrNotFound // taken meanwhile: the caller asks again
		}
		if err := s.event(ctx, tx, id, now, JobScheduling, c.Worker, ""); err != nil {
			return err
		}
		out, err = s.jobTx(ctx, tx, id)
		return err
	})
	return out, wrap("claim job", err)
}

func (s *sqlStore) UpdateJob(ctx context.Context, id, lease string, u JobUpdate) (JobRecord, error) {
	var out JobRecord
	err := s.tx(ctx, func(tx *sql.Tx) error {
		j, err := s.jobTx(ctx, tx, id)
		if err != nil {
			return err
		}
		if lease == "" || j.Lease != lease || JobFinal(j.State) {
			return ErrLeaseLost
		}
		state := j.State
		if u.State != "" {
			if !canMove(j.State, u.State) {
				return fmt.Errorf("%w: %s to %s", ErrBadTransition, j.State, u.State)
			}
			state = u.State
		}
		results, report := j.Results, j.Report
		if u.Results != nil {
			results = u.Results
		}
		if u.Report != nil {
			report = u.Report
		}
		until := j.LeaseUntil
		if !u.LeaseUntil.IsZero() {
			until = u.LeaseUntil
		}
		reason, fin, newLease := j.Reason, int64(0), lease
		if JobFinal(state) {
			reason, fin, newLease, until = u.Reason, ms(u.At), "", time.Time{}
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE jobs SET state = ?, results = ?, report = ?, reason = ?, lease = ?, lease_until = ?,
			updated_at = ?, finished_at = ? WHERE id = ?`),
			state, string(results), string(report), reason, newLease, ms(until), ms(u.At), fin, id); err != nil {
			return err
		}
		if state != j.State {
			if err := s.event(ctx, tx, id, u.At, state, j.Worker, u.Reason); err != nil {
				return err
			}
		}
		for _, l := range u.Logs {
			at := l.At
			if at.IsZero() {
				at = u.At
			}
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO job_logs (job_id, case_name, at, line) VALUES (?, ?, ?, ?)`), id, l.Case, ms(at), l.Line); err != nil {
				return err
			}
		}
		out, err = s.jobTx(ctx, tx, id)
		return err
	})
	if errors.Is(err, ErrLeaseLost) || errors.Is(err, ErrBadTransition) {
		return out, err
	}
	return out, wrap("update job", err)
}

func (s *sqlStore) RescueJobs(ctx context.Context, now time.Time) (int, error) {
	// A cheap read first: nearly always nothing expired, and then no write
	// lock is taken.
	var n int
	err := s.db.QueryRowContext(ctx, s.q(`SELECT count(*) FROM jobs WHERE state IN (?, ?, ?) AND lease_until < ?`),
		JobScheduling, JobProvisioning, JobRunning, ms(now)).Scan(&n)
	if err != nil || n == 0 {
		return 0, wrap("rescue jobs", err)
	}
	rescued := 0
	err = s.tx(ctx, func(tx *sql.Tx) error {
		q := `SELECT ` + jobCols + ` FROM jobs WHERE state IN (?, ?, ?) AND lease_until < ?`
		if s.d.dollar {
			q += ` FOR UPDATE SKIP LOCKED`
		}
		rows, err := tx.QueryContext(ctx, s.q(q), JobScheduling, JobProvisioning, JobRunning, ms(now))
		if err != nil {
			return err
		}
		var expired []JobRecord
		for rows.Next() {
			j, err := scanJob(rows)
			if err != nil {
				rows.Close()
				return err
			}
			expired = append(expired, j)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, j := range expired {
			lost := fmt.Sprintf("worker %s stopped reporting: its lease expired at %s (attempt %d of %d)",
				j.Worker, j.LeaseUntil.Format(time.RFC3339), j.Attempt, j.MaxAttempts)
			state, reason, fin := JobQueued, "", int64(0)
			switch {
			case j.CancelRequested:
				state, reason, fin = JobCanceled, "canceled; "+lost, ms(now)
			case j.Attempt >= j.MaxAttempts:
				state, reason, fin = JobFailed, lost, ms(now)
			}
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE jobs SET state = ?, reason = ?, worker = '', lease = '', lease_until = 0,
				updated_at = ?, finished_at = ? WHERE id = ? AND lease = ?`), state, reason, ms(now), fin, j.ID, j.Lease); err != nil {
				return err
			}
			if err := s.event(ctx, tx, j.ID, now, state, j.Worker, lost); err != nil {
				return err
			}
			rescued++
		}
		return nil
	})
	return rescued, wrap("rescue jobs", err)
}
