#!/usr/bin/env bash
# bench/packages.sh: time vouch's package inventory + integrity + SBOM on the 2 GiB
# Debian fixture *image* (raw and qcow2) against debsums --root on the extracted
# root *directory*, in the same run, and print the times and the ratios (issue 6).
# vouch on the directory is timed too, to separate vouch's own work from the cost
# of reading the image. Each is run RUNS times (default 3) and the best time kept,
# since other work on the machine only ever adds time.
# Bytes of the image read per run: go test ./internal/integrity -run '^$' -bench VerifyImage -benchtime 1x
# Needs: debsums (apt-get install debsums); fixtures are built when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
fx=${VOUCH_FIXTURES:-.cache/fixtures}
img=$fx/debian.raw
qcow=$fx/debian.qcow2
root=$fx/rootfs
runs=${RUNS:-3}
if [ ! -f "$img" ] || [ ! -f "$qcow" ] || [ ! -d "$root" ]; then
  scripts/build-fixtures.sh rootfs debian.raw debian.qcow2
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

# best CMD...: the shortest wall time of $runs runs.
best() {
  local b="" t0 t1 d
  for _ in $(seq "$runs"); do
    t0=$(now); "$@"; t1=$(now)
    d=$(secs "$t0" "$t1")
    if [ -z "$b" ] || [ "$(echo "$d < $b" | bc -l)" = 1 ]; then b=$d; fi
  done
  echo "$b"
}
debsums_all() { debsums --root "$root" -a -s >/dev/null 2>&1 || true; }

# Warm the page cache for all, so none pays for the first read from disk.
cat "$img" "$qcow" >/dev/null
debsums_all

d_debsums=$(best debsums_all)
d_dir=$(best vouch_all "$root")
d_img=$(best vouch_all "$img")
d_qcow=$(best vouch_all "$qcow")

printf '%-52s %8.2f s\n' "debsums --root rootfs -a -s (directory)" "$d_debsums"
printf '%-52s %8.2f s\n' "vouch list+verify+sbom on the directory" "$d_dir"
printf '%-52s %8.2f s\n' "vouch list+verify+sbom on the image (debian.raw)" "$d_img"
printf '%-52s %8.2f s\n' "vouch list+verify+sbom on the image (debian.qcow2)" "$d_qcow"
printf 'ratio vouch(image) / debsums(directory): %.2f  (target: below 1)\n' "$(echo "$d_img / $d_debsums" | bc -l)"
printf 'ratio vouch(qcow2 image) / debsums(directory): %.2f  (target: below 1)\n' "$(echo "$d_qcow / $d_debsums" | bc -l)"
printf 'ratio vouch(directory) / debsums(directory): %.2f\n' "$(echo "$d_dir / $d_debsums" | bc -l)"
