package imagetest

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vouch-dev/vouch/internal/baseline"
	"github.com/vouch-dev/vouch/internal/testfixtures"
	"github.com/vouch-dev/vouch/internal/vm"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestAllCases(t *testing.T) {
	all := All()
	seen := map[string]bool{}
	for _, c := range all {
		if seen[c.Name] {
			t.Errorf("case %s listed twice", c.Name)
		}
		seen[c.Name] = true
		if c.Area == "" || !strings.HasPrefix(c.Name, c.Area+".") {
			t.Errorf("%s: name must start with its area %q", c.Name, c.Area)
		}
		if c.Priority < 0 || c.Priority > 5 {
			t.Errorf("%s: priority %d outside 0-5", c.Name, c.Priority)
		}
		if c.Run == nil || c.Description == "" || len(c.Tags) == 0 {
			t.Errorf("%s: needs Run, Description and tags", c.Name)
		}
		if c.Phase == PhaseOffline && c.Requires&^NeedImage != 0 {
			t.Errorf("%s: an offline case can only need the image, needs %s", c.Name, c.Requires)
		}
	}
	// The issue's list, by name.
	for _, n := range []string{"boot.multi-user", "secureboot.state", "kernel.log-clean", "systemd.no-failed-units",
		"console.serial-console", "storage.root-read-write", "storage.fstab-root-uuid", "network.dhcp", "network.dns",
		"network.sshd-running", "time.sync-active", "boot.reboot-guest", "boot.reboot-qmp", "provisioning.cloud-init",
		"storage.no-swap", "kernel.cmdline-console"} {
		if !seen[n] {
			t.Errorf("case %s missing from All()", n)
		}
	}
	// Every cloud-image rule of the baseline is a case, none is copied.
	for _, r := range baseline.RulesOf(baseline.SuiteCloudImage) {
		if !seen[r.ID] {
			t.Errorf("cloud-image rule %s has no case", r.ID)
		}
	}
	for _, c := range all {
		if c.Phase == PhaseBoot && (c.Name != "boot.multi-user" || c.Priority != 0 || c.Area != "boot") {
			t.Errorf("the boot case is boot.multi-user, P0, area boot: got %s", c.Name)
		}
	}
}

func TestOrder(t *testing.T) {
	ordered := Order(All())
	for i := 1; i < len(ordered); i++ {
		if ordered[i].Phase < ordered[i-1].Phase {
			t.Fatalf("%s (%s) runs after %s (%s)", ordered[i].Name, ordered[i].Phase, ordered[i-1].Name, ordered[i-1].Phase)
		}
	}
	n := len(ordered)
	if ordered[n-2].Name != "boot.reboot-guest" || ordered[n-1].Name != "boot.reboot-qmp" {
		t.Errorf("reboot cases must come last, got %s, %s", ordered[n-2].Name, ordered[n-1].Name)
	}
	// The SSH login comes before every case that needs SSH, so its failure
	// is the one reported and the others skip pointing at it.
	login := -1
	for i, c := range ordered {
		if c.Name == "provisioning.ssh-login" {
			login = i
		}
		if c.Requires&NeedSSH != 0 && login < 0 {
			t.Errorf("%s needs SSH but runs before provisioning.ssh-login", c.Name)
		}
	}
}

