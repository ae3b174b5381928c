#!/usr/bin/env bash
# Builds flanneld (main package at the module root; the module has no replace directives) like
# upstream's Makefile on amd64: cgo on (the UDP backend's C proxy), statically linked, the version
# stamped into pkg/version. netgo/osusergo (as for runc) keep glibc's NSS out of the static binary.
# The Tencent Cloud VPC backend is left out: its SDK module (tencentcloud-sdk-go/tencentcloud/vpc)
# has no downloadable zip on the module proxy, and k8s-ts does not use that backend. So the module
# is copied from the module cache and main.go's one blank import of that backend deleted; the copy
# is the main module (its go.mod and go.sum as upstream), built with `go build`. Host service, no image.
#   bin/flanneld
# Usage: build.sh [OUT_DIR]   prints the bin dir on stdout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../lib.sh"
version="$(tr -d '[:space:]' < "$here/version")"
out="${1:-$(component_cache_root)/flannel/$(cache_version flannel "$version")}"

if is_done "$out"; then echo "$out/bin"; exit 0; fi
go_env flannel
work="$(mktemp -d)"; tmp_out="$out.tmp.$$"
trap 'chmod -R u+w "$work" 2>/dev/null || true; rm -rf "$work" "$tmp_out"' EXIT
mod=github.com/flannel-io/flannel
cp -r "$(mod_field "$mod@$version" Dir)" "$work/src"
chmod -R u+w "$work/src"
cd "$work/src"
drop="$mod/pkg/backend/tencentvpc"
sed -i "\\|^[[:space:]]*_ \"$drop\"\$|d" main.go
if grep -q "\"$drop\"" main.go || ! grep -q "\"$mod/pkg/backend/vxlan\"" main.go; then
  echo "flannel: could not drop the $drop import from $mod@$version main.go" >&2; exit 1
fi

rm -rf "$tmp_out"; mkdir -p "$tmp_out/bin"
GOFLAGS=-mod=readonly CGO_ENABLED=1 go build -trimpath -tags "netgo osusergo" \
  -ldflags "-s -w -X $mod/pkg/version.Version=$version -extldflags -static" \
  -o "$tmp_out/bin/flanneld" . >&2
"$tmp_out/bin/flanneld" --version >&2
echo "$version" > "$tmp_out/version"
publish_out "$tmp_out" "$out"
