#!/usr/bin/env bash
# etcd snapshot benchmarks, with the components already built (bin/dev-setup), on one test-bed node:
#   save       `k8s snapshot save` wall time (etcdctl snapshot + AES-256-GCM sealing + atomic write), median of SAVES
#   size       the sealed snapshot file of a cluster with CONFIGMAPS ConfigMaps of 1 KiB each
#   restore    `k8s snapshot restore` wall time (authenticate + decrypt + etcdutl restore + services
#              back until kube-apiserver is ready), and until `k8s status --wait-ready`, median of RESTORES
# Usage: sudo [PYTHON=venv/bin/python] tests/bench/snapshots.sh [--json]      CONFIGMAPS=10000 SAVES=3 RESTORES=2 override the counts.
# Numbers depend on the machine's load: the load average is printed with them.
set -euo pipefail
json=false
[[ "${1:-}" == "--json" ]] && json=true
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init snapshots.sh
bench_require_built dist/k8sd/snapshots.js etcd/etcdutl kubernetes/kube-apiserver
bench_python kubernetes yaml
py=$python
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "snapshots.sh: one node, ${CONFIGMAPS:-10000} ConfigMaps, ${SAVES:-3} saves, ${RESTORES:-2} restores…" >&2
"$py" tests/bench/snapshots_bench.py --configmaps "${CONFIGMAPS:-10000}" --saves "${SAVES:-3}" --restores "${RESTORES:-2}" > "$work/s.json"
"$py" - "$work/s.json" "$json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
if sys.argv[2] == "true":
    print(json.dumps(d, indent=2)); sys.exit(0)
s, raw = d["summary"], d["raw"]
rows = [
    (f"create {raw['configmaps']} ConfigMaps (1 KiB, 8 clients)", f"{raw['create_s']:.0f} s", "setup, not the snapshot"),
    ("k8s snapshot save", f"{s['save_median_s']:.2f} s", "runs: " + ", ".join(f"{x:.2f}" for x in raw["save_s"]) + f"; etcd revision {raw['etcd_revision']}, {raw['etcd_keys']} keys"),
    ("snapshot file (sealed)", f"{s['snapshot_mib']:.1f} MiB", "sizes: " + ", ".join(f"{b/1024/1024:.1f}" for b in raw["snapshot_bytes"]) + " MiB"),
    ("k8s snapshot restore", f"{s['restore_median_s']:.2f} s", "runs: " + ", ".join(f"{x:.2f}" for x in raw["restore_s"]) + " (returns when kube-apiserver is ready)"),
    ("  restore until k8s status ready", f"{s['restore_to_ready_median_s']:.2f} s", "runs: " + ", ".join(f"{x:.2f}" for x in raw["restore_to_ready_s"]) + f"; {raw['configmaps_after_restore']} ConfigMaps after"),
]
w = max(len(r[0]) for r in rows)
print(f"{'measure'.ljust(w)}  {'value':>10}  notes")
print(f"{'-'*w}  {'-'*10}  {'-'*5}")
for name, value, note in rows:
    print(f"{name.ljust(w)}  {value:>10}  {note}")
print(f"\nload average: {raw['load_before']:.1f} before, {raw['load_after']:.1f} after ({raw['cores']} cores)")
PY
