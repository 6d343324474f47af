#!/usr/bin/env bash
# fetch-schemas.sh: put the official SPDX 2.3 JSON schemas under .cache/schemas/
# (cached; a second run only checks them) for the sbom tests.
#
# Where they come from: the SPDX specification repository (spdx/spdx-spec) is
# not a Go module, nor in npm or Debian. The Go module
# github.com/CycloneDX/sbom-utility (Apache-2.0, the CycloneDX project's SBOM
# validator) ships copies of spdx-spec's schemas/spdx-schema.json in
# resources/schema/spdx/<version>/ (its 2.3 copy has CRLF line ends; the JSON
# is spdx-spec's), and the Go module proxy serves it. It is fetched
# with `go mod download` from a temporary directory, into the module cache only:
# this repository's go.mod and go.sum are not touched.
#
# Contract used by the tests (internal/sbom, via testfixtures.Schema):
#   .cache/schemas/spdx-2.3.schema.json    spdx-spec v2.3 schemas/spdx-schema.json
#                                          ($id http://spdx.org/rdf/terms/2.3, draft-07)
#   .cache/schemas/spdx-2.3.1.schema.json  spdx-spec development/v2.3.1 schemas/spdx-schema.json
#                                          ($id http://spdx.org/rdf/terms/2.3, draft 2019-09)
# Each file's sha256 is pinned here and again in the test.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cache=${VOUCH_CACHE:-$top/.cache}/schemas
module=github.com/CycloneDX/sbom-utility@v0.16.0
declare -A files=(
  [spdx-2.3.schema.json]="resources/schema/spdx/2.3/spdx-schema.json 3646a54c24343414670cc8608b427ccd9000b24a0d333b9a20080bf6968ddf48"
  [spdx-2.3.1.schema.json]="resources/schema/spdx/2.3.1/spdx-schema.json ed9c4def98a8117d5d9ccb152cf05b5d6ba2a0958cac5f1d700a6de343968f5b"
)

ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

missing=0
for name in "${!files[@]}"; do
  read -r _ sum <<<"${files[$name]}"
  ok "$cache/$name" "$sum" || missing=1
done
[ "$missing" = 0 ] && exit 0

command -v go >/dev/null || { echo "fetch-schemas: go is not installed" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dir=$(cd "$tmp" && GOFLAGS= GO111MODULE=on go mod download -json "$module" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
if [ -z "$dir" ] || [ ! -d "$dir" ]; then
  echo "fetch-schemas: go mod download $module failed (is the Go module proxy reachable?)" >&2
  exit 1
fi
mkdir -p "$cache"
for name in "${!files[@]}"; do
  read -r rel sum <<<"${files[$name]}"
  cp "$dir/$rel" "$tmp/$name"
  if ! ok "$tmp/$name" "$sum"; then
    echo "fetch-schemas: $module $rel has sha256 $(sha256sum "$tmp/$name" | cut -d' ' -f1), want $sum" >&2
    exit 1
  fi
  chmod 644 "$tmp/$name"
  mv "$tmp/$name" "$cache/$name"
done
