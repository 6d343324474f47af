package secureboot

import (
	"testing"
	"time"
)

// Helpers of the package's QEMU tests, exported to the external test package
// secureboot_test, whose truth test of edited variable stores imports
// internal/nvram (which imports this package, so the internal tests cannot).

// BootResult is bootResult with exported fields.
type BootResult struct {
	Reached bool
	Marker  string
	Elapsed time.Duration
	Log     string
}

// BootOVMF is bootOVMF.
func BootOVMF(t *testing.T, dir string, esp, vars []byte) BootResult {
	t.Helper()
	r := bootOVMF(t, dir, esp, vars)
	return BootResult{Reached: r.reached, Marker: r.marker, Elapsed: r.elapsed, Log: r.log}
}

// MakeESP is makeESP.
func MakeESP(t *testing.T, dir string, files map[string][]byte) []byte {
	t.Helper()
	return makeESP(t, dir, files)
}

// DebianShims returns Debian's dual-signed shim and the variants signed only
// by the 2011 or only by the 2023 Microsoft UEFI CA.
func DebianShims(t *testing.T) (dual, only2011, only2023 []byte) {
	t.Helper()
	s := debianShims(t)
	return s.dual, s.only2011, s.only2023
}

// DebianGRUB returns Debian's signed GRUB.
func DebianGRUB(t *testing.T) []byte {
	t.Helper()
	return deb(t, grubRel)
}

// ShimDigest is an image's Authenticode SHA-256.
func ShimDigest(t *testing.T, b []byte) []byte {
	t.Helper()
	return shimDigest(t, b)
}

// ReadArtefact is readArtefact.
func ReadArtefact(t *testing.T, p string) []byte {
	t.Helper()
	return readArtefact(t, p)
}

// Tail is tail.
func Tail(s string) string { return tail([]byte(s)) }

// OVMFVars is Debian's Microsoft-keyed OVMF store (2011 CAs only).
const OVMFVars = ovmfVars
