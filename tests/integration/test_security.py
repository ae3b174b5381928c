"""Security defaults on the shared single-node cluster (conftest `cluster`), checked from outside:
- encryption at rest: raw etcd values (etcdctl with the apiserver's etcd client certificate) are
  KMS v2 envelopes with no plaintext, before and after `k8s secrets-encryption rotate`, and every
  Secret stays readable through the API during the rotation;
- audit: a Secret read is logged at Metadata level, without the Secret's data;
- Pod Security: a privileged pod is refused in `default` (baseline), accepted in kube-system.

The tests leave the cluster healthy (a rotated key is a normal state).
"""

from __future__ import annotations

import base64
import json
import secrets
import time

import pytest

from certs_helpers import Probe, etcd_secrets, kubeconfig_get, wait_for

KMS_PREFIX = b"k8s:enc:kms:v2:"


def encryption_status(node) -> dict:
    r = node.k8s("secrets-encryption", "status", "--output-format", "json")
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


def create_secret(node, name: str, values: dict[str, str], namespace: str = "default") -> None:
    args = ["create", "secret", "generic", name, "-n", namespace] + [f"--from-literal={k}={v}" for k, v in values.items()]
    r = node.kubectl(*args)
    assert r.returncode == 0, r.stderr


def assert_no_plaintext(raw: dict[str, bytes], needles: list[str]) -> None:
    for key, value in raw.items():
        for n in needles:
            for form in (n.encode(), base64.b64encode(n.encode())):
                assert form not in value, f"{key} holds {form!r} in the clear"


@pytest.fixture(scope="module")
def plain_values():
    """Distinctive values: if any of them shows up in etcd or a log, it leaked."""
    return {f"enc-{i}": {"password": f"pw-{secrets.token_hex(12)}", "token": f"tok-{secrets.token_hex(16)}"} for i in range(5)}


@pytest.fixture(scope="module")
def stored_secrets(cluster, plain_values):
    for name, values in plain_values.items():
        create_secret(cluster, name, values)
    yield plain_values
    for name in plain_values:
        cluster.kubectl("delete", "secret", name, "-n", "default", "--ignore-not-found")


def test_secrets_are_kms_v2_envelopes_in_etcd(cluster, stored_secrets):
    raw = etcd_secrets(cluster)
    ours = {f"/registry/secrets/default/{n}" for n in stored_secrets}
    assert ours <= set(raw), sorted(raw)
    for key, value in raw.items():
        assert value.startswith(KMS_PREFIX), f"{key} is not a KMS v2 envelope: {value[:40]!r}"
    assert_no_plaintext(raw, [v for vals in stored_secrets.values() for v in vals.values()])
    st = encryption_status(cluster)
    assert st["enabled"] is True and st["provider"] == "kms"
    # The envelope names the KEK it was written under.
    assert st["write-key-id"].encode() in raw["/registry/secrets/default/enc-0"]


def test_key_rotation_reencrypts_and_every_secret_stays_readable(cluster, stored_secrets):
    server = f"{cluster.address}:6443"
    before = encryption_status(cluster)["write-key-id"]
    reads = {"n": 0}

    def read_all():
        conf = cluster.admin_conf.read_text()
        for name, values in stored_secrets.items():
            status, body = kubeconfig_get(conf, server, f"/api/v1/namespaces/default/secrets/{name}")
            if status != 200:
                raise RuntimeError(f"{name}: HTTP {status}")
            data = {k: base64.b64decode(v).decode() for k, v in json.loads(body)["data"].items()}
            if data != values:
                raise RuntimeError(f"{name}: wrong data {data}")
            reads["n"] += 1
        return "ok"

    probe = Probe("secret-reader", read_all, interval=0.25).start()
    t0 = time.time()
    try:
        r = cluster.k8s("secrets-encryption", "rotate", "--output-format", "json", timeout=600)
        took = time.time() - t0
        time.sleep(1)
    finally:
        probe.stop()
    assert r.returncode == 0, r.stdout + r.stderr + cluster.diagnostics()
    result = json.loads(r.stdout)
    print(f"\nsecrets-encryption rotate took {took:.1f} s: {result}; {probe.summary()}")
    assert probe.failures == [], probe.summary()
    assert reads["n"] >= len(stored_secrets) * 3
    assert result["key-id"] != before
    assert result["rewritten"] >= len(stored_secrets) and result["failed"] == 0

    st = encryption_status(cluster)
    assert st["write-key-id"] == result["key-id"] != before
    assert st["stage"] == "reencrypt-finished", st["stage"]
    keks = {k["id"]: k for k in st["kms"]["keks"]}
    assert keks[result["key-id"]]["current"] is True and keks[before]["current"] is False
    assert st["kms"]["apiserver-key-id"] == result["key-id"]

    raw = etcd_secrets(cluster)
    for key, value in raw.items():
        assert value.startswith(KMS_PREFIX), key
    for name in stored_secrets:
        value = raw[f"/registry/secrets/default/{name}"]
        assert result["key-id"].encode() in value and before.encode() not in value, f"{name} was not re-encrypted"
    assert_no_plaintext(raw, [v for vals in stored_secrets.values() for v in vals.values()])
    read_all()


