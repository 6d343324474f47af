package gate

import (
	"bytes"
	"crypto/x509"
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
	return loadChange(f, nil)
}

// LoadChangeBytes is LoadChange for files already in memory (a server
// judging a change a client sent): files maps each name of f to the file's
// contents. A --db-add name missing from files is a built-in certificate
// name; an SbatLevel name missing from it is split as FILE#DATESTAMP. A
// JSON dbx list's certificate files are not at hand (ParseDBXUpdate).
func LoadChangeBytes(f secureboot.ChangeFiles, files map[string][]byte) (*secureboot.Change, error) {
	if files == nil {
		files = map[string][]byte{}
	}
	return loadChange(f, files)
}

// loadChange reads f's files from disk when mem is nil, else from mem.
func loadChange(f secureboot.ChangeFiles, mem map[string][]byte) (*secureboot.Change, error) {
	read := func(name string) ([]byte, error) {
		b, ok := mem[name]
		if !ok {
			return nil, &InputError{File: name, Reason: "not sent with the change"}
		}
		return b, nil
	}
	c := &secureboot.Change{}
	for _, name := range f.DBAdd {
		var cert *x509.Certificate
		var err error
		if b, ok := mem[name]; ok {
			if cert, err = mscerts.Parse(b); err != nil {
				err = fmt.Errorf("%s: not an X.509 certificate (DER or PEM): %w", name, err)
			}
		} else {
			cert, err = mscerts.Read(name)
		}
		if err != nil {
			return nil, fmt.Errorf("gate: --db-add: %w", err)
		}
		c.DBAdd = append(c.DBAdd, secureboot.NewDBCert(name, cert))
	}
	var err error
	if f.DBXUpdate != "" {
		if mem == nil {
			c.DBX, err = secureboot.ReadDBXUpdate(f.DBXUpdate)
		} else if b, rerr := read(f.DBXUpdate); rerr != nil {
			err = rerr
		} else {
			c.DBX, err = secureboot.ParseDBXUpdate(b, f.DBXUpdate)
		}
		if err != nil {
			return nil, err
		}
	}
	if f.SBATLevel != "" {
		_, sent := mem[f.SBATLevel]
		if mem == nil || f.SBATLevel == "latest" || f.SBATLevel == "automatic" {
			c.SBAT, err = secureboot.ParseSBATUpdateArg(f.SBATLevel)
		} else {
			file, pick := f.SBATLevel, ""
			if !sent {
				file, pick = secureboot.SplitSBATArg(f.SBATLevel)
			}
			var b []byte
			if b, err = read(file); err == nil {
				c.SBAT, err = secureboot.ParseSBATUpdate(b, file, pick)
			}
		}
		if err != nil {
			return nil, err
		}
	}
	readEFI := func(name string, shim bool) (*Binary, error) {
		if mem == nil {
			return ReadEFI(name, shim)
		}
		b, err := read(name)
		if err != nil {
			return nil, err
		}
		if shim {
			return ParseShim(name, b)
		}
		return ParseBinary(name, b)
	}
	if f.Shim != "" && f.ShimPackage != "" {
		return nil, &InputError{File: f.ShimPackage, Reason: "give the new shim as a file or as a package, not both"}
	}
	if f.Shim != "" {
		if c.Shim, err = readEFI(f.Shim, true); err != nil {
			return nil, err
		}
	}
	if f.GRUB != "" {
		if c.GRUB, err = readEFI(f.GRUB, false); err != nil {
			return nil, err
		}
	}
	if f.Kernel != "" {
		// A kernel image, or the .deb/.rpm that installs it.
		if isPackage(f.Kernel, mem) {
			if c.Kernel, err = packageKernel(f.Kernel, mem); err != nil {
				return nil, err
			}
		} else if c.Kernel, err = readEFI(f.Kernel, false); err != nil {
			return nil, err
		}
	}
	if f.ShimPackage != "" {
		var p *Package
		if mem == nil {
			p, err = ReadPackageFile(f.ShimPackage, "", ReadOptions{Kernels: true})
		} else {
			p, err = readPackageBytes(f.ShimPackage, mem)
		}
		if err != nil {
			return nil, err
		}
		shims := p.Shims()
		if len(shims) == 0 {
			return nil, &InputError{File: f.ShimPackage, Reason: "holds no signed shim"}
		}
		c.Shim, c.ShimPackage = p.Binary(shims[0]), f.ShimPackage
		for _, s := range shims[1:] {
			c.ShimsAlso = append(c.ShimsAlso, p.Binary(s))
		}
		for _, h := range p.Helpers() {
			c.Helpers = append(c.Helpers, p.Binary(h))
		}
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

// readPackageBytes reads the .deb or .rpm named name from mem.
func readPackageBytes(name string, mem map[string][]byte) (*Package, error) {
	b, ok := mem[name]
	switch {
	case !ok:
		return nil, &InputError{File: name, Reason: "not sent with the change"}
	case IsDeb(b):
		return ReadDeb(bytes.NewReader(b), name, ReadOptions{Kernels: true})
	case IsRPM(b):
		return ReadRPM(bytes.NewReader(b), name, ReadOptions{Kernels: true})
	}
	return nil, &FormatError{File: name, Format: "deb or rpm", Reason: "neither a Debian package nor an rpm package"}
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

// isPackage reports whether the file name (on disk, or in mem when mem is
// not nil) starts like a .deb or an .rpm.
func isPackage(name string, mem map[string][]byte) bool {
	head, ok := mem[name]
	if mem == nil {
		f, err := os.Open(name)
		if err != nil {
			return false
		}
		defer f.Close()
		head = make([]byte, 96)
		n, _ := f.Read(head)
		head, ok = head[:n], true
	}
	return ok && (IsDeb(head) || IsRPM(head))
}

// packageKernel is the kernel image a package installs (--kernel
// linux-image-*.deb).
func packageKernel(name string, mem map[string][]byte) (*Binary, error) {
	var p *Package
	var err error
	if mem == nil {
		p, err = ReadPackageFile(name, "", ReadOptions{Kernels: true})
	} else {
		p, err = readPackageBytes(name, mem)
	}
	if err != nil {
		return nil, err
	}
	if k := PackageStages([]*Package{p}, Stages{}).Kernel; k != nil {
		return k, nil
	}
	return nil, &InputError{File: name, Reason: "installs no kernel image (boot/vmlinuz-*)"}
}
