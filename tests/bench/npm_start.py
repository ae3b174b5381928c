"""`npm start` to a Ready node with its default features ready (issue 12), on a fresh node of the
integration test bed: `npm start` runs inside the node's netns with its K8S_ROOT, exactly as
test_restart.py runs it, and its wall time is measured until it exits 0 (k8sd started, a plain
`k8s bootstrap`, `k8s status --wait-ready`: the Node Ready and network, dns, gateway, local-storage
and metrics-server ready). bin/dev-setup runs first in the root netns (warm caches: it only checks)
and is timed on its own. Then, SETTLE s later, the RSS of the node's processes by program name
(the feature pods included), and `npm stop`'s time.

Usage: sudo tests/bench/npm-start.sh   RUNS=1, SETTLE=10. The machine is shared: the load average
is printed with every figure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests/integration"))
from testbed import TestBed  # noqa: E402
from timeline import load, memory  # noqa: E402  (tests/bench/timeline.py: the same load and RSS figures)

RUNS = int(os.environ.get("RUNS", "1"))
SETTLE = float(os.environ.get("SETTLE", "10"))


def one_run(i: int) -> dict:
    bed = TestBed(workdir=Path(f"/tmp/k8s-npmstart-{os.getpid()}-{i}"))
    ok = False
    try:
        bed.setup()
        node = bed.add_node("ns1")
        started_load = load()
        t0 = time.monotonic()
        r = subprocess.run(node.nsenter("npm", "--silent", "start"), cwd=ROOT, capture_output=True, text=True, timeout=900)
        took = time.monotonic() - t0
        if r.returncode != 0:
            raise RuntimeError(f"npm start exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}\n{node.diagnostics()}")
        st = node.status()
        features = {f["name"]: f for f in st["features"]}
        enabled = sorted(n for n, f in features.items() if f["enabled"])
        if not st["ready"] or not all(features[n]["ready"] for n in enabled):
            raise RuntimeError(f"npm start returned but the node is not ready: {json.dumps(st)[:2000]}")
        time.sleep(SETTLE)
        _, _, by = memory(node.processes())
        t1 = time.monotonic()
        stop = subprocess.run(node.nsenter("npm", "--silent", "stop"), cwd=ROOT, capture_output=True, text=True, timeout=300)
        stop_took = time.monotonic() - t1
        ok = stop.returncode == 0
        return {"start_s": took, "stop_s": stop_took, "stop_rc": stop.returncode, "enabled": enabled, "rss_by": by,
                "load_start": started_load, "load_end": load()}
    finally:
        bed.teardown()
        if ok or not os.environ.get("K8S_BENCH_KEEP"):
            shutil.rmtree(bed.workdir, ignore_errors=True)


def main() -> int:
    t = time.monotonic()
    r = subprocess.run(["bash", str(ROOT / "bin/dev-setup")], cwd=ROOT, capture_output=True, text=True, timeout=3600)
    if r.returncode != 0:
        print(f"npm-start: bin/dev-setup failed:\n{r.stderr[-3000:]}", file=sys.stderr)
        return 1
    print(f"bin/dev-setup (warm caches, root netns): {time.monotonic() - t:.1f} s")
    for i in range(RUNS):
        res = one_run(i)
        total = sum(res["rss_by"].values())
        top = ", ".join(f"{n} {kb / 1024:.0f}" for n, kb in sorted(res["rss_by"].items(), key=lambda x: -x[1])[:12])
        print(f"run {i + 1}: npm start to a Ready node with {', '.join(res['enabled'])} ready: {res['start_s']:.1f} s "
              f"({res['load_start']} at the start, {res['load_end']} at the end)")
        print(f"  RSS of the node's processes {SETTLE:.0f} s later: {total / 1024:.0f} MiB ({top} MiB)")
        print(f"  npm stop: {res['stop_s']:.1f} s (exit {res['stop_rc']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
