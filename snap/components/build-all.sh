#!/usr/bin/env bash
# Builds the named component recipes (default: all) one at a time in dependency order and prints
# one `name=bindir` line per component on stdout (build logs go to stderr).
# Usage: build-all.sh [name...]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/lib.sh"
# Dependency order: pause reads ../kubernetes/version (and reuses its module download).
order=(etcd kubernetes containerd runc cni coredns flannel local-path-provisioner metrics-server gobgp traefik gateway-api kube-bench pause test-images)

want=("$@")
((${#want[@]})) || want=("${order[@]}")
for w in "${want[@]}"; do
  if [[ ! -f "$here/$w/build.sh" || ! -f "$here/$w/version" ]]; then
    echo "build-all: unknown component '$w' (known: ${order[*]})" >&2; exit 2
  fi
  [[ " ${order[*]} " == *" $w "* ]] || order+=("$w")   # a new recipe not yet listed builds last
done
for c in "${order[@]}"; do
  [[ " ${want[*]} " == *" $c "* ]] || continue
  echo "build-all: $c $(tr -d '[:space:]' < "$here/$c/version")" >&2
  bin="$(bash "$here/$c/build.sh")"
  # Entries built before checksums were recorded get them now (trusting what they hold today).
  if [[ ! -f "$(dirname "$bin")/SHA256SUMS" ]]; then
    echo "build-all: $c: recording the SHA-256 of a cache entry built before checksums existed ($(dirname "$bin"))" >&2
    record_checksums "$(dirname "$bin")"
  fi
  verify_checksums "$(dirname "$bin")"
  echo "$c=$bin"
done
