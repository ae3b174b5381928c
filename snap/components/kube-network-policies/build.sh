#!/usr/bin/env bash
# Builds kube-network-policies (pure Go, main package ./cmd; the module has no replace directives)
# with one `go install`, and packs it as an OCI image archive for `ctr images import`. `go install`
# names the binary after its package directory (cmd); it is renamed.
#   bin/kube-network-policies      the binary
#   bin/kube-network-policies.tar  k8s-ts.local/kube-network-policies:<version>
#                                  (/bin/kube-network-policies, passwd/group, runs as root: it
#                                  needs NET_ADMIN for nftables and nfqueue)
# Usage: build.sh [OUT_DIR]   prints the bin dir on stdout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../lib.sh"
version="$(tr -d '[:space:]' < "$here/version")"
out="${1:-$(component_cache_root)/kube-network-policies/$(cache_version kube-network-policies "$version")}"
image="k8s-ts.local/kube-network-policies:$version"

if is_done "$out"; then echo "$out/bin"; exit 0; fi
go_env kube-network-policies
export GOFLAGS=   # go install pkg@version ignores -mod; keep it unset
work="$(mktemp -d)"; tmp_out="$out.tmp.$$"
trap 'rm -rf "$work" "$tmp_out"' EXIT

rm -rf "$tmp_out"; mkdir -p "$tmp_out/bin"
GOBIN="$tmp_out/bin" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" \
  "sigs.k8s.io/kube-network-policies/cmd@$version" >&2
mv "$tmp_out/bin/cmd" "$tmp_out/bin/kube-network-policies"

rootfs="$work/rootfs"
mkdir -p "$rootfs/bin" "$rootfs/etc"
cp "$tmp_out/bin/kube-network-policies" "$rootfs/bin/kube-network-policies"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$rootfs/etc/group"
oci_archive "$tmp_out/bin/kube-network-policies.tar" "$image" "$rootfs" '["/bin/kube-network-policies"]' null ""
echo "$image" > "$tmp_out/images"
echo "$version" > "$tmp_out/version"
publish_out "$tmp_out" "$out"
