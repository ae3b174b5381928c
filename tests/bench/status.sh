#!/usr/bin/env bash
# `k8s status --output-format json` latency against the node `npm start` runs (start one first):
# wall-clock median, p90 and minimum, and CPU (user+sys) median of RUNS calls, with the load.
# Usage: sudo tests/bench/status.sh   RUNS=25   (not in `npm run bench`: control-plane.sh measures status on its own nodes)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
case "${1:-}" in -h|--help) sed -n '2,4p' "$0"; exit 0 ;; esac
bench_init status
bench_python yaml
"$root/bin/k8s" status >/dev/null 2>&1 || bench_die "no running node answers \`k8s status\`; run \`npm start\` first"
exec "$python" - "$root/bin/k8s" "${RUNS:-25}" <<'PY'
import os, resource, statistics, subprocess, sys, time
k8s, runs = sys.argv[1], int(sys.argv[2])
walls, cpus = [], []
for _ in range(runs):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.monotonic()
    subprocess.run([k8s, "status", "--output-format", "json"], capture_output=True, check=True)
    walls.append((time.monotonic() - t) * 1000)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpus.append((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000)
a = os.getloadavg()
walls.sort()
print(f"status: k8s status --output-format json, {runs} runs (load {a[0]:.1f} {a[1]:.1f} {a[2]:.1f} on {os.cpu_count()} CPUs): "
      f"wall median {statistics.median(walls):.0f} ms, p90 {walls[int(0.9 * (runs - 1))]:.0f} ms, min {walls[0]:.0f} ms; "
      f"CPU median {statistics.median(cpus):.0f} ms")
PY
