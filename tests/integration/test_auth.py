"""Who may talk to the control plane. Requests come from the root netns over the test bridge,
the way another host would reach the node, with curl, the Python client and etcdctl."""

from __future__ import annotations

import subprocess

import pytest

from pkitools import self_signed_ca, signed_cert, subject
from testbed import component_bin


@pytest.fixture(scope="module")
def certs(cluster, tmp_path_factory):
    d = tmp_path_factory.mktemp("auth-certs")
    foreign_ca = self_signed_ca(d, "foreign-ca", "kubernetes-ca-client")  # same CN as the real one: only the key differs
    return {
        "dir": d,
        "foreign_admin": signed_cert(d, "foreign-admin", *foreign_ca, "/CN=kubernetes-admin/O=system:masters"),
        # Signed by the cluster's own client CA, for a user that no RBAC rule mentions.
        "nobody": signed_cert(d, "nobody", cluster.pki / "client-ca.crt", cluster.pki / "client-ca.key", "/CN=it-nobody/O=it-no-group"),
        "foreign_etcd": signed_cert(d, "foreign-etcd", *self_signed_ca(d, "foreign-etcd-ca", "etcd-ca"), "/CN=kube-apiserver-etcd-client"),
    }


def curl_status(url: str, *args: str) -> tuple[str, str]:
    r = subprocess.run(["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "--max-time", "15", *args, url], capture_output=True, text=True)
    body, _, code = r.stdout.rpartition("\n")
    return code, body + r.stderr


def api(cluster, path: str = "/api/v1/namespaces") -> str:
    return f"https://{cluster.address}:6443{path}"


def test_anonymous_requests_are_unauthorized(cluster):
    code, body = curl_status(api(cluster), "--cacert", str(cluster.pki / "ca.crt"))
    assert code == "401", body
    code, body = curl_status(api(cluster, "/readyz"), "--cacert", str(cluster.pki / "ca.crt"))
    assert code == "401", body


def test_a_certificate_from_a_foreign_ca_is_refused(cluster, certs):
    crt, key = certs["foreign_admin"]
    assert "kubernetes-admin" in subject(crt)
    code, body = curl_status(api(cluster), "--cacert", str(cluster.pki / "ca.crt"), "--cert", str(crt), "--key", str(key))
    assert code == "401", body


def test_a_valid_certificate_without_rbac_grants_is_forbidden(cluster, certs):
    crt, key = certs["nobody"]
    code, body = curl_status(api(cluster), "--cacert", str(cluster.pki / "ca.crt"), "--cert", str(crt), "--key", str(key))
    assert code == "403", body
    assert "it-nobody" in body  # authenticated as that user, then refused by RBAC


def test_the_python_client_sees_401_and_403(cluster, certs):
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    def core(cert: tuple | None) -> client.CoreV1Api:
        cfg = client.Configuration()
        cfg.host = f"https://{cluster.address}:6443"
        cfg.ssl_ca_cert = str(cluster.pki / "ca.crt")
        if cert:
            cfg.cert_file, cfg.key_file = str(cert[0]), str(cert[1])
        return client.CoreV1Api(client.ApiClient(cfg))

    for cert, status in ((None, 401), (certs["foreign_admin"], 401), (certs["nobody"], 403)):
        with pytest.raises(ApiException) as e:
            core(cert).list_namespace()
        assert e.value.status == status, (cert, e.value)


def test_the_apiserver_serves_a_certificate_of_the_cluster_ca(cluster):
    r = subprocess.run(
        ["openssl", "s_client", "-connect", f"{cluster.address}:6443", "-CAfile", str(cluster.pki / "ca.crt"),
         "-verify_return_error", "-verify_ip", cluster.address, "-brief"],
        input="", capture_output=True, text=True, timeout=30,
    )
    assert r.returncode == 0, r.stderr
    assert "Verification: OK" in r.stderr


# ---- etcd ------------------------------------------------------------------------------------

def etcdctl(cluster, *args: str, cert: tuple | None = None) -> subprocess.CompletedProcess:
    cmd = [
        str(component_bin("etcd") / "etcdctl"), f"--endpoints=https://{cluster.address}:2379",
        f"--cacert={cluster.pki / 'etcd/ca.crt'}", "--dial-timeout=3s", "--command-timeout=5s",
    ]
    if cert:
        cmd += [f"--cert={cert[0]}", f"--key={cert[1]}"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=60)


def test_etcd_refuses_a_client_without_a_certificate(cluster):
    r = etcdctl(cluster, "get", "/registry/namespaces/default")
    assert r.returncode != 0
    code, body = curl_status(f"https://{cluster.address}:2379/health", "--cacert", str(cluster.pki / "etcd/ca.crt"))
    assert code != "200"
    assert '"health"' not in body


def test_etcd_refuses_a_certificate_from_a_foreign_ca(cluster, certs):
    r = etcdctl(cluster, "get", "/registry/namespaces/default", cert=certs["foreign_etcd"])
    assert r.returncode != 0
    crt, key = certs["foreign_etcd"]
    code, _ = curl_status(f"https://{cluster.address}:2379/health", "--cacert", str(cluster.pki / "etcd/ca.crt"), "--cert", str(crt), "--key", str(key))
    assert code != "200"


@pytest.mark.parametrize("pair", [("etcd/k8sd-client.crt", "etcd/k8sd-client.key"), ("apiserver-etcd-client.crt", "apiserver-etcd-client.key")], ids=["k8sd", "apiserver"])
def test_etcd_serves_the_cluster_clients(cluster, pair):
    cert = (cluster.pki / pair[0], cluster.pki / pair[1])
    r = etcdctl(cluster, "get", "/registry/namespaces/default", "--keys-only", cert=cert)
    assert r.returncode == 0, r.stderr
    assert "/registry/namespaces/default" in r.stdout
    code, body = curl_status(f"https://{cluster.address}:2379/health", "--cacert", str(cluster.pki / "etcd/ca.crt"), "--cert", str(cert[0]), "--key", str(cert[1]))
    assert code == "200", body
    assert '"health":"true"' in body.replace(" ", "")
