#!/usr/bin/env bash
# boot-fixture.sh: boot a disk image under QEMU (TCG) with Debian's OVMF, Secure
# Boot on and the Microsoft-keyed variable store, and watch the serial console
# until a login prompt (success) or a boot failure.
#
# Usage: scripts/boot-fixture.sh IMAGE [TIMEOUT_SECONDS]   (default 300)
# Prints the serial log's path and the seconds to the login prompt; exit 0 on a
# login prompt, 1 on a failure or timeout. The image is opened with snapshot=on
# (never written). The variable store is a fresh copy of OVMF_VARS_4M.ms.fd.
#
# On first boot from the removable path, shim (EFI/BOOT/BOOTX64.EFI) runs
# fbx64.efi, which reads EFI/debian/BOOTX64.CSV, creates a Boot#### entry and
# resets the machine; with -no-reboot QEMU then exits, so the script boots
# again with the same variable store (now through EFI/debian/shimx64.efi).
# KVM is not used: guests hang under it on this kind of machine.
#
# Needs (Debian packages): qemu-system-x86 ovmf qemu-utils
set -euo pipefail
img=${1:?usage: boot-fixture.sh IMAGE [TIMEOUT_SECONDS]}
timeout=${2:-300}
code=/usr/share/OVMF/OVMF_CODE_4M.secboot.fd
vars=/usr/share/OVMF/OVMF_VARS_4M.ms.fd
for f in "$img" "$code" "$vars"; do
	[ -f "$f" ] || { echo "boot-fixture: missing $f (apt-get install ovmf qemu-system-x86)" >&2; exit 1; }
done
fmt=$(qemu-img info --output=json "$img" | python3 -c 'import json,sys; print(json.load(sys.stdin)["format"])')
work=$(mktemp -d /tmp/boot-fixture.XXXXXX)
cp "$vars" "$work/vars.fd"
log=$work/serial.log
: >"$log"
echo "boot-fixture: $img ($fmt), serial log $log" >&2

# Lines that mean the boot failed (shim, edk2, GRUB, kernel, systemd).
fail_re='Access Denied|Security Violation|Verification failed|Failed to load image|Failed to open|error: |Kernel panic|You are in emergency mode|Give root password|Failed to mount /sysroot|ALERT! |Dropping to a shell'

# The machine-wide budget of QEMU guests shared with vouch (internal/vm
# AcquireSlot): hold a flock on one of the slot files while QEMU runs.
slots=${TMPDIR:-/tmp}/vouch-qemu-slots
mkdir -p "$slots"
nslots=${VOUCH_QEMU_SLOTS:-2}
got=
while [ -z "$got" ]; do
	for i in $(seq 0 $((nslots - 1))); do
		exec 9>>"$slots/slot-$i"
		if flock -n 9; then got=$i; break; fi
		exec 9>&-
	done
	[ -n "$got" ] || sleep 1
done
echo "boot-fixture: holding QEMU guest slot $slots/slot-$got" >&2

start=$SECONDS
qpid=
stop_qemu() { [ -z "$qpid" ] || kill "$qpid" 2>/dev/null || true; }
trap stop_qemu EXIT
for attempt in 1 2; do
	qemu-system-x86_64 -machine q35,smm=on -accel tcg -m 1024 \
		-global driver=cfi.pflash01,property=secure,value=on \
		-drive if=pflash,format=raw,unit=0,file="$code",readonly=on \
		-drive if=pflash,format=raw,unit=1,file="$work/vars.fd" \
		-drive if=virtio,format="$fmt",file="$img",snapshot=on \
		-nographic -display none -serial "file:$log.$attempt" -monitor none \
		-no-reboot </dev/null >"$work/qemu.$attempt.out" 2>&1 &
	qpid=$!
	while :; do
		sleep 1
		cat "$work"/serial.log.* >"$log" 2>/dev/null || true
		if grep -aq ' login: ' "$log"; then
			echo "boot-fixture: login prompt after $((SECONDS - start))s (attempt $attempt)" >&2
			exit 0
		fi
		if grep -aEq "$fail_re" "$log"; then
			echo "boot-fixture: failure after $((SECONDS - start))s:" >&2
			grep -aE "$fail_re" "$log" | head -5 >&2
			exit 1
		fi
		if [ $((SECONDS - start)) -ge "$timeout" ]; then
			echo "boot-fixture: no login prompt within ${timeout}s" >&2
			exit 1
		fi
		kill -0 "$qpid" 2>/dev/null || break
	done
	wait "$qpid" || true
	qpid=
	echo "boot-fixture: QEMU exited (reset) after $((SECONDS - start))s, attempt $attempt" >&2
done
echo "boot-fixture: no login prompt" >&2
exit 1
