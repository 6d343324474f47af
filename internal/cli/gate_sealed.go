package cli

import (
	"fmt"
	"io/fs"
	"os"

	"github.com/vouch-dev/vouch/internal/measure"
	"github.com/vouch-dev/vouch/internal/target"
)

// loadMeasured reads the target's TPM-sealed disks (crypttab) and, on the
// live host, its event log, for `vouch gate shim --sealed`.
func (g *gateOpts) loadMeasured(m *machine, t *target.Target, root fs.FS) error {
	if root == nil {
		return nil
	}
	var err error
	if m.sealed, err = measure.SealedDisks(root); err != nil {
		return &exitError{code: ExitError, err: err}
	}
	if t.Kind != target.KindLive || g.tpmLog != "" {
		return nil
	}
	b, err := fs.ReadFile(root, measure.LogPath)
	if err != nil {
		return nil // no TPM log here: GateSealed judges without one
	}
	if m.log, err = measure.Parse(b, "/"+measure.LogPath); err != nil {
		return &exitError{code: ExitError, err: err}
	}
	return nil
}

// loadTPMLog reads --tpm-log.
func (g *gateOpts) loadTPMLog(m *machine) error {
	if g.tpmLog == "" {
		return nil
	}
	b, err := os.ReadFile(g.tpmLog)
	if err != nil {
		return &exitError{code: ExitError, err: fmt.Errorf("--tpm-log: %w", err)}
	}
	if m.log, err = measure.Parse(b, g.tpmLog); err != nil {
		return &exitError{code: ExitError, err: err}
	}
	return nil
}
