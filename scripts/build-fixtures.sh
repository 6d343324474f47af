#!/usr/bin/env bash
# build-fixtures.sh: build real disk-image test fixtures under .cache/fixtures/
# (git-ignored), offline-readable by vouch's tests. Nothing is mounted.
#
# Usage: scripts/build-fixtures.sh [NAME...]     (no NAME = everything)
#        scripts/build-fixtures.sh --list         (the target names, one a line)
#
# Outputs (file names are a contract: the Go tests open them):
#   rootfs/                  Debian 12 minbase + systemd, openssh-server, kernel,
#                            initramfs, shim-signed, grub-efi-amd64-signed; root locked
#   esp.img                  bare FAT32 ESP (256 MiB) as put into the GPT/MBR images;
#                            esp.img.sha256 lists the sha256 of each file on it
#   root.ext4                bare ext4 of rootfs/ (UUID $ROOT_UUID) as put into the images
#   debian.raw               2 GiB GPT: p1 ESP (FAT32), p2 root (ext4, x86-64 root GUID);
#                            boots under OVMF with Secure Boot on (scripts/boot-fixture.sh)
#   debian.qcow2             qcow2 v3 of debian.raw
#   debian-v2.qcow2          qcow2 v2 (compat=0.10)
#   debian-compressed.qcow2  qcow2 v3 with compressed clusters
#   debian-fixed.vhd         VHD fixed;  debian-dynamic.vhd  VHD dynamic
#   debian.vhdx              VHDX (dynamic)
#   debian-mbr.raw           MBR: p1 ESP (0xEF), p2 root (0x83), p3 extended holding
#                            p5 (ext4 label "data" with hello.txt)
#   debian-xfs.raw           2 GiB GPT like debian.raw, root is XFS (from a protofile,
#                            scripts/xfs-protofile.py; what it had to leave out is in
#                            debian-xfs.raw.protofile.log)
#   btrfs.raw                512 MiB GPT: ESP + btrfs root holding a small tree
#   esp-fat16.img            bare FAT16 with the ESP tree;  esp-fat12.img  bare FAT12
#   truth/                   what the standard tools say about each output (truth/README)
#
# Each output is rebuilt when it is missing, when this script or
# scripts/xfs-protofile.py changed (.stamp-NAME holds their sha256), or when an
# output it is made from was rebuilt. Files are built under a temporary name and
# renamed at the end. The whole run holds an exclusive flock on .cache/fixtures/.lock,
# so concurrent runs wait for each other and then find everything up to date.
#
# The Debian packages come from deb.debian.org (mmdebstrap) and from
# scripts/fetch-debs.sh (the signed shim, mm, fb and GRUB put on the ESP).
# Downloaded .debs are kept in .cache/fixtures/.apt-archives/ between rootfs builds.
#
# Needs (Debian packages): mmdebstrap qemu-utils mtools dosfstools gdisk fdisk
# e2fsprogs xfsprogs btrfs-progs python3 util-linux; run as root (mmdebstrap's
# root mode keeps file ownership and device nodes for mkfs.ext4 -d).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
self=$top/scripts/build-fixtures.sh
protogen=$top/scripts/xfs-protofile.py
cache=${VOUCH_CACHE:-$top/.cache}
out=$cache/fixtures
debs=$cache/debs/x

# Fixed identifiers, so outputs are comparable from build to build and tests can
# name them. Everything that puts one on disk reads it from here.
ROOT_UUID=6a1f5c3e-2b7d-4e0a-9c1b-5d3e7f9a0b21   # ext4 root (mkfs.ext4 -U)
XFS_UUID=7b2e6d4f-3c8e-4f1b-8d2c-6e4f8a0b1c32    # XFS root of debian-xfs.raw
BTRFS_UUID=8c3f7e50-4d9f-4a2c-9e3d-7f5a9b1c2d43  # btrfs root of btrfs.raw
DATA_UUID=9d4a8f61-5ea0-4b3d-8f4e-8a6b0c2d3e54   # ext4 "data" logical partition
ESP_VOLID=5A1E7E57                               # FAT volume ID: UUID=5A1E-7E57
FAT16_VOLID=5A1E0016
FAT12_VOLID=5A1E0012
DISK_GUID=0d15c0de-0000-4000-8000-000000000001   # GPT disk GUID (sgdisk -U)
ESP_PARTUUID=0d15c0de-0000-4000-8000-0000000000e5
ROOT_PARTUUID=0d15c0de-0000-4000-8000-0000000000a2
MBR_ID=0x5a1e7e57                                # MBR disk signature
HOSTNAME_FIXTURE=vouch-fixture
SUITE=bookworm
ESP_TYPE=C12A7328-F81F-11D2-BA4B-00A0C93EC93B
ROOT_TYPE=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709   # discoverable partitions: x86-64 root
ROOT_PKGS=systemd,systemd-sysv,udev,dbus,openssh-server,initramfs-tools,zstd,shim-signed,grub-efi-amd64-signed,e2fsprogs,dosfstools,kmod
KERNEL_PKG=linux-image-amd64   # installed last, in the customize hook (see there)

