package cli

import (
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vouch-dev/vouch/internal/mscerts"
	"github.com/vouch-dev/vouch/internal/nvram"
	"github.com/vouch-dev/vouch/internal/secureboot"
)

func newFirmwareCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "firmware",
		Short: "Work on firmware state: edit a VM's UEFI variable store offline",
		Long: `firmware works on UEFI firmware state that lives in files.

  vouch firmware vars STORE.fd SUBCOMMAND   list or edit an edk2/OVMF variable store`,
		Example: `  vouch firmware vars vm1_VARS.fd list
  vouch firmware vars vm1_VARS.fd db add microsoft-uefi-ca-2023`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return c.Help() },
	}
	c.AddCommand(newFirmwareVarsCmd())
	return c
}

// varsFlags are the flags of every vars subcommand; each subcommand accepts
// only its own (checked in run).
type varsFlags struct {
	format, varName, certs, backup string
	noBackup, dryRun               bool
}

func newFirmwareVarsCmd() *cobra.Command {
	var f varsFlags
	c := &cobra.Command{
		Use:   "vars STORE.fd SUBCOMMAND [ARGS]",
		Short: "List and edit the Secure Boot variables of an edk2/OVMF variable store (a VM's NVRAM file)",
		Long: `vars reads and edits an edk2 variable store file — the NVRAM of a QEMU/libvirt VM
(/var/lib/libvirt/qemu/nvram/NAME_VARS.fd) or a template such as
/usr/share/OVMF/OVMF_VARS_4M.ms.fd — offline, making the same change the firmware
makes when the same write reaches it through SetVariable. Long-lived VMs keep the
db they were created with: a VM made from a template that trusts only the Microsoft
Corporation UEFI CA 2011 will not boot a shim signed only by the Microsoft UEFI CA
2023 until that CA is added to its db.

Subcommands:
  list [--format table|json]     every variable: attributes, size, timestamp, and
                                 the decoded signature lists of PK, KEK, db, dbx,
                                 MokList... with the known Microsoft CAs named
  export DIR                     write each variable to DIR/Name-GUID as efivarfs
                                 does (4-byte attributes, then data), for tools
                                 that read efivars (vouch secureboot --efivars)
  db add CERT...                 append certificates to db: DER or PEM files or
                                 built-in names (microsoft-uefi-ca-2023, ...)
  kek add CERT...                append certificates to KEK (microsoft-kek-2k-ca-2023, ...)
  dbx add-hash SHA256...         append SHA-256 image hashes (64 hex digits, the
                                 Authenticode digest) to dbx
  apply UPDATE.bin [--var V]     apply a signed update (EFI_VARIABLE_AUTHENTICATION_2
                                 followed by signature lists, e.g. Microsoft's
                                 DBXUpdate.bin) to db, dbx or KEK; V defaults from
                                 the file name (dbx, kek, db in it). Its signature
                                 is checked against the store's KEK (PK for KEK)
                                 and the result reported; an update that does not
                                 verify is still applied (you act as the owner)
  set-profile PROFILE [--certs DIR]
                                 rewrite db and KEK to a Microsoft profile:
                                 microsoft-2023 (only the 2023 CAs),
                                 microsoft-both (2011 and 2023), microsoft-2011;
                                 PK, dbx and all else are kept. The certificates
                                 are built into vouch (Microsoft's public
                                 secureboot_objects); --certs DIR takes them
                                 from a folder instead, matched by fingerprint

Appends work like EFI_VARIABLE_APPEND_WRITE in edk2: an entry (owner and data)
already present is not added again. Certificates that are known Microsoft CAs get
Microsoft's owner GUID 77fa9abd-0359-4d32-bd60-28f4e78f784b, anything else vouch's
16599402-f49d-4b62-80f9-e2f3a4667dc2.

Writes are atomic (a new file beside the store, synced, renamed over it) and keep
the original as STORE.fd.vouch-bak (--backup PATH elsewhere, --no-backup for none).
A read-only store, a store the edit would overflow, a file that is not a variable
store, a certificate that is not one, a malformed hash or update: exit 2 and the
store is left byte for byte as it was. --dry-run prints the change without writing.
Edit a VM's store only while the VM is shut off. Each write prints one line: what
changed and the free space left.

Exit codes: 0 done (or nothing to change), 2 usage or input error.`,
		Example: `  vouch firmware vars vm1_VARS.fd list
  vouch firmware vars vm1_VARS.fd list --format json
  vouch firmware vars vm1_VARS.fd db add microsoft-uefi-ca-2023
  vouch firmware vars vm1_VARS.fd db add ./my-ca.pem
  vouch firmware vars vm1_VARS.fd kek add microsoft-kek-2k-ca-2023 --dry-run
  vouch firmware vars vm1_VARS.fd dbx add-hash 3e2e8e9e0c3d...64-hex-digits
  vouch firmware vars vm1_VARS.fd apply DBXUpdate-amd64.bin
  vouch firmware vars vm1_VARS.fd apply signed-db-update.bin --var db
  vouch firmware vars vm1_VARS.fd set-profile microsoft-both
  vouch firmware vars vm1_VARS.fd export ./vm1-efivars && vouch secureboot --efivars ./vm1-efivars disk.qcow2`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(c *cobra.Command, args []string) error {
			return runVars(c.OutOrStdout(), c.Flags().Changed, f, args)
		},
	}
	c.Flags().StringVarP(&f.format, "format", "o", "table", "output format: table or json")
	c.Flags().StringVar(&f.varName, "var", "", "apply: the variable the update is for: db, dbx or KEK")
	c.Flags().StringVar(&f.certs, "certs", "", "set-profile: take the profile's Microsoft CAs from this folder of DER/PEM certificates (default: the built-in ones)")
	c.Flags().StringVar(&f.backup, "backup", "", "where to keep the original store (default STORE"+nvram.BackupSuffix+")")
	c.Flags().BoolVar(&f.noBackup, "no-backup", false, "do not keep a backup of the original store")
	c.Flags().BoolVar(&f.dryRun, "dry-run", false, "print what would change; write nothing")
	return c
}

