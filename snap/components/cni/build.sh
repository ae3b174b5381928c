#!/usr/bin/env bash
# Builds the reference CNI plugins (one binary per plugin, pure Go) with one `go install`.
# Usage: build.sh [OUT_DIR]   prints the bin dir on stdout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../lib.sh"
version="$(tr -d '[:space:]' < "$here/version")"
out="${1:-$(component_cache_root)/cni/$(cache_version cni "$version")}"
plugins=(main/bridge main/host-device main/ipvlan main/loopback main/macvlan main/ptp main/vlan
         ipam/host-local ipam/static meta/bandwidth meta/firewall meta/portmap meta/sbr meta/tuning meta/vrf)

if is_done "$out"; then echo "$out/bin"; exit 0; fi
go_env cni
export GOFLAGS=   # go install pkg@version ignores -mod; keep it unset
tmp_out="$out.tmp.$$"
trap 'rm -rf "$tmp_out"' EXIT
mod=github.com/containernetworking/plugins
pkgs=(); for p in "${plugins[@]}"; do pkgs+=("$mod/plugins/$p@$version"); done

rm -rf "$tmp_out"; mkdir -p "$tmp_out/bin"
GOBIN="$tmp_out/bin" CGO_ENABLED=0 go install -trimpath \
  -ldflags "-s -w -X $mod/pkg/utils/buildversion.BuildVersion=$version" "${pkgs[@]}" >&2
echo "$version" > "$tmp_out/version"
publish_out "$tmp_out" "$out"
