package testfixtures

import (
	"os"
	"testing"
)

// What a test can need that `go test -short` (make test-short) must not: one
// place decides, so that the short run needs no fixtures, no QEMU, no peer
// tools, no services and no network, and the full run (make test) runs all.
const (
	// Fixtures: Debian's signed packages (scripts/fetch-debs.sh) or images
	// built from them (scripts/build-fixtures.sh) under .cache/.
	Fixtures = "the fixtures under .cache/ (Debian's packages and images, make fixtures)"
	// QEMU: a guest booted under QEMU (with OVMF).
	QEMU = "a QEMU boot"
	// OVMF: Debian's edk2 builds and variable store templates in
	// /usr/share/OVMF (package ovmf, installed by scripts/deps.sh).
	OVMF = "Debian's OVMF (package ovmf)"
	// Peers: another program whose answer the test compares with vouch's
	// (sbverify, checksec, debsums, rpm, openssl, ...), or a tool that makes
	// the test's input (dpkg-deb, rpmbuild, mkfs.*, qemu-img, ...).
	Peers = "peer tools installed by scripts/deps.sh"
	// Services: a server or daemon the test starts (PostgreSQL, swtpm, ...).
	Services = "a service the test starts"
	// Network: something fetched at test time (the JSON schemas of
	// scripts/fetch-schemas.sh).
	Network = "the network"
)

// Long marks a test that needs what -short leaves out (one or more of
// Fixtures, QEMU, OVMF, Peers, Services, Network): under -short it skips
// the test saying what it needs; otherwise it returns and the test runs. It
// is the only skip in the tests: in the full run nothing is skipped for a
// missing tool or fixture (the test builds or installs it, or fails saying
// why).
func Long(t testing.TB, needs ...string) {
	t.Helper()
	if testing.Short() {
		msg := "needs"
		for i, n := range needs {
			if i > 0 {
				msg += " and"
			}
			msg += " " + n
		}
		t.Skip(msg + ": not run under -short (make test runs it)")
	}
}

// NeedFixtures is Long(t, Fixtures).
func NeedFixtures(t testing.TB) {
	t.Helper()
	Long(t, Fixtures)
}

// notShort fails a test that reaches for a fixture under -short: it should
// have called NeedFixtures (or Long) first.
func notShort(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		t.Fatalf("testfixtures: %s is a fixture, which -short does not build or fetch: call testfixtures.NeedFixtures(t) at the start of the test", what)
	}
}

// DebSeed returns the content of a file of Debian's packages (as Deb) to add
// to a fuzz test's seed corpus, or nil under -short, where the fuzz test runs
// on its checked-in seeds (testdata/fuzz) alone.
func DebSeed(t testing.TB, rel string) []byte {
	t.Helper()
	if testing.Short() {
		return nil
	}
	b, err := os.ReadFile(Deb(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
