package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// openPostgres connects with pgx (through its database/sql adapter, so both
// drivers share one implementation of the queries) and migrates.
func openPostgres(ctx context.Context, dsn string) (Store, error) {
	cfg, err := pgxConfig(dsn)
	if err != nil {
		return nil, err
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(16)
	s := &sqlStore{db: db, d: dialect{name: "postgres", dollar: true, isUnique: pgUnique}}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: postgres: %w", err)
	}
	// Several servers may start together: one migrates, the others wait.
	if err := s.withLock(ctx, s.migrate); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func pgxConfig(dsn string) (*pgx.ConnConfig, error) {
	c, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("store: postgres URL: %w", err)
	}
	return c, nil
}

// withLock runs f holding a session advisory lock.
func (s *sqlStore) withLock(ctx context.Context, f func(context.Context) error) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("store: postgres: %w", err)
	}
	defer conn.Close()
	const key = 0x766f756368 // "vouch"
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, key); err != nil {
		return fmt.Errorf("store: postgres: %w", err)
	}
	defer conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, key)
	return f(ctx)
}

func pgUnique(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}
