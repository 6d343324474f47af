#!/usr/bin/env bash
# build-cloud-fixture.sh: build .cache/fixtures/debian-cloud.qcow2, the Debian 12
# fixture of debian.raw plus what a cloud image has: cloud-init (NoCloud and the
# other datasources), netplan.io rendering DHCP for systemd-networkd,
# systemd-resolved, systemd-timesyncd, sudo and openssh-server. `vouch test`
# (internal/vm) boots it with a NoCloud "cidata" seed to reach it over SSH;
# debian.raw stays the console-only image.
#
# Usage: scripts/build-cloud-fixture.sh
#
# Output:
#   debian-cloud.qcow2   qcow2 v3 of a 2 GiB GPT disk laid out like debian.raw
#                        (p1 FAT32 ESP with shim -> GRUB, p2 ext4 root by UUID in
#                        fstab, console=ttyS0 on the kernel command line); the root
#                        file system has UUID $CLOUD_ROOT_UUID so the two images are
#                        told apart. No network configuration is baked in: as in
#                        Debian's own cloud images (debian-cloud-images, bookworm:
#                        netplan.io + systemd-networkd), cloud-init writes
#                        /etc/netplan/50-cloud-init.yaml (DHCP on the NIC) at boot.
#
# How: scripts/build-fixtures.sh builds rootfs/ and esp.img (the same Debian
# system); this copies rootfs/, installs the cloud packages in a chroot (inside a
# private mount namespace, so /proc is unmounted whatever happens), makes the ext4
# root, copies esp.img with grub.cfg pointing at the new root UUID, and converts
# the GPT disk to qcow2. Downloaded .debs come from .cache/fixtures/.apt-archives
# (filled by build-fixtures.sh) and new ones are kept in .apt-archives-cloud.
#
# Conventions are build-fixtures.sh's: the output is rebuilt when it is missing,
# when this script changed (.stamp-debian-cloud.qcow2 holds its sha256), or when
# rootfs/ or esp.img was rebuilt; it is built under a temporary name and renamed
# at the end; the build holds the flock on .cache/fixtures/.lock.
#
# Needs (Debian packages): those of build-fixtures.sh (mmdebstrap qemu-utils
# mtools dosfstools gdisk e2fsprogs util-linux) and network access to
# deb.debian.org; run as root.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
self=$top/scripts/build-cloud-fixture.sh
cache=${VOUCH_CACHE:-$top/.cache}
out=$cache/fixtures
name=debian-cloud.qcow2

# Layout and identifiers: the same as build-fixtures.sh except the root UUID.
CLOUD_ROOT_UUID=5e2a9c4d-7f1b-4c3e-a8d9-2b6f0e4c1a73
ROOT_UUID=6a1f5c3e-2b7d-4e0a-9c1b-5d3e7f9a0b21 # esp.img's grub.cfg names this one
DISK_GUID=0d15c0de-0000-4000-8000-000000000c01
ESP_PARTUUID=0d15c0de-0000-4000-8000-000000000ce5
ROOT_PARTUUID=0d15c0de-0000-4000-8000-000000000ca2
ESP_TYPE=C12A7328-F81F-11D2-BA4B-00A0C93EC93B
ROOT_TYPE=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709
DISK_MIB=2048
ESP_MIB=256
ROOT_MIB=$((DISK_MIB - 1 - ESP_MIB - 1))
ROOT_START_MIB=$((1 + ESP_MIB))
HOSTNAME_FIXTURE=vouch-cloud-fixture
# --no-install-recommends keeps the image small; sudo is a Recommends of
# cloud-init that the users module needs for "sudo: ALL=(ALL) NOPASSWD:ALL";
# locales lets cc_locale set the distro default (en_US.UTF-8), which is
# generated here so that the first boot does not spend time on it.
CLOUD_PKGS="cloud-init netplan.io systemd-resolved systemd-timesyncd sudo openssh-server locales"

export FIXTURES_T0=${FIXTURES_T0:-$(date +%s)}
say() { printf '[build-cloud-fixture %4ds] %s\n' $(($(date +%s) - FIXTURES_T0)) "$*" >&2; }
die() { say "error: $*"; exit 1; }

