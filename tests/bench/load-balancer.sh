#!/usr/bin/env bash
# load-balancer feature figures, from the integration module that exercises it on a real node
# (tests/integration/test_load_balancer.py prints MEASURE lines): `k8s enable load-balancer` to
# ready, Service created to address assigned, BGP mode set to session Established with the route
# at the router, `k8s disable` to every object removed, k8sd's VmRSS before/after and gobgpd's
# VmRSS (the feature runs no pod: its memory is k8sd's loop and, in BGP mode, gobgpd).
# Usage: sudo tests/bench/load-balancer.sh      RUNS=2 (median over runs); PYTEST=<venv>/bin/pytest
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init load-balancer.sh
bench_require_built dist/k8sd/features/load-balancer.js gobgp/gobgpd
pytest=${PYTEST:-/tmp/work/venv/bin/pytest}
runs=${RUNS:-2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
load_before=$(cut -d' ' -f1 /proc/loadavg)
for i in $(seq "$runs"); do
  echo "load-balancer.sh: run $i of $runs…" >&2
  "$pytest" -p no:cacheprovider --timeout=1200 -s -q tests/integration/test_load_balancer.py > "$work/run$i.log" 2>&1 \
    || { tail -50 "$work/run$i.log" >&2; echo "load-balancer.sh: run $i failed" >&2; exit 1; }
  grep -h '^MEASURE ' "$work/run$i.log" >> "$work/measures"
done
python3 - "$work/measures" "$load_before" "$(cut -d' ' -f1 /proc/loadavg)" "$(nproc)" <<'PY'
import re, statistics, sys
rows: dict[str, list[list[float]]] = {}
for line in open(sys.argv[1]):
    name, _, rest = line[len("MEASURE "):].partition(":")
    rows.setdefault(name.strip(), []).append([float(x) for x in re.findall(r"\d+(?:\.\d+)?", rest)])
for name, vals in rows.items():
    unit = "MiB" if "RSS" in name else "s"
    cols = [statistics.median(v[i] for v in vals) for i in range(len(vals[0]))]
    print(f"{name:<70} {' / '.join(f'{c:.1f}' for c in cols)} {unit}   (median of {len(vals)})")
print(f"\nload average: {sys.argv[2]} before, {sys.argv[3]} after ({sys.argv[4]} cores)")
PY
