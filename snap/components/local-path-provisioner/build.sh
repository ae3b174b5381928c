#!/usr/bin/env bash
# Builds rancher's local-path-provisioner (pure Go, no replace directives) with one `go install`
# from the Go module proxy, and packs two OCI image archives for `ctr images import`:
#   bin/local-path-provisioner      the binary
#   bin/local-path-provisioner.tar  k8s-ts.local/local-path-provisioner:<version> (/bin/local-path-provisioner,
#                                   nobody passwd/group, no shell, user 65534:65534)
#   bin/local-path-helper.tar       k8s-ts.local/local-path-helper:<version>: Debian's busybox-static
#                                   (pinned in busybox-version) for the helper pods that create and
#                                   remove volume directories on the node (mkdir, rm, sh)
# The cache key is the provisioner version: bump `version`'s cache (delete the entry) when
# busybox-version changes.
# Usage: build.sh [OUT_DIR]   prints the bin dir on stdout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../lib.sh"
version="$(tr -d '[:space:]' < "$here/version")"
busybox="$(tr -d '[:space:]' < "$here/busybox-version")"
out="${1:-$(component_cache_root)/local-path-provisioner/$(cache_version local-path-provisioner "$version")}"
image="k8s-ts.local/local-path-provisioner:$version"
helper="k8s-ts.local/local-path-helper:$version"

if is_done "$out"; then echo "$out/bin"; exit 0; fi
go_env local-path-provisioner
export GOFLAGS=   # go install pkg@version ignores -mod; keep it unset
work="$(mktemp -d)"; tmp_out="$out.tmp.$$"
trap 'rm -rf "$work" "$tmp_out"' EXIT

rm -rf "$tmp_out"; mkdir -p "$tmp_out/bin"
GOBIN="$tmp_out/bin" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w -X main.VERSION=$version" \
  "github.com/rancher/local-path-provisioner@$version" >&2
"$tmp_out/bin/local-path-provisioner" --version >&2

static_image "$tmp_out/bin/local-path-provisioner.tar" "$image" "$tmp_out/bin/local-path-provisioner"

(cd "$work" && mkdir helper && cd helper && busybox_rootfs "$busybox" "$work/helper-rootfs")
oci_archive "$tmp_out/bin/local-path-helper.tar" "$helper" "$work/helper-rootfs" null '["sh"]'
printf '%s\n%s\n' "$image" "$helper" > "$tmp_out/images"
echo "$version" > "$tmp_out/version"
publish_out "$tmp_out" "$out"
