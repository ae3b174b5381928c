#!/usr/bin/env bash
# Builds the upstream Kubernetes conformance test tools for the pinned Kubernetes release
# (../kubernetes/version; ./version must name the same release):
#   bin/e2e.test   `go test -c k8s.io/kubernetes/test/e2e`, from the Go module proxy through a wrapper
#                  module that replaces every k8s.io staging module with its published v0.X.Y
#   bin/ginkgo     the ginkgo CLI at the version k/k's go.mod requires (for parallel runs)
#   images/*.tar   OCI archives of the images the sig-network/sig-node conformance tests run, named
#                  exactly as e2e's test/utils/image/manifest.go expects (so nothing is ever pulled);
#                  images/list has one image name per line. See images.sh.
# Usage: build.sh [OUT_DIR]   prints the bin dir on stdout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../lib.sh"
version="$(tr -d '[:space:]' < "$here/version")"
kversion="$(tr -d '[:space:]' < "$here/../kubernetes/version")"
if [[ "$version" != "$kversion" ]]; then
  echo "conformance: version says $version but ../kubernetes/version says $kversion; set conformance/version to $kversion" >&2
  exit 1
fi
# The cache key carries a digest of images.sh too: the images are ours, so a change to how they are
# built must not be hidden by a cached build of the same Kubernetes version.
images_rev="$(sha256sum "$here/images.sh" | cut -c1-12)"
out="${1:-$(component_cache_root)/conformance/$version-images-$images_rev}"

if is_done "$out"; then echo "$out/bin"; exit 0; fi
go_env
work="$(mktemp -d)"; tmp_out="$out.tmp.$$"
trap 'rm -rf "$work" "$tmp_out"' EXIT
rm -rf "$tmp_out"; mkdir -p "$tmp_out/bin" "$tmp_out/images"

# --- e2e.test and ginkgo -------------------------------------------------------------------------
mkdir "$work/mod"; cd "$work/mod"
go mod init k8s-ts/conformance >&2
modfile="$(mod_field "k8s.io/kubernetes@$version" GoMod)"
staging_version="v0.${version#v1.}"
for mod in $(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$modfile"); do
  go mod edit -replace="$mod=$mod@$staging_version"
done
go mod edit -go="$(mod_go_line "k8s.io/kubernetes@$version")"
godebug="$(sed -n 's/^godebug \([^(].*\)/\1/p' "$modfile")"
[[ -z "$godebug" ]] || go mod edit -godebug="$godebug"
ginkgo_version="$(sed -n 's#^\s*github.com/onsi/ginkgo/v2 \(v[^ ]*\).*#\1#p' "$modfile" | head -1)"
cat > tools.go <<'GO'
//go:build tools

// Package tools pins the modules whose tests and mains this wrapper builds.
package tools

import (
	_ "github.com/onsi/ginkgo/v2/ginkgo"
	_ "k8s.io/kubernetes/test/e2e"
	_ "k8s.io/kubernetes/test/images/agnhost"
	_ "k8s.io/kubernetes/test/images/nonewprivs"
)
GO
go mod edit -require="k8s.io/kubernetes@$version" -require="github.com/onsi/ginkgo/v2@$ginkgo_version"
go mod tidy >&2

minor="${version#v1.}"; minor="${minor%%.*}"
commit="$(mod_commit "k8s.io/kubernetes@$version")"
ld=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ld+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ld+=" -X $pkg.gitTreeState=clean -X $pkg.gitCommit=${commit:-unknown}"
done
CGO_ENABLED=0 go test -c -vet=off -trimpath -ldflags "-s -w $ld" -o "$tmp_out/bin/e2e.test" k8s.io/kubernetes/test/e2e >&2
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp_out/bin/ginkgo" github.com/onsi/ginkgo/v2/ginkgo >&2
mkdir "$work/gobin"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$work/gobin/agnhost" k8s.io/kubernetes/test/images/agnhost >&2
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$work/gobin/nnp" k8s.io/kubernetes/test/images/nonewprivs >&2
"$tmp_out/bin/e2e.test" --help >/dev/null 2>&1 || { echo "conformance: the built e2e.test does not run" >&2; exit 1; }

# --- images --------------------------------------------------------------------------------------
bash "$here/images.sh" "$version" "$tmp_out/images" "$work/gobin" >&2

echo "$version" > "$tmp_out/version"
publish_out "$tmp_out" "$out"