// varsOp is one parsed subcommand.
type varsOp struct {
	name  string   // "list", "db add", ...
	args  []string // its operands
	write bool
	flags []string // flags it accepts besides --format
}

func parseVarsOp(args []string) (varsOp, error) {
	sub, rest := args[0], args[1:]
	writeFlags := []string{"backup", "no-backup", "dry-run"}
	need := func(op varsOp, min int, what string) (varsOp, error) {
		if len(op.args) < min {
			return op, usageErrorf("firmware vars %s: give %s", op.name, what)
		}
		return op, nil
	}
	switch sub {
	case "list":
		if len(rest) > 0 {
			return varsOp{}, usageErrorf("firmware vars list takes no arguments (got %q)", rest)
		}
		return varsOp{name: "list"}, nil
	case "export":
		if len(rest) != 1 {
			return varsOp{}, usageErrorf("firmware vars export: give one output folder")
		}
		return varsOp{name: "export", args: rest}, nil
	case "db", "kek", "KEK", "dbx":
		verb := ""
		if len(rest) > 0 {
			verb, rest = rest[0], rest[1:]
		}
		want := "add"
		if sub == "dbx" {
			want = "add-hash"
		}
		if verb != want {
			return varsOp{}, usageErrorf("firmware vars %s: the subcommand is '%s %s' (got %q)", sub, sub, want, verb)
		}
		what := "one or more certificate files"
		if sub == "dbx" {
			what = "one or more SHA-256 hashes"
		}
		return need(varsOp{name: strings.ToLower(sub) + " " + want, args: rest, write: true, flags: writeFlags}, 1, what)
	case "apply":
		if len(rest) != 1 {
			return varsOp{}, usageErrorf("firmware vars apply: give one update file")
		}
		return varsOp{name: "apply", args: rest, write: true, flags: append(writeFlags, "var")}, nil
	case "set-profile":
		if len(rest) != 1 {
			return varsOp{}, usageErrorf("firmware vars set-profile: give one profile: %s", strings.Join(secureboot.Profiles(), ", "))
		}
		return varsOp{name: "set-profile", args: rest, write: true, flags: append(writeFlags, "certs")}, nil
	}
	return varsOp{}, usageErrorf("firmware vars: unknown subcommand %q (want list, export, db add, kek add, dbx add-hash, apply, set-profile)", sub)
}