# Layout (MiB). GPT: ESP at 1 MiB, root right after it, 1 MiB left for the backup GPT.
DISK_MIB=2048
ESP_MIB=256
ROOT_MIB=$((DISK_MIB - 1 - ESP_MIB - 1))          # 1790
ROOT_START_MIB=$((1 + ESP_MIB))                   # 257
# MBR: the same two primaries, then a 64 MiB extended partition with one logical.
MBR_EXT_MIB=64
MBR_DISK_MIB=$((ROOT_START_MIB + ROOT_MIB + MBR_EXT_MIB + 1))   # 2112
# btrfs.raw
BTRFS_DISK_MIB=512
BTRFS_MIB=$((BTRFS_DISK_MIB - 1 - ESP_MIB - 1))   # 254

TARGETS="rootfs esp.img root.ext4 debian.raw debian.qcow2 debian-v2.qcow2
debian-compressed.qcow2 debian-fixed.vhd debian-dynamic.vhd debian.vhdx
debian-mbr.raw debian-xfs.raw btrfs.raw esp-fat16.img esp-fat12.img truth"

deps_of() {
	case $1 in
	rootfs) ;;
	esp.img | root.ext4 | debian-xfs.raw | btrfs.raw | esp-fat16.img | esp-fat12.img) echo rootfs ;;
	debian.raw | debian-mbr.raw) echo esp.img root.ext4 ;;
	debian.qcow2 | debian-v2.qcow2 | debian-compressed.qcow2 | debian-fixed.vhd | debian-dynamic.vhd | debian.vhdx) echo debian.raw ;;
	truth) for t in $TARGETS; do [ "$t" = truth ] || echo "$t"; done ;;
	*) return 1 ;;
	esac
}

# Elapsed seconds are counted from the start of the outermost run (hooks that
# mmdebstrap runs inherit FIXTURES_T0).
export FIXTURES_T0=${FIXTURES_T0:-$(date +%s)}
say() { printf '[build-fixtures %4ds] %s\n' $(($(date +%s) - FIXTURES_T0)) "$*" >&2; }
die() { say "error: $*"; exit 1; }

# ---------------------------------------------------------------------------
# rootfs customisation, run by mmdebstrap as a --customize-hook with the
# chroot directory as argument (this script calls itself; no lock taken).
customize_rootfs() {
	local r=$1
	# The kernel goes in last, on its own: its postinst builds the initramfs
	# (MODULES=most, Debian's default) with every initramfs hook already in place.
	# Installed together with the rest, the initramfs is built twice (once by the
	# kernel's postinst, again by the update-initramfs trigger that udev, kmod,
	# zstd ... activate), and that is the slowest step of the whole build.
	say "rootfs: installing $KERNEL_PKG (builds the initramfs)"
	local log=$r/var/log/vouch-kernel-install.log
	if ! DEBIAN_FRONTEND=noninteractive chroot "$r" apt-get install --yes --quiet \
		--no-install-recommends "$KERNEL_PKG" >"$log" 2>&1; then
		cat "$log" >&2
		return 1
	fi
	rm -f -- "$log"
	say "rootfs: customizing (hostname, fstab, networkd)"
	echo "$HOSTNAME_FIXTURE" >"$r/etc/hostname"
	chmod 0644 "$r/etc/hostname"
	cat >"$r/etc/hosts" <<EOF
127.0.0.1	localhost
127.0.1.1	$HOSTNAME_FIXTURE
::1		localhost ip6-localhost ip6-loopback
ff02::1		ip6-allnodes
ff02::2		ip6-allrouters
EOF
	cat >"$r/etc/fstab" <<EOF
# /etc/fstab: static file system information (written by scripts/build-fixtures.sh).
# <file system>	<mount point>	<type>	<options>	<dump>	<pass>
UUID=$ROOT_UUID	/	ext4	errors=remount-ro	0	1
UUID=$(esp_uuid)	/boot/efi	vfat	umask=0077	0	1
EOF
	mkdir -p "$r/boot/efi"
	# DHCP on the wired NIC(s) with systemd-networkd (part of bookworm's systemd).
	mkdir -p "$r/etc/systemd/network"
	cat >"$r/etc/systemd/network/20-wired.network" <<EOF
[Match]
Type=ether
Name=en* eth*

[Network]
DHCP=yes
EOF
	systemctl --root="$r" enable systemd-networkd.service >/dev/null 2>&1
	# Serial console: nothing to do; systemd-getty-generator starts
	# serial-getty@ttyS0 because the kernel command line names console=ttyS0.
	#
	# The bootloader postinsts (shim-signed, shim-helpers-amd64-signed) run
	# grub-install only when /sys/firmware/efi exists, /etc/default/grub names a
	# GRUB_DISTRIBUTOR and /boot/efi/EFI/<distributor> exists. We do not mount
	# /sys into the chroot (--skip=chroot/mount/sys) and /boot/efi is only made
	# here, after every package is configured; check that nothing was installed.
	if [ -n "$(ls -A "$r/boot/efi")" ] || [ -e "$r/boot/grub/grub.cfg" ]; then
		echo "customize: a package postinst installed a bootloader into the rootfs" >&2
		return 1
	fi
	ls "$r"/boot/vmlinuz-* "$r"/boot/initrd.img-* >/dev/null
}

