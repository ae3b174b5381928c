"""Encryption at rest in an HA control plane: `k8s secrets-encryption rotate` on one
control-plane node must keep every Secret readable through every apiserver.

Two control-plane nodes of one cluster per class (the tests of a class run in order on it; the
cluster goes with the class, so only two nodes run at a time). KMS: each node's apiserver has
its own KMS plugin (its k8sd) with its own copy of the KEK ring. aesgcm: each node has its own
EncryptionConfiguration file. The checks use independent clients: HTTPS GETs through each
node's apiserver by address (the admin credentials, a fresh TLS connection per request),
etcdctl for the raw stored values, and the key files on disk. This is where k3s's
secrets-encrypt breaks HA clusters (k3s#7195).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import signal
import time

import pytest
import yaml

from certs_helpers import Probe, etcd_secrets, kubeconfig_get
from membership_helpers import get_token, join, wait_for
from testbed import Node, TestBed, process_alive

pytestmark = pytest.mark.slow

KMS_PREFIX = b"k8s:enc:kms:v2:"


class HA:
    def __init__(self, cp1: Node, cp2: Node) -> None:
        self.cp1, self.cp2 = cp1, cp2
        self.secrets: dict[str, dict[str, str]] = {}

    @property
    def nodes(self) -> list[Node]:
        return [self.cp1, self.cp2]

    def create_secret(self, via: Node, name: str) -> None:
        values = {"password": f"pw-{secrets.token_hex(12)}", "token": f"tok-{secrets.token_hex(16)}"}
        r = via.kubectl("create", "secret", "generic", name, "-n", "default", *[f"--from-literal={k}={v}" for k, v in values.items()])
        assert r.returncode == 0, r.stderr
        self.secrets[name] = values

    def read_secret(self, via: Node, name: str) -> tuple[int, dict[str, str] | str]:
        """GET through `via`'s own apiserver (by its address), as a fresh client would."""
        status, body = kubeconfig_get(self.cp1.admin_conf.read_text(), f"{via.address}:6443", f"/api/v1/namespaces/default/secrets/{name}", timeout=15)
        if status != 200:
            return status, body.decode(errors="replace")[:300]
        return status, {k: base64.b64decode(v).decode() for k, v in json.loads(body)["data"].items()}

    def unreadable(self) -> list[str]:
        """Every Secret, read through every apiserver: what did not come back intact."""
        problems = []
        for via in self.nodes:
            for name, values in self.secrets.items():
                status, data = self.read_secret(via, name)
                if status != 200 or data != values:
                    problems.append(f"{name} through {via.name}'s apiserver: HTTP {status} {data if status != 200 else '(wrong data)'}")
        return problems

    def plaintexts(self) -> list[str]:
        return [v for values in self.secrets.values() for v in values.values()]


def ring(node: Node) -> dict:
    """The node's KEK ring file, without key material: mode, current id and key ids."""
    path = node.common / "etc/kms/kek-ring.json"
    doc = json.loads(path.read_text())
    return {"mode": oct(path.stat().st_mode & 0o777), "current": doc["current"], "ids": sorted(k["id"] for k in doc["keys"])}


