package vm

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
	"golang.org/x/crypto/ssh"
)

// GuestUser is the user the NoCloud seed creates and SSH logs in as.
const GuestUser = "vouch"

// seed is a NoCloud seed: the private half of its key never leaves the host
// process, and the instance is new on every VM so cloud-init runs its
// per-instance modules (users, ssh keys) each time.
type seed struct {
	signer     ssh.Signer
	authorized string // the authorized_keys line
	instanceID string
}

func newSeed() (*seed, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("vm: generate ssh key: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, fmt.Errorf("vm: ssh signer: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("vm: ssh public key: %w", err)
	}
	id := make([]byte, 8)
	if _, err := rand.Read(id); err != nil {
		return nil, fmt.Errorf("vm: instance id: %w", err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " vouch-ephemeral"
	return &seed{signer: signer, authorized: line, instanceID: "vouch-" + hex.EncodeToString(id)}, nil
}

// metaData is the NoCloud meta-data file (cloud-init doc: datasources/nocloud).
func (s *seed) metaData() string {
	return fmt.Sprintf("instance-id: %s\nlocal-hostname: vouch-test\n", s.instanceID)
}

// userData is the #cloud-config: one user with the ephemeral key and
// passwordless sudo (cc_users_groups), password login locked. No network-config
// is given, so cloud-init applies its fallback (DHCP on the first NIC), which is
// what the image would do in a cloud without explicit network metadata.
func (s *seed) userData() string {
	return `#cloud-config
# written by vouch (internal/vm): an ephemeral test user for this VM only
users:
  - name: ` + GuestUser + `
    gecos: vouch test runner
    shell: /bin/bash
    lock_passwd: true
    sudo: "ALL=(ALL) NOPASSWD:ALL"
    ssh_authorized_keys:
      - ` + s.authorized + `
`
}

// writeISO writes the seed as an ISO 9660 image with Rock Ridge and Joliet
// names (the file names have dashes, which plain ISO 9660 level 1 lacks) and the
// volume label "cidata" that cloud-init's ds-identify and NoCloud look for.
func (s *seed) writeISO(path string) error {
	work, err := os.MkdirTemp(filepath.Dir(path), "seed-")
	if err != nil {
		return fmt.Errorf("vm: seed: %w", err)
	}
	defer os.RemoveAll(work)
	for name, body := range map[string]string{"meta-data": s.metaData(), "user-data": s.userData()} {
		if err := os.WriteFile(filepath.Join(work, name), []byte(body), 0o600); err != nil {
			return fmt.Errorf("vm: seed: %w", err)
		}
	}
	const size = 1 << 20
	b, err := file.CreateFromPath(path, size)
	if err != nil {
		return fmt.Errorf("vm: seed: %w", err)
	}
	defer b.Close()
	fsys, err := iso9660.Create(b, size, 0, 2048, work)
	if err != nil {
		return fmt.Errorf("vm: seed: %w", err)
	}
	if err := fsys.Finalize(iso9660.FinalizeOptions{RockRidge: true, Joliet: true, VolumeIdentifier: "cidata"}); err != nil {
		return fmt.Errorf("vm: seed: write iso9660: %w", err)
	}
	if err := padVolumeIDs(path); err != nil {
		return fmt.Errorf("vm: seed: %w", err)
	}
	return nil
}

// padVolumeIDs rewrites the NUL padding go-diskfs leaves after the system and
// volume identifiers as the spaces ECMA-119 8.4.5-8.4.6 requires (UCS-2
// spaces in the Joliet descriptor, Joliet spec 5.2), so that every reader sees
// the label "cidata" and not "cidata\0\0...".
func padVolumeIDs(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	vd := make([]byte, 2048)
	for sector := int64(16); sector < 32; sector++ {
		if _, err := f.ReadAt(vd, sector*2048); err != nil {
			return fmt.Errorf("read volume descriptor %d: %w", sector, err)
		}
		if string(vd[1:6]) != "CD001" || vd[0] == 255 {
			break
		}
		if vd[0] != 1 && vd[0] != 2 {
			continue
		}
		for _, field := range [][]byte{vd[8:40], vd[40:72]} {
			if vd[0] == 1 {
				for i := len(field) - 1; i >= 0 && field[i] == 0; i-- {
					field[i] = ' '
				}
				continue
			}
			for i := len(field) - 2; i >= 0 && field[i] == 0 && field[i+1] == 0; i -= 2 {
				field[i+1] = ' '
			}
		}
		if _, err := f.WriteAt(vd, sector*2048); err != nil {
			return fmt.Errorf("write volume descriptor %d: %w", sector, err)
		}
	}
	return f.Close()
}