# The chroot part runs as "$self --chroot-install DIR" inside unshare(1).
if [ "${1:-}" = --chroot-install ]; then
	r=$2
	mount -t proc proc "$r/proc"
	# No service starts in the chroot (invoke-rc.d honours policy-rc.d).
	printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
	chmod 0755 "$r/usr/sbin/policy-rc.d"
	export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
	chroot "$r" apt-get -q -o Acquire::Languages=none update
	# shellcheck disable=SC2086
	chroot "$r" apt-get install -q --yes --no-install-recommends \
		-o Dpkg::Options::=--force-unsafe-io $CLOUD_PKGS
	sed -i 's/^# *\(en_US.UTF-8 UTF-8\)/\1/' "$r/etc/locale.gen"
	chroot "$r" locale-gen
	chroot "$r" update-locale LANG=en_US.UTF-8
	rm -f "$r/usr/sbin/policy-rc.d"
	exit 0
fi

[ "$(id -u)" = 0 ] || die "run as root (chroot, mount namespace)"
for t in unshare chroot mkfs.ext4 sgdisk mcopy qemu-img; do
	command -v "$t" >/dev/null || die "missing $t (apt-get install util-linux e2fsprogs gdisk mtools qemu-utils)"
done

# Dependencies first, with build-fixtures.sh's own lock and staleness rules.
"$top/scripts/build-fixtures.sh" rootfs esp.img

hash=$(sha256sum <"$self" | cut -d' ' -f1)
mkdir -p "$out"
exec 9>"$out/.lock"
if ! flock -n 9; then
	say "waiting for another fixture build (lock $out/.lock)"
	flock 9
fi

if [ -e "$out/$name" ] && [ -f "$out/.stamp-$name" ] &&
	[ "$(cat "$out/.stamp-$name")" = "$hash" ] &&
	! [ "$out/.stamp-rootfs" -nt "$out/.stamp-$name" ] &&
	! [ "$out/.stamp-esp.img" -nt "$out/.stamp-$name" ]; then
	say "$name: up to date"
	exit 0
fi

# remove PATH...: rm -rf, never across a mount point (see build-fixtures.sh).
remove() {
	local t
	for t in "$@"; do
		[ -e "$t" ] || continue
		if [ -d "$t" ] && awk -v p="$t/" 'index($2 "/", p) == 1 { found = 1 } END { exit !found }' /proc/self/mounts; then
			say "warning: $t has mounts below it; not removing it"
			continue
		fi
		rm -rf -- "$t"
	done
}
remove "$out"/.tmp.cloud.*
work=$out/.tmp.cloud.$$
trap 'remove "$work"' EXIT
mkdir -p "$work"
start=$SECONDS

say "$name: copying rootfs/"
r=$work/rootfs
cp -a -- "$out/rootfs" "$r"
arch=$r/var/cache/apt/archives
mkdir -p "$arch/partial" "$out/.apt-archives-cloud"
for d in "$out/.apt-archives" "$out/.apt-archives-cloud"; do
	find "$d" -maxdepth 1 -name '*.deb' -exec cp -l -t "$arch" {} + 2>/dev/null ||
		find "$d" -maxdepth 1 -name '*.deb' -exec cp -t "$arch" {} +
done
cp /etc/resolv.conf "$r/etc/resolv.conf"

say "$name: apt-get install $CLOUD_PKGS (chroot)"
log=$work/apt.log
if ! unshare --mount --propagation private "$self" --chroot-install "$r" >"$log" 2>&1; then
	tail -n 40 "$log" >&2
	die "installing the cloud packages failed"
