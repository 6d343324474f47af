package luks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vouch-dev/vouch/internal/luks"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// startSwtpm runs Debian's swtpm as a TPM 2.0 on a loopback TCP port (the
// "swtpm" TCTI of tpm2-tss speaks to it) and returns the TCTI string.
func startSwtpm(t *testing.T, dir string) string {
	t.Helper()
	need(t, "swtpm", "swtpm")
	port := freePort(t)
	cmd := exec.Command("swtpm", "socket", "--tpm2", "--tpmstate", "dir="+dir,
		"--server", fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", port),
		"--ctrl", fmt.Sprintf("type=tcp,port=%d,bindaddr=127.0.0.1", port+1),
		"--flags", "not-need-init,startup-clear")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("swtpm: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// Poll until swtpm listens, with a deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port+1))
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("swtpm does not listen on 127.0.0.1:%d: %v", port+1, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Sprintf("swtpm:host=127.0.0.1,port=%d", port)
}

// freePort is a port p with p and p+1 free on loopback when asked.
func freePort(t *testing.T) int {
	t.Helper()
	for i := 0; i < 50; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if l2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+1)); err == nil {
			l2.Close()
			return p
		}
	}
	t.Fatal("no two consecutive free loopback ports")
	return 0
}

// TestRealClevisAndCryptenroll binds a LUKS2 volume to a software TPM with
// the real tools, clevis luks bind (pin tpm2) and systemd-cryptenroll
// --tpm2-device, and checks the PCRs vouch reads from the header against
// what clevis luks list and the enrolment asked for.
func TestRealClevisAndCryptenroll(t *testing.T) {
	testfixtures.Long(t, testfixtures.Peers)
	need(t, "clevis", "clevis")
	need(t, "clevis-luks-bind", "clevis-luks")
	need(t, "clevis-encrypt-tpm2", "clevis-tpm2")
	need(t, "systemd-cryptenroll", "systemd")
	dir := t.TempDir()
	vol := format(t, dir)
	tcti := startSwtpm(t, filepath.Join(dir))

	// Clevis 19 (Debian 12) takes the TCTI from TPM2TOOLS_TCTI.
	sh(t, dir, []string{"TPM2TOOLS_TCTI=" + tcti}, "clevis", "luks", "bind", "-y", "-d", vol, "-k", "key", "tpm2", `{"pcr_bank":"sha256","pcr_ids":"0,7"}`)
	// systemd 252 takes "driver:conf" for --tpm2-device and the unlocking
	// passphrase from $PASSWORD.
	sh(t, dir, []string{"PASSWORD=secret"}, "systemd-cryptenroll", "--tpm2-device="+tcti, "--tpm2-pcrs=7+4", vol)

	h := read(t, vol)
	agree(t, h, vol)
	var clevisPCRs, systemdPCRs []int
	for _, tk := range h.Tokens {
		if len(tk.TPM2) != 1 || !tk.TPM2Required || tk.TPM2[0].Bank != "sha256" {
			t.Errorf("token %d: %+v", tk.ID, tk)
			continue
		}
		switch tk.Type {
		case luks.TypeClevis:
			clevisPCRs = tk.TPM2[0].PCRs
		case luks.TypeSystemdTPM2:
			systemdPCRs = tk.TPM2[0].PCRs
		}
	}
	// clevis luks list: `1: tpm2 '{"hash":"sha256",...,"pcr_ids":"0,7"}'`.
	list := sh(t, dir, nil, "clevis", "luks", "list", "-d", vol)
	_, cfg, _ := strings.Cut(strings.TrimSpace(list), "tpm2 '")
	var c struct {
		PCRs string `json:"pcr_ids"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSuffix(cfg, "'")), &c); err != nil {
		t.Fatalf("clevis luks list printed %q: %v", list, err)
	}
	if got := strings.Trim(strings.ReplaceAll(fmt.Sprint(clevisPCRs), " ", ","), "[]"); got != c.PCRs {
		t.Errorf("clevis pin PCRs: vouch %v, clevis luks list %q", clevisPCRs, c.PCRs)
	}
	if !reflect.DeepEqual(systemdPCRs, []int{4, 7}) {
		t.Errorf("systemd-tpm2 PCRs %v, want [4 7]", systemdPCRs)
	}
	if pcrs, ok := h.Sealed(); !ok || !reflect.DeepEqual(pcrs, []int{0, 4, 7}) {
		t.Errorf("Sealed() = %v %v", pcrs, ok)
	}
	t.Logf("clevis tpm2 pin: PCR %v; systemd-tpm2: PCR %v; tokens %d", clevisPCRs, systemdPCRs, len(h.Tokens))
}
