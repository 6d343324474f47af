// Package pgtest starts a real PostgreSQL server for tests: Debian's
// `postgresql` package (initdb and postgres from /usr/lib/postgresql/*/bin), a
// cluster in a fresh temporary directory, listening only on a unix socket in
// that directory, stopped and removed when the test ends. PostgreSQL refuses
// to run as root, so as root the cluster belongs to the `postgres` user and
// its commands run through runuser(1).
//
// The server is the test process's own child (postgres itself, not pg_ctl's
// daemon) with a parent-death signal: a test binary killed by a timeout or
// SIGKILL takes its server with it instead of leaving it running.
package pgtest

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Cluster is a running PostgreSQL server.
type Cluster struct {
	Dir    string // owns data/, the socket and the log
	bin    string
	runAs  *user.User
	nextDB atomic.Int64
	server *exec.Cmd
	exited chan struct{} // closed when server has been waited for
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
	if err := c.start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return c, nil
}

// start runs postgres as a child and waits until it accepts connections.
// fsync stays on: the kill -9 tests rely on acknowledged commits surviving;
// listen_addresses ” means the socket only.
func (c *Cluster) start() error {
	logf, err := os.OpenFile(filepath.Join(c.Dir, "log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(c.bin, "postgres"), "-D", filepath.Join(c.Dir, "data"), "-k", c.Dir,
		"-c", "listen_addresses=", "-c", "max_connections=200", "-c", "shared_buffers=128MB")
	cmd.Dir, cmd.Stdout, cmd.Stderr = c.Dir, logf, logf
	// SIGQUIT is PostgreSQL's immediate shutdown.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGQUIT}
	if c.runAs != nil {
		uid, _ := strconv.Atoi(c.runAs.Uid)
		gid, _ := strconv.Atoi(c.runAs.Gid)
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		cmd.Env = append(os.Environ(), "HOME="+c.runAs.HomeDir, "USER=postgres", "LOGNAME=postgres")
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgtest: postgres: %w", err)
	}
	c.server, c.exited = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(c.exited) }()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		err := c.run("pg_isready", "-q", "-h", c.Dir, "-t", "5")
		if err == nil {
			return nil
		}
		select {
		case <-c.exited:
			log, _ := os.ReadFile(filepath.Join(c.Dir, "log"))
			return fmt.Errorf("pgtest: postgres exited: %v\n%s", cmd.ProcessState, log)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.halt()
			log, _ := os.ReadFile(filepath.Join(c.Dir, "log"))
			return fmt.Errorf("pgtest: postgres not ready after 2 minutes: %w\n%s", err, log)
		}
	}
}

// halt stops the server at once (SIGQUIT: immediate shutdown, like a
// crash: the next start recovers from the WAL) and waits for it to exit.
func (c *Cluster) halt() error {
	if c.server == nil {
		return errors.New("pgtest: the server is not running")
	}
	c.server.Process.Signal(syscall.SIGQUIT)
	select {
	case <-c.exited:
	case <-time.After(time.Minute):
		c.server.Process.Kill()
		<-c.exited
	}
	c.server = nil
	return nil
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
	var err error
	if c.server != nil {
		err = c.halt()
	}
	if rerr := os.RemoveAll(c.Dir); err == nil && rerr != nil {
		err = fmt.Errorf("pgtest: %w", rerr)
	}
	return err
}

// Halt stops the server at once (like a crash), keeping its data.
func (c *Cluster) Halt() error { return c.halt() }

// Resume starts a halted server again.
func (c *Cluster) Resume() error { return c.start() }
