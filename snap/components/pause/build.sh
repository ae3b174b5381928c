#!/usr/bin/env bash
# Builds the pause binary from k/k build/pause/linux/pause.c (taken from the k8s.io/kubernetes module
# zip at the version in ../kubernetes/version) exactly as upstream's Makefile does (gcc -static, strip),
# then packs it as an OCI image archive bin/pause.tar named registry.k8s.io/pause:<version>
# (scratch + /pause, user 65535, entrypoint /pause) for `ctr images import`.
# The version file must match the Makefile's TAG. Usage: build.sh [OUT_DIR]   prints the bin dir.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../lib.sh"
version="$(tr -d '[:space:]' < "$here/version")"
kversion="$(tr -d '[:space:]' < "$here/../kubernetes/version")"
out="${1:-$(component_cache_root)/pause/$version}"
image="registry.k8s.io/pause:$version"

if is_done "$out"; then echo "$out/bin"; exit 0; fi
go_env
work="$(mktemp -d)"; tmp_out="$out.tmp.$$"
trap 'rm -rf "$work" "$tmp_out"' EXIT
src="$(mod_field "k8s.io/kubernetes@$kversion" Dir)/build/pause"
tag="$(sed -n 's/^TAG ?= *\([^ ]*\).*/\1/p' "$src/Makefile")"
if [[ "$tag" != "$version" ]]; then
  echo "pause: k8s.io/kubernetes@$kversion build/pause/Makefile has TAG $tag but pause/version says $version" >&2
  exit 1
fi

rm -rf "$tmp_out"; mkdir -p "$tmp_out/bin" "$work/rootfs"
gcc -Os -Wall -Werror -static -DVERSION="v$version-$kversion" -o "$tmp_out/bin/pause" "$src/linux/pause.c" >&2
strip "$tmp_out/bin/pause"
"$tmp_out/bin/pause" -v >&2
cp "$tmp_out/bin/pause" "$work/rootfs/pause"
oci_archive "$tmp_out/bin/pause.tar" "$image" "$work/rootfs" '["/pause"]' null 65535:65535
echo "$image" > "$tmp_out/image"
echo "$version" > "$tmp_out/version"
publish_out "$tmp_out" "$out"
