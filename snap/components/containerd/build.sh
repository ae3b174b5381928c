#!/usr/bin/env bash
# Builds containerd, ctr and containerd-shim-runc-v2 from github.com/containerd/containerd/v2
# (no replace directives, so `go install pkg@version` works and keeps upstream's go line).
# Pure Go (CGO_ENABLED=0: the btrfs snapshotter, which needs cgo, drops out); the shim gets the
# upstream extra tag no_grpc. Usage: build.sh [OUT_DIR]   prints the bin dir on stdout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../lib.sh"
version="$(tr -d '[:space:]' < "$here/version")"
out="${1:-$(component_cache_root)/containerd/$(cache_version containerd "$version")}"

if is_done "$out"; then echo "$out/bin"; exit 0; fi
go_env containerd
export GOFLAGS=   # go install pkg@version ignores -mod; keep it unset
tmp_out="$out.tmp.$$"
trap 'rm -rf "$tmp_out"' EXIT
mod=github.com/containerd/containerd/v2
ld="-s -w -X $mod/version.Version=$version -X $mod/version.Package=$mod"
rev="$(mod_commit "$mod@$version")"
[[ -n "$rev" ]] && ld+=" -X $mod/version.Revision=$rev"

rm -rf "$tmp_out"; mkdir -p "$tmp_out/bin"
GOBIN="$tmp_out/bin" CGO_ENABLED=0 go install -trimpath -tags urfave_cli_no_docs -ldflags "$ld" \
  "$mod/cmd/containerd@$version" "$mod/cmd/ctr@$version" >&2
GOBIN="$tmp_out/bin" CGO_ENABLED=0 go install -trimpath -tags "urfave_cli_no_docs no_grpc" -ldflags "$ld" \
  "$mod/cmd/containerd-shim-runc-v2@$version" >&2
"$tmp_out/bin/containerd" --version >&2
echo "$version" > "$tmp_out/version"
publish_out "$tmp_out" "$out"
