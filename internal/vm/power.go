package vm

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"
)

// Poweroff shuts the guest down cleanly ("sudo systemctl poweroff" over SSH)
// and waits for QEMU to exit, so that what the firmware and the guest wrote
// (the variable store, the disk overlay) is complete before Close. It needs
// the cloud-init seed (SSH).
func (m *Machine) Poweroff(ctx context.Context) error {
	g, err := m.SSH(ctx)
	if err != nil {
		return err
	}
	// The session usually ends with the connection, not an exit status:
	// QEMU's exit decides.
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	res, runErr := g.Run(rctx, "sudo systemctl poweroff")
	cancel()
	g.Close()
	if runErr == nil && res.ExitCode != 0 {
		return &Error{Op: "poweroff", Reason: fmt.Sprintf("systemctl poweroff exited %d: %s", res.ExitCode, strings.TrimSpace(res.Stderr))}
	}
	select {
	case <-m.done:
		return nil
	case <-ctx.Done():
		return &Error{Op: "poweroff", Reason: "QEMU did not exit after systemctl poweroff", ConsoleTail: m.console.Tail(20), Err: ctx.Err()}
	}
}

// Upload writes data to path in the guest (through "cat >" as the guest
// user, so path must be writable by it) with the given octal mode.
func (g *Guest) Upload(ctx context.Context, path string, data io.Reader, mode uint32) error {
	s, err := g.client.NewSession()
	if err != nil {
		return fmt.Errorf("vm: ssh session: %w", err)
	}
	defer s.Close()
	s.Stdin = data
	var stderr limitedBuffer
	stderr.max = 64 << 10
	s.Stderr = &stderr
	q := shellQuote(path)
	cmd := fmt.Sprintf("umask 077 && cat > %s && chmod %o %s", q, mode, q)
	done := make(chan error, 1)
	go func() { done <- s.Run(cmd) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		s.Close()
		return fmt.Errorf("vm: upload %s: %w", path, ctx.Err())
	}
	if err != nil {
		return fmt.Errorf("vm: upload %s: %w: %s", path, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
