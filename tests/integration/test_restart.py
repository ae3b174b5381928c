"""`npm start` / `npm stop` (bin/dev-start, bin/dev-stop) inside a node's netns with its K8S_ROOT:
the first start bootstraps; a stop leaves no process of that root; the next start brings the
same cluster back (same CA, same object UIDs, same etcd member) without bootstrapping again.
And when k8sd itself is killed, the next start reaps the services it left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid

import pytest

from pkitools import fingerprint
from testbed import REPO, component_bin, proc_name, process_alive

# A control-plane node is a node too; flanneld runs with the network feature (on by default).
SERVICES = {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "containerd", "kubelet", "flanneld", "kube-proxy"}


def ensure_dev_setup() -> None:
    """Runs bin/dev-setup in the root netns first: `npm start` runs it too, and inside a node's
    netns there is no network, so an `npm ci` there (after package-lock.json changed) would
    empty node_modules and fail."""
    r = subprocess.run(["bash", str(REPO / "bin" / "dev-setup")], cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, f"bin/dev-setup failed:\n{r.stderr[-3000:]}"


def npm(node, script: str, timeout: float = 420) -> subprocess.CompletedProcess:
    if script == "start":
        ensure_dev_setup()
    return subprocess.run(
        node.nsenter("npm", "--silent", script), cwd=REPO, capture_output=True, text=True, timeout=timeout,
    )


def member_ids(node) -> list[str]:
    r = subprocess.run(
        [str(component_bin("etcd") / "etcdctl"), f"--endpoints=https://{node.address}:2379", f"--cacert={node.pki / 'etcd/ca.crt'}",
         f"--cert={node.pki / 'etcd/k8sd-client.crt'}", f"--key={node.pki / 'etcd/k8sd-client.key'}", "--dial-timeout=5s",
         "member", "list", "-w", "json"],
        capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 0, r.stderr
    return sorted(format(m["ID"], "x") for m in json.loads(r.stdout)["members"])


def bootstraps_logged(node) -> int:
    return sum('"bootstrap complete"' in line for line in node.log("k8sd").read_text().splitlines())


def service_processes(node) -> list[tuple[int, str]]:
    return [(p, proc_name(p)) for p in node.processes()]


def wait_gone(node, timeout: float = 15) -> list[tuple[int, str]]:
    deadline = time.time() + timeout
    while time.time() < deadline and node.processes():
        time.sleep(0.2)
    return service_processes(node)


@pytest.fixture(scope="module")
def node(testbed):
    n = testbed.add_node("rs")
    yield n
    testbed.remove_node(n)


@pytest.fixture(scope="module")
def first_start(node):
    r = npm(node, "start")
    assert r.returncode == 0, f"npm start failed:\n{r.stdout}\n{r.stderr}\n{node.diagnostics()}"
    ns = f"keep-{uuid.uuid4().hex[:6]}"
    assert node.kubectl("create", "namespace", ns).returncode == 0
    assert node.kubectl("-n", ns, "create", "configmap", "c", "--from-literal=k=v").returncode == 0
    assert node.kubectl("-n", ns, "create", "secret", "generic", "s", "--from-literal=p=pw").returncode == 0
    uid = node.kubectl("get", "namespace", ns, "-o", "jsonpath={.metadata.uid}").stdout
    return {
        "output": r.stdout + r.stderr,
        "ns": ns,
        "uid": uid,
        "kube_system_uid": node.kubectl("get", "namespace", "kube-system", "-o", "jsonpath={.metadata.uid}").stdout,
        "ca": fingerprint(node.pki / "ca.crt"),
        "client_ca": fingerprint(node.pki / "client-ca.crt"),
        "etcd_ca": fingerprint(node.pki / "etcd/ca.crt"),
        "members": member_ids(node),
        "node_json": (node.state_dir / "node.json").read_text(),
    }


def test_the_first_npm_start_bootstraps(node, first_start):
    assert "Bootstrapped a new Kubernetes cluster" in first_start["output"]
    assert node.status()["ready"] is True
    assert bootstraps_logged(node) == 1


def test_npm_stop_leaves_no_process_of_the_root(node, first_start):
    pids = {s["name"]: s["pid"] for s in node.status()["services"]}
    r = npm(node, "stop")
    assert r.returncode == 0, r.stderr
    assert wait_gone(node) == []
    for name, pid in pids.items():
        assert not process_alive(pid), f"{name} (pid {pid}) still running"
    assert not node.socket.exists()
    assert not list((node.common / "run").glob("*.pid"))
    # Nothing answers on the node's ports any more.
    for port in (6443, 2379, 2380, 6400):
        assert not node.bed.reachable(node, port), port


def test_npm_start_brings_the_same_cluster_back(node, first_start):
    r = npm(node, "start")
    out = r.stdout + r.stderr
    assert r.returncode == 0, f"{out}\n{node.diagnostics()}"
    assert "already bootstrapped" in out
    assert "Bootstrapped a new Kubernetes cluster" not in out
    assert bootstraps_logged(node) == 1
    assert (node.state_dir / "node.json").read_text() == first_start["node_json"]

    st = node.status()
    assert st["ready"] is True and st["role"] == "control-plane"
    assert {s["name"] for s in st["services"] if s["state"] == "running"} == SERVICES
    assert fingerprint(node.pki / "ca.crt") == first_start["ca"]
    assert fingerprint(node.pki / "client-ca.crt") == first_start["client_ca"]
    assert fingerprint(node.pki / "etcd/ca.crt") == first_start["etcd_ca"]
    assert member_ids(node) == first_start["members"]

    ns = first_start["ns"]
    assert node.kubectl("get", "namespace", ns, "-o", "jsonpath={.metadata.uid}").stdout == first_start["uid"]
    assert node.kubectl("get", "namespace", "kube-system", "-o", "jsonpath={.metadata.uid}").stdout == first_start["kube_system_uid"]
    assert node.kubectl("-n", ns, "get", "configmap", "c", "-o", "jsonpath={.data.k}").stdout == "v"
    assert node.kubectl("-n", ns, "get", "secret", "s", "-o", "jsonpath={.data.p}").stdout == "cHc="  # base64("pw")


def test_npm_start_on_a_running_node_changes_nothing(node, first_start):
    before = {s["name"]: s["pid"] for s in node.status()["services"]}
    r = npm(node, "start")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "already running" in r.stdout + r.stderr
    assert {s["name"]: s["pid"] for s in node.status()["services"]} == before


def kill_k8sd(node) -> dict[str, int]:
    """SIGKILLs k8sd (its services keep running). PID 1 here reaps orphans late, so a k8sd that
    `npm start` spawned may stay a zombie for a while: bin/dev-start must not take it for alive."""
    k8sd_pid = int((node.state_dir / "k8sd.pid").read_text())
    orphans = {s["name"]: s["pid"] for s in node.status()["services"]}
    os.kill(k8sd_pid, signal.SIGKILL)
    if node.k8sd_proc is not None and node.k8sd_proc.pid == k8sd_pid:
        node.k8sd_proc.wait(timeout=30)
    deadline = time.time() + 10
    while time.time() < deadline and process_alive(k8sd_pid):
        time.sleep(0.1)
    assert all(process_alive(p) for p in orphans.values()), "the services should outlive a killed k8sd"
    return orphans


def running_services(node) -> list[tuple[str, int]]:
    """(name, pid) of each process of the node that is one of its services."""
    return [(name, pid) for pid, name in service_processes(node) if name in SERVICES]


def proc_state(pid: int) -> str:
    """State, parent and thread count of a process, for a failure message."""
    try:
        stat = open(f"/proc/{pid}/stat").read()
        fields = stat[stat.rfind(")") + 2 :].split()
        return f"state {fields[0]}, ppid {fields[1]}, {len(os.listdir(f'/proc/{pid}/task'))} threads"
    except OSError:
        return "gone"


def assert_recovered_from_orphans(node, first_start, orphans: dict[str, int]) -> None:
    try:
        _assert_recovered_from_orphans(node, first_start, orphans)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{node.diagnostics()}") from None


def _assert_recovered_from_orphans(node, first_start, orphans: dict[str, int]) -> None:
    st = node.wait_ready(timeout=180)
    for name, pid in orphans.items():
        assert not process_alive(pid), f"orphaned {name} (pid {pid}) was not reaped"
    # Exactly one process of each service. A reaped orphan that PID 1 has not collected yet can
    # still show live threads for a moment while it tears down, so the count gets a few seconds.
    deadline = time.time() + 15
    while True:
        found = running_services(node)
        if sorted(n for n, _ in found) == sorted(SERVICES) or time.time() > deadline:
            break
        time.sleep(0.5)
    assert sorted(n for n, _ in found) == sorted(SERVICES), [f"{n} pid {p}: {proc_state(p)}" for n, p in found]
    assert {s["name"] for s in st["services"] if s["state"] == "running"} == SERVICES
    assert node.kubectl("-n", first_start["ns"], "get", "configmap", "c", "-o", "jsonpath={.data.k}").stdout == "v"
    assert member_ids(node) == first_start["members"]


def test_a_restarted_k8sd_reaps_the_services_a_killed_one_left(node, first_start):
    orphans = kill_k8sd(node)
    node.start_k8sd(timeout=120)
    assert_recovered_from_orphans(node, first_start, orphans)


def test_npm_start_after_k8sd_was_killed(node, first_start):
    orphans = kill_k8sd(node)
    try:
        r = npm(node, "start")
        assert r.returncode == 0, f"{r.stdout}\n{r.stderr}"
        assert_recovered_from_orphans(node, first_start, orphans)
    finally:
        # Whatever happened, let the k8sd that npm start spawned finish starting, so that the
        # next `npm stop` finds it (k8sd writes its pid file only after reaping old services).
        deadline = time.time() + 180
        while time.time() < deadline and not node.socket_answers():
            time.sleep(0.5)
        node.k8s("status", "--wait-ready", "--timeout", "120s", timeout=150)


def test_a_final_npm_stop_is_clean(node, first_start):
    r = npm(node, "stop")
    assert r.returncode == 0, r.stderr
    assert wait_gone(node, timeout=30) == [], f"{r.stderr}\n{node.diagnostics()}"
