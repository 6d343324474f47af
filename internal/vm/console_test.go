package vm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestConsoleLines(t *testing.T) {
	tests := []struct {
		name string
		in   []string // written in these chunks
		want []string
	}{
		{"crlf", []string{"BdsDxe: loading\r\n", "second\r\n"}, []string{"BdsDxe: loading", "second"}},
		{"split across writes", []string{"Kernel pa", "nic - not syncing\n"}, []string{"Kernel panic - not syncing"}},
		{"csi colours", []string{"[\x1b[0;32m  OK  \x1b[0m] Reached target\n"}, []string{"[  OK  ] Reached target"}},
		{"edk2 cursor and mode", []string{"\x1b[2J\x1b[01;01H\x1b[=3h\x1b[2J\x1b[01;01HBdsDxe\n"}, []string{"BdsDxe"}},
		{"osc title with BEL and ST", []string{"\x1b]0;title\x07a\x1b]2;x\x1b\\b\n"}, []string{"ab"}},
		{"charset select", []string{"\x1b(Bplain\x1b)0\n"}, []string{"plain"}},
		{"escape split across writes", []string{"a\x1b[", "1;3", "1mb\n"}, []string{"ab"}},
		{"8-bit CSI", []string{"x\x9b1my\n"}, []string{"xy"}},
		{"other controls dropped, tab kept", []string{"a\x00\x07\bb\tc\x7f\n"}, []string{"ab\tc"}},
		{"unfinished line is last", []string{"one\nvouch-fixture login: "}, []string{"one", "vouch-fixture login: "}},
		{"unterminated CSI ends at newline", []string{"a\x1b[12;\nb\n"}, []string{"a", "b"}},
		{"utf-8 kept", []string{"Reached target cryptsetup.…get\n"}, []string{"Reached target cryptsetup.…get"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newConsole("")
			for _, chunk := range tc.in {
				c.write([]byte(chunk))
			}
			if got := c.Lines(); !slices.Equal(got, tc.want) {
				t.Errorf("Lines() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestConsoleLongLineSplit(t *testing.T) {
	c := newConsole("")
	c.write([]byte(strings.Repeat("x", maxLine*2+5) + "\n"))
	lines := c.Lines()
	if len(lines) != 3 || len(lines[0]) != maxLine || len(lines[2]) != 5 {
		t.Errorf("got %d lines of lengths %v", len(lines), lens(lines))
	}
}

func lens(s []string) []int {
	var n []int
	for _, l := range s {
		n = append(n, len(l))
	}
	return n
}

func TestConsoleMarkWaitSince(t *testing.T) {
	c := newConsole("")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.write([]byte("boot 1\nhost login: "))
	login := regexp.MustCompile(`login: $`)
	if l, err := c.Wait(ctx, login); err != nil || l != "host login: " {
		t.Fatalf("Wait before Mark = %q, %v", l, err)
	}
	mark := c.Mark()
	if mark != 2 {
		t.Errorf("Mark() = %d, want 2 (the prompt is finished by Mark)", mark)
	}
	// The old prompt is before the mark: Wait must block until a new one,
	// which names another host, so a Wait that returned the old prompt
	// would be seen.
	got := make(chan string, 1)
	go func() {
		l, err := c.Wait(ctx, login)
		if err != nil {
			l = "error: " + err.Error()
		}
		got <- l
	}()
	c.write([]byte("reboot: Restarting system\nboot 2\nhost2 login: "))
	select {
	case l := <-got:
		if l != "host2 login: " {
			t.Errorf("Wait after Mark = %q, want the new prompt", l)
		}
	case <-ctx.Done():
		t.Fatal("Wait did not see the new prompt")
	}
	if s := c.Since(mark); !slices.Equal(s, []string{"reboot: Restarting system", "boot 2", "host2 login: "}) {
		t.Errorf("Since(mark) = %q", s)
	}
	if tail := c.Tail(2); !slices.Equal(tail, []string{"boot 2", "host2 login: "}) {
		t.Errorf("Tail(2) = %q", tail)
	}
	if tail := c.Tail(100); len(tail) != 5 {
		t.Errorf("Tail(100) has %d lines, want 5", len(tail))
	}
	// After the end of output, waits fail with the reason.
	c.finish(exitedErr("signal: killed"))
	if _, err := c.Wait(ctx, regexp.MustCompile("never")); !errors.Is(err, ErrExited) {
		t.Errorf("Wait after finish = %v, want ErrExited", err)
	}
	// A cancelled context ends a wait that would block.
	c2 := newConsole("")
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	if _, err := c2.Wait(cctx, login); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait with cancelled ctx = %v", err)
	}
}

// TestConsoleFollow reads a growing file the way QEMU writes the serial log.
func TestConsoleFollow(t *testing.T) {
	p := filepath.Join(t.TempDir(), "serial.log")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := newConsole(p)
	stop := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		c.follow(stop, func() error { return exitedErr("exit status 0") })
		close(finished)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	f.WriteString("first\r\nsec")
	if _, err := c.Wait(ctx, regexp.MustCompile(`^first$`)); err != nil {
		t.Fatal(err)
	}
	f.WriteString("ond\r\nlast line without newline")
	close(stop)
	<-finished
	if got := c.Lines(); !slices.Equal(got, []string{"first", "second", "last line without newline"}) {
		t.Errorf("Lines() = %q", got)
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		line   string
		failed bool
		done   bool
		reason string
	}{
		{"BdsDxe: failed to load Boot0001 \"UEFI Misc Device\" from PciRoot(0x0)/Pci(0x1,0x0): Access Denied", true, true, "firmware refused the image (Secure Boot: Access Denied)"},
		{"Verification failed: (0x1A) Security Violation", true, true, "Secure Boot verification failed (Security Violation)"},
		{"Failed to open \\EFI\\BOOT\\grubx64.efi - Not Found", true, true, "shim could not open the next stage"},
		{"error: file `/boot/vmlinuz-9.9.9-9-amd64' not found.", true, true, "GRUB error"},
		{"grub rescue> ", true, true, "GRUB rescue shell"},
		{"[    2.1] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)", true, true, "kernel panic"},
		{"You are in emergency mode. After logging in, type \"journalctl -xb\" to view", true, true, "emergency mode"},
		{"Cannot open access to console, the root account is locked.", true, true, "emergency mode"},
		{"ALERT!  UUID=0000 does not exist.  Dropping to a shell!", true, true, "root file system not mounted"},
		{"(initramfs) ", true, true, "initramfs shell"},
		{"BdsDxe: No bootable option or device was found.", true, true, "firmware found no bootable device"},
		{"No bootable device.", true, true, "firmware found no bootable device"},
		{"UEFI Interactive Shell v2.2", true, true, "firmware dropped to the UEFI shell"},
		{`BdsDxe: failed to start Boot0002 "EFI Internal Shell" from Fv(7CB8BDC9-F8EB-4F34-AAEA-3EE4AF6516A1)/FvFile(7C04A583-9E3E-4F1C-AD65-E05268D0B4D1): Security Violation`, true, true, "firmware found no bootable device (only its UEFI shell was left)"},
		{`BdsDxe: loading Boot0002 "EFI Internal Shell" from Fv(7CB8BDC9-F8EB-4F34-AAEA-3EE4AF6516A1)/FvFile(7C04A583-9E3E-4F1C-AD65-E05268D0B4D1)`, true, true, "firmware found no bootable device (only its UEFI shell was left)"},
		{`BdsDxe: failed to load Boot0001 "UEFI Misc Device" from PciRoot(0x0)/Pci(0x1,0x0): Not Found`, false, false, ""},
		{"vouch-fixture login: ", false, true, "login prompt"},
		{"debian login:", false, true, "login prompt"},
		{"[  OK  ] Reached target multi-user.target - Multi-User System.", false, true, "multi-user.target reached"},
		{"[   20.1] systemd[1]: Reached target multi-user.target - Multi-User System.", false, true, "multi-user.target reached"},
		// Healthy lines that must not end the boot.
		{"[  OK  ] Reached target getty.target - Login Prompts.", false, false, ""},
		{"[    0.5] ACPI Error: AE_NOT_FOUND, While resolving a named reference", false, false, ""},
		{"[   12.0] systemd[1]: Failed to open /dev/shm device, ignoring: Inappropriate ioctl", false, false, ""},
		{"Last login: Mon Jan  1 00:00:00 2024 from 10.0.2.2", false, false, ""},
		{"error: no suitable video mode found.", false, false, ""},
		{"EFI stub: UEFI Secure Boot is enabled.", false, false, ""},
	}
	for _, tc := range tests {
		reason, failed, done := classify(tc.line)
		if failed != tc.failed || done != tc.done || reason != tc.reason {
			t.Errorf("classify(%q) = %q, failed %v, done %v; want %q, %v, %v", tc.line, reason, failed, done, tc.reason, tc.failed, tc.done)
		}
	}
	// The exported copies are copies.
	p := FailurePatterns()
	p[0].Reason = "changed"
	if failurePatterns[0].Reason == "changed" || len(SuccessPatterns()) != len(successPatterns) {
		t.Error("FailurePatterns returned the package's slice")
	}
}