func names(cs []Case) []string {
	out := []string{}
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

func TestSelect(t *testing.T) {
	all := All()
	count := func(f func(Case) bool) int {
		n := 0
		for _, c := range all {
			if f(c) {
				n++
			}
		}
		return n
	}
	tests := []struct {
		name  string
		rules []Selection
		want  int    // number selected
		has   string // a case that must be in
		hasnt string // a case that must not be in
		err   string
	}{
		{name: "none selects all", want: len(all), has: "boot.multi-user"},
		{name: "priority 0", rules: []Selection{{Priorities: []int{0}}}, want: count(func(c Case) bool { return c.Priority == 0 }), has: "secureboot.state", hasnt: "network.dhcp"},
		{name: "area and priority", rules: []Selection{{Areas: []string{"network", "boot"}, Priorities: []int{1}}}, want: 5, has: "boot.reboot-qmp", hasnt: "boot.multi-user"},
		{name: "glob", rules: []Selection{{Names: []string{"network.*"}}}, want: 3, has: "network.dns"},
		{name: "tag", rules: []Selection{{Tags: []string{"smoke"}}}, want: 3, has: "kernel.log-clean"},
		{name: "exclude only", rules: []Selection{{Names: []string{"cloud-image.*"}, Action: Exclude}}, want: len(all) - len(baseline.RulesOf("cloud-image")), hasnt: "cloud-image.64-bit"},
		{name: "include then exclude", rules: []Selection{{Areas: []string{"network"}}, {Names: []string{"network.dns"}, Action: Exclude}}, want: 2, hasnt: "network.dns"},
		{name: "exclude then include", rules: []Selection{{Names: []string{"network.dns"}, Action: Exclude}, {Names: []string{"network.dns"}}}, want: 1, has: "network.dns"},
		{name: "unknown name", rules: []Selection{{Names: []string{"boot.multiuser"}}}, err: `no case named "boot.multiuser"`},
		{name: "unknown area", rules: []Selection{{Areas: []string{"nope"}}}, err: `unknown area "nope" (known: boot, `},
		{name: "unknown tag", rules: []Selection{{Tags: []string{"nope"}}}, err: `unknown tag "nope"`},
		{name: "bad priority", rules: []Selection{{Priorities: []int{7}}}, err: "priority 7 out of range"},
		{name: "bad action", rules: []Selection{{Areas: []string{"boot"}, Action: "drop"}}, err: `unknown selection action "drop"`},
		{name: "bad glob", rules: []Selection{{Names: []string{"[x"}}}, err: "bad case name pattern"},
		{name: "nothing left", rules: []Selection{{Names: []string{"boot.multi-user"}}, {Areas: []string{"boot"}, Action: Exclude}}, err: "matches no case"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Select(all, tc.rules)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			n := names(got)
			if len(got) != tc.want {
				t.Errorf("selected %d, want %d: %v", len(got), tc.want, n)
			}
			if tc.has != "" && !slices.Contains(n, tc.has) {
				t.Errorf("%s not selected: %v", tc.has, n)
			}
			if tc.hasnt != "" && slices.Contains(n, tc.hasnt) {
				t.Errorf("%s selected: %v", tc.hasnt, n)
			}
		})
	}
}

// A real kernel WARNING and Oops as the kernel prints them, lines around that
// must not count, and our own commands in sudo's log.
func TestScanProblems(t *testing.T) {
	log := []string{
		"[    0.000000] Linux version 9.9.9-9-amd64",
		"[   20.320819] platform regulatory.0: firmware: failed to load regulatory.db (-2)",
		"[   12.000000] ------------[ cut here ]------------",
		"[   12.000001] WARNING: CPU: 0 PID: 1 at drivers/gpu/drm/drm_fb_helper.c:1234 drm_fb_helper_damage_work+0x6a/0x90",
		"[   13.1] BUG: kernel NULL pointer dereference, address: 0000000000000000",
		"[   13.2] Oops: 0000 [#1] PREEMPT SMP NOPTI",
		"[   13.3] Call Trace:",
		"[   14.0] systemd-coredump[412]: Process 399 (python3) of user 0 dumped core.",
		"[   15.0] a.out[777]: segfault at 0 ip 000055d5c1c0f139 sp 00007ffd2a1d8f40 error 6 in a.out[55d5c1c0f000+1000]",
		"[   16.0] Out of memory: Killed process 1234 (stress) total-vm:1234kB",
		"You are in emergency mode. After logging in, type \"journalctl -xb\" to view",
		"cloud-init[302]: 2026-11-23 12:00:00,000 - util.py[WARNING]: Failed to set the locale",
		"Nov 23 12:00:00 host sudo[900]:    vouch : PWD=/home/vouch ; USER=root ; COMMAND=/usr/bin/grep 'Kernel panic - not syncing'",
		"[   17.0] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)",
		"[   18.0] traps: x[1] general protection fault ip:7f sp:7ff error:0 in libc.so.6",
	}
	got := ScanProblems(log)
	var reasons []string
	for _, p := range got {
		reasons = append(reasons, p.Reason)
	}
	want := []string{"kernel WARNING", "kernel BUG", "kernel Oops", "kernel call trace", "core dump", "segfault",
		"out of memory", "emergency shell", "kernel panic", "general protection fault"}
	if !reflect.DeepEqual(reasons, want) {
		t.Errorf("reasons = %q\nwant %q", reasons, want)
	}
	if got[0].Line != 4 {
		t.Errorf("first problem on line %d, want 4", got[0].Line)
	}
	if p := ScanProblems([]string{"[    0.9] Run /init as init process", "vouch-test login: "}); len(p) != 0 {
		t.Errorf("clean boot flagged: %v", p)
	}
}

