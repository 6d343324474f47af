package imagetest

import (
	"encoding/json"
	"strings"
	"testing"
)

// The guest is untrusted: its console and the output of commands run in it
// are parsed here. FuzzGuestOutput feeds the same bytes to every parser.
func FuzzGuestOutput(f *testing.F) {
	f.Add("[    0.000000] secureboot: Secure boot enabled\nEFI stub: UEFI Secure Boot is enabled.\n[    0.000000] Kernel command line: root=UUID=1 ro console=ttyS0,115200\n")
	f.Add("   6   0   0   0   1\n")
	f.Add("UUID=6a1f5c3e-2b7d-4e0a-9c1b-5d3e7f9a0b21 / ext4 errors=remount-ro 0 1\n")
	f.Add("cloud-config.service loaded failed failed Apply the settings\n● foo.mount loaded failed failed Foo\n")
	f.Add("2: enp0s3    inet 10.0.2.15/24 metric 100 brd 10.0.2.255 scope global dynamic enp0s3\\       valid_lft 86313sec\n")
	f.Add("Filename Type Size Used Priority\n/dev/vda3 partition 1048572 0 -2\n")
	f.Add(`{"v1": {"datasource": "DataSourceNoCloud", "errors": ["x"]}}`)
	f.Add("[   13.2] Oops: 0000 [#1] PREEMPT SMP NOPTI\n[   13.3] Call Trace:\nvouch-fixture login: ")
	f.Add("inet\n inet inet\x00dynamic")
	f.Fuzz(func(t *testing.T, s string) {
		ls := strings.Split(s, "\n")
		for _, p := range ScanProblems(ls) {
			if p.Line < 1 || p.Line > len(ls) {
				t.Fatalf("problem line %d outside 1..%d", p.Line, len(ls))
			}
		}
		ConsoleSecureBoot(ls)
		if st, err := GuestSecureBoot(s); err != nil && st != SBUnknown {
			t.Fatalf("error with a state: %v %v", st, err)
		}
		if cl, ok := ConsoleCmdline(ls); ok {
			SerialConsoleArg(cl)
		}
		if spec, stable, found := FstabRoot(s); !found && (spec != "" || stable) {
			t.Fatalf("no root entry but spec %q stable %v", spec, stable)
		}
		FailedUnits(s)
		DynamicAddresses(s)
		Swaps(s)
		MountOptions(s)
		var r cloudInitResult
		_ = json.Unmarshal([]byte(s), &r)
	})
}
