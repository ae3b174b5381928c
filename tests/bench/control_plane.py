"""Control-plane measurements on the integration test bed (one netns + K8S_ROOT per node).
Prints one JSON document; tests/bench/control-plane.sh turns it into a table.

  bootstrap      `k8s bootstrap` wall time on a fresh node, from the CLI's start until it exits
                 (it returns once kube-apiserver answers /readyz; then it waits for `k8s status` ready),
                 median of N fresh nodes; also k8sd's own start time (spawn -> socket answers)
  status         `k8s status --output-format json` latency, median/p90 of M runs, next to the
                 floor (the pinned Node running nothing) and the same call over the raw socket
  rss            k8sd's VmRSS (and VmHWM) after bootstrap, from /proc/<pid>/status
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))

from testbed import TestBed  # noqa: E402

NODE = REPO / "node_modules" / "node" / "bin" / "node"


def percentile(xs: list[float], p: float) -> float:
    s = sorted(xs)
    k = (len(s) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def timed(cmd: list[str], **kw) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    return time.perf_counter() - t0, r


def proc_status(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            out[k] = int(v.split()[0])  # kB
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstraps", type=int, default=3)
    ap.add_argument("--status-runs", type=int, default=20)
    args = ap.parse_args()

    result: dict = {"load_before": os.getloadavg()[0], "cores": os.cpu_count()}
    bed = TestBed()
    bed.setup()
    try:
        boots, k8sd_starts, rss = [], [], []
        node = None
        for i in range(args.bootstraps):
            node = bed.add_node(f"b{i + 1}")
            t0 = time.perf_counter()
            node.start_k8sd()
            k8sd_starts.append(time.perf_counter() - t0)
            dt, r = timed([str(REPO / "bin" / "k8s"), "bootstrap", "--name", node.name, "--timeout", "300s"], env=node.env, timeout=600)
            if r.returncode != 0:
                raise RuntimeError(f"bootstrap {i + 1} failed:\n{r.stdout}\n{r.stderr}\n{node.diagnostics()}")
            # `k8s status` says ready once the Node and the enabled features are (timeline.sh times that).
            node.wait_ready(timeout=300)
            boots.append(dt)
            pid = int((node.state_dir / "k8sd.pid").read_text())
            rss.append(proc_status(pid))
            if i < args.bootstraps - 1:
                bed.remove_node(node)  # one cluster at a time: the next bootstrap gets the machine
        result["bootstrap_s"] = boots
        result["k8sd_start_s"] = k8sd_starts
        result["rss_kb"] = rss

        # k8s status on the last (still running) node.
        assert node is not None
        k8s = [str(REPO / "bin" / "k8s"), "status", "--output-format", "json"]
        node.status()  # warm the page cache
        status_times = []
        for _ in range(args.status_runs):
            dt, r = timed(k8s, env=node.env, timeout=120)
            if r.returncode != 0:
                raise RuntimeError(f"k8s status failed: {r.stderr}")
            status_times.append(dt)
        floor = [timed([str(NODE), "-e", "0"])[0] for _ in range(args.status_runs)]
        raw = [
            timed(["curl", "-sS", "--unix-socket", str(node.socket), "http://k8sd/1.0/k8sd/cluster"], timeout=60)[0]
            for _ in range(args.status_runs)
        ]
        result["status_s"] = status_times
        result["node_floor_s"] = floor
        result["status_socket_s"] = raw
        result["rss_after_status_kb"] = proc_status(int((node.state_dir / "k8sd.pid").read_text()))
    finally:
        bed.teardown()
        import shutil

        shutil.rmtree(bed.workdir, ignore_errors=True)
    result["load_after"] = os.getloadavg()[0]
    summary = {
        "bootstrap_median_s": statistics.median(result["bootstrap_s"]),
        "k8sd_start_median_s": statistics.median(result["k8sd_start_s"]),
        "status_median_s": statistics.median(result["status_s"]),
        "status_p90_s": percentile(result["status_s"], 0.9),
        "node_floor_median_s": statistics.median(result["node_floor_s"]),
        "status_socket_median_s": statistics.median(result["status_socket_s"]),
        "status_socket_p90_s": percentile(result["status_socket_s"], 0.9),
        "rss_median_mb": statistics.median(r["VmRSS"] for r in result["rss_kb"]) / 1024,
        "hwm_median_mb": statistics.median(r["VmHWM"] for r in result["rss_kb"]) / 1024,
    }
    print(json.dumps({"summary": summary, "raw": result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
