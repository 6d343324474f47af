#!/usr/bin/env bash
# deps.sh: install what vouch's tests and demo need on a Debian 12 machine, and
# nothing when it is all there already. Runs as root (apt-get), as CI does.
set -euo pipefail
# command -> Debian package that provides it
need=(
  "qemu-system-x86_64 qemu-system-x86"
  "qemu-img qemu-utils"
  "mmdebstrap mmdebstrap"
  "mkfs.vfat dosfstools"
  "mcopy mtools"
  "sgdisk gdisk"
  "sfdisk fdisk"
  "mkfs.ext4 e2fsprogs"
  "debugfs e2fsprogs"
  "mkfs.xfs xfsprogs"
  "mkfs.btrfs btrfs-progs"
  "sbverify sbsigntool"
  "pesign pesign"
  "osslsigncode osslsigncode"
  "flock util-linux"
  "python3 python3"
  "checksec checksec"
  "debsums debsums"
  "rpm rpm"
  "rpmbuild rpm"
  "dnf dnf"
  "gpg gnupg"
  "lynis lynis"
  "bc bc"
  "chromium chromium"
  "swtpm swtpm"
  "tpm2_eventlog tpm2-tools"
  "dpkg-deb dpkg"
  "cryptsetup cryptsetup-bin"
  "clevis clevis"
  "clevis-luks-bind clevis-luks"
  "clevis-encrypt-tpm2 clevis-tpm2"
  "systemd-cryptenroll systemd"
)
files=(
  "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd ovmf"
  "/usr/share/OVMF/OVMF_VARS_4M.ms.fd ovmf"
  "/usr/lib/postgresql postgresql"
  "/usr/lib/x86_64-linux-gnu/libtss2-tcti-swtpm.so.0 libtss2-tcti-swtpm0"
)
missing=()
for pair in "${need[@]}"; do
  set -- $pair
  command -v "$1" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$1" >/dev/null 2>&1 || missing+=("$2")
done
for pair in "${files[@]}"; do
  set -- $pair
  [ -e "$1" ] || missing+=("$2")
done
if [ ${#missing[@]} -gt 0 ]; then
  pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  echo "deps: installing $pkgs" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends $pkgs >/dev/null
fi
# apt-cache needs package lists for fetch-debs.sh even when nothing was missing.
if ! apt-cache show shim-signed >/dev/null 2>&1; then
  apt-get update -q >/dev/null
fi
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH="$PATH:/usr/local/go/bin"
fi
go mod download
