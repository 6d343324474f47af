package cli

import (
	"fmt"
	"io/fs"
	"os"

	"github.com/vouch-dev/vouch/internal/gate"
	"github.com/vouch-dev/vouch/internal/measure"
	"github.com/vouch-dev/vouch/internal/target"
)

// sealedVerdicts says, for `vouch gate shim`, whether the target's
// TPM-sealed disks (crypttab, LUKS2 tokens: Clevis tpm2 pins,
// systemd-tpm2) would still unlock after the new shim is
// installed, predicting PCR 4 and 7 from --tpm-log or, on the live host, its
// own event log; blocks is true when one would not.
func (g *gateOpts) sealedVerdicts(shim *gate.Binary) ([]measure.SealVerdict, bool, error) {
	var sealed []measure.SealedDisk
	var log *measure.Log
	if g.target != "" {
		t, err := target.Open(g.target, target.Options{Live: g.target == "/"})
		if err != nil {
			return nil, false, &exitError{code: ExitError, err: err}
		}
		defer t.Close()
		if sealed, _, err = measure.Sealed(t); err != nil {
			return nil, false, &exitError{code: ExitError, err: err}
		}
		if t.Root != nil {
			if t.Kind == target.KindLive && g.tpmLog == "" {
				if b, err := fs.ReadFile(t.Root, measure.LogPath); err == nil {
					if log, err = measure.Parse(b, "/"+measure.LogPath); err != nil {
						return nil, false, &exitError{code: ExitError, err: err}
					}
				}
			}
		}
	}
	if g.tpmLog != "" {
		b, err := os.ReadFile(g.tpmLog)
		if err != nil {
			return nil, false, &exitError{code: ExitError, err: fmt.Errorf("--tpm-log: %w", err)}
		}
		if log, err = measure.Parse(b, g.tpmLog); err != nil {
			return nil, false, &exitError{code: ExitError, err: err}
		}
	}
	v, blocks, err := measure.GateSealed(sealed, log, measure.Change{Shim: shim.Image}, measure.Installed{})
	if err != nil {
		return nil, false, &exitError{code: ExitError, err: err}
	}
	return v, blocks, nil
}
