#!/usr/bin/env bash
# bench/baseline.sh: time `vouch baseline audit` (suites baseline and hardening)
# and `lynis audit system --rootdir ROOT/` on the Debian 12 fixture root in the same
# run, and print the times, the rule/test counts and the speed ratio.
# Target (issue 5): vouch at least 30x faster than lynis, with more rules.
#
# Needs: the fixture root (scripts/build-fixtures.sh rootfs) and lynis
# (apt-get install lynis). RUNS (default 5) sets how many vouch runs are
# averaged; lynis runs once (it takes tens of seconds).
set -euo pipefail
cd "$(dirname "$0")/.."
fx=${VOUCH_FIXTURES:-.cache/fixtures}
root=$(cd "$fx/rootfs" 2>/dev/null && pwd) || { echo "missing $fx/rootfs: run scripts/build-fixtures.sh rootfs" >&2; exit 1; }
command -v lynis >/dev/null || PATH=$PATH:/usr/sbin
command -v lynis >/dev/null || { echo "lynis not found: apt-get install lynis" >&2; exit 1; }
runs=${RUNS:-5}
go build -o bin/vouch ./cmd/vouch
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

rules=$(./bin/vouch baseline list --suite baseline,hardening --format json | grep -c '"id":')
./bin/vouch baseline audit --suite baseline,hardening --fail-on none "$root" >/dev/null # warm the page cache
start=$(date +%s%N)
for _ in $(seq "$runs"); do
	./bin/vouch baseline audit --suite baseline,hardening --format json --fail-on none "$root" >"$tmp/vouch.json"
done
end=$(date +%s%N)
vouch_ms=$(( (end - start) / 1000000 / runs ))
findings=$(grep -c '"status":' "$tmp/vouch.json")

start=$(date +%s%N)
lynis audit system --rootdir "$root/" --quick --no-colors --quiet \
	--report-file "$tmp/lynis-report.dat" --log-file "$tmp/lynis.log" >/dev/null 2>&1 || true
end=$(date +%s%N)
lynis_ms=$(( (end - start) / 1000000 ))
tests=$(sed -n 's/^lynis_tests_done=//p' "$tmp/lynis-report.dat")

printf '%-8s %10s %8s\n' tool ms checks
printf '%-8s %10d %8d   (%d rules, %d findings; mean of %d runs)\n' vouch "$vouch_ms" "$rules" "$rules" "$findings" "$runs"
printf '%-8s %10d %8s   (tests performed)\n' lynis "$lynis_ms" "${tests:-?}"
awk -v l="$lynis_ms" -v v="$vouch_ms" 'BEGIN { if (v < 1) v = 1; printf "ratio    %.1fx faster (target >= 30x)\n", l / v }'