fi
grep -E '^(Get|Fetched)' "$log" | tail -n 1 | sed 's/^/  /' >&2 || true
# Keep what was downloaded for the next build; the image gets no apt cache.
for f in "$arch"/*.deb; do
	b=$(basename "$f")
	[ -e "$out/.apt-archives/$b" ] || [ -e "$out/.apt-archives-cloud/$b" ] || cp "$f" "$out/.apt-archives-cloud/"
done
rm -rf -- "$arch"/*.deb "$arch/partial" "$r"/var/lib/apt/lists/*_* "$r"/var/cache/apt/*.bin

say "$name: customizing (fstab, hostname, network left to cloud-init)"
echo "$HOSTNAME_FIXTURE" >"$r/etc/hostname"
sed -i "s/vouch-fixture/$HOSTNAME_FIXTURE/" "$r/etc/hosts"
sed -i "s/^UUID=$ROOT_UUID\t/UUID=$CLOUD_ROOT_UUID\t/" "$r/etc/fstab"
grep -q "^UUID=$CLOUD_ROOT_UUID" "$r/etc/fstab" || die "could not rewrite etc/fstab"
sed -i 's/written by scripts\/build-fixtures.sh/written by scripts\/build-cloud-fixture.sh/' "$r/etc/fstab"
# Network: cloud-init's network stage renders its config (the datasource's, or
# the fallback: DHCP on the first NIC) through netplan into /run/systemd/network.
rm -f -- "$r/etc/systemd/network/20-wired.network"
# systemd-resolved owns /etc/resolv.conf (its package made the stub symlink).
[ -L "$r/etc/resolv.conf" ] || ln -sf ../run/systemd/resolve/stub-resolv.conf "$r/etc/resolv.conf"
# One machine-id per boot of a fresh instance (systemd creates it at first boot).
: >"$r/etc/machine-id"
rm -f -- "$r/var/lib/dbus/machine-id"
# A clean first boot: no cloud-init state, no logs from the build.
rm -rf -- "$r/var/lib/cloud"/* "$r/var/log/cloud-init"*
for u in cloud-init-local cloud-init cloud-config cloud-final systemd-timesyncd systemd-resolved ssh; do
	# -L: the links point at /lib/systemd/system/..., absolute inside the chroot.
	[ -L "$r/etc/systemd/system/multi-user.target.wants/$u.service" ] ||
		[ -L "$r/etc/systemd/system/cloud-init.target.wants/$u.service" ] ||
		[ -L "$r/etc/systemd/system/sysinit.target.wants/$u.service" ] ||
		die "$u.service is not enabled"
done
ls "$r"/usr/bin/cloud-init "$r"/usr/sbin/netplan "$r"/usr/bin/sudo >/dev/null

say "$name: root.ext4 (UUID $CLOUD_ROOT_UUID) and ESP"
truncate -s "${ROOT_MIB}M" "$work/root.ext4"
mkfs.ext4 -q -F -L root -U "$CLOUD_ROOT_UUID" -d "$r" "$work/root.ext4"
remove "$r"
cp --sparse=always "$out/esp.img" "$work/esp.img"
mkdir -p "$work/cfg"
MTOOLS_SKIP_CHECK=1 mcopy -i "$work/esp.img" ::/EFI/debian/grub.cfg "$work/cfg/grub.cfg.in"
sed "s/$ROOT_UUID/$CLOUD_ROOT_UUID/g; s/(vouch fixture)/(vouch cloud fixture)/; s/build-fixtures.sh/build-cloud-fixture.sh/" \
	"$work/cfg/grub.cfg.in" >"$work/cfg/grub.cfg"
grep -q "root=UUID=$CLOUD_ROOT_UUID .*console=ttyS0" "$work/cfg/grub.cfg" || die "grub.cfg was not rewritten"
MTOOLS_SKIP_CHECK=1 mcopy -o -i "$work/esp.img" "$work/cfg/grub.cfg" ::/EFI/debian/grub.cfg
MTOOLS_SKIP_CHECK=1 mcopy -o -i "$work/esp.img" "$work/cfg/grub.cfg" ::/EFI/BOOT/grub.cfg

say "$name: GPT disk and qemu-img convert -O qcow2"
disk=$work/disk.raw
truncate -s "${DISK_MIB}M" "$disk"
sgdisk -o -U "$DISK_GUID" \
	-n "1:2048:$(((1 + ESP_MIB) * 2048 - 1))" -t "1:$ESP_TYPE" -c 1:ESP -u "1:$ESP_PARTUUID" \
	-n "2:$((ROOT_START_MIB * 2048)):$(((ROOT_START_MIB + ROOT_MIB) * 2048 - 1))" -t "2:$ROOT_TYPE" -c 2:root -u "2:$ROOT_PARTUUID" \
	"$disk" >/dev/null
dd if="$work/esp.img" of="$disk" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$work/root.ext4" of="$disk" bs=1M seek="$ROOT_START_MIB" conv=notrunc,sparse status=none
qemu-img convert -f raw -O qcow2 -o compat=1.1 "$disk" "$work/$name"
mv -f -- "$work/$name" "$out/$name"
echo "$hash" >"$out/.stamp-$name"
say "$name: done in $((SECONDS - start))s"
