package store_test

import (
	"context"
	"github.com/vouch-dev/vouch/internal/testfixtures"
	"path/filepath"
	"testing"

	"github.com/vouch-dev/vouch/internal/pgtest"
	"github.com/vouch-dev/vouch/internal/store"
	"github.com/vouch-dev/vouch/internal/store/storetest"
)

func TestSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		file := filepath.Join(t.TempDir(), "vouch.db")
		s := mustOpen(t, file)
		s.Close()
		return mustOpen(t, file) // the second Open finds the migrations applied
	})
}

func TestPostgres(t *testing.T) {
	testfixtures.Long(t, testfixtures.Services)
	c := pgtest.Start(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		u := c.NewDatabase(t)
		s := mustOpen(t, u)
		s.Close()
		return mustOpen(t, u)
	})
}

func mustOpen(t *testing.T, dsn string) store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