func runVars(w io.Writer, changed func(string) bool, f varsFlags, args []string) error {
	path := args[0]
	op, err := parseVarsOp(args[1:])
	if err != nil {
		return err
	}
	if err := checkFormat(f.format); err != nil {
		return err
	}
	for _, name := range []string{"var", "certs", "backup", "no-backup", "dry-run"} {
		if changed(name) && !slices.Contains(op.flags, name) {
			return usageErrorf("firmware vars %s does not take --%s", op.name, name)
		}
	}
	if f.noBackup && f.backup != "" {
		return usageErrorf("give --backup or --no-backup, not both")
	}
	inputErr := func(err error) error { return &exitError{code: ExitError, err: err} }
	// Refuse a store that cannot be replaced before reading anything else.
	if op.write && !f.dryRun {
		if err := nvram.CheckWritable(path); err != nil {
			return inputErr(err)
		}
	}
	st, err := nvram.Open(path)
	if err != nil {
		return inputErr(err)
	}
	var changes []nvram.Change
	switch op.name {
	case "list":
		vars := st.List()
		if f.format == "json" {
			return writeJSON(w, map[string]any{"store": path, "variable_area": st.Size(), "free": st.Free(), "variables": vars})
		}
		return buffered(w, func(w io.Writer) error {
			if err := nvram.WriteTable(w, vars); err != nil {
				return err
			}
			_, err := fmt.Fprintf(w, "\n%s: %d variables, %d of %d bytes free\n", path, len(vars), st.Free(), st.Size())
			return err
		})
	case "export":
		names, err := nvram.Export(st.Vars(), op.args[0])
		if err != nil {
			return inputErr(err)
		}
		if f.format == "json" {
			return writeJSON(w, map[string]any{"store": path, "dir": op.args[0], "files": names})
		}
		_, err = fmt.Fprintf(w, "exported %d variables of %s to %s\n", len(names), path, op.args[0])
		return err
	case "db add", "kek add":
		var certs []*x509.Certificate
		for _, p := range op.args {
			c, err := mscerts.Read(p)
			if err != nil {
				return inputErr(err)
			}
			certs = append(certs, c)
		}
		name := nvram.VarDB
		if op.name == "kek add" {
			name = nvram.VarKEK
		}
		c, err := st.AddCerts(name, certs)
		if err != nil {
			return inputErr(err)
		}
		changes = append(changes, c)
	case "dbx add-hash":
		var hashes [][]byte
		for _, a := range op.args {
			h, err := nvram.ParseHash(a)
			if err != nil {
				return inputErr(err)
			}
			hashes = append(hashes, h)
		}
		c, err := st.AddHashes(hashes)
		if err != nil {
			return inputErr(err)
		}
		changes = append(changes, c)
	case "apply":
		upd := op.args[0]
		name, ok := "", false
		if f.varName != "" {
			if name, err = nvram.NormalizeVar(f.varName); err != nil {
				return usageErrorf("--var: %v", err)
			}
		} else if name, ok = nvram.VarForFile(upd); !ok {
			return usageErrorf("cannot tell from the name %s which variable the update is for: give --var db, --var dbx or --var KEK", upd)
		}
		b, err := os.ReadFile(upd)
		if err != nil {
			return inputErr(err)
		}
		c, err := st.Apply(b, upd, name)
		if err != nil {
			return inputErr(err)
		}
		changes = append(changes, c)
	case "set-profile":
		profile := op.args[0]
		if _, _, err := secureboot.ProfileCAs(profile); err != nil {
			return usageErrorf("set-profile: unknown profile %q (want %s)", profile, strings.Join(secureboot.Profiles(), ", "))
		}
		var cd *nvram.CertDir // nil: the built-in certificates
		if f.certs != "" {
			if cd, err = nvram.LoadCertDir(f.certs); err != nil {
				return inputErr(err)
			}
		}
		cs, err := st.SetProfile(profile, cd)
		if err != nil {
			return inputErr(err)
		}
		changes = append(changes, cs...)
	}
	return finishWrite(w, st, changes, f)
}

// finishWrite saves an edited store (unless --dry-run) and prints one line
// per change with the free space left.
func finishWrite(w io.Writer, st *nvram.Store, changes []nvram.Change, f varsFlags) error {
	backup := ""
	written := false
	if st.Changed() && !f.dryRun {
		if err := st.Save(nvram.SaveOptions{Backup: f.backup, NoBackup: f.noBackup}); err != nil {
			return &exitError{code: ExitError, err: err}
		}
		written = true
		if !f.noBackup {
			backup = f.backup
			if backup == "" {
				backup = st.Path + nvram.BackupSuffix
			}
		}
	}
	if f.format == "json" {
		return writeJSON(w, map[string]any{
			"store": st.Path, "changes": changes, "changed": st.Changed() || written,
			"written": written, "dry_run": f.dryRun, "backup": backup, "free": st.Free(),
		})
	}
	return buffered(w, func(w io.Writer) error {
		for _, c := range changes {
			prefix := ""
			if f.dryRun {
				prefix = "dry run, would write: "
			}
			if _, err := fmt.Fprintf(w, "%s%s; %d bytes free\n", prefix, c.Summary, c.FreeAfter); err != nil {
				return err
			}
		}
		var err error
		switch {
		case f.dryRun:
			_, err = fmt.Fprintf(w, "dry run: %s not written\n", st.Path)
		case !written:
			_, err = fmt.Fprintf(w, "nothing to change: %s left as it was\n", st.Path)
		case backup != "":
			_, err = fmt.Fprintf(w, "wrote %s (original kept as %s)\n", st.Path, backup)
		default:
			_, err = fmt.Fprintf(w, "wrote %s (no backup)\n", st.Path)
		}
		return err
	})
}
