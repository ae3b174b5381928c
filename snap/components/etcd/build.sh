#!/usr/bin/env bash
# Builds etcd, etcdctl and etcdutl from the published etcd v3 modules.
# `go install pkg@v` is refused (each module replaces its siblings with ../ paths), so a wrapper
# module requires server, etcdctl and etcdutl at the same version and builds their mains.
# Usage: build.sh [OUT_DIR]   prints the bin dir on stdout; logs go to stderr.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../lib.sh"
version="$(tr -d '[:space:]' < "$here/version")"
out="${1:-$(component_cache_root)/etcd/$(cache_version etcd "$version")}"

if is_done "$out"; then echo "$out/bin"; exit 0; fi
go_env etcd
work="$(mktemp -d)"; tmp_out="$out.tmp.$$"
trap 'rm -rf "$work" "$tmp_out"' EXIT
cd "$work"

mods=(go.etcd.io/etcd/server/v3 go.etcd.io/etcd/etcdctl/v3 go.etcd.io/etcd/etcdutl/v3)
go_wrapper_module etcd-wrapper "${mods[@]/%/@$version}"

ld="-s -w"
sha="$(mod_commit "go.etcd.io/etcd/server/v3@$version")"
[[ -n "$sha" ]] && ld+=" -X go.etcd.io/etcd/api/v3/version.GitSHA=${sha:0:7}"
rm -rf "$tmp_out"; mkdir -p "$tmp_out/bin" "$work/out"
# -o DIR names each binary after the last non-version path element: server, etcdctl, etcdutl.
CGO_ENABLED=0 go build -trimpath -ldflags "$ld" -o "$work/out/" "${mods[@]}" >&2
mv "$work/out/server" "$tmp_out/bin/etcd"
mv "$work/out/etcdctl" "$work/out/etcdutl" "$tmp_out/bin/"
"$tmp_out/bin/etcd" --version >&2
echo "$version" > "$tmp_out/version"
publish_out "$tmp_out" "$out"
