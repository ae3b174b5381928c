#!/usr/bin/env bash
# FIPS against normal mode, in one run: PKI generation (median of 5) and a full bootstrap to ready
# (one node in a private network namespace). Needs the components and the test FIPS provider built:
#   bash snap/components/build-all.sh etcd kubernetes && bash tests/fips/build-provider.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$here"
node=node_modules/.bin/node
provider="$(bash tests/fips/build-provider.sh 2>/dev/null | tail -1)"
export FIPS_PROVIDER_DIR="$provider"

echo "== PKI generation (full control-plane set, ECDSA P-256)"
normal_pki="$($node tests/bench/pki.mjs node 5)"
fips_pki="$($node tests/bench/pki.mjs openssl-fips 5)"
echo "normal: $normal_pki"; echo "fips:   $fips_pki"

ns="k8sbench$$"; br="k8sbb$$"; tmp="$(mktemp -d)"
cleanup() {
  for r in "$tmp"/normal "$tmp"/fips; do K8S_ROOT="$r" bash bin/dev-stop >/dev/null 2>&1 || true; done
  ip netns del "$ns" 2>/dev/null || true; ip link del "$br" 2>/dev/null || true; ip link del "${ns}h" 2>/dev/null || true
  # The pods' shm and netns mounts under containerd's state dir outlive the node.
  awk -v t="$tmp/" 'index($2, t) == 1 {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
ip link add "$br" type bridge; ip addr add 10.250.0.1/24 dev "$br"; ip link set "$br" up
ip netns add "$ns"; ip link add "${ns}h" type veth peer name "${ns}n"; ip link set "${ns}n" netns "$ns"
ip link set "${ns}h" master "$br" up
ip netns exec "$ns" ip addr add 10.250.0.2/24 dev "${ns}n"; ip netns exec "$ns" ip link set "${ns}n" up; ip netns exec "$ns" ip link set lo up
# bootstrap checks for a route to the service CIDR (host-network pods need one): a default route via the bridge.
ip netns exec "$ns" ip route add default via 10.250.0.1

bootstrap_time() { # mode root extra-env...
  local mode="$1" root="$2"; shift 2
  mkdir -p "$root"
  env K8S_ROOT="$root" K8S_NODE_NAME=bench "$@" setsid nsenter --net=/run/netns/"$ns" bin/k8sd >"$root.log" 2>&1 < /dev/null &
  for _ in $(seq 1 100); do [[ -S "$root/var/snap/k8s/common/var/lib/k8sd/state/control.socket" ]] && break; sleep 0.1; done
  local t0 t1
  t0=$(date +%s.%N)
  if ! env K8S_ROOT="$root" "$@" bin/k8s bootstrap --name bench >"$root.bootstrap.log" 2>&1; then
    echo "$mode: k8s bootstrap failed:" >&2; cat "$root.bootstrap.log" >&2; return 1
  fi
  env K8S_ROOT="$root" "$@" bin/k8s status --wait-ready --timeout 120s >/dev/null
  t1=$(date +%s.%N)
  echo "$mode bootstrap to ready: $(echo "$t1 - $t0" | bc) s"
  K8S_ROOT="$root" bash bin/dev-stop >/dev/null 2>&1
}
echo "== Bootstrap to ready"
bootstrap_time normal "$tmp/normal"
bootstrap_time fips "$tmp/fips" K8S_FIPS=1 OPENSSL_CONF="$provider/openssl.cnf" OPENSSL_MODULES="$provider"
