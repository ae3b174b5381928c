#!/usr/bin/env bash
# Builds CoreDNS (pure Go; the module has no replace directives, and its plugin set is fixed by
# the committed core/plugin/zplugin.go) with one `go install`, and packs it as an OCI image
# archive for `ctr images import`:
#   bin/coredns      the binary
#   bin/coredns.tar  k8s-ts.local/coredns:<version> (/bin/coredns, nobody passwd/group,
#                    entrypoint /bin/coredns, user 65534:65534)
# Usage: build.sh [OUT_DIR]   prints the bin dir on stdout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../lib.sh"
version="$(tr -d '[:space:]' < "$here/version")"
out="${1:-$(component_cache_root)/coredns/$(cache_version coredns "$version")}"
image="k8s-ts.local/coredns:$version"

if is_done "$out"; then echo "$out/bin"; exit 0; fi
go_env coredns
export GOFLAGS=   # go install pkg@version ignores -mod; keep it unset
tmp_out="$out.tmp.$$"
trap 'rm -rf "$tmp_out"' EXIT

rm -rf "$tmp_out"; mkdir -p "$tmp_out/bin"
GOBIN="$tmp_out/bin" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" \
  "github.com/coredns/coredns@$version" >&2
"$tmp_out/bin/coredns" -version >&2

static_image "$tmp_out/bin/coredns.tar" "$image" "$tmp_out/bin/coredns"
echo "$image" > "$tmp_out/images"
echo "$version" > "$tmp_out/version"
publish_out "$tmp_out" "$out"
