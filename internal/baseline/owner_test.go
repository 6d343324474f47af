package baseline

import (
	"io/fs"
	"testing"
	"testing/fstest"

	"github.com/vouch-dev/vouch/internal/finding"
	"github.com/vouch-dev/vouch/internal/rootfs"
)

// dirOwned is a directory whose backend reports uid and gid in rootfs.Meta;
// dirUnknown is one whose backend reports no metadata at all.
func dirOwned(uid, gid uint32, perm fs.FileMode) *fstest.MapFile {
	return &fstest.MapFile{Mode: fs.ModeDir | perm, Sys: &rootfs.Meta{Mode: fs.ModeDir | perm, UID: uid, GID: gid}}
}

func dirUnknown(perm fs.FileMode) *fstest.MapFile { return &fstest.MapFile{Mode: fs.ModeDir | perm} }

// TestOwnerUnknown: an owner the file system reader cannot give is an error
// naming the file in every owner rule, root-path and home-dirs included (they
// used to skip the owner test and could pass); owners from rootfs.Meta count.
func TestOwnerUnknown(t *testing.T) {
	passwd := file("root:x:0:0:root:/root:/bin/bash\nalice:x:70000:70000::/home/alice:/bin/bash\n")
	shells := file("/bin/bash\n")
	runCases(t, []primCase{
		{name: "root-path: owner unknown", rule: "baseline.root-path", want: finding.Error, substr: "cannot read the owner of /usr/bin",
			files: fstest.MapFS{"usr/bin": dirUnknown(0o755)}},
		{name: "root-path: owned by root", rule: "baseline.root-path", want: finding.Pass,
			files: fstest.MapFS{"usr/bin": dirOwned(0, 0, 0o755)}},
		{name: "root-path: owned by a user", rule: "baseline.root-path", want: finding.Fail, substr: "/usr/bin is owned by uid 70000",
			files: fstest.MapFS{"usr/bin": dirOwned(70000, 0, 0o755)}},
		{name: "home-dirs: owner unknown", rule: "baseline.home-dirs", want: finding.Error, substr: "cannot read the owner of /home/alice",
			files: fstest.MapFS{"etc/passwd": passwd, "etc/shells": shells, "root": dirOwned(0, 0, 0o700), "home/alice": dirUnknown(0o750)}},
		{name: "home-dirs: 32-bit uid owns it", rule: "baseline.home-dirs", want: finding.Pass,
			files: fstest.MapFS{"etc/passwd": passwd, "etc/shells": shells, "root": dirOwned(0, 0, 0o700), "home/alice": dirOwned(70000, 70000, 0o750)}},
		{name: "home-dirs: low 16 bits only", rule: "baseline.home-dirs", want: finding.Fail, substr: "owned by uid 4464",
			files: fstest.MapFS{"etc/passwd": passwd, "etc/shells": shells, "root": dirOwned(0, 0, 0o700), "home/alice": dirOwned(70000&0xffff, 0, 0o750)}},
		{name: "perm-passwd: owner unknown", rule: "baseline.perm-passwd", want: finding.Error, substr: "cannot read the owner of /etc/passwd",
			files: fstest.MapFS{"etc/passwd": &fstest.MapFile{Data: []byte("root:x:0:0::/root:/bin/bash\n"), Mode: 0o644}}},
		{name: "unowned-files: owner unknown", rule: "baseline.unowned-files", want: finding.Error, substr: "/srv/x",
			files: fstest.MapFS{"etc/passwd": passwd, "etc/group": file("root:x:0:\n"), "srv/x": &fstest.MapFile{Mode: 0o644}}},
		{name: "unowned-files: uid without passwd entry", rule: "baseline.unowned-files", want: finding.Fail, substr: "/srv/x 4242:0",
			files: fstest.MapFS{"etc": dirOwned(0, 0, 0o755), "srv": dirOwned(0, 0, 0o755), "etc/os-release": file(debianOS),
				"etc/passwd": passwd, "etc/group": file("root:x:0:\n"), "srv/x": owned("", 0o644, 4242, 0)}},
	})
}
