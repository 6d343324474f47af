package pkgdb

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/adler32"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/vouch-dev/vouch/internal/target"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

func dpkgQuery(t *testing.T, root string) []string {
	t.Helper()
	out, err := exec.Command("dpkg-query", "--admindir="+filepath.Join(root, "var/lib/dpkg"), "-W", "-f", "${Package}\t${Version}\t${Architecture}\n").Output()
	if err != nil {
		t.Fatalf("dpkg-query (Debian package dpkg): %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	sort.Strings(lines)
	return lines
}

func readRoot(t *testing.T, root string, opts Options) *Inventory {
	t.Helper()
	tg, err := target.Open(root, target.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.Close() })
	inv, err := Read(context.Background(), tg.Root, opts)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func lines(pkgs []Package) []string {
	var out []string
	for _, p := range pkgs {
		out = append(out, p.Name+"\t"+p.Version+"\t"+p.Architecture)
	}
	sort.Strings(out)
	return out
}

func TestDpkgQueryEquality(t *testing.T) {
	testfixtures.NeedFixtures(t)
	root := testfixtures.Path(t, "rootfs")
	inv := readRoot(t, root, Options{AllStates: true, Files: true, Licenses: true})
	got, want := lines(inv.Packages), dpkgQuery(t, root)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("vouch and dpkg-query -W differ:\nvouch %d, dpkg-query %d", len(got), len(want))
	}
	if len(inv.Issues) > 0 {
		t.Errorf("issues: %v", inv.Issues)
	}
	byName := map[string]Package{}
	for _, p := range inv.Packages {
		byName[p.Name] = p
	}
	if p := byName["libc6"]; p.Source != "glibc" || p.MultiArch != "same" || p.Key() != "libc6:amd64" || len(p.Files) == 0 {
		t.Errorf("libc6 = %+v", p)
	}
	if p := byName["bash"]; p.License == "" || !strings.Contains(p.License, "GPL-3+") {
		t.Errorf("bash licence = %q", p.License)
	}
	if p := byName["openssh-server"]; len(p.Conffiles) == 0 {
		t.Errorf("openssh-server has no conffiles")
	}
}

// TestDpkgStates: dpkg-query -W shows every state but not-installed; vouch
// matches it with AllStates, and keeps only installed and half-configured
// packages without.
func TestDpkgStates(t *testing.T) {
	testfixtures.NeedFixtures(t)
	src := testfixtures.Path(t, "rootfs")
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "var/lib/dpkg/info"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "etc-os-release"), nil, 0o644)
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(src, "etc/os-release"))
	os.WriteFile(filepath.Join(root, "etc/os-release"), b, 0o644)
	status, err := os.ReadFile(filepath.Join(src, "var/lib/dpkg/status"))
	if err != nil {
		t.Fatal(err)
	}
	extra := `
Package: oldconf
Status: deinstall ok config-files
Priority: optional
Architecture: amd64
Version: 1.0-1
Conffiles:
 /etc/oldconf.conf 0123456789abcdef0123456789abcdef

Package: halfway
Status: install reinstreq half-installed
Architecture: all
Version: 2:3.4~rc1-1

Package: unpackedonly
Status: install ok unpacked
Architecture: amd64
Version: 0.9

Package: gone
Status: purge ok not-installed
Architecture: amd64

Package: configuring
Status: install ok half-configured
Architecture: amd64
Version: 1.2+dfsg-3
`
	if err := os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), append(append(status, '\n'), extra...), 0o644); err != nil {
		t.Fatal(err)
	}
	inv := readRoot(t, root, Options{AllStates: true})
	if got, want := lines(inv.Packages), dpkgQuery(t, root); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("with all states, vouch and dpkg-query differ\n%v\n%v", got[len(got)-5:], want[len(want)-5:])
	}
	inv = readRoot(t, root, Options{})
	for _, p := range inv.Packages {
		if p.Name == "oldconf" || p.Name == "halfway" || p.Name == "unpackedonly" || p.Name == "gone" {
			t.Errorf("%s (%s) kept without AllStates", p.Name, p.Status)
		}
	}
}

