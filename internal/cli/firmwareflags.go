package cli

import (
	"errors"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vouch-dev/vouch/internal/secureboot"
	"github.com/vouch-dev/vouch/internal/target"
)

// firmwareFlags are the ways to name a firmware state, with the same names
// and help on every command (scan, secureboot, gate, test); the state is
// resolved by secureboot.LoadFirmware.
type firmwareFlags struct {
	vars, efivars, profile string
	sbatPolicy             string
}

const (
	varsHelp     = "edk2/OVMF variable store file (e.g. OVMF_VARS_4M.ms.fd)"
	efivarsHelp  = "directory of firmware variables: an efivarfs mount or exported Name-GUID files"
	firmwareHelp = "what-if firmware profile (the built-in Microsoft certificates): "
)

func (f *firmwareFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&f.vars, "vars", "", varsHelp)
	c.Flags().StringVar(&f.efivars, "efivars", "", efivarsHelp)
	c.Flags().StringVar(&f.profile, "firmware", "", firmwareHelp+strings.Join(secureboot.Profiles(), ", "))
	c.Flags().StringVar(&f.sbatPolicy, "sbat-policy", "automatic", "shim SbatPolicy to assume: automatic (the previous level shim carries) or latest")
	// Deprecated: --sbat-level latest|automatic took it over. Hidden, not
	// MarkDeprecated: cobra would print the notice on stdout, into the JSON.
	_ = c.Flags().MarkHidden("sbat-policy")
}

func (f *firmwareFlags) source() secureboot.FirmwareSource {
	return secureboot.FirmwareSource{Vars: f.vars, EFIVars: f.efivars, Profile: f.profile}
}

// given reports whether a firmware source was named.
func (f *firmwareFlags) given() bool { return f.source().Given() }

// load resolves the firmware state with secureboot.LoadFirmware: the named
// source, else t's own (t may be nil). It returns nil and why when there
// is none.
func (f *firmwareFlags) load(t *target.Target) (*secureboot.Firmware, string, error) {
	fw, why, err := secureboot.LoadFirmware(f.source(), t)
	var ue *secureboot.FirmwareUsageError
	switch {
	case errors.As(err, &ue):
		return nil, "", usageErrorf("%s", ue.Reason)
	case err != nil:
		return nil, "", &exitError{code: ExitError, err: err}
	}
	return fw, why, nil
}

func (f *firmwareFlags) options() (secureboot.Options, error) {
	p, err := secureboot.ParseSBATPolicy(f.sbatPolicy)
	if err != nil {
		return secureboot.Options{}, usageErrorf("--sbat-policy: %v", err)
	}
	return secureboot.Options{SBATPolicy: p}, nil
}
