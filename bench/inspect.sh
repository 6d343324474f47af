#!/usr/bin/env bash
# bench/inspect.sh: time `vouch inspect` on the 2 GiB Debian fixture in each
# container format and report how much of the image it read.
# Target (issue 2): under 100 ms and under 1% of the image read.
set -euo pipefail
cd "$(dirname "$0")/.."
fx=${VOUCH_FIXTURES:-.cache/fixtures}
go build -o bin/vouch ./cmd/vouch
runs=${RUNS:-20}
printf '%-26s %10s %14s %10s\n' image ms/run bytes-read %image
for img in debian.raw debian.qcow2 debian-compressed.qcow2 debian-fixed.vhd debian-dynamic.vhd debian.vhdx; do
  p=$fx/$img
  [ -f "$p" ] || { echo "missing $p: run make fixtures" >&2; exit 1; }
  ./bin/vouch inspect "$p" >/dev/null   # warm the page cache
  start=$(date +%s%N)
  for _ in $(seq "$runs"); do ./bin/vouch inspect --format json "$p" >/dev/null; done
  end=$(date +%s%N)
  read=$(./bin/vouch inspect --format json "$p" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["bytesRead"], d["virtualSize"])')
  set -- $read
  printf '%-26s %10.1f %14d %9.3f%%\n' "$img" "$(echo "($end-$start)/1000000/$runs" | bc -l)" "$1" "$(echo "$1*100/$2" | bc -l)"
done
