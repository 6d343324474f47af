package pkgsig

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/vouch-dev/vouch/internal/pkgdb"
	"github.com/vouch-dev/vouch/internal/target"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

func TestSourcesOnFixture(t *testing.T) {
	testfixtures.NeedFixtures(t)
	root := testfixtures.Path(t, "rootfs")
	tg, err := target.Open(root, target.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	srcs, issues := AptSources(tg.Root)
	if len(issues) > 0 || len(srcs) != 3 {
		t.Fatalf("sources %+v issues %v", srcs, issues)
	}
	// mmdebstrap writes one-line sources without signed-by: apt then trusts
	// every key in trusted.gpg.d for them.
	for _, s := range srcs {
		if p := s.Problems(); len(p) != 1 || !strings.Contains(p[0], "no signed-by") {
			t.Errorf("%s %s: %v", s.URI, s.Suite, p)
		}
	}
}

func TestSourcesParsing(t *testing.T) {
	list := `# comment
deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] https://repo.example/debian bookworm main
deb [trusted=yes] http://insecure.example/ ./
deb-src [ allow-insecure=yes signed-by=/a.gpg ] http://x.example/debian bookworm main
deb [allow-weak=yes signed-by=/a.gpg] http://y.example/debian bookworm main
deb [arch=amd64 http://broken.example bookworm
deb http://plain.example/debian bookworm main contrib
`
	srcs, issues := ParseOneLineSources([]byte(list), "etc/apt/sources.list")
	if len(srcs) != 5 || len(issues) != 1 || issues[0].Line != 6 {
		t.Fatalf("sources %d, issues %v", len(srcs), issues)
	}
	want := [][]string{nil, {"trusted=yes", "allow-insecure", "no signed-by"}, {"allow-insecure"}, {"allow-weak"}, {"no signed-by"}}
	want[1] = []string{"trusted=yes"} // trusted=yes needs no key at all: one problem
	for i, s := range srcs {
		p := s.Problems()
		if len(p) != len(want[i]) {
			t.Errorf("source %d (%s): problems %v, want %v", i, s.URI, p, want[i])
			continue
		}
		for j := range p {
			if !strings.HasPrefix(p[j], want[i][j]) {
				t.Errorf("source %d: %q, want prefix %q", i, p[j], want[i][j])
			}
		}
	}
	deb822 := `Types: deb deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: https://third.example/apt
Suites: stable
Trusted: yes

Enabled: no
Types: deb
URIs: https://off.example
Suites: x

Types: deb
URIs: https://inline.example
Suites: s
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mQINBGT...
 -----END PGP PUBLIC KEY BLOCK-----
`
	srcs, issues = ParseDeb822Sources([]byte(deb822), "etc/apt/sources.list.d/debian.sources")
	if len(issues) != 0 || len(srcs) != 6 {
		t.Fatalf("%d sources, issues %v", len(srcs), issues)
	}
	for i, s := range srcs[:4] {
		if len(s.Problems()) != 0 || s.SignedBy[0] != "/usr/share/keyrings/debian-archive-keyring.gpg" {
			t.Errorf("debian.sources %d: %v %v", i, s.Problems(), s.SignedBy)
		}
	}
	if p := srcs[4].Problems(); len(p) != 1 || !strings.HasPrefix(p[0], "trusted=yes") {
		t.Errorf("Trusted: yes: %v", p)
	}
	if srcs[5].InlineKey == "" || len(srcs[5].Problems()) != 0 {
		t.Errorf("inline key: %+v", srcs[5])
	}
	if got := srcs[0].ListName(); got != "deb.debian.org_debian_dists_bookworm_InRelease" {
		t.Errorf("ListName = %s", got)
	}
}

// listsRoot is a root with the Debian 12 fixture's keyrings, a sources file and
// the real bookworm-security InRelease.
func listsRoot(t *testing.T, sources string, inrelease []byte) fstest.MapFS {
	t.Helper()
	fix := testfixtures.Path(t, "rootfs")
	fsys := fstest.MapFS{
		"etc/os-release":              {Data: []byte("ID=debian\nVERSION_ID=12\n")},
		"etc/apt/sources.list":        {Data: []byte(sources)},
		AptListsDir + "/" + inRelease: {Data: inrelease},
	}
	for _, dir := range []string{"usr/share/keyrings", "etc/apt/trusted.gpg.d"} {
		entries, err := os.ReadDir(filepath.Join(fix, dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(fix, dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			fsys[dir+"/"+e.Name()] = &fstest.MapFile{Data: b}
		}
	}
	return fsys
}

const inRelease = "deb.debian.org_debian-security_dists_bookworm-security_InRelease"

func TestInRelease(t *testing.T) {
	testfixtures.NeedFixtures(t)
	real, err := os.ReadFile(filepath.Join("testdata", inRelease))
	if err != nil {
		t.Fatal(err)
	}
	date := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	signedBy := "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bookworm-security main\n"
	plain := "deb http://deb.debian.org/debian-security bookworm-security main\n"
	wrongKey := "deb [signed-by=/usr/share/keyrings/debian-archive-trixie-stable.gpg] http://deb.debian.org/debian-security bookworm-security main\n"
	tampered := bytes.Replace(real, []byte("Codename: bookworm-security"), []byte("Codename: bookworm-securitx"), 1)
	for _, tc := range []struct {
		name    string
		sources string
		file    []byte
		now     time.Time
		signed  bool
		problem string
	}{
		{"signed-by keyring", signedBy, real, date, true, ""},
		{"global trusted.gpg.d", plain, real, date, true, ""},
		{"expired", signedBy, real, date.AddDate(0, 0, 30), true, "expired"},
		{"tampered", signedBy, tampered, date, false, "does not verify"},
		{"wrong keyring", wrongKey, real, date, false, "does not verify"},
		{"unsigned", signedBy, []byte("Origin: Debian\nSuite: x\n"), date, false, "not clear-signed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := listsRoot(t, tc.sources, tc.file)
			srcs, _ := AptSources(fsys)
			rels, issues := VerifyLists(fsys, srcs, tc.now)
			if len(rels) != 1 {
				t.Fatalf("releases %v issues %v", rels, issues)
			}
			r := rels[0]
			if r.Source == nil {
				t.Error("InRelease not tied to its source")
			}
			if r.Signed != tc.signed || !strings.Contains(r.Problem, tc.problem) || (tc.problem == "" && r.Problem != "") {
				t.Errorf("signed %v problem %q; want %v %q", r.Signed, r.Problem, tc.signed, tc.problem)
			}
			if tc.signed && r.ValidUntil.IsZero() {
				t.Error("no Valid-Until")
			}
		})
	}
}

// rpmRoot builds a real rpm root (testdata/build-rpm-root.sh).
func rpmRoot(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"rpm", "rpmbuild", "rpmsign", "gpg"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: apt-get install rpm gnupg", tool)
		}
	}
	dir := t.TempDir()
	script, _ := filepath.Abs(filepath.Join("testdata", "build-rpm-root.sh"))
	if out, err := exec.Command("bash", script, dir).CombinedOutput(); err != nil {
		t.Fatalf("build-rpm-root.sh: %v\n%s", err, out)
	}
	return dir
}