def test_a_secret_read_is_audited_at_metadata_level_without_its_data(cluster):
    name = f"audited-{secrets.token_hex(4)}"
    value = f"audit-{secrets.token_hex(16)}"
    create_secret(cluster, name, {"key": value})
    try:
        r = cluster.kubectl("get", "secret", name, "-n", "default", "-o", "json")
        assert r.returncode == 0, r.stderr
        log = cluster.root / "var/log/kubernetes/audit.log"

        def entry():
            if not log.exists():
                return None
            for line in log.read_text(errors="replace").splitlines():
                ev = json.loads(line)
                ref = ev.get("objectRef", {})
                if ref.get("resource") == "secrets" and ref.get("name") == name and ev.get("verb") == "get" and ev.get("stage") == "ResponseComplete":
                    return ev
            return None

        ev = wait_for("the audit entry of the secret read", entry, 30, 0.5)
        assert ev["level"] == "Metadata", ev
        assert ev["user"]["username"] == "kubernetes-admin"
        assert ev["responseStatus"]["code"] == 200
        assert "requestObject" not in ev and "responseObject" not in ev
        text = log.read_text(errors="replace")
        assert value not in text and base64.b64encode(value.encode()).decode() not in text, "secret data in the audit log"
        assert oct(log.stat().st_mode & 0o777) == "0o600"
    finally:
        cluster.kubectl("delete", "secret", name, "-n", "default", "--ignore-not-found")


PRIVILEGED_POD = """
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {namespace}
spec:
  automountServiceAccountToken: false
  containers:
    - name: c
      image: registry.k8s.io/pause:3.10
      securityContext:
        privileged: true
"""


def apply_pod(node, name: str, namespace: str):
    wait_for(f"the default service account in {namespace}",
             lambda: node.kubectl("get", "serviceaccount", "default", "-n", namespace).returncode == 0, 60)
    return node.kubectl("apply", "-f", "-", input=PRIVILEGED_POD.format(name=name, namespace=namespace))


def test_pod_security_refuses_a_privileged_pod_in_default(cluster):
    r = apply_pod(cluster, "priv", "default")
    assert r.returncode != 0, "a privileged pod was admitted in default"
    assert 'violates PodSecurity "baseline' in r.stderr, r.stderr
    assert "privileged" in r.stderr
    assert cluster.kubectl("get", "pod", "priv", "-n", "default").returncode != 0


def test_kube_system_is_exempt_from_pod_security(cluster):
    try:
        r = apply_pod(cluster, "priv", "kube-system")
        assert r.returncode == 0, r.stderr
        got = cluster.kubectl("get", "pod", "priv", "-n", "kube-system", "-o", "json")
        assert got.returncode == 0
        assert json.loads(got.stdout)["spec"]["containers"][0]["securityContext"]["privileged"] is True
    finally:
        cluster.kubectl("delete", "pod", "priv", "-n", "kube-system", "--ignore-not-found", "--grace-period=0", "--force")