esp_uuid() { echo "${ESP_VOLID:0:4}-${ESP_VOLID:4:4}"; }

if [ "${1:-}" = --customize-rootfs ]; then
	customize_rootfs "$2"
	exit
fi
if [ "${1:-}" = --say ]; then
	shift
	say "$*"
	exit 0
fi
if [ "${1:-}" = --list ]; then
	printf '%s\n' $TARGETS
	exit 0
fi

# ---------------------------------------------------------------------------
hash=$(cat "$self" "$protogen" | sha256sum | cut -d' ' -f1)
mkdir -p "$out"
exec 9>"$out/.lock"
if ! flock -n 9; then
	say "waiting for another build-fixtures run (lock $out/.lock)"
	flock 9
fi

# remove PATH...: rm -rf, but never across a mount point (an interrupted
# mmdebstrap may leave /proc or /dev mounted in its chroot).
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
# Holding the lock, no other run is active: leftovers of killed runs can go.
remove "$out"/.tmp.* "$out"/.old.*
tmps=()
cleanup() { remove "${tmps[@]}"; }
trap cleanup EXIT
# newtmp VAR SUFFIX: a temporary path in $out, removed at exit unless renamed.
newtmp() {
	local p="$out/.tmp.$$.$2"
	rm -rf -- "$p"
	tmps+=("$p")
	printf -v "$1" %s "$p"
}
# commit TMP NAME: rename a finished temporary into place and stamp it.
commit() {
	local tmp=$1 name=$2
	if [ -d "$tmp" ]; then
		rm -rf -- "$out/.old.$$.$name"
		[ ! -e "$out/$name" ] || mv -- "$out/$name" "$out/.old.$$.$name"
		mv -- "$tmp" "$out/$name"
		rm -rf -- "$out/.old.$$.$name"
	else
		mv -f -- "$tmp" "$out/$name"
	fi
	echo "$hash" >"$out/.stamp-$name"
}

uptodate() {
	local name=$1 d
	[ -e "$out/$name" ] && [ -f "$out/.stamp-$name" ] || return 1
	[ "$(cat "$out/.stamp-$name")" = "$hash" ] || return 1
	for d in $(deps_of "$name"); do
		[ "$out/.stamp-$d" -nt "$out/.stamp-$name" ] && return 1
	done
	return 0
}

kernel_version() {
	local k
	k=$(cd "$out/rootfs/boot" && ls vmlinuz-* | sort -V | tail -n1)
	echo "${k#vmlinuz-}"
}

# ---------------------------------------------------------------------------
build_rootfs() {
	local tmp newcache cachedir=$out/.apt-archives
	newtmp tmp rootfs
	newtmp newcache apt-archives
	mkdir -p "$cachedir" "$newcache"
	say "rootfs: mmdebstrap $SUITE minbase + $ROOT_PKGS,$KERNEL_PKG"
	# --skip=chroot/mount/sys: see customize_rootfs (keeps grub-install away).
	# --skip=essential/unlink + sync-in/sync-out: reuse downloaded .debs next time.
	# apt's cache and lists are still removed from the rootfs (mmdebstrap's cleanup).
	# force-unsafe-io: no fsync per unpacked file (the result is renamed at the end).
	mmdebstrap --quiet --mode=root --format=directory --variant=minbase \
		--include="$ROOT_PKGS" \
		--aptopt='Acquire::Languages "none"' \
		--dpkgopt=force-unsafe-io \
		--skip=chroot/mount/sys --skip=essential/unlink \
		--setup-hook='mkdir -p "$1"/var/cache/apt/archives' \
		--setup-hook="sync-in $cachedir /var/cache/apt/archives/" \
		--extract-hook="$self --say rootfs: essential packages extracted" \
		--essential-hook="$self --say rootfs: essential packages installed, installing the rest" \
		--customize-hook="$self --customize-rootfs \"\$1\"" \
		--customize-hook="sync-out /var/cache/apt/archives $newcache" \
		"$SUITE" "$tmp" \
		"deb http://deb.debian.org/debian $SUITE main" \
		"deb http://deb.debian.org/debian $SUITE-updates main" \
		"deb http://deb.debian.org/debian-security $SUITE-security main" \
		>&2
	rm -rf -- "$cachedir"
	mv -- "$newcache" "$cachedir"
	rm -f -- "$cachedir/lock"
	rm -rf -- "$cachedir/partial"
	commit "$tmp" rootfs
}

