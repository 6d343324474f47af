// Package nvram edits the firmware variables of a VM's edk2 variable store
// (an OVMF *_VARS.fd NVRAM file) offline, the way the firmware applies the
// same writes: it lists and exports every variable, appends certificates to
// db and KEK and hashes to dbx with EFI_VARIABLE_APPEND_WRITE semantics,
// applies signed EFI_VARIABLE_AUTHENTICATION_2 updates (such as Microsoft's
// DBXUpdate.bin) and reports whether their signature verifies against the
// store's KEK or PK, and rewrites db and KEK to a Microsoft CA profile. Files
// are replaced atomically, after a backup, and never half written.
//
// The record-level work (parsing, appending records, compaction) is
// internal/efi's VarStore; this package adds the Secure Boot meaning and the
// file handling.
package nvram

import (
	"bytes"
	"fmt"
	"os"

	"github.com/vouch-dev/vouch/internal/efi"
)

// Owner GUIDs written into new EFI_SIGNATURE_DATA entries.
var (
	// MicrosoftOwner is the SignatureOwner Microsoft gives its db, KEK and
	// dbx entries (77fa9abd-0359-4d32-bd60-28f4e78f784b, as in its published
	// DBXUpdate.bin and the PreSignedObjects of microsoft/secureboot_objects).
	// Certificates identified as Microsoft CAs are enrolled under it, so a
	// store edited by vouch matches one provisioned by Microsoft's tooling.
	MicrosoftOwner = mustGUID("77fa9abd-0359-4d32-bd60-28f4e78f784b")
	// VouchOwner is the SignatureOwner of entries vouch adds that are not a
	// known Microsoft CA (a user's own db certificate, a dbx hash):
	// 16599402-f49d-4b62-80f9-e2f3a4667dc2, generated once for vouch. The
	// owner is informational for the firmware (edk2 ignores it when
	// verifying) but tells later readers who put the entry there.
	VouchOwner = mustGUID("16599402-f49d-4b62-80f9-e2f3a4667dc2")
)

func mustGUID(s string) efi.GUID {
	g, err := efi.ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

// Store is a variable store file being read or edited. Edits change the
// in-memory image only; Save writes it back.
type Store struct {
	// Path is the file the store was read from ("" when parsed from bytes).
	Path string
	vs   *efi.VarStore
	orig []byte
}

// Open reads and parses a store file. Errors name the file and, for a file
// that is not a variable store, the offset and the problem.
func Open(path string) (*Store, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("nvram: %w", err)
	}
	s, err := parse(b, path)
	if err != nil {
		return nil, err
	}
	s.Path = path
	return s, nil
}

// Parse parses the image of a store; source names it in errors.
func Parse(b []byte, source string) (*Store, error) { return parse(b, source) }

func parse(b []byte, source string) (*Store, error) {
	vs, err := efi.ParseVarStore(b)
	if err != nil {
		return nil, fmt.Errorf("nvram: %s: not a usable edk2 variable store: %w", source, err)
	}
	return &Store{vs: vs, orig: bytes.Clone(b)}, nil
}

// VarStore is the underlying efi store.
func (s *Store) VarStore() *efi.VarStore { return s.vs }

// Vars returns the live variables.
func (s *Store) Vars() *efi.VarSet { return s.vs.Vars() }

// Bytes returns the current image of the file.
func (s *Store) Bytes() []byte { return s.vs.Bytes() }

// Free is the room left after the last record, in bytes.
func (s *Store) Free() int { return s.vs.Free() }

// Size is the size of the variable area (VARIABLE_STORE_HEADER's Size less
// the header), the most the variables can ever take.
func (s *Store) Size() int {
	l := s.vs.Layout()
	return l.StoreEnd - l.FirstRecord
}

// Changed reports whether edits changed the image.
func (s *Store) Changed() bool { return !bytes.Equal(s.vs.Bytes(), s.orig) }

// Original returns the image as read.
func (s *Store) Original() []byte { return bytes.Clone(s.orig) }

// source names the store in messages.
func (s *Store) source() string {
	if s.Path != "" {
		return s.Path
	}
	return "variable store"
}
