#!/usr/bin/env bash
# Shared helpers for component recipes. Each recipe is <name>/version + <name>/build.sh.
# Outputs are cached outside the repo, keyed by component name and version, so
# snapcraft parts, `npm start` and the tests all reuse one build.
set -euo pipefail

component_cache_root() {
  echo "${K8S_COMPONENT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/k8s-ts/components}"
}

# go_env: hermetic Go settings shared by every recipe (proxy only, local toolchain).
go_env() {
  export GOTOOLCHAIN=local GOWORK=off GOFLAGS=-mod=mod
  export GOPROXY="${GOPROXY_OVERRIDE:-https://proxy.golang.org}"
  export GOPATH="${GOPATH:-$HOME/go}"
}

# stamp_done DIR: mark a cache entry complete (written last, so a crash mid-build never looks cached).
stamp_done() { date -u +%FT%TZ > "$1/.complete"; }
is_done() { [[ -f "$1/.complete" ]]; }
