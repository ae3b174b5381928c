#!/usr/bin/env bash
# Builds metrics-server (pure Go, no replace directives) with one `go install` from the Go module
# proxy, and packs it as an OCI image archive for `ctr images import`:
#   bin/metrics-server      the binary
#   bin/metrics-server.tar  k8s-ts.local/metrics-server:<version> (/bin/metrics-server, nobody
#                           passwd/group, no shell, entrypoint /bin/metrics-server, user 65534:65534)
# Usage: build.sh [OUT_DIR]   prints the bin dir on stdout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../lib.sh"
version="$(tr -d '[:space:]' < "$here/version")"
out="${1:-$(component_cache_root)/metrics-server/$(cache_version metrics-server "$version")}"
image="k8s-ts.local/metrics-server:$version"

if is_done "$out"; then echo "$out/bin"; exit 0; fi
go_env metrics-server
export GOFLAGS=   # go install pkg@version ignores -mod; keep it unset
tmp_out="$out.tmp.$$"
trap 'rm -rf "$tmp_out"' EXIT

rm -rf "$tmp_out"; mkdir -p "$tmp_out/bin"
# The version metrics-server reports (/version, its log) comes from these, as upstream's Makefile sets them.
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$version -X k8s.io/client-go/pkg/version.gitVersion=$version"
GOBIN="$tmp_out/bin" CGO_ENABLED=0 go install -trimpath -ldflags "$ldflags" \
  "sigs.k8s.io/metrics-server/cmd/metrics-server@$version" >&2
"$tmp_out/bin/metrics-server" --version >&2 || true

static_image "$tmp_out/bin/metrics-server.tar" "$image" "$tmp_out/bin/metrics-server"
echo "$image" > "$tmp_out/images"
echo "$version" > "$tmp_out/version"
publish_out "$tmp_out" "$out"
