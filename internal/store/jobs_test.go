package store_test

import (
	"github.com/vouch-dev/vouch/internal/testfixtures"
	"path/filepath"
	"testing"

	"github.com/vouch-dev/vouch/internal/pgtest"
	"github.com/vouch-dev/vouch/internal/store"
	"github.com/vouch-dev/vouch/internal/store/storetest"
)

func TestJobsSQLite(t *testing.T) {
	storetest.RunJobs(t, func(t *testing.T) store.Store {
		return mustOpen(t, filepath.Join(t.TempDir(), "vouch.db"))
	})
}

func TestJobsPostgres(t *testing.T) {
	testfixtures.Long(t, testfixtures.Services)
	c := pgtest.Start(t)
	storetest.RunJobs(t, func(t *testing.T) store.Store { return mustOpen(t, c.NewDatabase(t)) })
}