func TestConsoleParsers(t *testing.T) {
	stubOnly := []string{"EFI stub: UEFI Secure Boot is enabled.", "[ 0.0] Linux version 6.1"}
	if s, l := ConsoleSecureBoot(stubOnly); s != SBEnabled || !strings.Contains(l, "EFI stub") {
		t.Errorf("stub only: %v %q", s, l)
	}
	off := []string{"[    0.000000] secureboot: Secure boot disabled"}
	if s, _ := ConsoleSecureBoot(off); s != SBDisabled {
		t.Errorf("disabled: %v", s)
	}
	on := []string{"EFI stub: UEFI Secure Boot is enabled.", "[    0.000000] secureboot: Secure boot enabled"}
	if s, l := ConsoleSecureBoot(on); s != SBEnabled || !strings.Contains(l, "secureboot:") {
		t.Errorf("enabled: %v %q", s, l)
	}
	if s, _ := ConsoleSecureBoot([]string{"[ 0.0] secureboot: Secure boot could not be determined"}); s != SBUnknown {
		t.Errorf("undetermined: %v", s)
	}
	if s, _ := ConsoleSecureBoot(nil); s != SBUnknown {
		t.Errorf("nothing: %v", s)
	}
	for out, want := range map[string]SecureBootState{
		"no-efi\n":                  SBNoEFI,
		"no-var":                    SBDisabled,
		"SecureBoot enabled\n":      SBEnabled,
		"SecureBoot disabled\n":     SBDisabled,
		"   6   0   0   0   1\n":    SBEnabled,
		"   6   0   0   0   0\n":    SBDisabled,
		"   6   0   0   0\n":        SBUnknown,
		"od: cannot open: denied\n": SBUnknown,
	} {
		got, err := GuestSecureBoot(out)
		if got != want || (want == SBUnknown) != (err != nil) {
			t.Errorf("GuestSecureBoot(%q) = %v, %v; want %v", out, got, err, want)
		}
	}
	cl, ok := ConsoleCmdline([]string{"[    0.000000] Kernel command line: BOOT_IMAGE=/boot/vmlinuz root=UUID=6a1f ro console=tty0 console=ttyS0,115200"})
	if !ok {
		t.Fatal("no command line")
	}
	if a, ok := SerialConsoleArg(cl); !ok || a != "console=ttyS0,115200" {
		t.Errorf("SerialConsoleArg = %q, %v", a, ok)
	}
	if _, ok := SerialConsoleArg("root=/dev/vda1 console=tty0 quiet"); ok {
		t.Error("console=tty0 is not a serial console")
	}
}

