package gate

import (
	"bytes"
	"debug/pe"
	"errors"
	"strings"
	"testing"

	"github.com/vouch-dev/vouch/internal/authenticode/authenticodetest"

	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// tinyEFI returns two minimal PE images for the fuzzers' seeds: a tiny
// GRUB (a .sbat naming the grub component) and an image whose ".sbatlevel"
// section name NewPE truncates to ".sbatlev" (real shims keep the long name
// in the COFF string table), which is therefore not taken for a shim.
func tinyEFI() (notShim, grub []byte) {
	notShim = authenticodetest.NewPE(pe.IMAGE_FILE_MACHINE_AMD64,
		authenticodetest.Section{Name: ".text", Data: []byte{0xc3}},
		authenticodetest.Section{Name: ".sbatlevel", Data: []byte("\x00\x00\x00\x00\x08\x00\x00\x00\x08\x00\x00\x00sbat,1,2021030218\n\x00")})
	grub = authenticodetest.NewPE(pe.IMAGE_FILE_MACHINE_AMD64,
		authenticodetest.Section{Name: ".text", Data: []byte{0xc3}},
		authenticodetest.Section{Name: ".sbat", Data: []byte("sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\ngrub,4,Free Software Foundation,grub,2.12,https://www.gnu.org/software/grub/\n")})
	return notShim, grub
}

// checkPackage is what every reader result must satisfy.
func checkPackage(t *testing.T, p *Package, err error, format string) {
	if err != nil {
		var fe *FormatError
		if !errors.As(err, &fe) || fe.File != "fuzz" || fe.Format != format || !strings.Contains(err.Error(), "fuzz") {
			t.Fatalf("error %v (%T) is not a *FormatError naming the file", err, err)
		}
		return
	}
	for _, f := range p.EFI {
		if f.Image() == nil || f.Role == "" {
			t.Fatalf("EFI file %+v without image or role", f)
		}
	}
}

// The seeds in testdata/fuzz are dpkg-deb and rpmbuild packages holding
// tinyEFI's images, one per compressor (written by debWith and rpmWith).

func FuzzReadDeb(f *testing.F) {
	f.Add([]byte("!<arch>\ndebian-binary   1342099286  0     0     100644  4         `\n2.0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ReadDeb(bytes.NewReader(b), "fuzz", ReadOptions{Kernels: true, MaxPayload: 16 << 20})
		checkPackage(t, p, err, "deb")
	})
}

func FuzzReadRPM(f *testing.F) {
	f.Add([]byte(rpmLeadMagic + strings.Repeat("\x00", 92) + rpmHeaderMagic + "\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ReadRPM(bytes.NewReader(b), "fuzz", ReadOptions{Kernels: true, MaxPayload: 16 << 20})
		checkPackage(t, p, err, "rpm")
	})
}

func FuzzAptArchives(f *testing.F) {
	f.Add([]byte("/var/cache/apt/archives/a.deb\n/tmp/b.deb\n"))
	f.Add([]byte("VERSION 3\nA=b\n\np amd64 same 1 < 2 amd64 same /x.deb\nq amd64 none - < 1 amd64 none **CONFIGURE**\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		files, err := AptArchives(bytes.NewReader(b))
		if err == nil {
			for _, s := range files {
				if s == "" || strings.Contains(s, "\n") {
					t.Fatalf("file %q", s)
				}
			}
		}
	})
}

// TestTinyPackages builds the fuzz seeds' packages and checks what the
// readers find in every compression.
func TestTinyPackages(t *testing.T) {
	testfixtures.Long(t, testfixtures.Peers) // rpmbuild
	notShim, grub := tinyEFI()
	dir := t.TempDir()
	for _, comp := range []string{"none", "gzip", "xz", "zstd"} {
		p, err := ReadPackageFile(debWith(t, dir, comp, map[string][]byte{"usr/lib/shim/shimx64.efi.signed": notShim, "usr/lib/grub/grubx64.efi.signed": grub}), "deb", ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := roles(p); got != "grub:usr/lib/grub/grubx64.efi.signed(unsigned)" {
			t.Errorf("%s: %s", comp, got)
		}
	}
	for _, payload := range []string{"w9.gzdio", "w2.xzdio", "w19.zstdio", "w0.ufdio"} {
		p, err := ReadPackageFile(rpmWith(t, dir, grub, payload), "rpm", ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := roles(p); got != "grub:boot/efi/EFI/fedora/shimx64.efi(unsigned)" {
			t.Errorf("%s: %s", payload, got)
		}
	}
}
