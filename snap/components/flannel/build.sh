#!/usr/bin/env bash
# Builds flanneld (pure Go, main package at the module root; the module has no replace directives)
# with one `go install`, the version stamped like upstream's Makefile. It runs as a host service,
# so there is no image. `go install` names the binary after the module (flannel); it is renamed.
#   bin/flanneld
# Usage: build.sh [OUT_DIR]   prints the bin dir on stdout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../lib.sh"
version="$(tr -d '[:space:]' < "$here/version")"
out="${1:-$(component_cache_root)/flannel/$(cache_version flannel "$version")}"

if is_done "$out"; then echo "$out/bin"; exit 0; fi
go_env flannel
export GOFLAGS=   # go install pkg@version ignores -mod; keep it unset
tmp_out="$out.tmp.$$"
trap 'rm -rf "$tmp_out"' EXIT
mod=github.com/flannel-io/flannel

rm -rf "$tmp_out"; mkdir -p "$tmp_out/bin"
GOBIN="$tmp_out/bin" CGO_ENABLED=0 go install -trimpath \
  -ldflags "-s -w -X $mod/pkg/version.Version=$version" "$mod@$version" >&2
mv "$tmp_out/bin/flannel" "$tmp_out/bin/flanneld"
"$tmp_out/bin/flanneld" --version >&2
echo "$version" > "$tmp_out/version"
publish_out "$tmp_out" "$out"