func TestGuestParsers(t *testing.T) {
	fstab := "# /etc/fstab\nUUID=6a1f5c3e-2b7d-4e0a-9c1b-5d3e7f9a0b21 / ext4 errors=remount-ro 0 1\nUUID=5A1E-7E57 /boot/efi vfat umask=0077 0 1\n"
	if spec, stable, found := FstabRoot(fstab); !found || !stable || spec != "UUID=6a1f5c3e-2b7d-4e0a-9c1b-5d3e7f9a0b21" {
		t.Errorf("FstabRoot = %q %v %v", spec, stable, found)
	}
	if spec, stable, found := FstabRoot("/dev/sda1 / ext4 defaults 0 1\n"); !found || stable || spec != "/dev/sda1" {
		t.Errorf("device name: %q %v %v", spec, stable, found)
	}
	if _, stable, _ := FstabRoot("PARTUUID=0d15c0de-0000 / ext4 defaults 0 1"); !stable {
		t.Error("PARTUUID= is stable")
	}
	if _, _, found := FstabRoot("# nothing\nproc /proc proc defaults 0 0\n"); found {
		t.Error("no / entry")
	}
	units := FailedUnits("cloud-config.service loaded failed failed Apply the settings\n● foo.mount loaded failed failed Foo\n")
	if !reflect.DeepEqual(units, []string{"cloud-config.service", "foo.mount"}) {
		t.Errorf("FailedUnits = %q", units)
	}
	if u := FailedUnits("\n"); len(u) != 0 {
		t.Errorf("no failed units: %q", u)
	}
	ip := "2: enp0s3    inet 10.0.2.15/24 metric 100 brd 10.0.2.255 scope global dynamic enp0s3\\       valid_lft 86313sec preferred_lft 86313sec\n" +
		"3: eth1    inet 192.168.1.5/24 brd 192.168.1.255 scope global eth1\\       valid_lft forever preferred_lft forever\n"
	dyn, static := DynamicAddresses(ip)
	if !reflect.DeepEqual(dyn, []string{"10.0.2.15/24 on enp0s3"}) || !reflect.DeepEqual(static, []string{"192.168.1.5/24 on eth1"}) {
		t.Errorf("DynamicAddresses = %q, %q", dyn, static)
	}
	if s := Swaps("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"); len(s) != 0 {
		t.Errorf("no swap: %q", s)
	}
	if s := Swaps("Filename Type Size Used Priority\n/dev/vda3 partition 1048572 0 -2\n"); !reflect.DeepEqual(s, []string{"/dev/vda3"}) {
		t.Errorf("swap: %q", s)
	}
	if o := MountOptions("rw,relatime,errors=remount-ro\n"); !slices.Contains(o, "rw") {
		t.Errorf("MountOptions = %q", o)
	}
}