func TestRPMHeaderSignatures(t *testing.T) {
	testfixtures.Long(t, testfixtures.Peers)
	dir := rpmRoot(t)
	root := filepath.Join(dir, "root")
	open := func() (*pkgdb.Inventory, *target.Target) {
		tg, err := target.Open(root, target.Options{})
		if err != nil {
			t.Fatal(err)
		}
		inv, err := pkgdb.Read(context.Background(), tg.Root, pkgdb.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return inv, tg
	}
	inv, tg := open()
	defer tg.Close()
	if len(inv.Packages) != 2 {
		t.Fatalf("packages %+v", inv.Packages)
	}
	now := time.Now()
	// Trusted through etc/pki/rpm-gpg and through the gpg-pubkey package.
	ring, issues := RPMKeyring(tg.Root, inv)
	if len(issues) > 0 || len(ring) != 2 {
		t.Fatalf("keyring of %d keys, issues %v", len(ring), issues)
	}
	sigs := VerifyRPM(inv, ring, now)
	if len(sigs) != 1 || !sigs[0].Signed || sigs[0].Package != "vouch-hello" || sigs[0].Version != "2:1.0-1" {
		t.Fatalf("signatures = %+v", sigs)
	}
	// The key only in the rpm keyring (gpg-pubkey) suffices.
	os.Remove(filepath.Join(root, "etc/pki/rpm-gpg/RPM-GPG-KEY-vouch"))
	ring, _ = RPMKeyring(tg.Root, inv)
	if s := VerifyRPM(inv, ring, now); len(ring) != 1 || !s[0].Signed {
		t.Errorf("with the rpm keyring only: %+v", s)
	}
	// Another key does not verify it.
	other, err := os.ReadFile(filepath.Join(dir, "other.asc"))
	if err != nil {
		t.Fatal(err)
	}
	ring, err = parseKeyring(other)
	if err != nil {
		t.Fatal(err)
	}
	if s := VerifyRPM(inv, ring, now); s[0].Signed || !strings.Contains(s[0].Problem, "not in") {
		t.Errorf("with another key: %+v", s)
	}
	// A header whose signed region was changed does not verify.
	for i := range inv.Packages {
		p := &inv.Packages[i]
		if p.Name != "vouch-hello" {
			continue
		}
		j := bytes.Index(p.Header, []byte("vouch test package"))
		if j < 0 {
			t.Fatal("summary not in header")
		}
		p.Header[j] = 'V'
	}
	ring, _ = RPMKeyring(tg.Root, inv)
	if s := VerifyRPM(inv, ring, now); s[0].Signed {
		t.Errorf("tampered header verifies: %+v", s)
	}
}
