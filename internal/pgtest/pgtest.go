// Package pgtest starts a real PostgreSQL server for tests: Debian's
// `postgresql` package (initdb and pg_ctl from /usr/lib/postgresql/*/bin), a
// cluster in a fresh temporary directory, listening only on a unix socket in
// that directory, stopped and removed when the test ends. PostgreSQL refuses
// to run as root, so as root the cluster belongs to the `postgres` user and
// its commands run through runuser(1).
package pgtest

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync/atomic"
	"testing"
)

// Cluster is a running PostgreSQL server.
type Cluster struct {
	Dir    string // owns data/, the socket and the log
	bin    string
	runAs  *user.User
	nextDB atomic.Int64
}

// BinDir finds the newest /usr/lib/postgresql/*/bin holding initdb.
func BinDir() (string, error) {
	m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(m) == 0 {
		return "", fmt.Errorf("pgtest: no /usr/lib/postgresql/*/bin/initdb: install Debian's postgresql package (scripts/deps.sh)")
	}
	sort.Slice(m, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(m[i]))))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(m[j]))))
		return vi > vj
	})
	return filepath.Dir(m[0]), nil
}

// Start starts a cluster for t and stops it when t ends.
func Start(t testing.TB) *Cluster {
	t.Helper()
	c, err := StartCluster()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("%v", err)
		}
	})
	return c
}

// StartCluster initialises and starts a cluster; Stop ends it. For
// benchmarks and commands that are not a test.
func StartCluster() (*Cluster, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	// A short path: the socket's path must fit sun_path (108 bytes).
	dir, err := os.MkdirTemp("", "pg")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	c := &Cluster{Dir: dir, bin: bin}
	if os.Geteuid() == 0 {
		if c.runAs, err = user.Lookup("postgres"); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pgtest: running as root needs the postgres user (Debian's postgresql package creates it): %w", err)
		}
		uid, _ := strconv.Atoi(c.runAs.Uid)
		gid, _ := strconv.Atoi(c.runAs.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pgtest: %w", err)
		}
	}
	data := filepath.Join(dir, "data")
	if err := c.run("initdb", "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	// fsync stays on: the kill -9 tests rely on acknowledged commits
	// surviving; listen_addresses '' means the socket only.
	opts := fmt.Sprintf("-k %s -c listen_addresses='' -c max_connections=200 -c shared_buffers=128MB", dir)
	if err := c.run("pg_ctl", "-D", data, "-l", filepath.Join(dir, "log"), "-w", "-t", "120", "-o", opts, "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		os.RemoveAll(dir)
		return nil, fmt.Errorf("%w\n%s", err, log)
	}
	return c, nil
}

func (c *Cluster) run(name string, args ...string) error {
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	if c.runAs != nil {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(c.bin, name)}, args...)...)
	}
	cmd.Dir = c.Dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("pgtest: %s: %w\n%s", name, err, out.String())
	}
	return nil
}

// URL is the connection URL of database name ("postgres" always exists).
func (c *Cluster) URL(name string) string {
	q := url.Values{"host": {c.Dir}, "sslmode": {"disable"}}
	return "postgres://postgres@/" + name + "?" + q.Encode()
}

// NewDatabase creates an empty database and returns its URL.
func (c *Cluster) NewDatabase(t testing.TB) string {
	t.Helper()
	u, err := c.CreateDatabase()
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// CreateDatabase creates an empty database and returns its URL.
func (c *Cluster) CreateDatabase() (string, error) {
	name := fmt.Sprintf("db%d", c.nextDB.Add(1))
	if err := c.run("createdb", "-h", c.Dir, "-U", "postgres", name); err != nil {
		return "", err
	}
	return c.URL(name), nil
}

// Stop stops the server at once and removes its directory.
func (c *Cluster) Stop() error {
	err := c.run("pg_ctl", "-D", filepath.Join(c.Dir, "data"), "-m", "immediate", "-w", "stop")
	if rerr := os.RemoveAll(c.Dir); err == nil && rerr != nil {
		err = fmt.Errorf("pgtest: %w", rerr)
	}
	return err
}

// Halt stops the server at once (like a crash), keeping its data.
func (c *Cluster) Halt() error {
	return c.run("pg_ctl", "-D", filepath.Join(c.Dir, "data"), "-m", "immediate", "-w", "stop")
}

// Resume starts a halted server again.
func (c *Cluster) Resume() error {
	opts := fmt.Sprintf("-k %s -c listen_addresses='' -c max_connections=200", c.Dir)
	return c.run("pg_ctl", "-D", filepath.Join(c.Dir, "data"), "-l", filepath.Join(c.Dir, "log"), "-w", "-t", "120", "-o", opts, "start")
}
