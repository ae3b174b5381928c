#!/usr/bin/env bash
# Builds GoBGP's daemon and CLI (github.com/osrg/gobgp/v3, pure Go, no replace directives) with one
# `go install` from the Go module proxy. Host binaries, no image: k8sd runs gobgpd on control-plane
# nodes as the load-balancer feature's BGP speaker and drives it with gobgp over a unix socket.
#   bin/gobgpd   the BGP daemon
#   bin/gobgp    its CLI (adds and withdraws the announced routes, reads the session state)
# Usage: build.sh [OUT_DIR]   prints the bin dir on stdout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../lib.sh"
version="$(tr -d '[:space:]' < "$here/version")"
out="${1:-$(component_cache_root)/gobgp/$(cache_version gobgp "$version")}"

if is_done "$out"; then echo "$out/bin"; exit 0; fi
go_env gobgp
export GOFLAGS=   # go install pkg@version ignores -mod; keep it unset
tmp_out="$out.tmp.$$"
trap 'rm -rf "$tmp_out"' EXIT

rm -rf "$tmp_out"; mkdir -p "$tmp_out/bin"
mod=github.com/osrg/gobgp/v3
GOBIN="$tmp_out/bin" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" \
  "$mod/cmd/gobgpd@$version" "$mod/cmd/gobgp@$version" >&2
"$tmp_out/bin/gobgpd" --version >&2
echo "$version" > "$tmp_out/version"
publish_out "$tmp_out" "$out"
