#!/usr/bin/env bash
# fetch-debs.sh: download Debian's own signed boot packages and extract them under
# .cache/debs/x/PACKAGE/ (cached; a second run does nothing).
#
# Contract used by tests and fixture scripts:
#   .cache/debs/x/shim-signed/usr/lib/shim/shimx64.efi.signed        (dual-signed 2011+2023)
#   .cache/debs/x/shim-helpers-amd64-signed/usr/lib/shim/{mm,fb}x64.efi.signed
#   .cache/debs/x/grub-efi-amd64-signed/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed
#   .cache/debs/x/linux-image/boot/vmlinuz-*                          (signed PE kernel)
#   .cache/debs/*.deb                                                 (the packages)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cache=${VOUCH_CACHE:-$top/.cache}/debs
stamp=$cache/.done
[ -f "$stamp" ] && exit 0
mkdir -p "$cache/x"
cd "$cache"
# The signed kernel lives in the versioned package linux-image-amd64 depends on.
kernel=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
if [ -z "$kernel" ]; then
  echo "fetch-debs: apt-cache knows no linux-image-amd64; run apt-get update first" >&2
  exit 1
fi
pkgs="shim-signed shim-helpers-amd64-signed grub-efi-amd64-signed $kernel"
apt-get download $pkgs >/dev/null
for deb in ./*.deb; do
  name=$(dpkg-deb -f "$deb" Package)
  case "$name" in linux-image-*) dir=linux-image ;; *) dir=$name ;; esac
  rm -rf "x/$dir" && mkdir -p "x/$dir" && dpkg-deb -x "$deb" "x/$dir"
done
touch "$stamp"
