package measure_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vouch-dev/vouch/internal/authenticode"
	"github.com/vouch-dev/vouch/internal/gate"
	"github.com/vouch-dev/vouch/internal/measure"
	"github.com/vouch-dev/vouch/internal/secureboot"
	"github.com/vouch-dev/vouch/internal/testfixtures"
	"github.com/vouch-dev/vouch/internal/vm"
)

// latestSbatLevel is the newest payload of shim's SbatLevel_Variable.txt.
func latestSbatLevel(t *testing.T) []byte {
	t.Helper()
	u, err := secureboot.ParseSBATUpdateArg(testfixtures.Data("secureboot", "SbatLevel_Variable.txt") + "#latest")
	if err != nil {
		t.Fatal(err)
	}
	return []byte(u.Payload)
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	return s
}

// peerEventlog compares vouch's parse and replay with tpm2_eventlog's on the
// same log: the number of events and every PCR it prints.
func peerEventlog(t *testing.T, dir string, got measured) {
	t.Helper()
	path := filepath.Join(dir, "peer.log")
	if err := os.WriteFile(path, got.raw, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("tpm2_eventlog", path).Output()
	if err != nil {
		t.Fatalf("tpm2_eventlog: %v", err)
	}
	events, pcrs := parseEventlogOutput(t, out)
	if events != len(got.log.Events)+1 {
		t.Errorf("tpm2_eventlog counts %d events (with the Spec ID event), vouch %d+1", events, len(got.log.Events))
	}
	replay := got.log.Replay()
	n := 0
	for bk, vals := range pcrs {
		for i, d := range vals {
			n++
			if !bytes.Equal(replay[bk][i], d) {
				t.Errorf("tpm2_eventlog replays PCR %d (%s) to %x, vouch to %s", i, bk, d, replay[bk][i])
			}
		}
	}
	if n == 0 {
		t.Errorf("tpm2_eventlog printed no PCRs:\n%s", out)
	}
	t.Logf("tpm2_eventlog agrees: %d events, %d PCR values", events, n)
}

// parseEventlogOutput reads tpm2_eventlog's YAML: "- EventNum: N" lines and
// the "pcrs:" section ("  sha256:" then "    7  : 0xHEX").
func parseEventlogOutput(t *testing.T, out []byte) (int, measure.PCRs) {
	t.Helper()
	events := 0
	pcrs := measure.PCRs{}
	var bank measure.Bank
	inPCRs := false
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		trim := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trim, "- EventNum:"):
			events++
		case line == "pcrs:":
			inPCRs = true
		case inPCRs && strings.HasSuffix(trim, ":") && !strings.Contains(strings.TrimSuffix(trim, ":"), ":"):
			bank = measure.Bank(strings.TrimSuffix(trim, ":"))
			pcrs[bank] = map[int]measure.Digest{}
		case inPCRs && bank != "" && strings.Contains(trim, ":"):
			k, v, _ := strings.Cut(trim, ":")
			i, err := strconv.Atoi(strings.TrimSpace(k))
			if err != nil {
				continue
			}
			d, err := hex.DecodeString(strings.TrimPrefix(strings.TrimSpace(v), "0x"))
			if err != nil {
				t.Fatalf("tpm2_eventlog: %q", line)
			}
			pcrs[bank][i] = d
		}
	}
	return events, pcrs
}

// checkExplain checks PCR 7 and PCR 4 of the settled boot: Secure Boot on,
// shim authorised by the 2011 CA (signature 1 of the dual-signed shim), the
// boot applications in order with shim's Authenticode digest.
func checkExplain(t *testing.T, lg *measure.Log, shim []byte) {
	t.Helper()
	x := lg.Explain()
	if x.SecureBoot == nil || !*x.SecureBoot {
		t.Errorf("SecureBoot measured as %v, want on", x.SecureBoot)
	}
	a, ok := x.ShimAuthority()
	if !ok || a.CA != "microsoft-uefi-ca-2011" {
		t.Errorf("shim authority %+v, want the Microsoft Corporation UEFI CA 2011", a)
	}
	var roles []string
	for _, app := range x.Apps {
		roles = append(roles, app.Role)
	}
	if len(x.Apps) < 3 || roles[0] != "shim" || roles[1] != "grub" || roles[2] != "kernel" {
		t.Errorf("PCR 4 applications %v, want shim, grub, kernel", roles)
	}
	img, err := authenticode.Parse(shim)
	if err != nil {
		t.Fatal(err)
	}
	if len(x.Apps) > 0 && !bytes.Equal(x.Apps[0].Digest[measure.SHA256], img.Digest(measure.SHA256.Hash())) {
		t.Errorf("PCR 4's first application is not Debian's shim (digest %s)", x.Apps[0].Digest[measure.SHA256])
	}
	var auths []string
	for _, a := range x.Authorities {
		auths = append(auths, a.By+":"+a.Variable)
	}
	t.Logf("PCR 7 authorities: %v; PCR 4: %v", auths, roles)
}

// newKernel is Debian's signed kernel one ABI older than the fixtures'
// (scripts/build-kernel-fixture.sh, part of make fixtures: the package, and
// the files dpkg -i would install, with an initramfs made natively).
type newKernel struct {
	kver string              // uname -r
	dir  string              // the fixture, laid out like the root
	img  *authenticode.Image // the kernel as read from the package by the gate
}

