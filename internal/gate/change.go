package gate

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/vouch-dev/vouch/internal/mscerts"
	"github.com/vouch-dev/vouch/internal/secureboot"
)

// LoadChange reads the files of a proposed change (secureboot.Change): the
// db certificates (files or built-in names), the dbx update, the SbatLevel,
// the new shim, GRUB and kernel. A shim package (.deb or .rpm) gives its
// signed shim, and, unless --grub or --kernel name them, the signed GRUB and
// the kernel it installs too. Errors name the file and the problem.
func LoadChange(f secureboot.ChangeFiles) (*secureboot.Change, error) {
	c := &secureboot.Change{}
	for _, name := range f.DBAdd {
		cert, err := mscerts.Read(name)
		if err != nil {
			return nil, fmt.Errorf("gate: --db-add: %w", err)
		}
		c.DBAdd = append(c.DBAdd, secureboot.NewDBCert(name, cert))
	}
	var err error
	if f.DBXUpdate != "" {
		if c.DBX, err = secureboot.ReadDBXUpdate(f.DBXUpdate); err != nil {
			return nil, err
		}
	}
	if f.SBATLevel != "" {
		if c.SBAT, err = secureboot.ParseSBATUpdateArg(f.SBATLevel); err != nil {
			return nil, err
		}
	}
	if f.Shim != "" && f.ShimPackage != "" {
		return nil, &InputError{File: f.ShimPackage, Reason: "give the new shim as a file or as a package, not both"}
	}
	if f.Shim != "" {
		if c.Shim, err = ReadEFI(f.Shim, true); err != nil {
			return nil, err
		}
	}
	if f.GRUB != "" {
		if c.GRUB, err = ReadEFI(f.GRUB, false); err != nil {
			return nil, err
		}
	}
	if f.Kernel != "" {
		if c.Kernel, err = ReadEFI(f.Kernel, false); err != nil {
			return nil, err
		}
	}
	if f.ShimPackage != "" {
		p, err := ReadPackageFile(f.ShimPackage, "", ReadOptions{Kernels: true})
		if err != nil {
			return nil, err
		}
		shims := p.Shims()
		if len(shims) == 0 {
			return nil, &InputError{File: f.ShimPackage, Reason: "holds no signed shim"}
		}
		c.Shim, c.ShimPackage = p.Binary(shims[0]), f.ShimPackage
		st := PackageStages([]*Package{p}, Stages{GRUB: c.GRUB, Kernel: c.Kernel})
		if c.GRUB == nil {
			c.GRUB = st.GRUB
		}
		if c.Kernel == nil {
			c.Kernel = st.Kernel
		}
	}
	return c, nil
}

// ReadEFI reads an EFI binary named by the user; shim also requires it to
// be a shim. Errors name the file.
func ReadEFI(p string, shim bool) (*Binary, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("gate: %w", err)
	}
	if shim {
		return ParseShim(p, b)
	}
	return ParseBinary(p, b)
}

// BesideShim finds the second stage installed beside a shim file: shim
// loads DEFAULT_LOADER (grub<arch>.efi) from its own directory. nil when
// there is none.
func BesideShim(shim string) *Binary {
	dir := filepath.Dir(shim)
	for _, n := range []string{"grubx64.efi", "grubaa64.efi", "grubia32.efi", "grubriscv64.efi", "grubx64.efi.signed", "grubaa64.efi.signed"} {
		if bin, err := ReadEFI(filepath.Join(dir, n), false); err == nil {
			return bin
		}
	}
	return nil
}
