#!/usr/bin/env bash
# Control-plane benchmarks, with the components already built (bin/dev-setup):
#   bootstrap to ready    median of 3 fresh bootstraps, each in its own netns + K8S_ROOT
#   k8s status latency    median/p90 of 20 runs (mostly Node start-up: compare the floor row)
#   k8sd RSS              VmRSS of k8sd after bootstrap (/proc/<pid>/status)
#   PKI generation        full CA + leaf + kubeconfig set with the Node crypto backend, in-process
# Usage: sudo tests/bench/control-plane.sh [--json]
#   BOOTSTRAPS=3 STATUS_RUNS=20 PKI_RUNS=5 override the counts.
# Numbers depend on the machine's load: the load average is printed with them.
set -euo pipefail
json=false
[[ "${1:-}" == "--json" ]] && json=true
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init control-plane.sh
node="$root/node_modules/node/bin/node"
bench_require_built "$node" dist/k8sd/main.js dist/pki/signer.js etcd/etcd kubernetes/kube-apiserver

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "control-plane.sh: PKI generation (${PKI_RUNS:-5} runs per key type)…" >&2
"$node" tests/bench/pki-gen.mjs "${PKI_RUNS:-5}" ecdsa-p256 rsa-2048 > "$work/pki.jsonl"
echo "control-plane.sh: ${BOOTSTRAPS:-3} bootstraps and ${STATUS_RUNS:-20} status calls in network namespaces…" >&2
python3 tests/bench/control_plane.py --bootstraps "${BOOTSTRAPS:-3}" --status-runs "${STATUS_RUNS:-20}" > "$work/cp.json"

python3 - "$work/cp.json" "$work/pki.jsonl" "$json" <<'PY'
import json, sys
cp = json.load(open(sys.argv[1]))
pki = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
if sys.argv[3] == "true":
    print(json.dumps({"control_plane": cp, "pki": pki}, indent=2)); sys.exit(0)
s, raw = cp["summary"], cp["raw"]
rows = [
    ("bootstrap to ready (k8s bootstrap)", f"{s['bootstrap_median_s']:.2f} s", f"median of {len(raw['bootstrap_s'])}: " + ", ".join(f"{x:.2f}" for x in raw["bootstrap_s"])),
    ("k8sd start (spawn -> socket)", f"{s['k8sd_start_median_s']:.2f} s", "median"),
    ("k8s status --output-format json", f"{s['status_median_s']*1000:.0f} ms", f"p90 {s['status_p90_s']*1000:.0f} ms, {len(raw['status_s'])} runs"),
    ("  floor: pinned node -e 0", f"{s['node_floor_median_s']*1000:.0f} ms", "Node start-up alone"),
    ("  same call over the socket (curl)", f"{s['status_socket_median_s']*1000:.0f} ms", f"p90 {s['status_socket_p90_s']*1000:.0f} ms (k8sd's share)"),
    ("k8sd RSS after bootstrap", f"{s['rss_median_mb']:.0f} MiB", f"VmHWM {s['hwm_median_mb']:.0f} MiB; after the status runs {raw['rss_after_status_kb']['VmRSS']/1024:.0f} MiB"),
]
for p in pki:
    rows.append((f"PKI set, {p['keyType']}", f"{p['medianMs']:.0f} ms", f"{p['cas']} CAs + {p['leaves']} leaves + {p['kubeconfigs']} kubeconfigs -> {p['files']} files; min {p['minMs']:.0f}, max {p['maxMs']:.0f}, {p['runs']} runs"))
w = max(len(r[0]) for r in rows)
print(f"{'measure'.ljust(w)}  {'value':>10}  notes")
print(f"{'-'*w}  {'-'*10}  {'-'*5}")
for name, value, note in rows:
    print(f"{name.ljust(w)}  {value:>10}  {note}")
print(f"\nload average: {raw['load_before']:.1f} before, {raw['load_after']:.1f} after ({raw['cores']} cores)")
PY
