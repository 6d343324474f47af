package vm

import "regexp"

// Pattern is a console line that decides a boot: Reason says what it means.
type Pattern struct {
	Reason string
	Re     *regexp.Regexp
	// Except, when set, exempts lines it matches: known harmless messages
	// that look like the pattern.
	Except *regexp.Regexp
}

// Match reports whether line is an instance of the pattern.
func (p Pattern) Match(line string) bool {
	return p.Re.MatchString(line) && (p.Except == nil || !p.Except.MatchString(line))
}

// The boot verdicts, as data in one place (scripts/boot-fixture.sh keeps the
// shell copy of the failure list for its own use).
//
// Success: a getty login prompt on the serial console (systemd-getty-generator
// starts serial-getty@ttyS0 when console=ttyS0 is on the kernel command line), or
// systemd's status line for multi-user.target (unit Description "Multi-User
// System") on images whose getty is not on the serial port.
var successPatterns = []Pattern{
	{Reason: "login prompt", Re: regexp.MustCompile(`\S login: ?$`)},
	{Reason: "multi-user.target reached", Re: regexp.MustCompile(`Reached target (multi-user\.target|.*Multi-User System)`)},
}

// Failures, from firmware to userspace. Sources: edk2 BdsDxe
// (MdeModulePkg/Universal/BdsDxe/BdsEntry.c and UefiBootManagerLib/BmBoot.c print
// `failed to load Boot#### ... : Access Denied` / `Security Violation` and `No
// bootable option or device was found`), shim (shim.c: `Verification failed:`,
// `Failed to load image`, `Failed to open`, `start_image() returned`), GRUB
// (`error: ...` at the start of a line, the rescue and command-line prompts),
// the kernel (panic.c: `Kernel panic - not syncing`), systemd (emergency.service
// and sulogin), initramfs-tools (scripts/functions panic(): `ALERT!` then
// `Dropping to a shell!` and the `(initramfs)` prompt), dracut
// (dracut-lib.sh emergency_shell: `Entering emergency mode`, initqueue timeouts)
// and SeaBIOS (`No bootable device.`, `Boot failed: not a bootable disk`).
var failurePatterns = []Pattern{
	// OVMF falls back to its built-in shell when no other boot option worked
	// (BdsDxe prints the attempt; the Secure Boot build then refuses the
	// unsigned shell with "Security Violation", which is not the image's fault).
	{Reason: "firmware found no bootable device (only its UEFI shell was left)", Re: regexp.MustCompile(`BdsDxe: (loading|starting|failed to load|failed to start) Boot[0-9A-F]{4} "EFI Internal Shell"`)},
	{Reason: "firmware refused the image (Secure Boot: Access Denied)", Re: regexp.MustCompile(`Access Denied`)},
	{Reason: "Secure Boot verification failed (Security Violation)", Re: regexp.MustCompile(`Security Violation`)},
	{Reason: "shim could not verify the next stage", Re: regexp.MustCompile(`Verification failed`)},
	{Reason: "shim failed to load the next stage", Re: regexp.MustCompile(`Failed to load image|start_image\(\) returned`)},
	{Reason: "shim could not open the next stage", Re: regexp.MustCompile(`Failed to open \\`)},
	{Reason: "firmware found no bootable device", Re: regexp.MustCompile(`No bootable option or device was found|No bootable device\.|Boot failed: not a bootable disk|Boot failed: could not read the boot disk`)},
	{Reason: "firmware dropped to the UEFI shell", Re: regexp.MustCompile(`UEFI Interactive Shell v|Shell> $`)},
	// GRUB's gfxterm finds no video mode on a VM without a display and goes on
	// in text mode: not a failure.
	{Reason: "GRUB error", Re: regexp.MustCompile(`^error: `), Except: regexp.MustCompile(`^error: no suitable video mode found`)},
	{Reason: "GRUB rescue shell", Re: regexp.MustCompile(`^grub rescue> |^grub> $|Minimal BASH-like line editing is supported`)},
	{Reason: "kernel panic", Re: regexp.MustCompile(`Kernel panic - not syncing`)},
	{Reason: "emergency mode", Re: regexp.MustCompile(`You are in emergency mode|Give root password for maintenance|Cannot open access to console, the root account is locked`)},
	{Reason: "root file system not mounted", Re: regexp.MustCompile(`Failed to mount /sysroot|Gave up waiting for root (file system )?device|ALERT! .* does not exist`)},
	{Reason: "initramfs shell", Re: regexp.MustCompile(`Dropping to a shell|^\(initramfs\) |Entering emergency mode`)},
	{Reason: "dracut timeout", Re: regexp.MustCompile(`dracut-initqueue\[\d+\]: Warning: dracut-initqueue: timeout`)},
}

// FailurePatterns returns the console lines that WaitBoot treats as a failed
// boot (a copy: callers may extend it for their own scans).
func FailurePatterns() []Pattern { return append([]Pattern(nil), failurePatterns...) }

// SuccessPatterns returns the console lines that WaitBoot treats as a finished
// boot.
func SuccessPatterns() []Pattern { return append([]Pattern(nil), successPatterns...) }

// classify reports whether line ends the boot, and how: failures are checked
// first so a line that matches both counts as a failure.
func classify(line string) (reason string, failed, done bool) {
	for _, p := range failurePatterns {
		if p.Match(line) {
			return p.Reason, true, true
		}
	}
	for _, p := range successPatterns {
		if p.Match(line) {
			return p.Reason, false, true
		}
	}
	return "", false, false
}
