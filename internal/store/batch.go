package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Group commit. SQLite has one writer, and each commit writes every page it
// changed to the WAL (two write calls a page) and updates the WAL index: one
// transaction per report spent most of the writer's time committing. The
// batcher gives the hot writes (enrolments, reports) one writer goroutine
// that runs the writes arriving within linger in one transaction (a failing
// write is rolled back alone, see run), commits once and then answers each
// caller. A caller is answered only after the commit, so an acknowledged
// report is as durable as the commit (see openSQLite).

// maxBatch bounds the writes of one transaction (and its latency).
const maxBatch = 256

// linger is how long a batch waits for more writes before it commits. A
// commit costs about as much as several writes (the pages every write
// touches: the newest rows, index and count pages, the WAL index), and
// agents' writes arrive a little apart: committing as soon as the queue
// was empty gave one or two writes a commit with 16 agents. Waiting half a
// millisecond took a sixth off the CPU per host with 16 agents and a
// fifteenth with 64 (BenchmarkFleetSQLite, 20,000 hosts); a lone write
// waits that long more.
const linger = 500 * time.Microsecond

type batchOp struct {
	ctx  context.Context
	f    func(ctx context.Context, tx *sql.Tx) error
	done chan error
}

type batcher struct {
	s    *sqlStore
	ops  chan batchOp
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

func newBatcher(s *sqlStore) *batcher {
	b := &batcher{s: s, ops: make(chan batchOp, maxBatch), stop: make(chan struct{})}
	b.wg.Add(1)
	go b.loop()
	return b
}

func (b *batcher) close() {
	b.once.Do(func() { close(b.stop) })
	b.wg.Wait()
}

func (b *batcher) loop() {
	defer b.wg.Done()
	for {
		var first batchOp
		select {
		case first = <-b.ops:
		case <-b.stop:
			for {
				select {
				case o := <-b.ops:
					o.done <- errors.New("store: closed")
				default:
					return
				}
			}
		}
		batch := []batchOp{first}
		t := time.NewTimer(linger)
	fill:
		for len(batch) < maxBatch {
			select {
			case o := <-b.ops:
				batch = append(batch, o)
			case <-t.C:
				break fill
			}
		}
		t.Stop()
		b.run(batch)
	}
}

// errRetry ends a batch's first attempt when one of its writes failed.
var errRetry = errors.New("store: a batched write failed")

// run commits one batch and answers its callers. The writes run first
// without savepoints: a savepoint per write made SQLite copy every page a
// write touched into the statement journal, a fifth of the writer's CPU,
// to undo writes that almost never fail (a report was validated and its
// blobs checked before it got here). When one fails, that transaction is
// rolled back and the batch runs again with each write in its own
// savepoint, so the failing write is rolled back alone.
func (b *batcher) run(batch []batchOp) {
	errs, err := b.attempt(batch, false)
	if errors.Is(err, errRetry) {
		errs, err = b.attempt(batch, true)
	}
	for i, o := range batch {
		if err != nil && errs[i] == nil {
			errs[i] = fmt.Errorf("commit: %w", err)
		}
		o.done <- errs[i]
	}
}

// attempt runs the batch in one transaction, each write in a savepoint
// when savepoints is set; without, the first failing write ends the
// attempt with errRetry (the transaction rolled back).
func (b *batcher) attempt(batch []batchOp, savepoints bool) ([]error, error) {
	errs := make([]error, len(batch))
	// The transaction is the batch's, not one caller's: a caller that
	// gives up must not cancel the others' writes.
	ctx := context.Background()
	err := b.s.tx(ctx, func(tx *sql.Tx) error {
		for i, o := range batch {
			if err := o.ctx.Err(); err != nil {
				errs[i] = err
				continue
			}
			if !savepoints {
				if errs[i] = o.f(ctx, tx); errs[i] != nil {
					return errRetry
				}
				continue
			}
			if _, err := b.s.txExec(ctx, tx, `SAVEPOINT w`); err != nil {
				return err
			}
			if errs[i] = o.f(ctx, tx); errs[i] != nil {
				if _, err := b.s.txExec(ctx, tx, `ROLLBACK TO w`); err != nil {
					return err
				}
			}
			if _, err := b.s.txExec(ctx, tx, `RELEASE w`); err != nil {
				return err
			}
		}
		return nil
	})
	return errs, err
}

// write runs f in a transaction: batched with other writes when the store
// has a batcher (SQLite), alone otherwise.
func (s *sqlStore) write(ctx context.Context, f func(ctx context.Context, tx *sql.Tx) error) error {
	if s.batch == nil {
		return s.tx(ctx, func(tx *sql.Tx) error { return f(ctx, tx) })
	}
	o := batchOp{ctx: ctx, f: f, done: make(chan error, 1)}
	select {
	case s.batch.ops <- o:
	case <-s.batch.stop:
		return errors.New("store: closed")
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-o.done:
		return err
	case <-ctx.Done():
		// The write may still commit; the caller has gone.
		return ctx.Err()
	}
}

// stmt returns query prepared once on the database, bound to tx: SQLite's
// parser was a sixth of the ingest path. On PostgreSQL pgx caches prepared
// statements per connection itself, so the query is used as it is (and a
// transaction never waits for a second connection to prepare on).
func (s *sqlStore) stmt(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	if s.batch == nil {
		return tx.PrepareContext(ctx, query)
	}
	st, err := s.prepared(ctx, query)
	if err != nil {
		return nil, err
	}
	return tx.StmtContext(ctx, st), nil
}

// prepared returns query prepared once on the database (SQLite).
func (s *sqlStore) prepared(ctx context.Context, query string) (*sql.Stmt, error) {
	s.stmtMu.Lock()
	st, ok := s.stmts[query]
	s.stmtMu.Unlock()
	if ok {
		return st, nil
	}
	// Prepared without the lock: preparing may wait for a connection.
	st, err := s.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	s.stmtMu.Lock()
	defer s.stmtMu.Unlock()
	if old, ok := s.stmts[query]; ok {
		st.Close()
		return old, nil
	}
	if s.stmts == nil {
		s.stmts = map[string]*sql.Stmt{}
	}
	s.stmts[query] = st
	return st, nil
}

func (s *sqlStore) txExec(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	if s.batch == nil {
		return tx.ExecContext(ctx, s.q(query), args...)
	}
	st, err := s.stmt(ctx, tx, s.q(query))
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (s *sqlStore) txQueryRow(ctx context.Context, tx *sql.Tx, query string, args ...any) *sql.Row {
	if s.batch == nil {
		return tx.QueryRowContext(ctx, s.q(query), args...)
	}
	st, err := s.stmt(ctx, tx, s.q(query))
	if err != nil {
		// A Row carrying the error: prepare failures surface at Scan.
		return tx.QueryRowContext(ctx, s.q(query), args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// dbQueryRow runs a query outside a transaction, prepared once (SQLite).
func (s *sqlStore) dbQueryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if s.batch == nil {
		return s.db.QueryRowContext(ctx, s.q(query), args...)
	}
	st, err := s.prepared(ctx, s.q(query))
	if err != nil {
		return s.db.QueryRowContext(ctx, s.q(query), args...)
	}
	return st.QueryRowContext(ctx, args...)
}
