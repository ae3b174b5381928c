"""Crash recovery: when kube-apiserver or etcd dies (SIGKILL), k8sd's supervisor starts it again,
/readyz recovers and no object is lost."""

from __future__ import annotations

import os
import signal
import time
import uuid

import pytest

from conftest import bootstrapped_node, core_api
from testbed import process_alive


@pytest.fixture(scope="module")
def cluster(testbed):
    """A node of its own: these tests kill its services."""
    node = bootstrapped_node(testbed, "rcv")
    yield node
    testbed.remove_node(node)


@pytest.fixture(scope="module")
def kube_client(cluster):
    api = core_api(cluster)
    yield api
    api.api_client.close()


@pytest.fixture(scope="module")
def marker(cluster, kube_client):
    """A namespace with a secret and a configmap that must survive every crash."""
    from kubernetes import client

    ns = f"survivor-{uuid.uuid4().hex[:6]}"
    kube_client.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    kube_client.create_namespaced_secret(ns, client.V1Secret(metadata=client.V1ObjectMeta(name="s"), string_data={"k": "v1"}))
    kube_client.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c"), data={"k": "v2"}))
    return {"ns": ns, "uid": kube_client.read_namespace(ns).metadata.uid}


def assert_objects_intact(cluster, kube_client, marker) -> None:
    import base64

    ns = marker["ns"]
    assert kube_client.read_namespace(ns).metadata.uid == marker["uid"]
    assert base64.b64decode(kube_client.read_namespaced_secret("s", ns).data["k"]) == b"v1"
    assert kube_client.read_namespaced_config_map("c", ns).data == {"k": "v2"}
    r = cluster.kubectl("-n", ns, "get", "configmap", "c", "-o", "jsonpath={.data.k}")
    assert r.stdout == "v2", r.stderr


def services(cluster) -> dict[str, dict]:
    return {s["name"]: s for s in cluster.status()["services"]}


def readyz(kube_client) -> bool:
    api = kube_client.api_client
    try:
        r = api.call_api("GET", api.configuration.host + "/readyz", _request_timeout=3)
        return r.status == 200 and r.read() == b"ok"
    except Exception:
        return False


def wait_recovered(cluster, kube_client, killed: dict[str, tuple[int, int]], timeout: float = 180) -> dict[str, dict]:
    """Waits until every killed service runs again under a new pid, with one more restart
    counted, and the apiserver is ready (both k8s status and /readyz from the root netns)."""
    deadline = time.time() + timeout
    last = {}
    while time.time() < deadline:
        last = services(cluster)
        if all(
            last[name]["state"] == "running" and last[name].get("pid") not in (None, old_pid) and last[name]["restarts"] > old_restarts
            for name, (old_pid, old_restarts) in killed.items()
        ) and cluster.status()["ready"] and readyz(kube_client):
            return last
        time.sleep(0.5)
    raise AssertionError(f"did not recover within {timeout} s: {last}\n{cluster.diagnostics()}")


def kill9(cluster, *names: str) -> dict[str, tuple[int, int]]:
    before = services(cluster)
    killed = {}
    for name in names:
        pid = before[name]["pid"]
        assert pid and process_alive(pid), before[name]
        killed[name] = (pid, before[name]["restarts"])
    for pid, _ in killed.values():
        os.kill(pid, signal.SIGKILL)
    deadline = time.time() + 10
    while time.time() < deadline and any(process_alive(pid) for pid, _ in killed.values()):
        time.sleep(0.05)
    return killed


@pytest.mark.parametrize("victims", [("kube-apiserver",), ("etcd",), ("etcd", "kube-apiserver")], ids=["apiserver", "etcd", "both"])
def test_killed_services_are_restarted_and_nothing_is_lost(cluster, kube_client, marker, victims):
    assert readyz(kube_client)
    started = time.time()
    killed = kill9(cluster, *victims)
    after = wait_recovered(cluster, kube_client, killed)
    print(f"{'+'.join(victims)} recovered in {time.time() - started:.1f} s")
    for name in victims:
        assert after[name]["last-exit"] == "killed by SIGKILL", after[name]
    assert_objects_intact(cluster, kube_client, marker)
    # The cluster still takes writes.
    from kubernetes import client

    kube_client.create_namespaced_config_map(
        marker["ns"], client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"after-{'-'.join(victims)}"), data={"ok": "1"})
    )
    st = cluster.status()
    assert [m["name"] for m in st["datastore"]["members"]] == [cluster.name]
    # The plain status tells a person about it.
    plain = cluster.k8s("status").stdout
    for name in victims:
        line = next(line for line in plain.splitlines() if line.strip().startswith(f"{name} "))
        assert "restarts" in line, plain

