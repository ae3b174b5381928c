#!/usr/bin/env bash
# The cluster port (6400) under a flood of unauthenticated requests (tests/bench/cluster_port.py):
# 200 concurrent 4 MiB requests without a member certificate, for FLOOD_SECONDS (default 60),
# against a bootstrapped control-plane node of the netns test bed. Prints k8sd's RSS before the
# flood, its peak during it (VmRSS sampled every 50 ms, and VmHWM), what the flood got back, and
# an authenticated worker join made during the flood (`k8s join-cluster` on a second node, and a
# k8sd-level token join from a small client): its duration and whether it succeeded.
# Usage: sudo tests/bench/cluster-port.sh [--json]   (components built: bin/dev-setup)
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,8p' "$0"; exit 0 ;; esac
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init cluster-port.sh
bench_require_cmd openssl
bench_python
exec "$python" "$root/tests/bench/cluster_port.py" "$@"
