#!/usr/bin/env bash
# bench/packages.sh: time vouch's package inventory + integrity + SBOM on the 2 GiB
# Debian fixture *image* against debsums --root on the extracted root *directory*,
# in the same run, and print both and the ratio (issue 6). vouch on the directory
# is timed too, to separate vouch's own work from the cost of reading the image.
# Needs: debsums (apt-get install debsums); fixtures are built when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
fx=${VOUCH_FIXTURES:-.cache/fixtures}
img=$fx/debian.raw
root=$fx/rootfs
if [ ! -f "$img" ] || [ ! -d "$root" ]; then
  scripts/build-fixtures.sh rootfs debian.raw
fi
command -v debsums >/dev/null || { echo "bench: debsums is missing: apt-get install debsums" >&2; exit 1; }
go build -o bin/vouch ./cmd/vouch

now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc -l; }

vouch_all() { # inventory + integrity (+ unowned executables) + SBOM
  ./bin/vouch packages list --format json "$1" >/dev/null
  ./bin/vouch packages verify --format json "$1" >/dev/null
  ./bin/vouch sbom --format spdx-json "$1" >/dev/null
}

# Warm the page cache for both, so neither pays for the first read from disk.
cat "$img" >/dev/null
debsums --root "$root" -a -s >/dev/null 2>&1 || true

t0=$(now); debsums --root "$root" -a -s >/dev/null 2>&1 || true; t1=$(now)
d_debsums=$(secs "$t0" "$t1")
t0=$(now); vouch_all "$root"; t1=$(now)
d_dir=$(secs "$t0" "$t1")
t0=$(now); vouch_all "$img"; t1=$(now)
d_img=$(secs "$t0" "$t1")

printf '%-48s %8.2f s\n' "debsums --root rootfs -a -s (directory)" "$d_debsums"
printf '%-48s %8.2f s\n' "vouch list+verify+sbom on the directory" "$d_dir"
printf '%-48s %8.2f s\n' "vouch list+verify+sbom on the image (debian.raw)" "$d_img"
printf 'ratio vouch(image) / debsums(directory): %.2f  (target: below 1)\n' "$(echo "$d_img / $d_debsums" | bc -l)"
printf 'ratio vouch(directory) / debsums(directory): %.2f\n' "$(echo "$d_dir / $d_debsums" | bc -l)"
