#!/usr/bin/env bash
# Gateway API CRDs for the gateway feature: the standard channel's CRDs
# of sigs.k8s.io/gateway-api at the pinned version (v1.4.x: the API Traefik v3.6 is built against), taken
# from its module zip on the Go module proxy (config/crd/standard/), in one multi-document file:
#   bin/gateway-api-standard.yaml
# No image and no binary: k8sd reads the file and applies its objects, labelled as the gateway feature's.
# Usage: build.sh [OUT_DIR]   prints the bin dir on stdout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../lib.sh"
version="$(tr -d '[:space:]' < "$here/version")"
out="${1:-$(component_cache_root)/gateway-api/$(cache_version gateway-api "$version")}"

if is_done "$out"; then echo "$out/bin"; exit 0; fi
go_env gateway-api
work="$(mktemp -d)"; tmp_out="$out.tmp.$$"
trap 'rm -rf "$work" "$tmp_out"' EXIT

rm -rf "$tmp_out"; mkdir -p "$tmp_out/bin"
(cd "$work" && go mod init k8s-ts/gateway-api-fetch >/dev/null 2>&1)
src="$(cd "$work" && mod_field "sigs.k8s.io/gateway-api@$version" Dir)"
[[ -d "$src/config/crd/standard" ]] || { echo "gateway-api: $src/config/crd/standard missing in sigs.k8s.io/gateway-api@$version" >&2; exit 1; }
n=0
for f in $(cd "$src/config/crd/standard" && LC_ALL=C ls ./*.yaml); do
  grep -q "gateway.networking.k8s.io/bundle-version: $version" "$src/config/crd/standard/$f" || { echo "gateway-api: $f does not carry bundle-version $version" >&2; exit 1; }
  { echo "---"; echo "# config/crd/standard/${f#./} of sigs.k8s.io/gateway-api@$version"; cat "$src/config/crd/standard/$f"; } >> "$tmp_out/bin/gateway-api-standard.yaml"
  n=$((n + 1))
done
echo "gateway-api: $n manifests of the standard channel" >&2
echo "$version" > "$tmp_out/version"
publish_out "$tmp_out" "$out"
