"""Automatic certificate renewal on a worker: the worker's k8sd applies the cluster's renewal
policy (sent in the join reply) to its own certificates and gets them re-signed through the
control plane, with no command run anywhere. Lifetimes are minutes, not a year: lifetime 4m,
renew-before 2m, check every 10 s; leaves are back-dated 5 minutes, so each one is due about a
minute after it was issued."""

from __future__ import annotations

import json

import pytest

from membership_helpers import (
    get_token,
    join,
    kill_pods_and_cgroups,
    kubeconfig_cert_serial,
    seed_images,
    unmount_under,
    wait_for,
    worker_join_config,
)
from testbed import TestBed

pytestmark = pytest.mark.slow

POLICY = {"lifetime": "4m", "renew-before": "2m", "check-interval": "10s"}


@pytest.fixture(scope="module")
def pair(testbed: TestBed):
    cp, worker = testbed.add_node("rncp"), testbed.add_node("rnw")
    try:
        for n in (cp, worker):
            n.start_k8sd()
        seed_images(worker)
        r = cp.bootstrap({"certificates": POLICY})
        assert r.returncode == 0, f"{r.stdout}\n{r.stderr}\n{cp.diagnostics()}"
        cp.wait_ready()
        r = join(worker, get_token(cp, worker.name, worker=True), worker_join_config(worker))
        assert r.returncode == 0, f"{r.stdout}\n{r.stderr}\n{worker.diagnostics()}"
        yield cp, worker
    finally:
        for n in (worker, cp):
            try:
                testbed.remove_node(n)
            finally:
                kill_pods_and_cgroups(n)
                unmount_under(n.root)


def node_ready(cp, name: str) -> bool:
    r = cp.kubectl("get", "node", name, "-o", "json")
    if r.returncode != 0:
        return False
    conditions = json.loads(r.stdout)["status"].get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def test_the_worker_keeps_the_cluster_renewal_policy(pair):
    _, worker = pair
    policy = json.loads((worker.state_dir / "node.json").read_text())["certificatePolicy"]
    assert policy["lifetimeMs"] == 4 * 60_000 and policy["checkIntervalMs"] == 10_000, policy


def test_worker_certificates_renew_by_themselves(pair):
    cp, worker = pair
    kubelet_conf = worker.root / "etc/kubernetes/kubelet.conf"
    proxy_conf = worker.root / "etc/kubernetes/proxy.conf"
    first = (kubeconfig_cert_serial(kubelet_conf), kubeconfig_cert_serial(proxy_conf))
    wait_for("the worker's client certificates to renew themselves",
             lambda: kubeconfig_cert_serial(kubelet_conf) != first[0] and kubeconfig_cert_serial(proxy_conf) != first[1],
             timeout=240, interval=3)
    renewed = [json.loads(l) for l in worker.log("k8sd").read_text().splitlines() if '"renewed expiring certificates"' in l]
    assert renewed and {"kubelet.conf", "proxy.conf"} <= set(renewed[0]["certificates"]), renewed
    # The renewed client certificate works: the node stays (or becomes again) Ready.
    wait_for("the worker to be Ready with its renewed certificate", lambda: node_ready(cp, worker.name), timeout=120, interval=2)
    assert oct(kubelet_conf.stat().st_mode & 0o777) == "0o600"