# make_esp IMG SIZE_MIB FATBITS VOLID HIDDEN_SECTORS ROOT_UUID ROOT_FSTYPE
# Debian's layout as grub-install --uefi-secure-boot writes it (EFI/debian) plus
# the removable path (EFI/BOOT, as with grub2/force_efi_extra_removable).
make_esp() {
	local img=$1 mib=$2 bits=$3 volid=$4 hidden=$5 uuid=$6 fstype=$7
	local kver stage sflag=()
	kver=$(kernel_version)
	"$top/scripts/fetch-debs.sh"
	local shim=$debs/shim-signed/usr/lib/shim/shimx64.efi.signed
	local mm=$debs/shim-helpers-amd64-signed/usr/lib/shim/mmx64.efi.signed
	local fb=$debs/shim-helpers-amd64-signed/usr/lib/shim/fbx64.efi.signed
	local grub=$debs/grub-efi-amd64-signed/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed
	local csv=$out/rootfs/usr/lib/shim/BOOTX64.CSV
	local f
	for f in "$shim" "$mm" "$fb" "$grub" "$csv"; do [ -f "$f" ] || die "missing $f"; done
	# The rootfs was installed from the same archive: its copies should be identical.
	cmp -s "$shim" "$out/rootfs/usr/lib/shim/shimx64.efi.signed" ||
		say "warning: fetch-debs shim differs from the rootfs's shim-signed"
	cmp -s "$grub" "$out/rootfs/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed" ||
		say "warning: fetch-debs GRUB differs from the rootfs's grub-efi-amd64-signed"
	stage=$img.stage
	tmps+=("$stage" "$img.sha256")
	rm -rf -- "$stage"
	mkdir -p "$stage/EFI/BOOT" "$stage/EFI/debian"
	cat >"$stage/EFI/debian/grub.cfg" <<EOF
# written by scripts/build-fixtures.sh (root: $fstype)
set timeout=0
set default=0
search --no-floppy --fs-uuid --set=root $uuid
menuentry 'Debian GNU/Linux 12 (vouch fixture)' {
	linux /boot/vmlinuz-$kver root=UUID=$uuid ro console=tty0 console=ttyS0,115200
	initrd /boot/initrd.img-$kver
}
EOF
	cp "$shim" "$stage/EFI/debian/shimx64.efi"
	cp "$grub" "$stage/EFI/debian/grubx64.efi"
	cp "$mm" "$stage/EFI/debian/mmx64.efi"
	cp "$fb" "$stage/EFI/debian/fbx64.efi"
	cp "$csv" "$stage/EFI/debian/BOOTX64.CSV"
	cp "$shim" "$stage/EFI/BOOT/BOOTX64.EFI"
	cp "$grub" "$stage/EFI/BOOT/grubx64.efi"
	cp "$mm" "$stage/EFI/BOOT/mmx64.efi"
	cp "$fb" "$stage/EFI/BOOT/fbx64.efi"
	cp "$stage/EFI/debian/grub.cfg" "$stage/EFI/BOOT/grub.cfg"
	case $bits in 12) sflag=(-s 16) ;; 16) sflag=(-s 4) ;; esac
	rm -f -- "$img"
	mkfs.vfat -F "$bits" "${sflag[@]}" -n ESP -i "$volid" -h "$hidden" \
		-C "$img" $((mib * 1024)) >/dev/null
	MTOOLS_SKIP_CHECK=1 mcopy -s -m -i "$img" "$stage/EFI" ::/
	(cd "$stage" && find EFI -type f | LC_ALL=C sort | xargs sha256sum) >"$img.sha256"
	rm -rf -- "$stage"
}

