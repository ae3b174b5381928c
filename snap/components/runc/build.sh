#!/usr/bin/env bash
# Builds a static runc (cgo is required for nsenter; seccomp via libseccomp) like upstream
# `make static`: tags seccomp/netgo/osusergo, static-pie. A static binary also runs on bases with an
# older glibc than this build host. Installs libseccomp-dev and pkg-config with apt when missing.
# Usage: build.sh [OUT_DIR]   prints the bin dir on stdout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../lib.sh"
version="$(tr -d '[:space:]' < "$here/version")"
out="${1:-$(component_cache_root)/runc/$(cache_version runc "$version")}"

if is_done "$out"; then echo "$out/bin"; exit 0; fi
missing=()
for p in libseccomp-dev pkg-config gcc libc6-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "runc: installing build dependencies: ${missing[*]}" >&2
  sudo_cmd=(); [[ $EUID -eq 0 ]] || sudo_cmd=(sudo)
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >&2
fi

go_env runc
export GOFLAGS=   # go install pkg@version ignores -mod; keep it unset
tmp_out="$out.tmp.$$"
trap 'rm -rf "$tmp_out"' EXIT
ld="-s -w -linkmode external -extldflags -static-pie"
commit="$(mod_commit "github.com/opencontainers/runc@$version")"
[[ -n "$commit" ]] && ld+=" -X main.gitCommit=$commit"

rm -rf "$tmp_out"; mkdir -p "$tmp_out/bin"
GOBIN="$tmp_out/bin" CGO_ENABLED=1 go install -trimpath -buildmode=pie \
  -tags "seccomp urfave_cli_no_docs netgo osusergo" -ldflags "$ld" \
  "github.com/opencontainers/runc@$version" >&2
"$tmp_out/bin/runc" --version >&2
echo "$version" > "$tmp_out/version"
publish_out "$tmp_out" "$out"
