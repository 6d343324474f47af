package vm

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
	"golang.org/x/crypto/ssh"
)

// TestSeedISO writes a NoCloud seed and reads it back: volume label cidata (as
// blkid, which cloud-init's ds-identify uses, reports it), the two files under
// their real names, and a user-data whose key matches the seed's signer.
func TestSeedISO(t *testing.T) {
	sd, err := newSeed()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "seed.iso")
	if err := sd.writeISO(p); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(p)); len(ents) != 1 {
		t.Errorf("writeISO left %d entries next to the seed, want only the seed", len(ents))
	}
	b, err := file.OpenFromPath(p, true)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	st, _ := os.Stat(p)
	fsys, err := iso9660.Read(b, st.Size(), 0, 2048)
	if err != nil {
		t.Fatal(err)
	}
	if l := strings.TrimRight(fsys.Label(), " "); l != "cidata" {
		t.Errorf("label %q, want cidata", l)
	}
	meta, err := fsys.ReadFile("meta-data")
	if err != nil {
		t.Fatalf("meta-data: %v", err)
	}
	if !strings.Contains(string(meta), "instance-id: "+sd.instanceID+"\n") {
		t.Errorf("meta-data:\n%s", meta)
	}
	user, err := fsys.ReadFile("user-data")
	if err != nil {
		t.Fatalf("user-data: %v", err)
	}
	u := string(user)
	if !strings.HasPrefix(u, "#cloud-config\n") || !strings.Contains(u, "name: "+GuestUser) || !strings.Contains(u, "NOPASSWD:ALL") {
		t.Errorf("user-data:\n%s", u)
	}
	i := strings.Index(u, "ssh-ed25519 ")
	if i < 0 {
		t.Fatalf("no ed25519 key in user-data:\n%s", u)
	}
	key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(u[i:]))
	if err != nil {
		t.Fatal(err)
	}
	if string(key.Marshal()) != string(sd.signer.PublicKey().Marshal()) {
		t.Error("user-data key is not the seed's signer")
	}
	if strings.Contains(u, "PRIVATE KEY") {
		t.Error("private key material in user-data")
	}
	// Two seeds never share a key or an instance id.
	sd2, err := newSeed()
	if err != nil {
		t.Fatal(err)
	}
	if sd2.instanceID == sd.instanceID || sd2.authorized == sd.authorized {
		t.Error("seeds repeat")
	}
	needTool(t, "blkid", "util-linux")
	out, err := exec.Command("blkid", "-p", "-o", "export", p).Output()
	if err != nil {
		t.Fatalf("blkid: %v", err)
	}
	if !strings.Contains(string(out), "LABEL=cidata\n") || !strings.Contains(string(out), "TYPE=iso9660\n") {
		t.Errorf("blkid says:\n%s", out)
	}
}
