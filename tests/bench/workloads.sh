#!/usr/bin/env bash
# Workload benchmarks (tests/bench/workloads.py): npm start to a Ready node with network and DNS,
# k8s bootstrap, a pod to Running, a worker join to Ready, and the memory of every process.
# Usage: sudo tests/bench/workloads.sh [--runs N] [--json]   (components built: bin/dev-setup)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init workloads.sh
bench_python
exec "$python" "$root/tests/bench/workloads.py" "$@"