// prevKernel reads the fixture, and the kernel image from the package with
// the gate's package reader, as vouch measure predict --kernel PKG does.
func prevKernel(t *testing.T) newKernel {
	t.Helper()
	dir := testfixtures.Path(t, "prev-kernel")
	name, err := os.ReadFile(filepath.Join(dir, "package"))
	if err != nil {
		t.Fatal(err)
	}
	deb := filepath.Join(testfixtures.Repo(), ".cache", "debs", "prev-kernel", strings.TrimSpace(string(name)))
	p, err := gate.ReadPackageFile(deb, "", gate.ReadOptions{Kernels: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range p.EFI {
		if f.Role == gate.RoleKernel && f.Signed {
			return newKernel{kver: strings.TrimPrefix(path.Base(f.Path), "vmlinuz-"), dir: dir, img: f.Image()}
		}
	}
	t.Fatalf("%s installs no signed kernel image", deb)
	return newKernel{}
}

// peerKernelDigest checks the kernel's SHA-256 Authenticode digest, which
// shim measures into PCR 4, against pesign's on the file the guest gets.
func peerKernelDigest(t *testing.T, k newKernel) {
	t.Helper()
	out, err := exec.Command("pesign", "-h", "-d", "sha256", "-i", filepath.Join(k.dir, "boot", "vmlinuz-"+k.kver)).Output()
	if err != nil {
		t.Fatalf("pesign -h: %v", err)
	}
	want := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "hash:"))
	if got := hex.EncodeToString(k.img.Digest(measure.SHA256.Hash())); got != want {
		t.Errorf("the new kernel's Authenticode digest: vouch %s, pesign %s", got, want)
	}
}

// installKernel puts the new kernel into the running guest as dpkg -i would
// have left it (dpkg itself under software emulation took 25 minutes): the
// kernel image and initramfs under /boot, and of its modules those the
// running kernel has loaded (lsmod) with what they depend on, then depmod;
// then it points the ESP's grub.cfg (the fixture's, which names the kernel
// by version) at it.
func installKernel(t *testing.T, ctx context.Context, m *vm.Machine, k newKernel) {
	t.Helper()
	t0 := time.Now()
	loaded := strings.Fields(run(t, ctx, m, "lsmod | awk 'NR > 1 {print $1}'"))
	mods := filepath.Join("lib", "modules", k.kver)
	files := []string{"boot/vmlinuz-" + k.kver, "boot/initrd.img-" + k.kver, "boot/config-" + k.kver, "boot/System.map-" + k.kver,
		mods + "/modules.order", mods + "/modules.builtin", mods + "/modules.builtin.modinfo"}
	closure, err := moduleClosure(filepath.Join(k.dir, mods, "modules.dep"), loaded)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range closure {
		files = append(files, mods+"/"+f)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(k.dir, f))
		if err != nil {
			t.Fatal(err)
		}
		// Files only, under usr/lib: a directory entry for lib/ would
		// replace the merged-/usr symlink.
		name := strings.Replace(f, "lib/modules/", "usr/lib/modules/", 1)
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: time.Now(), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(b)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	upload(t, ctx, m, "/tmp/kernel.tar", buf.Bytes())
	// The ESP is mounted umask=0077: everything runs as root.
	run(t, ctx, m, "sudo sh -c 'tar -x --no-same-owner -C / -f /tmp/kernel.tar && depmod -a "+k.kver+" && "+
		"{ findmnt /boot/efi >/dev/null || mount /dev/vda1 /boot/efi; } && "+
		"for f in /boot/efi/EFI/debian/grub.cfg /boot/efi/EFI/BOOT/grub.cfg; do [ ! -f $f ] || sed -i \"s/[0-9.]*-[0-9]*-amd64/"+k.kver+"/g\" $f; done; "+
		"grep -q "+k.kver+" /boot/efi/EFI/debian/grub.cfg && sync'")
	t.Logf("new kernel %s: %d modules of %d loaded, %d MiB copied and installed in %.0f s", k.kver, len(closure), len(loaded), buf.Len()>>20, time.Since(t0).Seconds())
}

// moduleClosure is the modules.dep paths of the named modules and of all
// they depend on; a name the kernel builds in (no .ko) has none.
func moduleClosure(depFile string, names []string) ([]string, error) {
	b, err := os.ReadFile(depFile)
	if err != nil {
		return nil, err
	}
	deps := map[string][]string{} // path -> dependency paths
	byName := map[string]string{} // module name -> path
	for _, line := range strings.Split(string(b), "\n") {
		mod, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		deps[mod] = strings.Fields(rest)
		base, _, _ := strings.Cut(path.Base(mod), ".ko")
		byName[strings.ReplaceAll(base, "-", "_")] = mod
	}
	seen := map[string]bool{}
	var visit func(string)
	visit = func(p string) {
		if seen[p] {
			return
		}
		seen[p] = true
		for _, d := range deps[p] {
			visit(d)
		}
	}
	for _, n := range names {
		if p, ok := byName[strings.ReplaceAll(n, "-", "_")]; ok {
			visit(p)
		}
	}
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}