build_esp_img() {
	local tmp
	newtmp tmp esp.img
	say "esp.img: FAT32 ${ESP_MIB} MiB, EFI/BOOT + EFI/debian, grub.cfg -> ext4 $ROOT_UUID"
	make_esp "$tmp" "$ESP_MIB" 32 "$ESP_VOLID" 2048 "$ROOT_UUID" ext4
	mv -f -- "$tmp.sha256" "$out/esp.img.sha256"
	commit "$tmp" esp.img
}

build_root_ext4() {
	local tmp
	newtmp tmp root.ext4
	say "root.ext4: mkfs.ext4 -d rootfs/ (${ROOT_MIB} MiB, UUID $ROOT_UUID)"
	truncate -s "${ROOT_MIB}M" "$tmp"
	mkfs.ext4 -q -F -L root -U "$ROOT_UUID" -d "$out/rootfs" "$tmp"
	commit "$tmp" root.ext4
}

# gpt_disk IMG DISK_MIB ROOT_MIB: a sparse file with the two-partition GPT.
gpt_disk() {
	local img=$1 disk_mib=$2 root_mib=$3
	local esp_first=2048 esp_last=$(((1 + ESP_MIB) * 2048 - 1))
	local root_first=$((ROOT_START_MIB * 2048)) root_last=$(((ROOT_START_MIB + root_mib) * 2048 - 1))
	truncate -s "${disk_mib}M" "$img"
	sgdisk -o -U "$DISK_GUID" \
		-n "1:$esp_first:$esp_last" -t "1:$ESP_TYPE" -c 1:ESP -u "1:$ESP_PARTUUID" \
		-n "2:$root_first:$root_last" -t "2:$ROOT_TYPE" -c 2:root -u "2:$ROOT_PARTUUID" \
		"$img" >/dev/null
}

# put SRC IMG OFFSET_MIB: copy a file system image into a disk image, sparsely.
put() { dd if="$1" of="$2" bs=1M seek="$3" conv=notrunc,sparse status=none; }

build_debian_raw() {
	local tmp
	newtmp tmp debian.raw
	say "debian.raw: GPT ${DISK_MIB} MiB, ESP at 1 MiB, ext4 root at ${ROOT_START_MIB} MiB"
	gpt_disk "$tmp" "$DISK_MIB" "$ROOT_MIB"
	put "$out/esp.img" "$tmp" 1
	put "$out/root.ext4" "$tmp" "$ROOT_START_MIB"
	commit "$tmp" debian.raw
}

convert() {
	local name=$1 tmp
	shift
	newtmp tmp "$name"
	say "$name: qemu-img convert $*"
	qemu-img convert -f raw "$@" "$out/debian.raw" "$tmp"
	commit "$tmp" "$name"
}

build_debian_mbr_raw() {
	local tmp data datadir
	newtmp tmp debian-mbr.raw
	newtmp data data.ext4
	newtmp datadir data
	say "debian-mbr.raw: MBR ${MBR_DISK_MIB} MiB, ESP 0xEF + root 0x83 + extended(logical ext4 \"data\")"
	local ext_first=$(((ROOT_START_MIB + ROOT_MIB) * 2048)) ext_size=$((MBR_EXT_MIB * 2048))
	local log_first=$((ext_first + 2048)) log_mib=$((MBR_EXT_MIB - 2))
	mkdir -p "$datadir"
	echo "hello from the logical partition of debian-mbr.raw" >"$datadir/hello.txt"
	truncate -s "${log_mib}M" "$data"
	mkfs.ext4 -q -F -L data -U "$DATA_UUID" -d "$datadir" "$data"
	truncate -s "${MBR_DISK_MIB}M" "$tmp"
	sfdisk -q "$tmp" >/dev/null <<EOF
label: dos
label-id: $MBR_ID
unit: sectors

start=2048, size=$((ESP_MIB * 2048)), type=ef
start=$((ROOT_START_MIB * 2048)), size=$((ROOT_MIB * 2048)), type=83
start=$ext_first, size=$ext_size, type=5
start=$log_first, size=$((log_mib * 2048)), type=83
EOF
	put "$out/esp.img" "$tmp" 1
	put "$out/root.ext4" "$tmp" "$ROOT_START_MIB"
	put "$data" "$tmp" $((log_first / 2048))
	commit "$tmp" debian-mbr.raw
}

