package gate

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/vouch-dev/vouch/internal/gate/gatetest"
	"github.com/vouch-dev/vouch/internal/target"
)

func readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// targetStagesOf opens an image or directory target and finds its stages.
func targetStagesOf(t testing.TB, p string) Stages {
	t.Helper()
	tg, err := target.Open(p, target.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	var root fs.FS
	if tg.Root != nil {
		root = tg.Root
	}
	return TargetStages(tg.ESP, root, tg.Path+":")
}

// debWith builds a small .deb with dpkg-deb -Z comp.
func debWith(t testing.TB, dir, comp string, files map[string][]byte) string {
	t.Helper()
	gatetest.Need(t, "dpkg-deb", "dpkg")
	tree := filepath.Join(dir, "tree-"+comp)
	gatetest.WriteFile(t, tree, "DEBIAN/control", []byte("Package: tiny\nVersion: 1\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: tiny\n"))
	for p, b := range files {
		gatetest.WriteFile(t, tree, p, b)
	}
	deb := filepath.Join(dir, "tiny-"+comp+".deb")
	gatetest.Run(t, dir, "dpkg-deb", "--root-owner-group", "-Z", comp, "-b", tree, deb)
	return deb
}

// rpmWith builds a small rpm.
func rpmWith(t testing.TB, dir string, shim []byte, payload string) string {
	t.Helper()
	return gatetest.ShimRPM(t, dir, shim, payload)
}