func TestCorruptStanza(t *testing.T) {
	status := `Package: good1
Status: install ok installed
Version: 1
Architecture: amd64

Package: broken
Status: install ok installed
this line has no colon
Version: 2

 continuation without a field
Package: broken2

Package: good2
Status: install ok installed
Version: 3
Architecture: all
Source: src2 (3-0)

Status: install ok installed
Version: 4

Package: badstatus
Status: install ok
Version: 5
`
	pkgs, issues := ParseDpkgStatus([]byte(status), "var/lib/dpkg/status", false)
	var names []string
	for _, p := range pkgs {
		names = append(names, p.Name)
	}
	if strings.Join(names, ",") != "good1,good2" {
		t.Errorf("packages = %v", names)
	}
	wantLines := map[int]bool{8: true, 11: true, 20: true, 23: true}
	for _, is := range issues {
		if is.Path != "var/lib/dpkg/status" || !wantLines[is.Line] {
			t.Errorf("unexpected issue %v", is)
		}
		delete(wantLines, is.Line)
	}
	if len(wantLines) > 0 {
		t.Errorf("no issue for lines %v (got %v)", wantLines, issues)
	}
	if pkgs[1].Source != "src2" || pkgs[1].SourceVersion != "3-0" {
		t.Errorf("source = %q %q", pkgs[1].Source, pkgs[1].SourceVersion)
	}
}

