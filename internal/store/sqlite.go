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
// never wait for the writer; synchronous=FULL, so a commit the server
// acknowledged survives kill -9 and power loss; immediate transactions and
// a busy timeout, so concurrent writers queue instead of failing.
func openSQLite(ctx context.Context, file string) (Store, error) {
	if dir := filepath.Dir(file); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "busy_timeout(30000)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+file+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", file, err)
	}
	// One writer at a time is SQLite's rule; a few connections let readers
	// run beside it.
	db.SetMaxOpenConns(4)
	s := &sqlStore{db: db, d: dialect{name: "sqlite", isUnique: sqliteUnique}, wmu: &sync.Mutex{}}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: %s: %w", file, err)
	}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("%w (database %s)", err, file)
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
