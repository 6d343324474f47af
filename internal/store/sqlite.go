package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// openSQLite opens (creating) a SQLite database file. WAL journal, so readers
// never wait for the writer; immediate transactions and a busy timeout, so
// concurrent writers queue instead of failing.
//
// synchronous=NORMAL: a commit is in the WAL file, in the operating
// system's page cache, before the server acknowledges it, and the WAL is
// fsynced at each checkpoint. A process that dies (kill -9, a crash, OOM)
// loses nothing acknowledged: the kernel still writes those pages, and the
// next open replays the WAL (TestServeContract kills the server mid-ingest).
// A power loss or kernel crash can lose the commits since the last
// checkpoint, never the database's consistency; an agent whose report was
// lost so gets 409 on its next heartbeat and sends it again. FULL (an fsync per commit)
// would also survive power loss, at a disk flush per batch on the writer's
// path.
func openSQLite(ctx context.Context, file string) (Store, error) {
	if dir := filepath.Dir(file); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	// Statement and savepoint journals in memory, not temporary files.
	q.Add("_pragma", "temp_store(MEMORY)")
	q.Add("_pragma", "busy_timeout(30000)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+file+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", file, err)
	}
	// One writer at a time is SQLite's rule; a few connections let readers
	// run beside it.
	db.SetMaxOpenConns(5)
	s := &sqlStore{db: db, d: dialect{name: "sqlite", isUnique: sqliteUnique}, wmu: &sync.Mutex{}}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: %s: %w", file, err)
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("%w (database %s)", err, file)
	}
	// Every write goes through one connection. In WAL mode a connection
	// that begins a transaction after another connection wrote drops its
	// whole page cache; writes spread over the pool dropped and re-read
	// the hot pages at nearly every commit (a fifth of the writer's CPU).
	// Readers keep the other connections. The writer's page cache is 32
	// MiB (the default is 2 MiB), so the hot index pages stay in memory at
	// 100,000 hosts and more.
	if s.wconn, err = db.Conn(ctx); err == nil {
		_, err = s.wconn.ExecContext(ctx, `PRAGMA cache_size = -32768`)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: %s: %w", file, err)
	}
	s.batch = newBatcher(s)
	return s, nil
}

func sqliteUnique(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE
	}
	return false
}
