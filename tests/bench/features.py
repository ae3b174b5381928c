"""Feature benchmarks on the integration test bed: one node, `k8s bootstrap`, then for each feature
(default: ingress, gateway; any of local-storage, metrics-server, ingress, gateway):

  enable -> ready   `k8s enable <feature>` until it returns (it waits until the feature is ready)
  memory added      VmRSS of the pod processes that appeared with the feature, by process name
  disable -> gone   `k8s disable <feature>` until no object labelled with the feature is left

Features are enabled one at a time and disabled again, so each figure is the feature's own.
Prints a table (or JSON with --json).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))
sys.path.insert(0, str(REPO / "tests" / "bench"))

from membership_helpers import seed_images  # noqa: E402
from testbed import TestBed  # noqa: E402
from workloads import rss_kb  # noqa: E402

KINDS = "deployment,service,configmap,secret,serviceaccount,role,rolebinding,clusterrole,clusterrolebinding,storageclass,ingressclass,customresourcedefinition,apiservice,namespace"


def proc_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def labelled(node, feature: str) -> list[str]:
    r = node.kubectl("get", KINDS, "-A", "-l", f"k8sd.io/feature={feature}", "-o", "name")
    return r.stdout.split()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--features", default="ingress,gateway")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    features = [f for f in args.features.split(",") if f]
    res: dict = {"load_before": os.getloadavg()[0], "cores": os.cpu_count(), "features": {f: {"enable_s": [], "disable_s": [], "memory_mib": {}} for f in features}}
    with TestBed() as bed:
        node = bed.add_node("fb1")
        node.start_k8sd()
        seed_images(node)
        r = node.bootstrap()
        assert r.returncode == 0, r.stderr
        node.wait_ready(timeout=300)
        for run in range(args.runs):
            for f in features:
                before = set(node.pod_processes())
                t0 = time.perf_counter()
                r = node.k8s("enable", f, "--timeout", "600s", timeout=660)
                assert r.returncode == 0, r.stdout + r.stderr
                res["features"][f]["enable_s"].append(time.perf_counter() - t0)
                if run == 0:
                    time.sleep(10)  # let the new pods settle before reading memory
                    mem: dict[str, float] = {}
                    for pid in set(node.pod_processes()) - before:
                        mem[proc_name(pid)] = mem.get(proc_name(pid), 0.0) + rss_kb(pid) / 1024
                    res["features"][f]["memory_mib"] = mem
                t0 = time.perf_counter()
                r = node.k8s("disable", f, "--timeout", "600s", timeout=660)
                assert r.returncode == 0, r.stdout + r.stderr
                while labelled(node, f):
                    time.sleep(0.5)
                res["features"][f]["disable_s"].append(time.perf_counter() - t0)
        bed.remove_node(node)
    res["load_after"] = os.getloadavg()[0]
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"{'feature':<16} {'enable->ready':>14} {'disable->gone':>14}  memory added (VmRSS MiB by process)")
    for f, e in res["features"].items():
        mem = ", ".join(f"{k} {v:.1f}" for k, v in sorted(e["memory_mib"].items(), key=lambda kv: -kv[1]))
        print(f"{f:<16} {statistics.median(e['enable_s']):>13.1f}s {statistics.median(e['disable_s']):>13.1f}s  {mem}  (runs: {', '.join(f'{x:.1f}' for x in e['enable_s'])})")
    print(f"\nload average {res['load_before']:.1f} before, {res['load_after']:.1f} after ({res['cores']} cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