func TestDistrolessStatusD(t *testing.T) {
	fsys := fstest.MapFS{
		"etc/os-release":                        {Data: []byte("ID=debian\nVERSION_ID=12\n")},
		"var/lib/dpkg/status.d/base-files":      {Data: []byte("Package: base-files\nVersion: 12.4+deb12u5\nArchitecture: amd64\n")},
		"var/lib/dpkg/status.d/libssl3":         {Data: []byte("Package: libssl3\nSource: openssl\nVersion: 3.0.11-1~deb12u2\nArchitecture: amd64\n")},
		"var/lib/dpkg/status.d/libssl3.md5sums": {Data: []byte("d41d8cd98f00b204e9800998ecf8427e  usr/lib/x86_64-linux-gnu/libssl.so.3\n")},
		"var/lib/dpkg/status.d/junk":            {Data: []byte("not a stanza\n")},
	}
	inv, err := Read(context.Background(), fsys, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := lines(inv.Packages); len(got) != 2 || !strings.HasPrefix(got[1], "libssl3\t3.0.11-1~deb12u2") {
		t.Errorf("packages = %v", got)
	}
	if len(inv.Issues) != 1 || inv.Issues[0].Path != "var/lib/dpkg/status.d/junk" {
		t.Errorf("issues = %v", inv.Issues)
	}
	info := OpenDpkgInfo(fsys)
	for _, p := range inv.Packages {
		if p.Name != "libssl3" {
			continue
		}
		sums, _, ok, issues := info.MD5Sums(&p)
		if !ok || len(sums) != 1 || len(issues) != 0 {
			t.Errorf("md5sums = %v %v %v", sums, ok, issues)
		}
	}
}

func TestMD5SumsMalformed(t *testing.T) {
	sums, issues := ParseMD5Sums([]byte("d41d8cd98f00b204e9800998ecf8427e  ./usr/bin/a\nnothex  usr/bin/b\nd41d8cd98f00b204e9800998ecf8427e\n\nd41d8cd98f00b204e9800998ecf8427e  usr/bin/with space\n"), "x.md5sums")
	if len(sums) != 2 || sums[0].Path != "usr/bin/a" || sums[1].Path != "usr/bin/with space" {
		t.Errorf("sums = %v", sums)
	}
	if len(issues) != 2 || issues[0].Line != 2 || issues[1].Line != 3 {
		t.Errorf("issues = %v", issues)
	}
}

func TestAPKInstalled(t *testing.T) {
	// The shape of Alpine 3.19's lib/apk/db/installed.
	db := `C:Q1Yx2PGWp7rVZ5n7B1hxP0KUy+zB0=
P:musl
V:1.2.4_git20230717-r4
A:x86_64
S:407278
I:655360
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT
o:musl
m:Timo Teräs <timo.teras@iki.fi>
t:1701270424
c:0c35a5e2a1d8c7e1c0f67d7e3e8d1df0f9e5b8a1
F:lib
R:ld-musl-x86_64.so.1
a:0:0:755
Z:Q1AhL0rdNp5vsqnh9xAGMyxd7Y3fM=
R:libc.musl-x86_64.so.1
a:0:0:777
Z:Q1yFQLD+hJbgLWmjxjjlVeMgojyDQ=

P:busybox-binsh
V:1.36.1-r15
A:x86_64
L:GPL-2.0-only
o:busybox
F:bin
R:sh
Z:Q1pcfTfDNEbNKQc2s1tia7da05M8Q=

P:broken
V:1
bad line
Z:Q1pcfTfDNEbNKQc2s1tia7da05M8Q=
`
	pkgs, issues := ParseAPKInstalled([]byte(db), APKInstalled)
	if len(pkgs) != 2 {
		t.Fatalf("packages = %+v", pkgs)
	}
	m := pkgs[0]
	if m.Name != "musl" || m.Version != "1.2.4_git20230717-r4" || m.License != "MIT" || m.Source != "musl" || len(m.Files) != 2 {
		t.Errorf("musl = %+v", m)
	}
	if m.Files[0].Path != "/lib/ld-musl-x86_64.so.1" || len(m.Files[0].Digest) != 40 {
		t.Errorf("file = %+v", m.Files[0])
	}
	if pkgs[1].Source != "busybox" {
		t.Errorf("busybox-binsh source = %q", pkgs[1].Source)
	}
	if len(issues) != 1 || issues[0].Line != 33 {
		t.Errorf("issues = %v", issues)
	}
}

// rpmPeer lists an rpm database with rpm itself.
func rpmPeer(t *testing.T, dbpath string, backend string) []string {
	t.Helper()
	if _, err := exec.LookPath("rpm"); err != nil {
		t.Fatal("rpm is not installed: apt-get install rpm")
	}
	args := []string{"--dbpath", dbpath, "-qa", "--qf", "%{NAME}\t%|EPOCH?{%{EPOCH}:}|%{VERSION}-%{RELEASE}\t%{ARCH}\t%{LICENSE}\n"}
	if backend != "" {
		args = append([]string{"--define", "_db_backend " + backend}, args...)
	}
	out, err := exec.Command("rpm", args...).Output()
	if err != nil {
		t.Fatalf("rpm -qa: %v", err)
	}
	l := strings.Split(strings.TrimSpace(string(out)), "\n")
	sort.Strings(l)
	return l
}

func rpmLines(pkgs []Package) []string {
	var out []string
	for _, p := range pkgs {
		arch := p.Architecture
		if arch == "" {
			arch = "(none)"
		}
		lic := p.License
		if lic == "" {
			lic = "(none)"
		}
		out = append(out, p.Name+"\t"+p.Version+"\t"+arch+"\t"+lic)
	}
	sort.Strings(out)
	return out
}

// rpmdbModule is go-rpmdb's module (MIT licence), fetched from the Go module
// proxy at test time for its test data: real CentOS rpm databases.
const rpmdbModule = "github.com/knqyf263/go-rpmdb@v0.0.0-20210911072402-73bd0ce46c49"

// centosPackages is a real CentOS 7 Berkeley DB rpm database (go-rpmdb's
// test data; `go mod download` fetches it).
func centosPackages(t *testing.T) string {
	t.Helper()
	testfixtures.Long(t, testfixtures.Network)
	p, err := centosPackagesPath()
	if err != nil {
		t.Fatalf("go mod download %s: %v", rpmdbModule, err)
	}
	return p
}

func centosPackagesPath() (string, error) {
	out, err := exec.Command("go", "mod", "download", "-json", rpmdbModule).Output()
	if err != nil {
		return "", err
	}
	var m struct{ Dir string }
	if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
		return "", fmt.Errorf("no module directory in %q", out)
	}
	return filepath.Join(m.Dir, "pkg", "testdata", "centos7-plain", "Packages"), nil
}

func rpmRoot(files map[string][]byte) fstest.MapFS {
	fsys := fstest.MapFS{"etc/os-release": {Data: []byte("ID=centos\nVERSION_ID=7\n")}}
	for k, v := range files {
		fsys[k] = &fstest.MapFile{Data: v}
	}
	return fsys
}

