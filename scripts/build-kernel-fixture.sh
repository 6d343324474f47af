#!/usr/bin/env bash
# build-kernel-fixture.sh: build .cache/fixtures/prev-kernel/, "a new kernel" for
# the fixtures' Debian system, ready to be copied into a booted guest: Debian's
# signed kernel one ABI older than the one the fixtures carry
# (scripts/fetch-prev-kernel.sh downloads it), with its modules and an initramfs
# built by the fixture system's own initramfs-tools.
#
# Usage: scripts/build-kernel-fixture.sh
#
# Output (a directory laid out like the root file system):
#   prev-kernel/boot/vmlinuz-KVER       the signed kernel image from the package
#   prev-kernel/boot/initrd.img-KVER    mkinitramfs of rootfs/ for KVER (MODULES=most)
#   prev-kernel/boot/config-KVER, System.map-KVER
#   prev-kernel/lib/modules/KVER/       every module of the package, depmod'ed
#   prev-kernel/package                 the .deb's file name
#
# Why here and not dpkg -i in the guest: internal/measure's swtpm oracle
# measures a kernel change in a guest that QEMU runs under software emulation,
# where dpkg -i of a kernel (unpacking ~400 MB of modules, then compressing an
# initramfs) took 25 minutes. Natively, in a chroot of a copy of rootfs/, it
# takes seconds; the test copies the kernel, the initramfs and the modules the
# guest uses into the guest (the files dpkg would have put there).
#
# Conventions are build-fixtures.sh's: rebuilt when missing, when this script
# changed (.stamp-prev-kernel holds its sha256 and the package's name), or when
# rootfs/ was rebuilt; built under a temporary name and renamed at the end; the
# build holds the flock on .cache/fixtures/.lock. Run as root (chroot).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
self=$top/scripts/build-kernel-fixture.sh
cache=${VOUCH_CACHE:-$top/.cache}
out=$cache/fixtures
name=prev-kernel

export FIXTURES_T0=${FIXTURES_T0:-$(date +%s)}
say() { printf '[build-kernel-fixture %4ds] %s\n' $(($(date +%s) - FIXTURES_T0)) "$*" >&2; }
die() { say "error: $*"; exit 1; }

# The chroot part runs as "$self --chroot KVER DIR" inside unshare(1), so /proc
# is unmounted whatever happens.
if [ "${1:-}" = --chroot ]; then
	kver=$2 r=$3
	mount -t proc proc "$r/proc"
	chroot "$r" depmod -a "$kver"
	chroot "$r" mkinitramfs -o "/boot/initrd.img-$kver" "$kver"
	exit 0
fi

[ "$(id -u)" = 0 ] || die "run as root (chroot, mount namespace)"
for t in unshare chroot dpkg-deb; do
	command -v "$t" >/dev/null || die "missing $t (apt-get install util-linux dpkg)"
done

"$top/scripts/fetch-prev-kernel.sh"
"$top/scripts/build-fixtures.sh" rootfs
shopt -s nullglob
debs=("$cache"/debs/prev-kernel/linux-image-*.deb)
[ ${#debs[@]} = 1 ] || die "want one package in $cache/debs/prev-kernel, found ${#debs[@]}"
deb=${debs[0]}

hash="$(sha256sum <"$self" | cut -d' ' -f1) $(basename "$deb")"
mkdir -p "$out"
exec 9>"$out/.lock"
if ! flock -n 9; then
	say "waiting for another fixture build (lock $out/.lock)"
	flock 9
fi
if [ -d "$out/$name" ] && [ -f "$out/.stamp-$name" ] &&
	[ "$(cat "$out/.stamp-$name")" = "$hash" ] &&
	! [ "$out/.stamp-rootfs" -nt "$out/.stamp-$name" ]; then
	say "$name: up to date"
	exit 0
fi

work=$out/.tmp.kernel.$$
trap 'rm -rf -- "$work"' EXIT
rm -rf -- "$out"/.tmp.kernel.*
mkdir -p "$work"
start=$SECONDS

kver=$(dpkg-deb -c "$deb" | sed -n 's|.*\./boot/vmlinuz-\(.*\)$|\1|p' | head -n1)
[ -n "$kver" ] || die "$deb installs no /boot/vmlinuz-*"
[ ! -e "$out/rootfs/boot/vmlinuz-$kver" ] || die "rootfs/ already has kernel $kver: it is not a new kernel"
say "$name: $kver from $(basename "$deb") into a copy of rootfs/"
r=$work/rootfs
# Hard links: nothing below writes into an existing file of the root (depmod
# writes under the new lib/modules/KVER, mkinitramfs a new /boot/initrd.img
# and its own temporary directory), and a full copy was most of the time.
cp -al -- "$out/rootfs" "$r"
# Extracted beside, then copied in: extracting into the root would let tar
# replace the merged-/usr symlink /lib with a directory.
dpkg-deb -x "$deb" "$work/pkg"
cp -a -- "$work/pkg/boot/." "$r/boot/"
mkdir -p "$r/lib/modules"
cp -a -- "$work/pkg/lib/modules/$kver" "$r/lib/modules/"
rm -rf -- "$work/pkg"
log=$work/chroot.log
if ! unshare --mount --propagation private "$self" --chroot "$kver" "$r" >"$log" 2>&1; then
	tail -n 40 "$log" >&2
	die "depmod/mkinitramfs for $kver failed"
fi

o=$work/$name
mkdir -p "$o/boot" "$o/lib/modules"
for f in vmlinuz initrd.img config System.map; do
	mv -- "$r/boot/$f-$kver" "$o/boot/"
done
mv -- "$r/lib/modules/$kver" "$o/lib/modules/"
basename "$deb" >"$o/package"
rm -rf -- "$r"
rm -rf -- "$out/$name"
mv -- "$o" "$out/$name"
echo "$hash" >"$out/.stamp-$name"
say "$name: done in $((SECONDS - start))s ($(du -sh "$out/$name" | cut -f1))"