build_debian_xfs_raw() {
	local tmp esp xfs proto fstab sticky rel
	newtmp tmp debian-xfs.raw
	newtmp esp esp-xfs.img
	newtmp xfs root.xfs
	newtmp proto xfs.proto
	newtmp fstab xfs.fstab
	newtmp sticky xfs.sticky
	say "debian-xfs.raw: protofile from rootfs/, mkfs.xfs -p (UUID $XFS_UUID)"
	sed -e "s|^UUID=$ROOT_UUID\t/\text4\terrors=remount-ro\t0\t1$|UUID=$XFS_UUID\t/\txfs\tdefaults\t0\t0|" \
		"$out/rootfs/etc/fstab" >"$fstab"
	grep -q "$XFS_UUID" "$fstab" || die "could not rewrite etc/fstab for XFS"
	python3 "$protogen" --override "etc/fstab=$fstab" --sticky-list "$sticky" \
		"$out/rootfs" 2>"$out/debian-xfs.raw.protofile.log" >"$proto"
	sed 's/^/  /' "$out/debian-xfs.raw.protofile.log" >&2
	truncate -s "${ROOT_MIB}M" "$xfs"
	mkfs.xfs -q -f -L root -m "uuid=$XFS_UUID" -p "$proto" "$xfs"
	# The protofile format has no sticky bit: put it back with xfs_db (expert mode
	# rewrites the inode CRC).
	while IFS= read -r rel; do
		[ "$rel" != . ] || rel=
		xfs_db -x -c "path /$rel" -c "write core.mode 0x$(stat -c %f "$out/rootfs/$rel")" "$xfs" >/dev/null ||
			die "xfs_db could not restore the mode of /$rel"
	done <"$sticky"
	say "debian-xfs.raw: ESP (grub.cfg -> xfs) and GPT"
	make_esp "$esp" "$ESP_MIB" 32 "$ESP_VOLID" 2048 "$XFS_UUID" xfs
	gpt_disk "$tmp" "$DISK_MIB" "$ROOT_MIB"
	put "$esp" "$tmp" 1
	put "$xfs" "$tmp" "$ROOT_START_MIB"
	commit "$tmp" debian-xfs.raw
}

build_btrfs_raw() {
	local tmp esp fs tree
	newtmp tmp btrfs.raw
	newtmp esp esp-btrfs.img
	newtmp fs root.btrfs
	newtmp tree btrfs-tree
	say "btrfs.raw: GPT ${BTRFS_DISK_MIB} MiB, ESP + btrfs root (small tree, UUID $BTRFS_UUID)"
	local r=$out/rootfs
	mkdir -p "$tree/etc" "$tree/usr/lib" "$tree/var/lib/dpkg" "$tree/boot"
	cp -a "$r/etc/os-release" "$r/etc/hostname" "$r/etc/passwd" "$r/etc/group" "$tree/etc/"
	cp -a "$r/usr/lib/os-release" "$tree/usr/lib/"
	cp -a "$r/var/lib/dpkg/status" "$tree/var/lib/dpkg/"
	cp -a "$r"/boot/config-* "$tree/boot/"
	printf '# /etc/fstab (btrfs fixture)\nUUID=%s\t/\tbtrfs\tdefaults\t0\t0\nUUID=%s\t/boot/efi\tvfat\tumask=0077\t0\t1\n' \
		"$BTRFS_UUID" "$(esp_uuid)" >"$tree/etc/fstab"
	truncate -s "${BTRFS_MIB}M" "$fs"
	mkfs.btrfs -q -f -L root -U "$BTRFS_UUID" --rootdir "$tree" "$fs" >/dev/null
	make_esp "$esp" "$ESP_MIB" 32 "$ESP_VOLID" 2048 "$BTRFS_UUID" btrfs
	gpt_disk "$tmp" "$BTRFS_DISK_MIB" "$BTRFS_MIB"
	put "$esp" "$tmp" 1
	put "$fs" "$tmp" "$ROOT_START_MIB"
	commit "$tmp" btrfs.raw
}

build_esp_fat() {
	local name=$1 bits=$2 mib=$3 volid=$4 tmp
	newtmp tmp "$name"
	say "$name: bare FAT$bits ${mib} MiB with the ESP tree"
	make_esp "$tmp" "$mib" "$bits" "$volid" 0 "$ROOT_UUID" ext4
	rm -f -- "$tmp.sha256"
	commit "$tmp" "$name"
}

