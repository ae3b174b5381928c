"""A rolling refresh of a 3-control-plane cluster with a worker (issue 15, item 3), node by node as
snapd does it for a snap refresh: pre-refresh hook, the snap's services stop (k8sd stops the ones it
started; pod containers outlive them), the new revision's services start, post-refresh hook. A
client that knows all three API servers writes the whole time and must see no failed write; etcd
keeps quorum; the worker's pod keeps running. A refresh whose post-refresh hook fails is rolled
back on that node (snapd reverts it) and the rollout stops there.

The hooks are the real ones from the packed snap (the session's `npm run snap`); snapd is the stand-in
(`Snapd` from test_snap: snapd's environment and a recording snapctl)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from kubernetes import client, config

from membership_helpers import etcd_members, get_token, join, require_node_components, seed_images, tear_down, worker_join_config
from test_snap import Snapd, snap_file, snap_root  # noqa: F401 (fixtures)
from testbed import Node, TestBed, process_alive, wait_for

pytestmark = pytest.mark.slow

BUSYBOX = "docker.io/library/busybox:test"


class HA:
    def __init__(self, bed: TestBed) -> None:
        self.cp = [bed.add_node(n) for n in ("rcp1", "rcp2", "rcp3")]
        self.worker = bed.add_node("rw1")

    @property
    def nodes(self) -> list[Node]:
        return [*self.cp, self.worker]


@pytest.fixture(scope="module")
def ha(testbed: TestBed):
    require_node_components()
    h = HA(testbed)
    for n in h.nodes:
        n.start_k8sd()
        seed_images(n)
    r = h.cp[0].bootstrap()
    assert r.returncode == 0, f"bootstrap failed:\n{r.stdout}\n{r.stderr}\n{h.cp[0].diagnostics()}"
    h.cp[0].wait_ready(timeout=300)
    for n in h.cp[1:]:
        r = join(n, get_token(h.cp[0], n.name))
        assert r.returncode == 0, f"join of {n.name} failed:\n{r.stdout}\n{r.stderr}\n{n.diagnostics()}"
        n.wait_ready(timeout=300)
    r = join(h.worker, get_token(h.cp[0], h.worker.name, worker=True), worker_join_config(h.worker))
    assert r.returncode == 0, f"join of the worker failed:\n{r.stdout}\n{r.stderr}"
    h.worker.wait_ready(timeout=300)
    yield h
    tear_down(testbed, h.nodes)


class WriteProbe(threading.Thread):
    """Creates a ConfigMap five times a second through whichever API server answers first (a client
    that knows all three, as kube-apiserver's clients behind a load balancer do). A write fails only
    when no API server took it."""

    def __init__(self, nodes: list[Node]) -> None:
        super().__init__(daemon=True)
        self.apis = []
        for n in nodes:
            c = config.new_client_from_config(config_file=str(n.kubeconfig()))
            self.apis.append((n.name, client.CoreV1Api(c)))
        self.stop_event = threading.Event()
        self.ok = 0
        self.failed: list[str] = []
        self.served_by: dict[str, int] = {}

    def run(self) -> None:
        i = 0
        while not self.stop_event.is_set():
            i += 1
            body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"probe-{os.getpid()}-{i}"), data={"i": str(i)})
            errors = []
            for name, api in self.apis:
                try:
                    api.create_namespaced_config_map("default", body, _request_timeout=3)
                    self.ok += 1
                    self.served_by[name] = self.served_by.get(name, 0) + 1
                    break
                except Exception as e:  # noqa: BLE001 - any failure means: try the next API server
                    errors.append(f"{name}: {type(e).__name__}")
            else:
                self.failed.append(f"write {i}: {'; '.join(errors)}")
            time.sleep(0.2)


def stop_services_as_snapd_does(node: Node) -> None:
    """snapd stops the snap's services: k8sd (SIGTERM) stops every service it started; the pods'
    containers outlive containerd by design."""
    pid = int((node.state_dir / "k8sd.pid").read_text())
    os.kill(pid, signal.SIGTERM)
    wait_for(f"k8sd on {node.name} to stop", lambda: not process_alive(pid), timeout=120)


def refresh(node: Node, snap_root: Path, post_timeout: str = "300s", new_revision=lambda: None) -> subprocess.CompletedProcess:
    snapd = Snapd(node, snap_root, revision="r1")
    r = snapd.run("pre-refresh")
    assert r.returncode == 0, f"pre-refresh on {node.name}:\n{r.stderr}"
    stop_services_as_snapd_does(node)
    new_revision()
    node.start_k8sd()  # the new revision's services (k8sd starts the rest)
    return snapd.run("post-refresh", revision="r2", K8S_POST_REFRESH_TIMEOUT=post_timeout)


def voters(ha: HA, via: Node) -> list[str]:
    return sorted(m["name"] for m in etcd_members(via) if not m["learner"])


@pytest.fixture(scope="module")
def workload(ha: HA) -> dict:
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "steady", "namespace": "default"},
        "spec": {
            "nodeName": ha.worker.name,
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": BUSYBOX, "imagePullPolicy": "Never", "command": ["sh", "-c", "while true; do sleep 1; done"]}],
        },
    }
    r = ha.cp[0].kubectl("apply", "-f", "-", input=json.dumps(manifest))
    assert r.returncode == 0, r.stderr
    wait_for("the workload pod Running", lambda: json.loads(ha.cp[0].kubectl("get", "pod", "steady", "-o", "json").stdout)["status"].get("phase") == "Running", timeout=180, interval=2)
    return json.loads(ha.cp[0].kubectl("get", "pod", "steady", "-o", "json").stdout)


def test_a_rolling_refresh_loses_no_write_and_keeps_quorum_and_workloads(ha: HA, workload: dict, snap_root: Path):
    probe = WriteProbe(ha.cp)
    probe.start()
    try:
        time.sleep(2)
        for node in ha.cp:
            started = time.time()
            r = refresh(node, snap_root)
            assert r.returncode == 0, f"post-refresh on {node.name} failed:\n{r.stderr}\n{node.diagnostics()}"
            assert node.status()["ready"], f"{node.name} is not ready after its refresh"
            others = [n for n in ha.cp if n is not node]
            assert voters(ha, others[0]) == sorted(n.name for n in ha.cp), "etcd lost a member"
            print(f"\n{node.name} refreshed in {time.time() - started:.1f} s; writes so far {probe.ok} ok, {len(probe.failed)} failed")
        time.sleep(2)
    finally:
        probe.stop_event.set()
        probe.join(timeout=30)
    print(f"probe: {probe.ok} writes ok, {len(probe.failed)} failed, served by {probe.served_by}")
    assert probe.ok > 20, "the probe made too few writes to mean anything"
    assert not probe.failed, f"{len(probe.failed)} writes failed: {probe.failed[:5]}"
    pod = json.loads(ha.cp[0].kubectl("get", "pod", "steady", "-o", "json").stdout)
    assert pod["metadata"]["uid"] == workload["metadata"]["uid"]
    assert pod["status"]["phase"] == "Running"
    assert sum(c.get("restartCount", 0) for c in pod["status"]["containerStatuses"]) == 0, pod["status"]["containerStatuses"]


def test_a_failed_refresh_is_rolled_back_on_that_node_and_the_rollout_stops(ha: HA, snap_root: Path):
    first, rest = ha.cp[0], ha.cp[1:]
    untouched = {n.name: int((n.state_dir / "k8sd.pid").read_text()) for n in rest}
    # A new revision whose kube-apiserver cannot start (an argument it does not know): post-refresh
    # waits for the node to be ready, it is not, and the hook fails. The apiserver's own log shows
    # that it was the broken revision that kept the node from being ready (not a slow start that a
    # longer wait would have seen through), so the hook need not wait long.
    args = first.common / "args" / "kube-apiserver"
    good = args.read_text()
    r = refresh(first, snap_root, post_timeout="20s", new_revision=lambda: args.write_text(good + '--no-such-flag="from a broken revision"\n'))
    assert r.returncode != 0, "post-refresh passed although the new revision's API server cannot start"
    assert "did not become ready" in r.stderr, r.stderr
    apiserver_log = first.common / "var" / "log" / "kube-apiserver.log"
    wait_for("kube-apiserver to refuse the broken revision's argument",
             lambda: "unknown flag: --no-such-flag" in apiserver_log.read_text(errors="replace"), timeout=60, interval=1)
    # snapd reverts the node to the previous revision: its services stop and the old ones start.
    stop_services_as_snapd_does(first)
    args.write_text(good)
    first.start_k8sd()
    first.wait_ready(timeout=300)
    # ... and the rollout stops: no other node was touched.
    assert {n.name: int((n.state_dir / "k8sd.pid").read_text()) for n in rest} == untouched
    assert all(n.status()["ready"] for n in ha.cp)
    assert voters(ha, first) == sorted(n.name for n in ha.cp)
