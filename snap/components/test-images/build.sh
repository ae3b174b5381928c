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
# apt-get download needs no root; it drops privileges to _apt when it can, so give it a writable dir.
chmod 0777 "$work"
if ! apt-get download "busybox-static=1:$version" >&2; then
  echo "test-images: busybox-static 1:$version is not downloadable (apt lists stale or version gone)" >&2
  exit 1
fi
dpkg-deb -x busybox-static_*.deb pkg
rootfs="$work/rootfs"
mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,proc,sys,dev}
chmod 1777 "$rootfs/tmp"; chmod 0700 "$rootfs/root"
cp pkg/bin/busybox "$rootfs/bin/busybox"
for applet in $("$rootfs/bin/busybox" --list-full); do
  [[ -e "$rootfs/$applet" || -L "$rootfs/$applet" ]] || ln -s /bin/busybox "$rootfs/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$rootfs/etc/group"

rm -rf "$tmp_out"; mkdir -p "$tmp_out/bin"
oci_archive "$tmp_out/bin/busybox.tar" "$image" "$rootfs" null '["sh"]'
echo "$image" > "$tmp_out/images"
echo "$version" > "$tmp_out/version"
publish_out "$tmp_out" "$out"
