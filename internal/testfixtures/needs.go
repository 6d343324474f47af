package testfixtures

import (
	"os"
	"os/exec"
	"testing"
)

// What a test can need beyond Go. make test has all of it: scripts/deps.sh
// installs the Debian packages, and fixtures are built on first use. A test
// declares its needs with Long; nothing is skipped for a missing need: the
// test fails saying what to install.
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

// Long declares what a test needs (one or more of Fixtures, QEMU, OVMF,
// Peers, Services, Network) and checks at once what one look can check: that
// QEMU and Debian's OVMF are installed. The rest is checked where it is used
// (Path and Deb build or fetch fixtures; pgtest, swtpm and the peers' callers
// fail naming the package to install).
func Long(t testing.TB, needs ...string) {
	t.Helper()
	for _, n := range needs {
		switch n {
		case QEMU:
			if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
				t.Fatalf("needs %s: qemu-system-x86_64 is not installed (Debian's qemu-system-x86; scripts/deps.sh installs it)", n)
			}
		case OVMF:
			if _, err := os.Stat(ovmfDir); err != nil {
				t.Fatalf("needs %s: %v (scripts/deps.sh installs it)", n, err)
			}
		}
	}
}

// ovmfDir is where Debian's ovmf package puts its builds.
var ovmfDir = "/usr/share/OVMF"

// NeedFixtures is Long(t, Fixtures).
func NeedFixtures(t testing.TB) {
	t.Helper()
	Long(t, Fixtures)
}

// DebSeed returns the content of a file of Debian's packages (as Deb) to add
// to a fuzz test's seed corpus.
func DebSeed(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(Deb(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