// fixedReport is a result set with every status, a known issue, log lines
// that need escaping, and a console.
func fixedReport() *Report {
	started := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	results := []Result{
		{Name: "boot.multi-user", Area: "boot", Priority: 0, Tags: []string{"smoke"}, Status: Passed, Message: "booted to a login prompt in 41.2s (tcg)", Duration: 41200 * time.Millisecond},
		{Name: "secureboot.state", Area: "secureboot", Priority: 0, Status: Failed, Message: "Secure Boot is disabled in the guest (kernel log), want enabled", Duration: 300 * time.Millisecond,
			Log: []string{"console: [    0.000000] secureboot: Secure boot disabled"}},
		{Name: "network.dns", Area: "network", Priority: 1, Status: Skipped, Message: "the image has no cloud-init: console-only"},
		{Name: "systemd.no-failed-units", Area: "systemd", Priority: 1, Status: Attempted, KnownIssue: "bug 42",
			Message: "known issue (bug 42): 1 failed unit(s): foo.service", Duration: 2 * time.Second, Log: []string{"foo.service loaded failed failed <Foo & \"bar\">"}},
	}
	return &Report{
		Run: RunInfo{Image: "debian.raw", Format: "raw", Boot: "uefi", Firmware: "profile microsoft-2023 (UEFI: OVMF_CODE_4M.secboot.fd (SMM))",
			SecureBoot: true, ExpectSecureBoot: true, Accel: "tcg", Booted: true, BootTime: 41200 * time.Millisecond,
			Console: []string{"BdsDxe: starting Boot0001", "<script>alert(1)</script> & done", "vouch-fixture login: "},
			Started: started, Duration: 95 * time.Second, Notes: []string{"a note"}},
		Summary: Summarize(results),
		Results: results,
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	testfixtures.Golden(t, name, got, *update)
}

func TestGoldenReports(t *testing.T) {
	rep := fixedReport()
	var j, x, h bytes.Buffer
	if err := WriteJSON(&j, rep); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.json", j.Bytes())
	if err := WriteJUnit(&x, rep); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.xml", x.Bytes())
	if err := WriteHTML(&h, rep, "test"); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.html", h.Bytes())

	// The JSON has the issue's fields and reads back.
	var back struct {
		Results []map[string]any `json:"results"`
	}
	if err := json.Unmarshal(j.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"name", "area", "priority", "status", "message", "durationSeconds"} {
		if _, ok := back.Results[0][k]; !ok {
			t.Errorf("JSON result lacks %q", k)
		}
	}
	var r Result
	if err := json.Unmarshal(mustJSON(t, rep.Results[0]), &r); err != nil || r.Duration != rep.Results[0].Duration {
		t.Errorf("Result round trip: %v, %v", r.Duration, err)
	}
	// The HTML embeds the console escaped and loads nothing from elsewhere.
	page := h.String()
	if strings.Contains(page, "<script>") || !strings.Contains(page, "&lt;script&gt;alert(1)&lt;/script&gt; &amp; done") {
		t.Error("console not escaped in the HTML report")
	}
	for _, ext := range []string{"src=", "href=", "@import", "url("} {
		if strings.Contains(page, ext) {
			t.Errorf("HTML report references an external asset (%s)", ext)
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTableWriter(t *testing.T) {
	rep := fixedReport()
	var buf bytes.Buffer
	tw := NewTableWriter(&buf, All())
	for _, r := range rep.Results {
		tw.Update(Result{Name: r.Name, Status: Running}) // in-progress: no line
		tw.Update(r)
	}
	if err := tw.Summary(rep); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.txt", buf.Bytes())
}

// The runner's state machine on offline cases (no VM): every case goes
// QUEUED, ASSIGNED, RUNNING, then final; a failure of a known issue is
// ATTEMPTED; a panic fails only its case; a case whose requirement is not met
// is SKIPPED with the reason.
func TestRunnerStatuses(t *testing.T) {
	img := filepath.Join(t.TempDir(), "empty.raw")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	mk := func(name string, req Requirement, o Outcome, known string) Case {
		return Case{Name: name, Area: "t", Priority: 1, Tags: []string{"x"}, Phase: PhaseOffline, Requires: req, KnownIssue: known,
			Run: func(context.Context, *Env) Outcome { return o }}
	}
	cases := []Case{
		mk("t.pass", 0, pass("fine", "evidence"), ""),
		mk("t.fail", 0, fail("broken"), ""),
		mk("t.known", 0, fail("broken again"), "bug 7"),
		mk("t.known-pass", 0, pass("fixed"), "bug 8"),
		mk("t.needs-image", NeedImage, pass("unreachable"), ""),
		{Name: "t.panic", Area: "t", Phase: PhaseOffline, Run: func(context.Context, *Env) Outcome { panic("boom") }},
		{Name: "t.slow", Area: "t", Phase: PhaseOffline, Timeout: 50 * time.Millisecond, Run: func(ctx context.Context, _ *Env) Outcome {
			<-ctx.Done()
			return fail(ctx.Err().Error())
		}},
	}
	seen := map[string][]Status{}
	rep, err := Run(context.Background(), Config{Image: img, Firmware: bios(),
		Observer: ObserverFunc(func(r Result) { seen[r.Name] = append(seen[r.Name], r.Status) })}, cases)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Status{"t.pass": Passed, "t.fail": Failed, "t.known": Attempted, "t.known-pass": Passed,
		"t.needs-image": Skipped, "t.panic": Failed, "t.slow": Failed}
	for _, r := range rep.Results {
		if r.Status != want[r.Name] {
			t.Errorf("%s: %s (%s), want %s", r.Name, r.Status, r.Message, want[r.Name])
		}
		if got := seen[r.Name]; !reflect.DeepEqual(got, []Status{Queued, Assigned, Running, want[r.Name]}) {
			t.Errorf("%s went through %v", r.Name, got)
		}
	}
	byName := map[string]Result{}
	for _, r := range rep.Results {
		byName[r.Name] = r
	}
	if m := byName["t.known"].Message; !strings.HasPrefix(m, "known issue (bug 7): broken again") {
		t.Errorf("ATTEMPTED message %q", m)
	}
	if m := byName["t.needs-image"].Message; !strings.Contains(m, "cannot be read offline") {
		t.Errorf("skip reason %q", m)
	}
	if m := byName["t.panic"].Message; !strings.Contains(m, "case panicked: boom") {
		t.Errorf("panic message %q", m)
	}
	if m := byName["t.slow"].Message; !strings.Contains(m, "timed out after 50ms") {
		t.Errorf("timeout message %q", m)
	}
	if rep.OK() || rep.Summary != (Summary{Total: 7, Passed: 2, Failed: 3, Skipped: 1, Attempted: 1}) {
		t.Errorf("summary %+v OK=%v", rep.Summary, rep.OK())
	}
	if rep.Run.Accel != "" || rep.Run.Booted {
		t.Errorf("offline-only run started a VM: %+v", rep.Run)
	}
}

func TestRunBadInput(t *testing.T) {
	dir := t.TempDir()
	one := []Case{All()[0]}
	for name, tc := range map[string]struct {
		cfg   Config
		cases []Case
		want  string
	}{
		"missing image": {Config{Image: filepath.Join(dir, "nope.raw")}, one, "cannot read the image"},
		"directory":     {Config{Image: dir}, one, "is a directory"},
		"no cases":      {Config{Image: dir}, nil, "no test cases selected"},
		"bad vars":      {Config{Image: writeFile(t, dir, "x.raw", 512), Firmware: uefiVars(writeFile(t, dir, "bad.fd", 4096))}, one, "variable store"},
	} {
		t.Run(name, func(t *testing.T) {
			rep, err := Run(context.Background(), tc.cfg, tc.cases)
			if err == nil || rep != nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run = %v, %v; want error %q", rep, err, tc.want)
			}
		})
	}
}

func writeFile(t *testing.T, dir, name string, size int) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func bios() vm.Firmware { return vm.Firmware{Boot: vm.BIOS} }

func uefiVars(p string) vm.Firmware { return vm.Firmware{Boot: vm.UEFI, SecureBoot: true, Vars: p} }

// A disagreement between a boot and the prediction is called out loudly, with
// the console tail, and makes the matrix not OK.
func TestMatrixTable(t *testing.T) {
	yes, no := true, false
	mx := &Matrix{Image: "disk.raw", Accel: "tcg", Until: "kernel", Rows: []MatrixRow{
		{Profile: "microsoft-2011", Booted: true, Outcome: "booted", Reason: "the kernel started after 20.0s", Predicted: &yes, Prediction: "EFI/BOOT/BOOTX64.EFI: boots", Agrees: true, Duration: 20 * time.Second},
		{Profile: "microsoft-2023", Outcome: "refused", Reason: "firmware refused the image (Secure Boot: Access Denied)",
			Line: `BdsDxe: failed to load Boot0001 "UEFI Misc Device": Access Denied`, Tail: []string{"BdsDxe: loading Boot0001", "BdsDxe: failed ... Access Denied"},
			Predicted: &yes, Prediction: "EFI/BOOT/BOOTX64.EFI: boots", Agrees: false},
		{Profile: "microsoft-both", Booted: true, Outcome: "booted", Reason: "the kernel started", Predicted: &no, Prediction: "refused", Agrees: false},
	}, Disagreements: 2, NotBooted: 1}
	var buf bytes.Buffer
	if err := WriteMatrixTable(&buf, mx); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"microsoft-2023  boots      refused  NO  <<<", "!!! DISAGREEMENT: 2 of 3", "!!! microsoft-2023: predicted it boots, the VM refused. Console tail:", "!!!   BdsDxe: failed ... Access Denied", "!!! microsoft-both: predicted a refusal, the VM booted."} {
		if !strings.Contains(out, want) {
			t.Errorf("matrix table lacks %q:\n%s", want, out)
		}
	}
	if mx.OK() {
		t.Error("a matrix with disagreements is OK")
	}
	var back map[string]any
	if err := json.Unmarshal(mustJSON(t, mx), &back); err != nil || back["disagreements"].(float64) != 2 {
		t.Errorf("matrix JSON: %v %v", back, err)
	}
	row := back["rows"].([]any)[0].(map[string]any)
	if row["durationSeconds"].(float64) != 20 || row["predicted"] != true {
		t.Errorf("row JSON %v", row)
	}
}
