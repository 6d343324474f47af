// Command vouch tells whether a Linux image or host can be trusted and will keep
// booting: UEFI Secure Boot verdicts, hardening baselines, package integrity.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/vouch-dev/vouch/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
