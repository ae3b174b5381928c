#!/usr/bin/env bash
# Builds small OCI image archives for tests, without a registry:
#   bin/busybox.tar  docker.io/library/busybox:test  (Debian's busybox-static + one symlink per applet)
# The version file is the Debian busybox-static version (without its "1:" epoch).
# Usage: build.sh [OUT_DIR]   prints the bin dir on stdout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../lib.sh"
version="$(tr -d '[:space:]' < "$here/version")"
out="${1:-$(component_cache_root)/test-images/$version}"
image="docker.io/library/busybox:test"

if is_done "$out"; then echo "$out/bin"; exit 0; fi
work="$(mktemp -d)"; tmp_out="$out.tmp.$$"
trap 'rm -rf "$work" "$tmp_out"' EXIT
cd "$work"
rootfs="$work/rootfs"
busybox_rootfs "$version" "$rootfs"

rm -rf "$tmp_out"; mkdir -p "$tmp_out/bin"
oci_archive "$tmp_out/bin/busybox.tar" "$image" "$rootfs" null '["sh"]'
echo "$image" > "$tmp_out/images"
echo "$version" > "$tmp_out/version"
publish_out "$tmp_out" "$out"
