package measure_test

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vouch-dev/vouch/internal/authenticode"
	"github.com/vouch-dev/vouch/internal/measure"
	"github.com/vouch-dev/vouch/internal/secureboot"
	"github.com/vouch-dev/vouch/internal/testfixtures"
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
