"""Automatic certificate renewal on a worker: the worker's k8sd applies the cluster's renewal
policy (sent in the join reply) to its own certificates and gets them re-signed through the
control plane, with no command run anywhere. Lifetimes are minutes, not a year: lifetime 2m,
renew-before 1m, check every 10 s; here k8sd back-dates certificates by 1 minute, not 5
(K8S_TEST_CERT_BACKDATE_SECONDS), so each one spans 3 minutes: k8sd's renewal is due a minute after
issue (a third of the span left) and the kubelet renews its own at 70-90% of the span, 66-102 s
after issue."""

from __future__ import annotations

import json
import subprocess

import pytest

from certs_helpers import start_k8sd_with_env
from membership_helpers import (
    get_token,
    join,
    kubeconfig_cert_serial,
    safety_net,
    seed_images,
    wait_for,
    worker_join_config,
)
from testbed import TestBed

pytestmark = pytest.mark.slow

POLICY = {"lifetime": "2m", "renew-before": "1m", "check-interval": "10s"}
K8SD_ENV = {"K8S_TEST_CERT_BACKDATE_SECONDS": "60"}


@pytest.fixture(scope="module")
def pair(testbed: TestBed):
    cp, worker = testbed.add_node("rncp"), testbed.add_node("rnw")
    try:
        for n in (cp, worker):
            start_k8sd_with_env(n, K8SD_ENV)
        seed_images(worker)
        r = cp.bootstrap({"certificates": POLICY})
        assert r.returncode == 0, f"{r.stdout}\n{r.stderr}\n{cp.diagnostics()}"
        cp.wait_ready()
        r = join(worker, get_token(cp, worker.name, worker=True), worker_join_config(worker))
        assert r.returncode == 0, f"{r.stdout}\n{r.stderr}\n{worker.diagnostics()}"
        yield cp, worker
    finally:
        testbed.remove_nodes((worker, cp), cleanup=safety_net)


def node_ready(cp, name: str) -> bool:
    r = cp.kubectl("get", "node", name, "-o", "json")
    if r.returncode != 0:
        return False
    conditions = json.loads(r.stdout)["status"].get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def test_the_worker_keeps_the_cluster_renewal_policy(pair):
    _, worker = pair
    policy = json.loads((worker.state_dir / "node.json").read_text())["certificatePolicy"]
    assert policy["lifetimeMs"] == 2 * 60_000 and policy["checkIntervalMs"] == 10_000, policy


def x509_field(pem: bytes, field: str) -> str:
    """One field of the first certificate in pem, as openssl prints it without its name (-serial, -issuer, -subject)."""
    r = subprocess.run(["openssl", "x509", "-noout", field], input=pem, capture_output=True, check=True)
    return r.stdout.decode().strip().split("=", 1)[1].strip()


def pem_serial(pem: bytes) -> str:
    return x509_field(pem, "-serial")


def kubelet_client_cert(worker) -> bytes:
    """The certificate the kubelet talks to the API server with: its store's current one."""
    return (worker.root / "var/lib/kubelet/pki/kubelet-client-current.pem").read_bytes()


def test_the_kubelet_starts_with_k8sd_s_certificate_in_its_store(pair):
    _, worker = pair
    kubelet_conf = worker.root / "etc/kubernetes/kubelet.conf"
    store = worker.root / "var/lib/kubelet/pki/kubelet-client-current.pem"
    assert store.is_symlink(), "the kubelet's client store has no current link"
    # Until the kubelet renews it, the store holds kubelet.conf's pair (so the kubelet did not
    # force a renewal at start), private to root.
    assert "serial=" + pem_serial(kubelet_client_cert(worker)) == kubeconfig_cert_serial(kubelet_conf)
    assert oct(store.resolve().stat().st_mode & 0o777) == "0o600"


def test_worker_certificates_renew_by_themselves(pair):
    """kube-proxy's certificate: k8sd renews it under the cluster policy. The kubelet's: the
    kubelet renews it itself (rotateCertificates, CIS 4.2.10) through a CSR that k8sd approves
    and signs with the client CA, without a restart."""
    cp, worker = pair
    proxy_conf = worker.root / "etc/kubernetes/proxy.conf"
    first_kubelet, first_proxy = pem_serial(kubelet_client_cert(worker)), kubeconfig_cert_serial(proxy_conf)
    kubelet_pid = worker.service_pid("kubelet")
    wait_for("the worker's client certificates to renew themselves",
             lambda: pem_serial(kubelet_client_cert(worker)) != first_kubelet and kubeconfig_cert_serial(proxy_conf) != first_proxy,
             timeout=240, interval=3)
    renewed = [json.loads(l) for l in worker.log("k8sd").read_text().splitlines() if '"renewed expiring certificates"' in l]
    assert renewed and "proxy.conf" in renewed[0]["certificates"], renewed
    assert all("kubelet.conf" not in r["certificates"] for r in renewed), "k8sd renewed the kubelet's certificate instead of the kubelet"
    assert worker.service_pid("kubelet") == kubelet_pid, "the kubelet was restarted to renew its client certificate"
    # The request the kubelet filed: approved by k8sd for this node only, issued by the client CA.
    csrs = json.loads(cp.kubectl("get", "csr", "-o", "json").stdout)["items"]
    mine = [c for c in csrs if c["spec"]["signerName"] == "kubernetes.io/kube-apiserver-client-kubelet" and c["spec"]["username"] == f"system:node:{worker.name}"]
    assert mine, [(c["spec"]["signerName"], c["spec"]["username"]) for c in csrs]
    assert any(cond["type"] == "Approved" for c in mine for cond in c["status"].get("conditions", [])), mine
    issued = [c for c in mine if c["status"].get("certificate")]
    assert issued, "no kubelet client CSR was signed"
    client_ca = (cp.pki / "client-ca.crt").read_bytes()
    assert x509_field(kubelet_client_cert(worker), "-issuer") == x509_field(client_ca, "-subject"), "the renewed certificate is not issued by the client CA"
    # The renewed client certificate works: the node stays (or becomes again) Ready.
    wait_for("the worker to be Ready with its renewed certificate", lambda: node_ready(cp, worker.name), timeout=120, interval=2)
