"""A bootstrap file may bring the cluster CA (ca-crt + ca-key) made elsewhere, here with openssl:
the cluster then serves and signs with that CA, and Go clients (kubectl, the control-plane
components) accept what it signed."""

from __future__ import annotations

import subprocess

import pytest

from pkitools import fingerprint, self_signed_ca


@pytest.fixture(scope="module")
def node_with_supplied_ca(testbed, tmp_path_factory):
    ca_crt, ca_key = self_signed_ca(tmp_path_factory.mktemp("supplied-ca"), "ca", "kubernetes-ca")
    n = testbed.add_node("sca")
    n.start_k8sd()
    r = n.bootstrap({"ca-crt": ca_crt.read_text(), "ca-key": ca_key.read_text()})
    assert r.returncode == 0, r.stdout + r.stderr
    yield n, ca_crt
    testbed.remove_node(n)


def test_the_cluster_uses_the_supplied_ca(node_with_supplied_ca):
    node, ca_crt = node_with_supplied_ca
    assert fingerprint(node.pki / "ca.crt") == fingerprint(ca_crt)
    s = subprocess.run(
        ["openssl", "s_client", "-connect", f"{node.address}:6443", "-CAfile", str(ca_crt), "-verify_return_error", "-brief"],
        input="", capture_output=True, text=True, timeout=30,
    )
    assert "Verification: OK" in s.stderr, s.stderr


def test_go_clients_accept_certificates_signed_by_the_supplied_ca(node_with_supplied_ca):
    node, _ = node_with_supplied_ca
    r = node.kubectl("get", "ns", "default", "-o", "name", timeout=30)
    assert r.returncode == 0, r.stderr
    st = node.wait_ready(timeout=60)
    assert st["ready"] is True