func TestRPMBerkeleyDBAgainstRPM(t *testing.T) {
	testfixtures.Long(t, testfixtures.Peers)
	p := centosPackages(t)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := Read(context.Background(), rpmRoot(map[string][]byte{"var/lib/rpm/Packages": b}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, want := rpmLines(inv.Packages), rpmPeer(t, filepath.Dir(p), "bdb_ro")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("vouch and rpm -qa differ: %d vs %d packages\n%v\n%v", len(got), len(want), got[:3], want[:3])
	}
	if len(inv.Issues) > 0 {
		t.Errorf("issues: %v", inv.Issues)
	}
	for _, p := range inv.Packages {
		if p.Name == "bash" {
			if p.Source != "bash" || len(p.Files) == 0 || p.Files[0].Algo == 0 {
				t.Errorf("bash = %+v", p.Files[:1])
			}
		}
	}
}

func TestRPMSQLiteAgainstRPM(t *testing.T) {
	testfixtures.Long(t, testfixtures.Peers)
	src := centosPackages(t)
	dir := t.TempDir()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Packages"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	// rpm converts the real CentOS headers into an rpmdb.sqlite, as RHEL 9 has.
	if out, err := exec.Command("rpmdb", "--dbpath", dir, "--define", "_db_backend sqlite", "--rebuilddb").CombinedOutput(); err != nil {
		t.Fatalf("rpmdb --rebuilddb (Debian package rpm): %v\n%s", err, out)
	}
	db, err := os.ReadFile(filepath.Join(dir, "rpmdb.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	wal, _ := os.ReadFile(filepath.Join(dir, "rpmdb.sqlite-wal"))
	files := map[string][]byte{"usr/lib/sysimage/rpm/rpmdb.sqlite": db}
	if len(wal) > 0 {
		files["usr/lib/sysimage/rpm/rpmdb.sqlite-wal"] = wal
	}
	inv, err := Read(context.Background(), rpmRoot(files), Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, want := rpmLines(inv.Packages), rpmPeer(t, dir, "sqlite")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("vouch and rpm -qa differ: %d vs %d", len(got), len(want))
	}
	if len(inv.Issues) > 0 {
		t.Errorf("issues: %v", inv.Issues)
	}
	// Install one more package record through rpm so the WAL path is exercised
	// when rpm leaves frames behind, and an unknown format is reported.
	inv, _ = Read(context.Background(), rpmRoot(map[string][]byte{"var/lib/rpm/Packages": []byte("this is not a database at all, not even close")}), Options{})
	if inv == nil || len(inv.Issues) != 1 || !strings.Contains(inv.Issues[0].Reason, "unknown rpm database format") {
		t.Errorf("unknown format: %+v", inv)
	}
}

// ndbFile builds an NDB Packages.db (rpm lib/backend/ndb/rpmpkg.c layout) from
// header blobs.
func ndbFile(blobs [][]byte) []byte {
	le := binary.LittleEndian
	out := make([]byte, 4096)
	copy(out, "RpmP")
	le.PutUint32(out[8:], 1)  // generation
	le.PutUint32(out[12:], 1) // slot pages
	le.PutUint32(out[16:], uint32(len(blobs)+1))
	for off := 32; off < 4096; off += 16 {
		le.PutUint32(out[off:], ndbSlotMagic)
	}
	for i, b := range blobs {
		blkoff := len(out) / 16
		n := 16 + len(b) + 12
		blkcnt := (n + 15) / 16
		blob := make([]byte, blkcnt*16)
		le.PutUint32(blob[0:], ndbBlobMagic)
		le.PutUint32(blob[4:], uint32(i+1))
		le.PutUint32(blob[8:], 1)
		le.PutUint32(blob[12:], uint32(len(b)))
		copy(blob[16:], b)
		tail := blob[len(blob)-12:]
		le.PutUint32(tail[0:], adler32.Checksum(blob[:len(blob)-12]))
		le.PutUint32(tail[4:], uint32(len(b)))
		le.PutUint32(tail[8:], ndbTailMagic)
		slot := out[32+16*i:]
		le.PutUint32(slot[4:], uint32(i+1))
		le.PutUint32(slot[8:], uint32(blkoff))
		le.PutUint32(slot[12:], uint32(blkcnt))
		out = append(out, blob...)
	}
	return out
}

func TestRPMNDB(t *testing.T) {
	b, err := os.ReadFile(centosPackages(t))
	if err != nil {
		t.Fatal(err)
	}
	blobs, issues := BDBBlobs(b, "Packages")
	if len(issues) > 0 || len(blobs) < 100 {
		t.Fatalf("%d blobs, issues %v", len(blobs), issues)
	}
	var raw [][]byte
	for _, bl := range blobs {
		raw = append(raw, bl.Data)
	}
	ndb := ndbFile(raw)
	inv, err := Read(context.Background(), rpmRoot(map[string][]byte{"var/lib/rpm/Packages.db": ndb}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Packages) != len(blobs) || len(inv.Issues) > 0 {
		t.Errorf("NDB: %d packages of %d, issues %v", len(inv.Packages), len(blobs), inv.Issues)
	}
	// A corrupt blob is reported with its record; the others are read.
	bad := append([]byte(nil), ndb...)
	slot := bad[32+16*3:]
	blkoff := binary.LittleEndian.Uint32(slot[8:])
	bad[blkoff*16+40] ^= 0xff
	inv, err = Read(context.Background(), rpmRoot(map[string][]byte{"var/lib/rpm/Packages.db": bad}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Packages) != len(blobs)-1 || len(inv.Issues) != 1 || inv.Issues[0].Record != 4 || !strings.Contains(inv.Issues[0].Reason, "adler32") {
		t.Errorf("corrupt NDB: %d packages, issues %v", len(inv.Packages), inv.Issues)
	}
}

func TestRPMHeaderBounds(t *testing.T) {
	b, err := os.ReadFile(centosPackages(t))
	if err != nil {
		t.Fatal(err)
	}
	blobs, _ := BDBBlobs(b, "Packages")
	h := blobs[0].Data
	for _, tc := range []struct {
		name string
		mod  func([]byte) []byte
	}{
		{"truncated", func(b []byte) []byte { return b[:len(b)/2] }},
		{"huge il", func(b []byte) []byte { binary.BigEndian.PutUint32(b[0:], 0x7fffffff); return b }},
		{"huge dl", func(b []byte) []byte { binary.BigEndian.PutUint32(b[4:], 0x7fffffff); return b }},
		{"offset past data", func(b []byte) []byte { binary.BigEndian.PutUint32(b[8+16+8:], 0x7ffffff0); return b }},
		{"empty", func([]byte) []byte { return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseHeader(tc.mod(append([]byte(nil), h...))); err == nil {
				t.Error("no error")
			}
		})
	}
	hd, err := ParseHeader(h)
	if err != nil || hd.Immutable == nil {
		t.Fatalf("real header: %v", err)
	}
	p, err := PackageFromHeader(hd, "x")
	if err != nil || p.Name == "" || p.Version == "" {
		t.Fatalf("%+v: %v", p, err)
	}
}

// TestReadDpkg: ReadDpkg reads dpkg's database alone; a root with only an apk
// database has none.
func TestReadDpkg(t *testing.T) {
	apk := fstest.MapFS{"lib/apk/db/installed": {Data: []byte("P:musl\nV:1.2.4-r4\nA:x86_64\n\n")}}
	if _, err := ReadDpkg(context.Background(), apk, Options{}); !errors.Is(err, ErrNoDatabase) {
		t.Errorf("apk root: err = %v, want ErrNoDatabase", err)
	}
	apk["var/lib/dpkg/status"] = &fstest.MapFile{Data: []byte("Package: telnet\nStatus: deinstall ok config-files\nVersion: 1\n\n")}
	inv, err := ReadDpkg(context.Background(), apk, Options{AllStates: true})
	if err != nil || len(inv.Packages) != 1 || inv.Packages[0].Name != "telnet" || inv.Packages[0].Status != "config-files" {
		t.Errorf("packages = %+v, %v", inv, err)
	}
}
