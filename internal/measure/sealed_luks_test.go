package measure_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/vouch-dev/vouch/internal/check"
	"github.com/vouch-dev/vouch/internal/finding"
	"github.com/vouch-dev/vouch/internal/measure"
	"github.com/vouch-dev/vouch/internal/mscerts"
	"github.com/vouch-dev/vouch/internal/rootfs"
	"github.com/vouch-dev/vouch/internal/target"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

func cmd(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s not found: scripts/deps.sh installs it", name)
	}
	c := exec.Command(name, args...)
	c.Dir = dir
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func b64json(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

// sealedVolume is a LUKS2 volume made by Debian's cryptsetup with two
// tokens imported as the tools write them (clevis luks bind and
// systemd-cryptenroll need a TPM; internal/luks runs them against swtpm):
// systemd-tpm2 sealed to PCR 4+7, and a Clevis sss pin (t=1) of tang and
// tpm2 on PCR 7, which tang alone unlocks. It returns the file and its UUID.
func sealedVolume(t *testing.T, dir string) (string, string) {
	t.Helper()
	vol := filepath.Join(dir, "luks.img")
	os.WriteFile(filepath.Join(dir, "key"), []byte("secret"), 0o600)
	cmd(t, dir, "truncate", "-s", "20M", vol)
	cmd(t, dir, "cryptsetup", "luksFormat", "-q", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", vol, "key")
	tang := b64json(map[string]any{"clevis": map[string]any{"pin": "tang", "tang": map[string]any{"url": "http://tang.example"}}})
	tpm := b64json(map[string]any{"clevis": map[string]any{"pin": "tpm2", "tpm2": map[string]any{"pcr_bank": "sha256", "pcr_ids": "7"}}})
	for i, tok := range []any{
		map[string]any{"type": "systemd-tpm2", "keyslots": []string{"0"}, "tpm2-blob": "AA==", "tpm2-pcrs": []int{4, 7}, "tpm2-pcr-bank": "sha256", "tpm2-primary-alg": "ecc", "tpm2-policy-hash": "00", "tpm2-pin": false},
		map[string]any{"type": "clevis", "keyslots": []string{"0"}, "jwe": map[string]string{"protected": b64json(map[string]any{"clevis": map[string]any{"pin": "sss", "sss": map[string]any{"t": 1, "jwe": []string{tang + "....", tpm + "...."}}}})}},
	} {
		b, _ := json.Marshal(tok)
		f := filepath.Join(dir, fmt.Sprintf("token%d.json", i))
		os.WriteFile(f, b, 0o600)
		cmd(t, dir, "cryptsetup", "token", "import", "--json-file", f, vol)
	}
	return vol, strings.TrimSpace(cmd(t, dir, "cryptsetup", "luksUUID", vol))
}

// TestSealedLUKS merges crypttab with a volume's LUKS2 tokens and judges a
// db change predicted from the real log: the systemd-tpm2 token (PCR 4+7)
// will not unlock; the sss pin loses its TPM half but unlocks through tang;
// a crypttab tpm2-device= entry on PCR 0 whose volume was not read still
// unlocks.
func TestSealedLUKS(t *testing.T) {
	testfixtures.Long(t, testfixtures.Fixtures, testfixtures.Peers)
	dir := t.TempDir()
	vol, uuid := sealedVolume(t, dir)
	v, err := measure.ReadVolume(vol)
	if err != nil {
		t.Fatal(err)
	}
	root := fstest.MapFS{measure.CrypttabPath: &fstest.MapFile{Data: []byte("cryptroot UUID=" + uuid + " none luks,discard\nother UUID=9 none tpm2-device=auto,tpm2-pcrs=0\n")}}
	disks, err := measure.SealedFrom(root, []measure.Volume{v})
	if err != nil {
		t.Fatal(err)
	}
	if len(disks) != 3 {
		t.Fatalf("%d sealed disks, want 3: %+v", len(disks), disks)
	}
	for i, w := range []struct {
		name     string
		pcrs     []int
		source   string
		fallback bool
	}{
		{"cryptroot", []int{4, 7}, "systemd-cryptenroll's systemd-tpm2 token (LUKS2 token 0 of " + vol + ", sha256 bank)", false},
		{"cryptroot", []int{7}, "Clevis sss(t=1: tang, tpm2) pin (LUKS2 token 1 of " + vol + ", sha256 bank)", true},
		{"other", []int{0}, "", false},
	} {
		d := disks[i]
		if d.Name != w.name || !reflect.DeepEqual(d.PCRs, w.pcrs) || d.Source != w.source || (d.Fallback != "") != w.fallback {
			t.Errorf("disk %d: %+v, want %+v", i, d, w)
		}
	}

	ca2023, err := mscerts.Read("microsoft-uefi-ca-2023")
	if err != nil {
		t.Fatal(err)
	}
	p, err := measure.Predict(realLog(t), measure.Change{DBAdd: []*x509.Certificate{ca2023}}, measure.Installed{})
	if err != nil {
		t.Fatal(err)
	}
	vs := measure.JudgeSealed(disks, p)
	if vs[0].Unlocks || !strings.Contains(vs[0].Verdict, "will not unlock from the TPM: sealed to PCR 4+7 (systemd-cryptenroll's systemd-tpm2 token") {
		t.Errorf("systemd-tpm2: %+v", vs[0])
	}
	if !vs[1].Unlocks || !strings.Contains(vs[1].Verdict, "its TPM binding breaks") || !strings.Contains(vs[1].Verdict, "unlocks without the TPM") {
		t.Errorf("sss: %+v", vs[1])
	}
	if !vs[2].Unlocks {
		t.Errorf("PCR 0 only: %+v", vs[2])
	}
}

// TestSealedImage reads the LUKS2 header of an image's encrypted root
// partition: the target opens with its ESP, and the tokens say the disk is
// sealed to the TPM (no crypttab: it is inside the encrypted root).
func TestSealedImage(t *testing.T) {
	testfixtures.Long(t, testfixtures.Peers)
	dir := t.TempDir()
	vol, uuid := sealedVolume(t, dir)
	img := filepath.Join(dir, "disk.raw")
	cmd(t, dir, "truncate", "-s", "48M", img)
	// p1: a 16 MiB ESP; p2: the rest, a Discoverable Partitions x86-64 root.
	cmd(t, dir, "sgdisk", "-n1:2048:+16M", "-t1:ef00", "-n2:0:0", "-t2:4f68bce3-e8cd-4db1-96e7-fbcaf984b709", img)
	esp := filepath.Join(dir, "esp.img")
	cmd(t, dir, "mkfs.vfat", "-C", esp, "16384")
	cmd(t, dir, "mmd", "-i", esp, "::/EFI", "::/EFI/BOOT")
	cmd(t, dir, "dd", "if="+esp, "of="+img, "bs=512", "seek=2048", "conv=notrunc", "status=none")
	start := strings.TrimSpace(cmd(t, dir, "sgdisk", "-i2", img))
	var first int64
	for _, l := range strings.Split(start, "\n") {
		if s, ok := strings.CutPrefix(l, "First sector: "); ok {
			fmt.Sscan(s, &first)
		}
	}
	cmd(t, dir, "dd", "if="+vol, "of="+img, "bs=512", fmt.Sprintf("seek=%d", first), "conv=notrunc", "status=none")

	tg, err := target.Open(img, target.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	if tg.Root != nil || tg.ESP == nil || len(tg.Image.LUKS) != 1 || tg.Image.LUKS[0].Partition != 2 || !strings.Contains(tg.Image.Note, "LUKS-encrypted") {
		t.Fatalf("target: root %v, ESP %v, LUKS %+v, note %q", tg.Root, tg.ESP, tg.Image.LUKS, tg.Image.Note)
	}
	disks, notes, err := measure.Sealed(tg)
	if err != nil || len(notes) != 0 {
		t.Fatal(err, notes)
	}
	if len(disks) != 2 || disks[0].Name != "luks-"+uuid || disks[0].Device != "partition 2" || !reflect.DeepEqual(disks[0].PCRs, []int{4, 7}) {
		t.Errorf("sealed disks of the image: %+v", disks)
	}
}

// TestSealedLive reads, on the running system, the LUKS2 header of the
// device crypttab names (a file here: crypttab may name one) and merges its
// tokens with the entry.
func TestSealedLive(t *testing.T) {
	testfixtures.Long(t, testfixtures.Peers)
	dir := t.TempDir()
	vol, _ := sealedVolume(t, dir)
	root := fstest.MapFS{measure.CrypttabPath: &fstest.MapFile{Data: []byte("data " + vol + " none luks\nmissing UUID=0000 none luks\n")}}
	disks, notes, err := measure.Sealed(&target.Target{Kind: target.KindLive, Path: "/", Root: rootfs.New(root)})
	if err != nil || len(notes) != 0 {
		t.Fatal(err, notes)
	}
	if len(disks) != 2 || disks[0].Name != "data" || disks[0].Device != vol || !reflect.DeepEqual(disks[0].PCRs, []int{4, 7}) || disks[1].Fallback == "" {
		t.Errorf("live: %+v", disks)
	}
}

// TestSealedCheckLUKS runs the sealed-pcr7 check on a live root whose
// crypttab names a volume sealed through LUKS2 tokens (the real log: shim
// authorised by the 2011 CA, so a PCR 7 change is pending): the
// systemd-tpm2 token fails; the sss pin with tang does not.
func TestSealedCheckLUKS(t *testing.T) {
	testfixtures.Long(t, testfixtures.Peers)
	dir := t.TempDir()
	vol, _ := sealedVolume(t, dir)
	lg, err := os.ReadFile("testdata/ovmf-swtpm-debian12.log")
	if err != nil {
		t.Fatal(err)
	}
	root := fstest.MapFS{
		measure.LogPath:      &fstest.MapFile{Data: lg},
		measure.CrypttabPath: &fstest.MapFile{Data: []byte("data " + vol + " none luks\n")},
	}
	env := &check.Env{Target: &target.Target{Kind: target.KindLive, Path: "/", Root: rootfs.New(root)}}
	var got []finding.Finding
	for _, f := range check.Run(context.Background(), env, measure.Checks()) {
		if f.ID == "measured-boot.sealed-pcr7" {
			got = append(got, f)
		}
	}
	if len(got) != 2 || got[0].Status != finding.Fail || !strings.Contains(got[0].Message, "systemd-tpm2 token") ||
		got[1].Status != finding.Pass || !strings.Contains(got[1].Message, "the TPM binding breaks, but its Clevis") {
		t.Errorf("sealed-pcr7: %+v", got)
	}
}
