package web_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vouch-dev/vouch/internal/agent"
	"github.com/vouch-dev/vouch/internal/api"
	"github.com/vouch-dev/vouch/internal/testfixtures"
	"github.com/vouch-dev/vouch/internal/web"
)

var screenshots = flag.Bool("screenshots", false, "write the dashboard screenshots under docs/")

type server struct{ url, admin string }

func serve(t *testing.T) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *server, 1)
	done := make(chan error, 1)
	go func() {
		done <- api.Serve(ctx, api.ServeOptions{Listen: "127.0.0.1:0", DataDir: t.TempDir(), Routes: web.Register,
			Ready: func(addr, tok string) {
				b, _ := os.ReadFile(tok)
				ready <- &server{url: addr, admin: strings.TrimSpace(string(b))}
			}})
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case s := <-ready:
		return s
	case err := <-done:
		t.Fatal(err)
	}
	return nil
}

func root(t *testing.T, vendor, product, release string) string {
	t.Helper()
	r := t.TempDir()
	for p, s := range map[string]string{
		"etc/os-release":                "ID=debian\nVERSION_ID=" + release + "\n",
		"sys/class/dmi/id/sys_vendor":   vendor + "\n",
		"sys/class/dmi/id/product_name": product + "\n",
		"boot/efi/EFI/BOOT/notes.txt":   "x",
	} {
		os.MkdirAll(filepath.Join(r, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(r, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// populate reports a small fleet: the AMI dumps on a few platforms, and the
// fixture image (boot chain and kernels) when fixtures are at hand.
func populate(t *testing.T, s *server) (reader string) {
	t.Helper()
	ctx := context.Background()
	ac, _ := api.NewClient(s.url, s.admin, "")
	enroll, err := ac.CreateToken(ctx, "enroll", "")
	if err != nil {
		t.Fatal(err)
	}
	reader, _ = ac.CreateToken(ctx, "reader", "")
	hosts := []struct {
		name, vendor, product, release string
		vars                           int
	}{
		{"web-1", "QEMU", "Standard PC (Q35 + ICH9, 2009)", "12", 1},
		{"web-2", "QEMU", "Standard PC (Q35 + ICH9, 2009)", "12", 1},
		{"db-1", "Microsoft Corporation", "Virtual Machine", "12", 0},
		{"db-2", "Amazon EC2", "m6i.large", "13", 1},
	}
	for _, h := range hosts {
		src := agent.Source{Root: root(t, h.vendor, h.product, h.release), Hostname: h.name,
			EFIVars: testfixtures.Data("secureboot", fmt.Sprintf("efivars-shim-test-data-%d", h.vars))}
		if h.name == "web-1" {
			src.Root = testfixtures.Path(t, "debian.raw")
		}
		if _, err := agent.Run(ctx, agent.Options{Server: s.url, EnrollToken: enroll, StateDir: t.TempDir(), Source: src, Once: true}); err != nil {
			t.Fatal(err)
		}
	}
	return reader
}

func chromium(t *testing.T) (context.Context, func()) {
	t.Helper()
	exe, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is not installed (scripts/deps.sh installs Debian's chromium): %v", err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 3*time.Minute)
	return ctx, func() { cancelT(); cancelC(); cancelA() }
}

// TestDashboard drives the dashboard in headless Chromium: sign in,
// readiness, a host list behind a count, a host page, a what-if upload and
// the canary set.
func TestDashboard(t *testing.T) {
	testfixtures.Long(t, testfixtures.Services, testfixtures.Fixtures)
	s := serve(t)
	reader := populate(t, s)
	ctx, done := chromium(t)
	defer done()

	do := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatal(err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("%s: %v", sel, err)
		}
		return strings.TrimSpace(s)
	}
	shot := func(name string) {
		t.Helper()
		if !*screenshots {
			return
		}
		b, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(testfixtures.Repo(), "docs", "dashboard-"+name+".png"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A wrong token is refused.
	do(chromedp.Navigate(s.url+"/"), chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), "vch_wrong"), chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.ID("error")))
	if e := text("#error"); !strings.Contains(e, "unknown token") {
		t.Fatalf("wrong token: %q", e)
	}
	do(chromedp.SetValue(chromedp.ID("token"), reader), chromedp.Click(chromedp.ID("signin")), chromedp.WaitVisible(chromedp.ID("totals")))
	if total, only2011 := text("#total-hosts"), text("#only-2011"); total != "4" || only2011 != "4" {
		t.Fatalf("readiness cards: %s hosts, %s 2011-only", total, only2011)
	}
	shot("readiness")
	do(chromedp.Navigate(s.url+"/ui/hosts?status=secureBootOff"), chromedp.WaitVisible(chromedp.ID("hosts")))
	if c := text("#count"); !strings.HasPrefix(c, "1 host") {
		t.Fatalf("hosts behind secureBootOff: %q", c)
	}
	do(chromedp.Navigate(s.url+"/ui/hosts?q=web-1"), chromedp.WaitVisible(chromedp.ID("hosts")),
		chromedp.Click(chromedp.CSS("#hosts a")), chromedp.WaitVisible(chromedp.ID("hostname")))
	if h, v := text("#hostname"), text("#verdict"); h != "web-1" || !strings.Contains(v, "microsoft-uefi-ca-2011") {
		t.Fatalf("host page: %q %q", h, v)
	}
	if m := text("main"); !strings.Contains(m, "EFI/debian/shimx64.efi") || !strings.Contains(m, "History") {
		t.Fatalf("host page lacks the boot path stages or history:\n%s", m)
	}
	shot("host")
	do(chromedp.Navigate(s.url+"/ui/whatif"), chromedp.WaitVisible(chromedp.ID("whatif-form")),
		chromedp.SetUploadFiles(chromedp.ID("dbx"), []string{testfixtures.Data("secureboot", "dbx", "DBXUpdate-amd64.bin")}),
		chromedp.Click(chromedp.ID("run")), chromedp.WaitVisible(chromedp.ID("result")))
	if r := text("#result"); r != "0 host(s) would stop booting" {
		t.Fatalf("what-if: %q", r)
	}
	shot("whatif")
	do(chromedp.Navigate(s.url+"/ui/canaries?dims=platform,release&pairwise=1"), chromedp.WaitVisible(chromedp.ID("canary-summary")))
	if c := text("#canary-summary"); !strings.Contains(c, "lower bound 4") {
		t.Fatalf("canaries: %q", c)
	}
	shot("canaries")
	// Nothing is loaded from elsewhere: no absolute URLs in the pages.
	c := &http.Client{}
	for _, p := range []string{"/", "/ui/hosts", "/ui/whatif", "/ui/canaries"} {
		req, _ := http.NewRequest("GET", s.url+p, nil)
		req.AddCookie(&http.Cookie{Name: "vouch_token", Value: reader})
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if m := regexp.MustCompile(`(?i)(src|href|action)\s*=\s*"(https?:)?//`).Find(b); m != nil || resp.StatusCode != 200 {
			t.Errorf("%s: status %d, external reference %q", p, resp.StatusCode, m)
		}
	}
}
