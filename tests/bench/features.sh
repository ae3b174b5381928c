#!/usr/bin/env bash
# Feature benchmarks (tests/bench/features.py): on one bootstrapped test-bed node, the time from
# `k8s enable <feature>` to ready (the command waits for it), the memory the feature's pods add
# (VmRSS of the new pod processes, by process name), and `k8s disable` until every labelled object is gone.
# Usage: sudo tests/bench/features.sh [--features ingress,gateway] [--runs N] [--json]   (components built: bin/dev-setup)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
if [[ $(id -u) -ne 0 ]]; then echo "features.sh: run as root (network namespaces)" >&2; exit 1; fi
python=python3
[[ -x "$root/.dev/venv/bin/python" ]] && python="$root/.dev/venv/bin/python"
exec "$python" "$root/tests/bench/features.py" "$@"
