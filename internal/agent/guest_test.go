package agent_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vouch-dev/vouch/internal/agent"
	"github.com/vouch-dev/vouch/internal/api"
	"github.com/vouch-dev/vouch/internal/efi"
	"github.com/vouch-dev/vouch/internal/fleet"
	"github.com/vouch-dev/vouch/internal/nvram"
	"github.com/vouch-dev/vouch/internal/secureboot"
	"github.com/vouch-dev/vouch/internal/target"
	"github.com/vouch-dev/vouch/internal/testfixtures"
	"github.com/vouch-dev/vouch/internal/vm"
)

// TestAgentInUEFIGuest boots the cloud fixture under OVMF with Secure Boot on,
// once with Debian's Microsoft variable store (2011 CAs only) and once with it
// set to both CAs, runs the agent inside the guest against a vouch server on
// the host's loopback (QEMU's user network: 10.0.2.2), and checks that what
// the server stores for the guest equals the offline answer for the same
// image and variable store.
func TestAgentInUEFIGuest(t *testing.T) {
	testfixtures.Long(t, testfixtures.QEMU)
	for _, c := range []string{"qemu-system-x86_64", "go"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Fatalf("%s not found (scripts/deps.sh installs QEMU; make test puts go on PATH): %v", c, err)
		}
	}
	img := testfixtures.Path(t, "debian-cloud.qcow2")
	work := t.TempDir()
	bin := filepath.Join(work, "vouch")
	build := exec.Command("go", "build", "-o", bin, "./cmd/vouch")
	build.Dir = testfixtures.Repo()
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	// The binary, for the guest to fetch.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	files := &http.Server{Handler: http.FileServer(http.Dir(work))}
	go files.Serve(ln)
	defer files.Close()
	filesPort := ln.Addr().(*net.TCPAddr).Port

	s := serve(t, t.TempDir(), "127.0.0.1:0")
	port := s.url[strings.LastIndexByte(s.url, ':')+1:]
	ac, _ := api.NewClient(s.url, s.admin, "")
	ctx := context.Background()
	enroll, _ := ac.CreateToken(ctx, "enroll", "")
	reader, _ := ac.CreateToken(ctx, "reader", "")
	rc, _ := api.NewClient(s.url, reader, "")

	ms := filepath.Join(vm.OVMFDir, "OVMF_VARS_4M.ms.fd")
	tmpl, err := os.ReadFile(ms)
	if err != nil {
		t.Fatal(err)
	}
	both, err := nvram.ProfileStore(tmpl, "microsoft-both", testfixtures.Data("secureboot", "certs"))
	if err != nil {
		t.Fatal(err)
	}
	bothFile := filepath.Join(work, "OVMF_VARS_4M.both.fd")
	if err := os.WriteFile(bothFile, both, 0o644); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct{ name, vars string }{{"ms-2011", ms}, {"both", bothFile}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
			defer cancel()
			m, err := vm.Start(ctx, vm.Config{Image: img, Firmware: vm.Firmware{Boot: vm.UEFI, SecureBoot: true, Vars: tc.vars},
				Accel: "tcg", CPUs: 2, MemoryMiB: 1024, Timeout: 24 * time.Minute, WorkDir: work, CloudInit: true})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if _, err := m.WaitBoot(ctx); err != nil {
				t.Fatalf("boot: %v\n%s", err, strings.Join(m.Console().Tail(30), "\n"))
			}
			g, err := m.SSH(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			host := "guest-" + tc.name
			cmd := "set -e; cd /tmp; python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], \"vouch\")' http://10.0.2.2:" + itoa(filesPort) + "/vouch; chmod +x vouch; " +
				"sudo ./vouch agent --server http://10.0.2.2:" + port + " --enroll " + enroll + " --state /tmp/vouch-state --hostname " + host + " --once"
			res, err := g.Run(ctx, cmd)
			if err != nil || res.ExitCode != 0 {
				t.Fatalf("agent in the guest: exit %d, %v\n%s\n%s", res.ExitCode, err, res.Stdout, res.Stderr)
			}
			hs, err := rc.Hosts(ctx, fleet.Query{Hostname: host})
			if err != nil || len(hs.Hosts) != 1 {
				t.Fatalf("the guest's host: %+v %v", hs, err)
			}
			got := hs.Hosts[0]

			// Offline: the same image and the same variable store.
			tg, err := target.Open(img, target.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer tg.Close()
			st, err := efi.ReadVarStoreFile(tc.vars)
			if err != nil {
				t.Fatal(err)
			}
			fw, err := secureboot.FromVars(st.Vars())
			if err != nil {
				t.Fatal(err)
			}
			want := secureboot.AnalyzeTarget(tg, fw, secureboot.Options{}).Transition
			if got.SecureBootEnabled != want.SecureBootEnabled || got.BootsToday != want.BootsToday ||
				got.BootsWith2023OnlyShim != want.BootsWith2023OnlyShim || strings.Join(got.FirmwareTrusts, ",") != strings.Join(want.FirmwareTrusts, ",") {
				t.Errorf("server (live guest): sb %v today %v 2023-only %v trusts %v\noffline:             sb %v today %v 2023-only %v trusts %v",
					got.SecureBootEnabled, got.BootsToday, got.BootsWith2023OnlyShim, got.FirmwareTrusts,
					want.SecureBootEnabled, want.BootsToday, want.BootsWith2023OnlyShim, want.FirmwareTrusts)
			}
			// The boot chain the guest reported is the image's own.
			col, err := agent.Collect(ctx, agent.Source{Root: img, Hostname: host})
			if err != nil {
				t.Fatal(err)
			}
			_, _, chain, _ := col.Report.StateDocs()
			detail, err := rc.Host(ctx, got.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(detail), chain) {
				t.Errorf("the guest's boot chain differs from the image's (%s)", chain)
			}
			t.Logf("%s: secure boot %v, boots today %v, with a 2023-only shim %v, trusts %v", tc.name, got.SecureBootEnabled, got.BootsToday, got.BootsWith2023OnlyShim, got.FirmwareTrusts)
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
