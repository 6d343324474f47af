package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"golang.org/x/crypto/ssh"
)

// Guest is an SSH connection to the guest as GuestUser.
type Guest struct {
	client  *ssh.Client
	hostKey string
}

// Result is a command's outcome in the guest.
type Result struct {
	Stdout, Stderr string
	ExitCode       int
}

// maxOutput bounds what Run keeps of a command's stdout and stderr each.
const maxOutput = 16 << 20

// SSH waits for sshd on the forwarded port and logs in with the seed's
// ephemeral key. The host key is accepted and its fingerprint recorded
// (HostKey); nothing is written to a known_hosts file. It needs Config.CloudInit.
func (m *Machine) SSH(ctx context.Context) (*Guest, error) {
	if m.seed == nil {
		return nil, &Error{Op: "ssh", Reason: "the VM has no cloud-init seed (Config.CloudInit) and so no SSH key"}
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(m.port))
	var hostKey string
	conf := &ssh.ClientConfig{
		User: GuestUser,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(m.seed.signer)},
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			hostKey = ssh.FingerprintSHA256(key)
			return nil
		},
		Timeout: 10 * time.Second,
	}
	var last error
	for attempt := 0; ; attempt++ {
		c, err := dialSSH(ctx, addr, conf)
		if err == nil {
			m.mu.Lock()
			m.hostKey = hostKey
			m.mu.Unlock()
			return &Guest{client: c, hostKey: hostKey}, nil
		}
		last = err
		select {
		case <-m.done:
			return nil, &Error{Op: "ssh", Reason: "QEMU exited: " + m.exitReason(), ConsoleTail: m.console.Tail(20), Err: last}
		case <-ctx.Done():
			return nil, &Error{Op: "ssh", Reason: fmt.Sprintf("no SSH login on %s as %s after %d attempts", addr, GuestUser, attempt+1), ConsoleTail: m.console.Tail(20), Err: last}
		case <-time.After(time.Second):
		}
	}
}

// dialSSH connects and logs in once. Through QEMU's slirp the TCP connect
// succeeds even when nothing listens in the guest (the connection is then
// closed), so the handshake is what tells.
func dialSSH(ctx context.Context, addr string, conf *ssh.ClientConfig) (*ssh.Client, error) {
	d := net.Dialer{Timeout: conf.Timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, conf)
	if err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), nil
}

// HostKey is the SHA256 fingerprint of the guest's host key.
func (g *Guest) HostKey() string { return g.hostKey }

// Run runs cmd with the guest user's shell and returns its output and exit
// status; a non-zero exit is not an error. The error is for the transport: the
// connection failed, the command was killed by a signal, or ctx ended (the
// session is closed then).
func (g *Guest) Run(ctx context.Context, cmd string) (Result, error) {
	s, err := g.client.NewSession()
	if err != nil {
		return Result{}, fmt.Errorf("vm: ssh session: %w", err)
	}
	defer s.Close()
	var stdout, stderr limitedBuffer
	stdout.max, stderr.max = maxOutput, maxOutput
	s.Stdout, s.Stderr = &stdout, &stderr
	if err := s.Start(cmd); err != nil {
		return Result{}, fmt.Errorf("vm: ssh start %q: %w", cmd, err)
	}
	waited := make(chan error, 1)
	go func() { waited <- s.Wait() }()
	select {
	case err = <-waited:
	case <-ctx.Done():
		s.Signal(ssh.SIGKILL)
		s.Close()
		return Result{Stdout: stdout.String(), Stderr: stderr.String(), ExitCode: -1}, fmt.Errorf("vm: ssh %q: %w", cmd, ctx.Err())
	}
	res := Result{Stdout: stdout.String(), Stderr: stderr.String()}
	var exit *ssh.ExitError
	switch {
	case err == nil:
		return res, nil
	case errors.As(err, &exit) && exit.Signal() == "":
		res.ExitCode = exit.ExitStatus()
		return res, nil
	case errors.As(err, &exit):
		res.ExitCode = -1
		return res, fmt.Errorf("vm: ssh %q: killed by signal %s", cmd, exit.Signal())
	}
	res.ExitCode = -1
	return res, fmt.Errorf("vm: ssh %q: %w", cmd, err)
}

// Close ends the connection.
func (g *Guest) Close() error { return g.client.Close() }

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	bytes.Buffer
	max       int
	truncated bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room < len(p) {
		b.truncated = true
		if room > 0 {
			b.Buffer.Write(p[:room])
		}
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

func (b *limitedBuffer) String() string {
	if b.truncated {
		return b.Buffer.String() + "\n[output truncated by vouch]\n"
	}
	return b.Buffer.String()
}
