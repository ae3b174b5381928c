#!/usr/bin/env bash
# Builds kube-bench and copies its benchmark definitions (cfg/, part of the module zip) next to
# bin/ as cfg/. The binary's default config dir is ./cfg/; pass --config-dir <out>/cfg.
# A wrapper module is used because `go install pkg@version` fails here: it loads the module's
# deprecation from the proxy's version list, which the proxy refuses (403) for kube-bench.
# Usage: build.sh [OUT_DIR]   prints the bin dir on stdout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../lib.sh"
version="$(tr -d '[:space:]' < "$here/version")"
out="${1:-$(component_cache_root)/kube-bench/$(cache_version kube-bench "$version")}"
mod=github.com/aquasecurity/kube-bench

if is_done "$out"; then echo "$out/bin"; exit 0; fi
go_env kube-bench
work="$(mktemp -d)"; tmp_out="$out.tmp.$$"
trap 'rm -rf "$work" "$tmp_out"' EXIT
cd "$work"
go_wrapper_module kube-bench-wrapper "$mod@$version"

ld="-s -w -X $mod/cmd.KubeBenchVersion=$version"
rm -rf "$tmp_out"; mkdir -p "$tmp_out/bin"
CGO_ENABLED=0 go build -trimpath -ldflags "$ld" -o "$tmp_out/bin/kube-bench" "$mod" >&2
cp -r "$(mod_field "$mod@$version" Dir)/cfg" "$tmp_out/cfg"
chmod -R u+w "$tmp_out/cfg"   # the module cache is read-only
"$tmp_out/bin/kube-bench" version >&2
echo "$version" > "$tmp_out/version"
publish_out "$tmp_out" "$out"
