"""etcd snapshot measurements on the integration test bed: one node, N ConfigMaps (default 10,000,
1 KiB each), then `k8s snapshot save` (wall time and file size, several runs) and `k8s snapshot
restore` (wall time until the CLI returns, which is when kube-apiserver answers /readyz again; and
until `k8s status --wait-ready`). The restored cluster is checked to hold all N ConfigMaps.
Prints one JSON document; tests/bench/snapshots.sh turns it into a table."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))

from testbed import TestBed  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--configmaps", type=int, default=10_000)
    ap.add_argument("--saves", type=int, default=3)
    ap.add_argument("--restores", type=int, default=2)
    args = ap.parse_args()
    from kubernetes import client, config

    result: dict = {"load_before": os.getloadavg()[0], "cores": os.cpu_count(), "configmaps": args.configmaps}
    bed = TestBed()
    bed.setup()
    try:
        node = bed.add_node("sb")
        node.start_k8sd()
        r = node.bootstrap(None)
        if r.returncode != 0:
            raise RuntimeError(f"bootstrap failed:\n{r.stdout}\n{r.stderr}")
        node.wait_ready()
        api = client.CoreV1Api(config.new_client_from_config(config_file=str(node.kubeconfig())))
        api.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="bench")))
        payload = "x" * 1024

        def create(i: int) -> None:
            api.create_namespaced_config_map("bench", client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"cm-{i:05d}"), data={"v": payload}))

        t0 = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(create, range(args.configmaps)))
        result["create_s"] = time.perf_counter() - t0

        saves, files = [], []
        for i in range(args.saves):
            t0 = time.perf_counter()
            r = node.k8s("snapshot", "save", "--name", f"bench{i}", "--output-format", "json", timeout=900)
            dt = time.perf_counter() - t0
            if r.returncode != 0:
                raise RuntimeError(f"snapshot save failed:\n{r.stdout}\n{r.stderr}")
            saved = json.loads(r.stdout)
            saves.append(dt)
            files.append(saved)
        result["save_s"] = saves
        result["snapshot_bytes"] = [f["bytes"] for f in files]
        result["etcd_keys"] = files[-1]["keys"]
        result["etcd_revision"] = files[-1]["revision"]

        restores, ready = [], []
        for i in range(args.restores):
            t0 = time.perf_counter()
            r = node.k8s("snapshot", "restore", files[-1]["file"], "--output-format", "json", timeout=1800)
            dt = time.perf_counter() - t0
            if r.returncode != 0:
                raise RuntimeError(f"snapshot restore failed:\n{r.stdout}\n{r.stderr}\n{node.diagnostics()}")
            restores.append(dt)
            node.wait_ready(timeout=600)
            ready.append(time.perf_counter() - t0)
            # The kept pre-restore data dir is the user's to remove; the bench removes it.
            prev = json.loads(r.stdout).get("previous-data-dir")
            if prev:
                shutil.rmtree(prev, ignore_errors=True)
        result["restore_s"] = restores
        result["restore_to_ready_s"] = ready
        api = client.CoreV1Api(config.new_client_from_config(config_file=str(node.kubeconfig())))
        # The namespace also holds kube-root-ca.crt: count the bench's own.
        count = sum(cm.metadata.name.startswith("cm-") for cm in api.list_namespaced_config_map("bench").items)
        if count != args.configmaps:
            raise RuntimeError(f"after restore the cluster holds {count} ConfigMaps, expected {args.configmaps}")
        result["configmaps_after_restore"] = count
    finally:
        bed.teardown()
        shutil.rmtree(bed.workdir, ignore_errors=True)
    result["load_after"] = os.getloadavg()[0]
    summary = {
        "save_median_s": statistics.median(result["save_s"]),
        "snapshot_mib": statistics.median(result["snapshot_bytes"]) / 1024 / 1024,
        "restore_median_s": statistics.median(result["restore_s"]),
        "restore_to_ready_median_s": statistics.median(result["restore_to_ready_s"]),
    }
    print(json.dumps({"summary": summary, "raw": result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