# ---------------------------------------------------------------------------
build_truth() {
	local tmp img
	newtmp tmp truth
	say "truth: sgdisk/sfdisk, qemu-img info, mdir, blkid, debugfs, rootfs facts"
	mkdir -p "$tmp"
	cat >"$tmp/README" <<'EOF'
What the standard tools say about the fixtures in .cache/fixtures/, written by
scripts/build-fixtures.sh (target "truth") for the Go tests to compare against.
Commands run inside .cache/fixtures/, so file names in the output are relative.

ids.env                  the fixed identifiers used by the build (shell syntax):
                         ext4/XFS/btrfs/data UUIDs, FAT volume IDs, GPT disk and
                         partition GUIDs, MBR disk ID, kernel version, offsets
IMG.qemu-img.json        qemu-img info --output=json IMG  (every image; note that
                         "actual-size" depends on the host file system)
IMG.sgdisk               sgdisk -p IMG            (GPT images)
IMG.sfdisk               sfdisk --dump IMG        (debian-mbr.raw)
IMG.pN.blkid             blkid -p -o export --offset OFF IMG for partition N
                         (TYPE, UUID, LABEL, ... of the file system found there)
IMG.esp.mdir             mdir -/ -b -i IMG@@OFFSET ::/EFI  (recursive bare listing
                         of the ESP's EFI directory; OFFSET 1048576 in the disk
                         images, 0 in esp.img, esp-fat16.img, esp-fat12.img)
IMG.esp.fsck             fsck.vfat -n output for the bare FAT images
esp.sha256               sha256 of every file on the ESP, by path (same in all images)
root.ext4.boot.debugfs   debugfs -R 'ls -l /boot' root.ext4
root.ext4.dumpe2fs       dumpe2fs -h root.ext4 (superblock facts)
rootfs.os-release        cat rootfs/etc/os-release
rootfs.boot.ls           ls -l rootfs/boot (name-sorted)
rootfs.packages          dpkg-query -W of the rootfs: package, version, arch
debian-mbr.raw.data.ls   debugfs -R 'ls -l /' of the logical "data" partition
debian-xfs.raw.xfs_db    xfs_db -r -c 'sb 0' -c print of the XFS root
debian-xfs.raw.protofile.log  entries of rootfs/ the XFS protofile could not carry
btrfs.raw.btrfs-inspect  btrfs inspect-internal dump-super of the btrfs root
EOF
	{
		echo "ROOT_UUID=$ROOT_UUID"
		echo "XFS_UUID=$XFS_UUID"
		echo "BTRFS_UUID=$BTRFS_UUID"
		echo "DATA_UUID=$DATA_UUID"
		echo "ESP_VOLID=$(esp_uuid)"
		echo "FAT16_VOLID=${FAT16_VOLID:0:4}-${FAT16_VOLID:4:4}"
		echo "FAT12_VOLID=${FAT12_VOLID:0:4}-${FAT12_VOLID:4:4}"
		echo "DISK_GUID=$DISK_GUID"
		echo "ESP_PARTUUID=$ESP_PARTUUID"
		echo "ROOT_PARTUUID=$ROOT_PARTUUID"
		echo "MBR_ID=$MBR_ID"
		echo "ESP_TYPE=$ESP_TYPE"
		echo "ROOT_TYPE=$ROOT_TYPE"
		echo "HOSTNAME=$HOSTNAME_FIXTURE"
		echo "KERNEL_VERSION=$(kernel_version)"
		echo "ESP_OFFSET=$((1024 * 1024))"
		echo "ROOT_OFFSET=$((ROOT_START_MIB * 1024 * 1024))"
		echo "MBR_DATA_OFFSET=$(((ROOT_START_MIB + ROOT_MIB + 1) * 1024 * 1024))"
	} >"$tmp/ids.env"
	(
		cd "$out"
		export MTOOLS_SKIP_CHECK=1
		for img in debian.raw debian.qcow2 debian-v2.qcow2 debian-compressed.qcow2 \
			debian-fixed.vhd debian-dynamic.vhd debian.vhdx debian-mbr.raw \
			debian-xfs.raw btrfs.raw esp.img root.ext4 esp-fat16.img esp-fat12.img; do
			qemu-img info --output=json "$img" >"$tmp/$img.qemu-img.json"
		done
		for img in debian.raw debian-xfs.raw btrfs.raw; do
			sgdisk -p "$img" >"$tmp/$img.sgdisk"
			mdir -/ -b -i "$img@@1048576" ::/EFI >"$tmp/$img.esp.mdir"
			blkid -p -o export --offset 1048576 "$img" >"$tmp/$img.p1.blkid"
			blkid -p -o export --offset $((ROOT_START_MIB * 1048576)) "$img" >"$tmp/$img.p2.blkid"
		done
		sfdisk --dump debian-mbr.raw >"$tmp/debian-mbr.raw.sfdisk"
		mdir -/ -b -i "debian-mbr.raw@@1048576" ::/EFI >"$tmp/debian-mbr.raw.esp.mdir"
		blkid -p -o export --offset 1048576 debian-mbr.raw >"$tmp/debian-mbr.raw.p1.blkid"
		blkid -p -o export --offset $((ROOT_START_MIB * 1048576)) debian-mbr.raw >"$tmp/debian-mbr.raw.p2.blkid"
		local dataoff=$(((ROOT_START_MIB + ROOT_MIB + 1) * 1048576))
		blkid -p -o export --offset "$dataoff" debian-mbr.raw >"$tmp/debian-mbr.raw.p5.blkid"
		for img in esp.img esp-fat16.img esp-fat12.img; do
			mdir -/ -b -i "$img" ::/EFI >"$tmp/$img.esp.mdir"
			fsck.vfat -n "$img" >"$tmp/$img.esp.fsck" 2>&1
		done
		cp esp.img.sha256 "$tmp/esp.sha256"
		cp debian-xfs.raw.protofile.log "$tmp/debian-xfs.raw.protofile.log"
		debugfs -R 'ls -l /boot' root.ext4 >"$tmp/root.ext4.boot.debugfs" 2>/dev/null
		dumpe2fs -h root.ext4 >"$tmp/root.ext4.dumpe2fs" 2>/dev/null
		cat rootfs/etc/os-release >"$tmp/rootfs.os-release"
		LC_ALL=C ls -l rootfs/boot >"$tmp/rootfs.boot.ls"
		dpkg-query --admindir=rootfs/var/lib/dpkg -W \
			-f '${Package}\t${Version}\t${Architecture}\n' >"$tmp/rootfs.packages"
	)
	local d
	newtmp d data.ext4.truth
	dd if="$out/debian-mbr.raw" of="$d" bs=1M skip=$((ROOT_START_MIB + ROOT_MIB + 1)) \
		count=$((MBR_EXT_MIB - 2)) conv=sparse status=none
	debugfs -R 'ls -l /' "$d" >"$tmp/debian-mbr.raw.data.ls" 2>/dev/null
	rm -f -- "$d"
	newtmp d xfs.truth
	dd if="$out/debian-xfs.raw" of="$d" bs=1M skip="$ROOT_START_MIB" count="$ROOT_MIB" \
		conv=sparse status=none
	xfs_db -r -c 'sb 0' -c print "$d" >"$tmp/debian-xfs.raw.xfs_db"
	rm -f -- "$d"
	newtmp d btrfs.truth
	dd if="$out/btrfs.raw" of="$d" bs=1M skip="$ROOT_START_MIB" count="$BTRFS_MIB" \
		conv=sparse status=none
	btrfs inspect-internal dump-super "$d" >"$tmp/btrfs.raw.btrfs-inspect"
	rm -f -- "$d"
	commit "$tmp" truth
}

