#!/usr/bin/env bash
# fetch-prev-kernel.sh: download the signed Debian kernel package one ABI older
# than the one linux-image-amd64 depends on (the kernel the fixtures carry), to
# .cache/debs/prev-kernel/. internal/measure's swtpm oracle installs it in a
# booted guest as "a new kernel" and checks the PCR 4 vouch predicted for it.
# No version is written here: the archive's list decides. Cached: a second run
# does nothing. Needs apt-get and apt-cache with bookworm's lists.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${VOUCH_CACHE:-$top/.cache}/debs/prev-kernel
if ls "$dir"/linux-image-*.deb >/dev/null 2>&1; then
  exit 0
fi
cur=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
if [ -z "$cur" ]; then
  echo "fetch-prev-kernel: apt-cache knows no linux-image-amd64; run apt-get update first" >&2
  exit 1
fi
prev=$(apt-cache pkgnames linux-image- | grep -E '^linux-image-[0-9.]+-[0-9]+-amd64$' | sort -V | awk -v cur="$cur" '$0 == cur {print last; exit} {last = $0}')
if [ -z "$prev" ]; then
  echo "fetch-prev-kernel: the archive lists no signed kernel older than $cur" >&2
  exit 1
fi
mkdir -p "$dir.tmp"
(cd "$dir.tmp" && apt-get download "$prev" >/dev/null)
rm -rf "$dir" && mv "$dir.tmp" "$dir"
echo "fetch-prev-kernel: $prev" >&2
