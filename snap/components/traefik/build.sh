#!/usr/bin/env bash
# Builds Traefik v3 (the data plane of the ingress and gateway features) from its module zip on
# the Go module proxy and packs it as an OCI image archive for `ctr images import`:
#   bin/traefik      the binary
#   bin/traefik.tar  k8s-ts.local/traefik:<version> (/bin/traefik, nobody passwd/group, no shell,
#                    entrypoint /bin/traefik, user 65534:65534)
# Traefik's go.mod has replace directives (forks of go-http-auth, mux and minheap), so
# `go install pkg@version` refuses it: the module's own tree is built as the main module, which is
# what honours them. The module zip carries no web UI assets (webui/static is a placeholder): the
# dashboard is empty in this build, and the features never enable it or the API.
# Why v3.6.12 and not v3.7.x: v3.7's go.mod replaces github.com/traefik/traefik/dynamic/ext with a
# nested module (./pkg/config/dynamic/ext) that is not in the module zip and that the proxy does
# not serve, and v3.7.13's lego v5 DNS providers need modules the proxy refuses (403:
# AkamaiOPEN-edgegrid-golang v13, huaweicloud-sdk-go-v3, nrdcg/oci-go-sdk, sacloud-sdk-go).
# Usage: build.sh [OUT_DIR]   prints the bin dir on stdout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../lib.sh"
version="$(tr -d '[:space:]' < "$here/version")"
out="${1:-$(component_cache_root)/traefik/$(cache_version traefik "$version")}"
image="k8s-ts.local/traefik:$version"

if is_done "$out"; then echo "$out/bin"; exit 0; fi
go_env traefik
work="$(mktemp -d)"; tmp_out="$out.tmp.$$"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work" "$tmp_out"' EXIT

rm -rf "$tmp_out"; mkdir -p "$tmp_out/bin"
(cd "$work" && go mod init k8s-ts/traefik-fetch >/dev/null 2>&1)
src="$(cd "$work" && mod_field "github.com/traefik/traefik/v3@$version" Dir)"
[[ -d "$src" ]] || { echo "traefik: module github.com/traefik/traefik/v3@$version not downloaded" >&2; exit 1; }
cp -r "$src" "$work/src"; chmod -R u+w "$work/src"
# As upstream's Makefile stamps it; the build date is fixed so the build is reproducible.
ldflags="-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$version -X github.com/traefik/traefik/v3/pkg/version.BuildDate=1970-01-01T00:00:00Z"
(cd "$work/src" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp_out/bin/traefik" ./cmd/traefik) >&2
"$tmp_out/bin/traefik" version >&2

static_image "$tmp_out/bin/traefik.tar" "$image" "$tmp_out/bin/traefik"
echo "$image" > "$tmp_out/images"
echo "$version" > "$tmp_out/version"
publish_out "$tmp_out" "$out"
