#!/usr/bin/env bash
# Workload benchmarks (tests/bench/workloads.py): npm start to a Ready node with network and DNS,
# k8s bootstrap, a pod to Running, a worker join to Ready, and the memory of every process.
# Usage: sudo tests/bench/workloads.sh [--runs N] [--json]   (components built: bin/dev-setup)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
if [[ $(id -u) -ne 0 ]]; then echo "workloads.sh: run as root (network namespaces)" >&2; exit 1; fi
python=python3
[[ -x "$root/.dev/venv/bin/python" ]] && python="$root/.dev/venv/bin/python"
exec "$python" "$root/tests/bench/workloads.py" "$@"
