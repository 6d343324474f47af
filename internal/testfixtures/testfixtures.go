// Package testfixtures gives tests the real artefacts they run against — Debian's
// signed boot packages and images built from them — building them on first use
// with the repository's scripts and caching them under .cache/ (git-ignored).
// Tests never skip for a missing fixture: they build it, or fail saying why.
package testfixtures

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// Repo returns the repository root.
func Repo() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Dir is where built fixtures live: $VOUCH_FIXTURES, or .cache/fixtures.
func Dir() string {
	if d := os.Getenv("VOUCH_FIXTURES"); d != "" {
		return d
	}
	return filepath.Join(Repo(), ".cache", "fixtures")
}

// Data returns the path of a file of public reference data kept in the
// repository's testdata/ (certificates, DBX updates, SbatLevel history, efivars
// dumps; testdata/secureboot/README.md says where each came from).
func Data(parts ...string) string {
	return filepath.Join(append([]string{Repo(), "testdata"}, parts...)...)
}

var mu sync.Mutex

// Path returns the path of fixture name (e.g. "debian.raw"), building it with
// scripts/build-fixtures.sh when it is missing (the script caches and locks);
// debian-cloud.qcow2 is built by scripts/build-cloud-fixture.sh.
func Path(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(Dir(), name)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	mu.Lock()
	defer mu.Unlock()
	if _, err := os.Stat(p); err == nil {
		return p
	}
	builder, args := "build-fixtures.sh", []string{name}
	switch name {
	case "debian-cloud.qcow2":
		builder, args = "build-cloud-fixture.sh", nil
	case "prev-kernel":
		builder, args = "build-kernel-fixture.sh", nil
	}
	script(t, builder, args...)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("fixture %s was not built by scripts/%s: %v", name, builder, err)
	}
	return p
}

// Deb returns the path of a file extracted from Debian's signed packages by
// scripts/fetch-debs.sh, relative to .cache/debs/x (e.g.
// "shim-signed/usr/lib/shim/shimx64.efi.signed").
func Deb(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(Repo(), ".cache", "debs", "x", rel)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	mu.Lock()
	defer mu.Unlock()
	script(t, "fetch-debs.sh")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s is not in Debian's packages as fetched by scripts/fetch-debs.sh: %v", rel, err)
	}
	return p
}

// Kernel returns the path of the signed kernel of Debian's linux-image package
// as extracted by scripts/fetch-debs.sh (.cache/debs/x/linux-image/boot/
// vmlinuz-RELEASE). The release changes with the archive (a new ABI
// number every few weeks), so tests find it here and never name it.
func Kernel(t testing.TB) string {
	t.Helper()
	dir := Deb(t, "linux-image/boot")
	m, _ := filepath.Glob(filepath.Join(dir, "vmlinuz-*"))
	if len(m) != 1 {
		t.Fatalf("want one signed kernel in %s (scripts/fetch-debs.sh extracts one linux-image package), found %v", dir, m)
	}
	return m[0]
}

// KernelRelease is the release of Kernel's file name ("X.Y.Z-N-amd64").
func KernelRelease(t testing.TB) string {
	t.Helper()
	return strings.TrimPrefix(filepath.Base(Kernel(t)), "vmlinuz-")
}

func script(t testing.TB, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(Repo(), "scripts", name), args...)
	cmd.Dir = Repo()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/%s %v failed (run make deps first?): %v\n%s", name, args, err, out)
	}
}
