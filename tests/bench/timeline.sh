#!/usr/bin/env bash
# Time to ready, ours and upstream kubeadm's back to back, with a timeline of every bootstrap step
# and service start, and the memory of each after settling (tests/bench/timeline.py says how).
# Usage: sudo tests/bench/timeline.sh     ANCHOR=0: ours only; ORDER=kubeadm,ours: kubeadm first;
#        SETTLE=30: seconds after the working node before the memory is sampled
#        FEATURES=default: a plain bootstrap (gateway, local-storage, metrics-server too); else network, dns
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
case "${1:-}" in -h|--help) sed -n '2,6p' "$0"; exit 0 ;; esac
[[ $(id -u) == 0 ]] || { echo "timeline.sh needs root (network namespaces)" >&2; exit 1; }
python=${PYTHON:-python3}
"$python" -c 'import yaml' 2>/dev/null || { echo "timeline.sh needs python3 with PyYAML" >&2; exit 1; }
exec "$python" "$root/tests/bench/timeline.py"
