"""Workload benchmarks on the integration test bed (one netns + K8S_ROOT per node), components built.
Prints a table (or JSON with --json).

  npm start       `bin/dev-start` (what `npm start` runs) on a fresh K8S_ROOT inside a node's netns,
                  from nothing to exit 0: k8sd started, bootstrapped, the node Ready and the default
                  features (network, dns) ready. dev-setup's checks are included (all cached).
  k8s bootstrap   the bootstrap command alone on a fresh node, and until `k8s status` says ready
  pod to Running  a busybox pod on the control-plane node, from `kubectl create` until Running
  worker join     `k8s join-cluster` on a fresh worker until its `k8s status --wait-ready` (network up)
  memory          VmRSS of every process of the single node after bootstrap, by component
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

from membership_helpers import get_token, join, seed_images, worker_join_config  # noqa: E402
from testbed import TestBed  # noqa: E402


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def component_of(pid: int) -> str | None:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    exe = os.path.basename(argv[0].decode(errors="replace")) if argv and argv[0] else ""
    joined = b" ".join(argv).decode(errors="replace")
    if "k8sd/main.js" in joined:
        return "k8sd"
    names = {
        "etcd": "etcd", "kube-apiserver": "kube-apiserver", "kube-controller-manager": "kube-controller-manager",
        "kube-scheduler": "kube-scheduler", "kubelet": "kubelet", "kube-proxy": "kube-proxy", "containerd": "containerd",
        "containerd-shim-runc-v2": "containerd shims", "flanneld": "flanneld (CNI)", "coredns": "CoreDNS", "pause": "pause (sandboxes)",
    }
    return names.get(exe)


def memory_table(node) -> dict[str, dict[str, float]]:
    pids = set(node.processes())
    out: dict[str, dict[str, float]] = {}
    for pid in pids:
        name = component_of(pid)
        if not name:
            continue
        e = out.setdefault(name, {"processes": 0, "rss_mib": 0.0})
        e["processes"] += 1
        e["rss_mib"] += rss_kb(pid) / 1024
    return out


def wait_pod_running(node, name: str, timeout: float = 180) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        r = node.kubectl("get", "pod", name, "-o", "jsonpath={.status.phase}")
        if r.stdout.strip() == "Running":
            return time.perf_counter() - t0
        time.sleep(0.1)
    raise RuntimeError(f"pod {name} not Running after {timeout} s")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    res: dict = {"load_before": os.getloadavg()[0], "cores": os.cpu_count(), "npm_start_s": [], "bootstrap_s": [], "bootstrap_ready_s": [], "pod_running_s": [], "worker_ready_s": []}
    with TestBed() as bed:
        # npm start (bin/dev-start) on a fresh root inside a node's netns.
        for i in range(args.runs):
            n = bed.add_node(f"ns{i}")
            env = {**os.environ, "K8S_ROOT": str(n.root), "K8S_NODE_NAME": n.name, "K8S_NODE_ADDRESS": n.address}
            t0 = time.perf_counter()
            r = subprocess.run(n.nsenter("bash", str(REPO / "bin" / "dev-start")), env=env, capture_output=True, text=True, timeout=600)
            took = time.perf_counter() - t0
            if r.returncode != 0:
                raise RuntimeError(f"npm start failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
            res["npm_start_s"].append(took)
            bed.remove_node(n)

        # k8s bootstrap alone, then until ready; a pod; memory; a worker join.
        for i in range(args.runs):
            cp = bed.add_node(f"cp{i}")
            cp.start_k8sd()
            seed_images(cp)
            t0 = time.perf_counter()
            r = cp.bootstrap()
            res["bootstrap_s"].append(time.perf_counter() - t0)
            assert r.returncode == 0, r.stderr
            cp.wait_ready(timeout=300)
            res["bootstrap_ready_s"].append(time.perf_counter() - t0)
            r = cp.kubectl("run", "bench", "--image=docker.io/library/busybox:test", "--image-pull-policy=Never", "--restart=Never", "--command", "--", "sleep", "3600")
            assert r.returncode == 0, r.stderr
            res["pod_running_s"].append(wait_pod_running(cp, "bench"))
            if i == 0:
                time.sleep(10)  # let start-up settle before reading memory
                res["memory"] = memory_table(cp)
            w = bed.add_node(f"w{i}")
            w.start_k8sd()
            seed_images(w)
            t0 = time.perf_counter()
            r = join(w, get_token(cp, w.name, worker=True), worker_join_config(w))
            assert r.returncode == 0, r.stderr
            w.wait_ready(timeout=300)
            res["worker_ready_s"].append(time.perf_counter() - t0)
            bed.remove_node(w)
            bed.remove_node(cp)
    res["load_after"] = os.getloadavg()[0]
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    med = lambda xs: statistics.median(xs)  # noqa: E731
    rows = [
        ("npm start, nothing -> Ready node + network + dns", med(res["npm_start_s"]), res["npm_start_s"], "target <= 30 s"),
        ("k8s bootstrap (command)", med(res["bootstrap_s"]), res["bootstrap_s"], ""),
        ("k8s bootstrap -> status ready (node + features)", med(res["bootstrap_ready_s"]), res["bootstrap_ready_s"], ""),
        ("pod create -> Running (control-plane node)", med(res["pod_running_s"]), res["pod_running_s"], ""),
        ("worker join -> Ready (network up)", med(res["worker_ready_s"]), res["worker_ready_s"], ""),
    ]
    print(f"{'measure':<52} {'median':>8}  runs")
    for name, m, xs, note in rows:
        print(f"{name:<52} {m:>7.2f}s  {', '.join(f'{x:.2f}' for x in xs)} {note}")
    print(f"\n{'process (single node after bootstrap)':<40} {'count':>5} {'RSS MiB':>8}")
    total = 0.0
    for name, e in sorted(res["memory"].items(), key=lambda kv: -kv[1]["rss_mib"]):
        total += e["rss_mib"]
        print(f"{name:<40} {e['processes']:>5} {e['rss_mib']:>8.1f}")
    print(f"{'total':<40} {'':>5} {total:>8.1f}")
    print(f"\nload average {res['load_before']:.1f} before, {res['load_after']:.1f} after ({res['cores']} cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
