package testfixtures

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// KernelPlaceholder stands for a Debian kernel release in golden files.
const KernelPlaceholder = "{kernel}"

// kernelRelease matches a Debian kernel release: "X.Y.Z-N-amd64",
// "X.Y.Z-N-cloud-amd64". The ABI number moves with every kernel update.
var kernelRelease = regexp.MustCompile(`\b\d+\.\d+\.\d+-\d+(-cloud|-rt)?-(amd64|arm64)\b`)

// Normalize replaces what Debian's archive changes from one month to the
// next in text a test compares with a golden file: kernel releases (in file
// names such as boot/vmlinuz-X.Y.Z-N-amd64 and package names such as
// linux-image-X.Y.Z-N-amd64) become KernelPlaceholder.
func Normalize(b []byte) []byte {
	return kernelRelease.ReplaceAll(b, []byte(KernelPlaceholder))
}

// Golden compares got with the golden file testdata/name of the calling
// package, or (re)writes it first when update is set (each package's
// `-update` flag, see docs/conventions.md). got is normalised first
// (Normalize), so that no golden file holds what Debian's archive changes.
func Golden(t testing.TB, name string, got []byte, update bool) {
	t.Helper()
	got = Normalize(got)
	p := filepath.Join("testdata", name)
	if update {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run go test -update after checking the change):\n%s", p, got)
	}
}
