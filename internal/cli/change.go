package cli

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/vouch-dev/vouch/internal/gate"
	"github.com/vouch-dev/vouch/internal/mscerts"
	"github.com/vouch-dev/vouch/internal/secureboot"
)

// changePart chooses which flags of a proposed change (secureboot.Change) a
// command takes.
type changePart uint

const (
	changeDB     changePart = 1 << iota // --db-add
	changeDBX                           // --dbx-update
	changeSBAT                          // --sbat-level
	changeShim                          // --shim, --shim-package
	changeStages                        // --grub, --kernel

	changeFirmware = changeDB | changeDBX | changeSBAT
	changeAll      = changeFirmware | changeShim | changeStages
)

// changeFlags are the one flag set of a proposed change, shared by every
// command that judges one (gate, secureboot, fleet what-if, measure
// predict). Register with addChangeFlags; load returns the Change.
type changeFlags struct {
	files secureboot.ChangeFiles
	parts changePart
}

// addChangeFlags registers the change flags of parts on c.
func addChangeFlags(c *cobra.Command, parts changePart) *changeFlags {
	f := &changeFlags{parts: parts}
	fl := c.Flags()
	if parts&changeDB != 0 {
		fl.StringArrayVar(&f.files.DBAdd, "db-add", nil, "add a certificate to db: a DER or PEM file or a built-in name ("+strings.Join(mscerts.IDs()[:5], ", ")+"); repeatable")
		// --db-cert is the old name of --db-add; hidden so that the help
		// shows one.
		fl.StringArrayVar(&f.files.DBAdd, "db-cert", nil, "old name of --db-add")
		_ = fl.MarkHidden("db-cert")
	}
	if parts&changeDBX != 0 {
		fl.StringVar(&f.files.DBXUpdate, "dbx-update", "", "a dbx update: Microsoft's signed DBXUpdate.bin (or bare signature lists) or its JSON list (dbx_info_msft_latest.json)")
	}
	if parts&changeSBAT != 0 {
		fl.StringVar(&f.files.SBATLevel, "sbat-level", "", "a new SBAT level: latest or automatic (the levels the shim carries), FILE (one SbatLevel payload or an exported SbatLevel variable), or FILE#DATESTAMP / FILE#latest (one payload of a history such as shim's SbatLevel_Variable.txt)")
	}
	if parts&changeShim != 0 {
		fl.StringVar(&f.files.Shim, "shim", "", "a new shim (EFI binary)")
		fl.StringVar(&f.files.ShimPackage, "shim-package", "", "a .deb or .rpm holding a new shim (and perhaps its GRUB and kernel)")
	}
	if parts&changeStages != 0 {
		fl.StringVar(&f.files.GRUB, "grub", "", "the GRUB (second stage) the new shim will load")
		fl.StringVar(&f.files.Kernel, "kernel", "", "the kernel GRUB will hand to the new shim: a vmlinuz file or the .deb/.rpm that installs it")
	}
	return f
}

// load reads the files named; an empty Change when none was. Unreadable
// files are input errors (exit 2).
func (f *changeFlags) load() (*secureboot.Change, error) {
	if f.files.Empty() {
		return &secureboot.Change{}, nil
	}
	c, err := gate.LoadChange(f.files)
	if err != nil {
		return nil, &exitError{code: ExitError, err: err}
	}
	return c, nil
}