# ---------------------------------------------------------------------------
run_build() {
	case $1 in
	rootfs) build_rootfs ;;
	esp.img) build_esp_img ;;
	root.ext4) build_root_ext4 ;;
	debian.raw) build_debian_raw ;;
	debian.qcow2) convert debian.qcow2 -O qcow2 -o compat=1.1 ;;
	debian-v2.qcow2) convert debian-v2.qcow2 -O qcow2 -o compat=0.10 ;;
	debian-compressed.qcow2) convert debian-compressed.qcow2 -O qcow2 -c ;;
	debian-fixed.vhd) convert debian-fixed.vhd -O vpc -o subformat=fixed,force_size=on ;;
	debian-dynamic.vhd) convert debian-dynamic.vhd -O vpc -o subformat=dynamic,force_size=on ;;
	debian.vhdx) convert debian.vhdx -O vhdx ;;
	debian-mbr.raw) build_debian_mbr_raw ;;
	debian-xfs.raw) build_debian_xfs_raw ;;
	btrfs.raw) build_btrfs_raw ;;
	esp-fat16.img) build_esp_fat esp-fat16.img 16 32 "$FAT16_VOLID" ;;
	esp-fat12.img) build_esp_fat esp-fat12.img 12 24 "$FAT12_VOLID" ;;
	truth) build_truth ;;
	esac
}

declare -A visited=()
build() {
	local name=$1 d t
	[ -z "${visited[$name]:-}" ] || return 0
	visited[$name]=1
	for d in $(deps_of "$name"); do build "$d"; done
	if uptodate "$name"; then
		say "$name: up to date"
		return 0
	fi
	t=$SECONDS
	run_build "$name"
	say "$name: done in $((SECONDS - t))s"
}

want=("$@")
[ ${#want[@]} -gt 0 ] || want=($TARGETS)
for n in "${want[@]}"; do
	deps_of "$n" >/dev/null || die "unknown target $n (known: $(echo $TARGETS))"
done
for n in "${want[@]}"; do build "$n"; done
say "all done: ${want[*]}"
