#!/usr/bin/env bash
# demo-fleet.sh: start vouch serve on 127.0.0.1:8443 with a fresh SQLite database,
# report a small simulated fleet (the fixture image under the AMI efivars dumps and
# Debian's OVMF store as shipped and set to the both-CA profile), and print the
# dashboard's address and a reader token. On a terminal it waits for Enter, then
# stops the server; otherwise it stops at once.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./bin/vouch
data=$(mktemp -d /tmp/vouch-demo-fleet.XXXXXX)
listen=${VOUCH_DEMO_LISTEN:-127.0.0.1:8443}
"$bin" serve --listen "$listen" --data "$data" 2>"$data/serve.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 300); do [ -s "$data/admin.token" ] && curl -fsS "http://$listen/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
admin=$(cat "$data/admin.token")
enroll=$("$bin" token create --role enroll --server "http://$listen" --token "$admin")
reader=$("$bin" token create --role reader --server "http://$listen" --token "$admin")
"$bin" fleet simulate --server "http://$listen" --token "$enroll" --hosts "${VOUCH_DEMO_HOSTS:-300}" \
  --image .cache/fixtures/debian.raw \
  --efivars testdata/secureboot/efivars-shim-test-data-0 --efivars testdata/secureboot/efivars-shim-test-data-1 \
  --vars /usr/share/OVMF/OVMF_VARS_4M.ms.fd --vars /usr/share/OVMF/OVMF_VARS_4M.ms.fd:microsoft-both \
  --certs testdata/secureboot/certs
echo
"$bin" fleet readiness --server "http://$listen" --token "$reader" --by platform
echo
"$bin" fleet canaries --server "http://$listen" --token "$reader" --dims platform,release,channel --pairwise | head -20
echo
echo "Dashboard: http://$listen/  (sign in with the reader token: $reader)"
if [ -t 0 ]; then read -r -p "Press Enter to stop the server. " _; fi
