package gate

import (
	"bytes"
	"crypto"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vouch-dev/vouch/internal/gate/gatetest"
	"github.com/vouch-dev/vouch/internal/secureboot"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

func debsDir() string { return filepath.Join(testfixtures.Repo(), ".cache", "debs") }

func onlyDeb(t testing.TB, pattern string) string {
	t.Helper()
	testfixtures.Deb(t, gatetest.ShimDeb)
	m, _ := filepath.Glob(filepath.Join(debsDir(), pattern))
	if len(m) != 1 {
		t.Fatalf("%s: %v", pattern, m)
	}
	return m[0]
}

func roles(p *Package) string {
	var out []string
	for _, f := range p.EFI {
		s := f.Role + ":" + f.Path
		if !f.Signed {
			s += "(unsigned)"
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

// TestReadDebian reads Debian's own signed packages.
func TestReadDebian(t *testing.T) {
	testfixtures.NeedFixtures(t)
	release := testfixtures.KernelRelease(t)
	tests := []struct {
		pattern, name, roles string
	}{
		{"shim-signed_*.deb", "shim-signed", "shim:usr/lib/shim/shimx64.efi.signed"},
		{"grub-efi-amd64-signed_*.deb", "grub-efi-amd64-signed", "grub:usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed grub:usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed grub:usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed"},
		{"linux-image-*.deb", "linux-image-" + release, "kernel:boot/vmlinuz-" + release},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			p, err := ReadPackageFile(onlyDeb(t, tc.pattern), "deb", ReadOptions{Kernels: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s read in %v", tc.name, time.Since(start))
			if p.Name != tc.name || p.Version == "" || !p.Scanned {
				t.Errorf("package %q %q scanned %v", p.Name, p.Version, p.Scanned)
			}
			got := roles(p)
			if tc.name == "grub-efi-amd64-signed" {
				// grubnetx64-installer.efi.signed too; check the main ones.
				for _, want := range strings.Fields(tc.roles) {
					if !strings.Contains(got, want) {
						t.Errorf("roles %s lack %s", got, want)
					}
				}
				return
			}
			if got != tc.roles {
				t.Errorf("roles %q, want %q", got, tc.roles)
			}
		})
	}
}

// TestKernelPrefilter: without ReadOptions.Kernels a kernel package is not
// decompressed (20 s for Debian's), only marked. Scanned says the payload was
// not read; BenchmarkKernelPrefilter measures what that saves.
func TestKernelPrefilter(t *testing.T) {
	testfixtures.NeedFixtures(t)
	p, err := ReadPackageFile(onlyDeb(t, "linux-image-*.deb"), "deb", ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Scanned || !p.KernelFiles || len(p.EFI) != 0 {
		t.Errorf("scanned %v kernel files %v efi %s", p.Scanned, p.KernelFiles, roles(p))
	}
}

// BenchmarkKernelPrefilter reads Debian's kernel package without and with
// ReadOptions.Kernels.
func BenchmarkKernelPrefilter(b *testing.B) {
	testfixtures.NeedFixtures(b)
	deb := onlyDeb(b, "linux-image-*.deb")
	for _, kernels := range []bool{false, true} {
		b.Run(map[bool]string{false: "marked", true: "decompressed"}[kernels], func(b *testing.B) {
			for b.Loop() {
				if _, err := ReadPackageFile(deb, "deb", ReadOptions{Kernels: kernels}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestReadBuiltDebs rebuilds shim-signed with every compressor dpkg-deb
// offers and finds the 2023-only shim by content each time.
func TestReadBuiltDebs(t *testing.T) {
	testfixtures.NeedFixtures(t)
	dir := t.TempDir()
	shim := gatetest.Shim2023Only(t)
	for _, comp := range []string{"xz", "zstd", "gzip", "none"} {
		t.Run(comp, func(t *testing.T) {
			deb := gatetest.ShimSignedDeb(t, dir, shim, "1.52+vouch1", comp)
			p, err := ReadPackageFile(deb, "", ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if p.Version != "1.52+vouch1" || len(p.Shims()) != 1 {
				t.Fatalf("version %q shims %s", p.Version, roles(p))
			}
			if got := secureboot.SignedBy(p.Shims()[0].Image()); len(got) != 1 || got[0] != secureboot.CAUEFI2023 {
				t.Errorf("shim signed by %v", got)
			}
		})
	}
	// A shim under a name no list would know is still found, and an
	// unsigned shim build is found but not offered for judging.
	unsignedShim := readFile(t, filepath.Join(testfixtures.Path(t, "rootfs"), "usr", "lib", "shim", "shimx64.efi"))
	deb := gatetest.PlainDeb(t, dir, "odd-shim", map[string][]byte{
		"usr/share/odd/loader.efi":   shim,
		"usr/lib/shim/shimx64.efi":   unsignedShim,
		"usr/share/doc/odd/README":   []byte("docs"),
		"usr/share/odd/not-a-pe.txt": []byte("MZ but nothing else"),
	}, true)
	p, err := ReadPackageFile(deb, "deb", ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Shims()) != 1 || p.Shims()[0].Path != "usr/share/odd/loader.efi" || len(p.EFI) != 2 {
		t.Errorf("found %s", roles(p))
	}
}

func TestReadDebWithoutShim(t *testing.T) {
	dir := t.TempDir()
	withSums := gatetest.PlainDeb(t, dir, "docs", map[string][]byte{"usr/share/doc/docs/README": []byte("hello")}, true)
	p, err := ReadPackageFile(withSums, "deb", ReadOptions{Kernels: true})
	if err != nil {
		t.Fatal(err)
	}
	if p.Scanned || len(p.EFI) != 0 || len(p.Notes) != 1 {
		t.Errorf("scanned %v efi %s notes %v", p.Scanned, roles(p), p.Notes)
	}
	noSums := gatetest.PlainDeb(t, dir, "nosums", map[string][]byte{"usr/share/doc/nosums/README": []byte("hello")}, false)
	if p, err = ReadPackageFile(noSums, "deb", ReadOptions{}); err != nil {
		t.Fatal(err)
	}
	if !p.Scanned || len(p.EFI) != 0 {
		t.Errorf("without md5sums: scanned %v efi %s", p.Scanned, roles(p))
	}
}

// TestReadRPM builds Fedora-style shim-x64 rpms with rpmbuild, one per
// payload compressor, and finds the shim in each payload.
func TestReadRPM(t *testing.T) {
	testfixtures.Long(t, testfixtures.Fixtures, testfixtures.Peers) // rpmbuild
	dir := t.TempDir()
	shim := gatetest.Shim2023Only(t)
	want := bin(t, "shim", shim).Image.Digest(crypto.SHA256)
	for _, payload := range []string{"w19.zstdio", "w6.xzdio", "w9.gzdio", "w9.bzdio"} {
		t.Run(payload, func(t *testing.T) {
			rpm := gatetest.ShimRPM(t, dir, shim, payload)
			p, err := ReadPackageFile(rpm, "rpm", ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if p.Name != "shim-x64" || p.Version != "16.1-1" || !p.Scanned {
				t.Errorf("package %q %q scanned %v", p.Name, p.Version, p.Scanned)
			}
			if roles(p) != "shim:boot/efi/EFI/fedora/shimx64.efi" {
				t.Fatalf("found %s", roles(p))
			}
			if !bytes.Equal(p.Shims()[0].Image().Digest(crypto.SHA256), want) {
				t.Errorf("the shim in the payload is not the one packaged")
			}
		})
	}
}

// TestBadPackages: every kind of bad input is a *FormatError naming the
// file, never a panic.
func TestBadPackages(t *testing.T) {
	testfixtures.Long(t, testfixtures.Fixtures, testfixtures.Peers) // rpmbuild
	dir := t.TempDir()
	deb := gatetest.ShimSignedDeb(t, dir, gatetest.Shim2023Only(t), "1.52+vouch1", "xz")
	rpm := gatetest.ShimRPM(t, dir, gatetest.Shim2023Only(t), "w19.zstdio")
	debBytes, rpmBytes := readFile(t, deb), readFile(t, rpm)
	flip := func(b []byte, at int) []byte {
		c := bytes.Clone(b)
		c[at] ^= 0xff
		return c
	}
	tests := []struct {
		name, want string
		data       []byte
		format     string
		reason     string
	}{
		{"empty.deb", "deb", nil, "deb", "not a Debian package"},
		{"text.deb", "deb", []byte("this is not a package\n"), "deb", "not a Debian package"},
		{"rpm-as-deb.deb", "deb", rpmBytes, "deb", "not a Debian package"},
		{"half.deb", "deb", debBytes[:len(debBytes)/2], "deb", "data.tar.xz"},
		{"header-cut.deb", "deb", debBytes[:70], "deb", "truncated"},
		{"corrupt-data.deb", "deb", flip(debBytes, len(debBytes)-5000), "deb", "data.tar.xz"},
		{"half.rpm", "rpm", rpmBytes[:len(rpmBytes)/2], "rpm", "payload"},
		{"lead.rpm", "rpm", rpmBytes[:50], "rpm", "lead truncated"},
		{"header-magic.rpm", "rpm", flip(rpmBytes, 96), "rpm", "no header magic"},
		{"corrupt-payload.rpm", "rpm", flip(rpmBytes, len(rpmBytes)-3000), "rpm", "payload"},
		{"bad-ar-header.deb", "", flip(debBytes, 8+58), "deb", "no terminator"},
		{"deb-as-rpm.rpm", "rpm", debBytes, "rpm", "not an rpm package"},
		{"neither", "", []byte("MZ"), "deb or rpm", "neither"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := gatetest.WriteFile(t, dir, tc.name, tc.data)
			_, err := ReadPackageFile(p, tc.want, ReadOptions{})
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v (%T), want *FormatError", err, err)
			}
			if fe.File != p || fe.Format != tc.format || !strings.Contains(err.Error(), tc.reason) || !strings.Contains(err.Error(), p) {
				t.Errorf("error %q, want format %s and %q", err, tc.format, tc.reason)
			}
		})
	}
	// A shim cut short: an .efi file that starts like a PE image but is
	// not one would be installed as an unbootable boot loader.
	cut := gatetest.ShimSignedDeb(t, dir, gatetest.Shim2023Only(t)[:4096], "1.52+cut", "xz")
	_, err := ReadPackageFile(cut, "deb", ReadOptions{})
	var fe *FormatError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), cut) || !strings.Contains(err.Error(), "usr/lib/shim/shimx64.efi.signed: corrupt EFI binary") {
		t.Errorf("truncated shim in a package: %v", err)
	}
	if _, err := ReadPackageFile(filepath.Join(dir, "missing.deb"), "deb", ReadOptions{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}