def file_digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def encryption_status(node: Node) -> dict:
    r = node.k8s("secrets-encryption", "status", "--output-format", "json", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


def assert_stored_encrypted(ha: HA, prefix: bytes = KMS_PREFIX, key_id: str | None = None, not_key_id: str | None = None) -> None:
    for node in ha.nodes:
        raw = etcd_secrets(node)
        for key, value in raw.items():
            assert value.startswith(prefix), f"{key} (read through {node.name}'s etcd) does not start with {prefix!r}: {value[:40]!r}"
            for needle in ha.plaintexts():
                for form in (needle.encode(), base64.b64encode(needle.encode())):
                    assert form not in value, f"{key} holds {form!r} in the clear"
        for name in ha.secrets:
            value = raw[f"/registry/secrets/default/{name}"]
            if key_id:
                assert key_id.encode() in value, f"{name} is not written under {key_id}"
            if not_key_id:
                assert not_key_id.encode() not in value, f"{name} is still written under {not_key_id}"


def kill_k8sd(node: Node) -> None:
    """SIGKILL of k8sd alone: its services (etcd, the apiserver) keep running, so the cluster keeps
    its datastore quorum while this node's k8sd does not answer."""
    pid = int((node.state_dir / "k8sd.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    if node.k8sd_proc is not None and node.k8sd_proc.pid == pid:
        node.k8sd_proc.wait(timeout=30)
    wait_for("k8sd to be gone", lambda: not process_alive(pid), timeout=30, interval=0.2)


def two_control_planes(testbed: TestBed, names: tuple[str, str], config: dict | None = None):
    cp1, cp2 = testbed.add_node(names[0]), testbed.add_node(names[1])
    try:
        for n in (cp1, cp2):
            n.start_k8sd()
        r = cp1.bootstrap(config)
        assert r.returncode == 0, f"bootstrap failed:\n{r.stdout}\n{r.stderr}\n{cp1.diagnostics()}"
        cp1.wait_ready()
        r = join(cp2, get_token(cp1, cp2.name))
        assert r.returncode == 0, f"join of {cp2.name} failed:\n{r.stdout}\n{r.stderr}\n{testbed.diagnostics()}"
        cp2.wait_ready()
        yield HA(cp1, cp2)
    finally:
        testbed.remove_nodes((cp2, cp1))


@pytest.fixture(scope="class")
def ha(testbed: TestBed):
    yield from two_control_planes(testbed, ("ecp1", "ecp2"))


@pytest.fixture(scope="class")
def ha_aesgcm(testbed: TestBed):
    yield from two_control_planes(testbed, ("gcp1", "gcp2"), {"security": {"secrets-encryption": "aesgcm"}})


class TestKms:
    def test_secrets_written_through_either_node_are_envelopes_readable_through_both(self, ha: HA):
        for i in range(3):
            ha.create_secret(ha.cp1, f"ha-enc-{i}")
        for i in range(3, 5):
            ha.create_secret(ha.cp2, f"ha-enc-{i}")
        assert ha.unreadable() == []
        assert_stored_encrypted(ha)
        rings = [ring(n) for n in ha.nodes]
        assert rings[0] == rings[1], rings
        assert rings[0]["mode"] == "0o600"
        st = encryption_status(ha.cp2)
        assert st["provider"] == "kms" and st["control-plane"]["keys-agree"] is True, st
        assert sorted(n["name"] for n in st["control-plane"]["nodes"]) == ["ecp1", "ecp2"]


    def test_rotate_on_one_node_keeps_every_secret_readable_through_every_apiserver(self, ha: HA):
        before = ring(ha.cp1)["current"]

        def read_through_cp2():
            # Counts answers from cp2's apiserver that are not the Secret (an unreadable Secret is an
            # HTTP 500); a slow answer on a loaded machine raises instead and is not counted.
            for name in ha.secrets:
                status, _ = ha.read_secret(ha.cp2, name)
                if status != 200:
                    return f"HTTP {status} for {name}"
            return "ok"

        probe = Probe("read-through-cp2", read_through_cp2, interval=0.5).start()
        try:
            r = ha.cp1.k8s("secrets-encryption", "rotate", "--output-format", "json", timeout=900)
        finally:
            probe.stop()
        # Readability first: this is what broke, whatever the command printed.
        assert ha.unreadable() == [], f"rotate printed:\n{r.stdout}\n{r.stderr}"
        wrong = [p.detail for p in probe.results if p.ok and p.detail != "ok"]
        assert wrong == [], f"cp2's apiserver could not serve a Secret during the rotation: {wrong[:3]}"
        assert r.returncode == 0, r.stdout + r.stderr + ha.cp1.diagnostics()
        result = json.loads(r.stdout)
        print(f"\nrotate: {result}; {probe.summary()}")
        assert result["key-id"] != before and result["previous-key-id"] == before
        assert sorted(result["nodes"]) == ["ecp1", "ecp2"]
        assert result["rewritten"] >= len(ha.secrets) and result["failed"] == 0

        # Both rings hold the same keys, with the new one current, and nothing left staged.
        rings = [ring(n) for n in ha.nodes]
        assert rings[0] == rings[1], rings
        assert rings[0]["current"] == result["key-id"] and before in rings[0]["ids"]
        for node in ha.nodes:
            st = encryption_status(node)
            assert st["write-key-id"] == result["key-id"] and st["stage"] == ("reencrypt-finished" if node is ha.cp1 else "rotated-pending-reencrypt"), st
            assert st["control-plane"]["keys-agree"] is True, st["control-plane"]
            assert {n["write-key-id"] for n in st["control-plane"]["nodes"]} == {result["key-id"]}
            assert all(n["staged-key-ids"] == [] for n in st["control-plane"]["nodes"])

        # Re-encrypted: every Secret is stored under the new KEK, in etcd as seen from either member.
        assert_stored_encrypted(ha, key_id=result["key-id"], not_key_id=before)

        # Written after the rotation through either apiserver, read through the other.
        ha.create_secret(ha.cp1, "ha-after-1")
        ha.create_secret(ha.cp2, "ha-after-2")
        assert ha.unreadable() == []


    def test_a_rotation_is_refused_while_a_control_plane_k8sd_is_down_and_changes_nothing(self, ha: HA):
        files = [n.common / "etc/kms/kek-ring.json" for n in ha.nodes] + [n.common / "etc/encryption/enc.yaml" for n in ha.nodes]
        digests = {str(f): file_digest(f) for f in files}
        before = ring(ha.cp1)
        kill_k8sd(ha.cp2)
        restarted = False
        try:
            t0 = time.time()
            r = ha.cp1.k8s("secrets-encryption", "rotate", timeout=600)
            print(f"\nrefused rotate took {time.time() - t0:.1f} s: {r.stderr.strip()}")
            assert r.returncode != 0, r.stdout
            assert "ecp2" in r.stderr and "Nothing was changed" in r.stderr, r.stderr
            assert {str(f): file_digest(f) for f in files} == digests, "a refused rotation changed a key file"
            st = encryption_status(ha.cp1)
            assert st["write-key-id"] == before["current"] and not any(k["staged"] for k in st["kms"]["keks"]), st
            assert st["control-plane"]["keys-agree"] is False
            assert [n for n in st["control-plane"]["nodes"] if n["name"] == "ecp2" and n.get("error")], st["control-plane"]

            ha.cp2.start_k8sd(timeout=120)
            restarted = True
            ha.cp2.wait_ready(timeout=300)
            ha.cp1.wait_ready(timeout=300)
            assert ha.unreadable() == []
            # Nothing half-done was left behind (the cluster lock was released too): the next rotation
            # goes through, and both nodes end with the same ring.
            r = ha.cp1.k8s("secrets-encryption", "rotate", "--no-reencrypt", "--output-format", "json", timeout=600)
            assert r.returncode == 0, r.stdout + r.stderr
            result = json.loads(r.stdout)
            rings = [ring(n) for n in ha.nodes]
            assert rings[0] == rings[1] and rings[0]["current"] == result["key-id"], rings
            assert ha.unreadable() == []
        finally:
            if not restarted:
                ha.cp2.start_k8sd(timeout=120)


def aesgcm_keys(node: Node) -> dict:
    """The aesgcm keys of the node's EncryptionConfiguration, without key material: names in order
    (the first encrypts) and a digest of the secrets, to compare nodes."""
    path = node.common / "etc/encryption/enc.yaml"
    doc = yaml.safe_load(path.read_text())
    keys = next(p["aesgcm"]["keys"] for p in doc["resources"][0]["providers"] if "aesgcm" in p)
    digest = hashlib.sha256("".join(f"{k['name']}={k['secret']};" for k in keys).encode()).hexdigest()
    return {"mode": oct(path.stat().st_mode & 0o777), "names": [k["name"] for k in keys], "digest": digest}


class TestAesgcm:
    def test_rotate_puts_the_new_key_on_every_node_and_every_secret_stays_readable(self, ha_aesgcm: HA):
        ha = ha_aesgcm
        ha.create_secret(ha.cp1, "gcm-0")
        ha.create_secret(ha.cp2, "gcm-1")
        assert ha.unreadable() == []
        before = [aesgcm_keys(n) for n in ha.nodes]
        assert before[0] == before[1] and before[0]["names"] == ["key-1"] and before[0]["mode"] == "0o600", before
        assert_stored_encrypted(ha, prefix=b"k8s:enc:aesgcm:v1:key-1:")

        # Each node waits for its apiserver to reload the config (it checks once a minute), twice.
        t0 = time.time()
        r = ha.cp1.k8s("secrets-encryption", "rotate", "--output-format", "json", timeout=900)
        print(f"\naesgcm rotate took {time.time() - t0:.1f} s: {r.stdout.strip()}")
        # Both nodes' configs hold the same keys, the new one first: whatever apiserver writes
        # with key-2, the other one reads it.
        after = [aesgcm_keys(n) for n in ha.nodes]
        assert after[0] == after[1] and after[0]["names"] == ["key-2", "key-1"], f"{after}\nrotate printed:\n{r.stdout}\n{r.stderr}"
        assert ha.unreadable() == [], f"rotate printed:\n{r.stdout}\n{r.stderr}"
        assert r.returncode == 0, r.stdout + r.stderr + ha.cp1.diagnostics()
        result = json.loads(r.stdout)
        assert result["key-id"] == "key-2" and sorted(result["nodes"]) == ["gcp1", "gcp2"], result
        assert result["rewritten"] >= 2 and result["failed"] == 0, result
        assert_stored_encrypted(ha, prefix=b"k8s:enc:aesgcm:v1:", key_id="k8s:enc:aesgcm:v1:key-2:")
        st = encryption_status(ha.cp2)
        assert st["write-key-id"] == "key-2" and st["control-plane"]["keys-agree"] is True, st

        ha.create_secret(ha.cp2, "gcm-after")
        assert ha.unreadable() == []
