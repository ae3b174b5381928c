"""etcd snapshots (`k8s snapshot save | list | restore`, the schedule with retention) and the
`k8s inspect` bundle, on a real node: real etcd, etcdutl, kube-apiserver with the KMS plugin.
Checked with independent clients: the Python kubernetes client, etcdctl, tarfile and plain greps."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tarfile
import time
import uuid
from pathlib import Path

import pytest

from conftest import bootstrapped_node, core_api
from testbed import component_bin, wait_for


@pytest.fixture(scope="module")
def node(testbed):
    n = bootstrapped_node(testbed, "snap")
    yield n
    testbed.remove_node(n)


def etcdctl(node, *args: str) -> subprocess.CompletedProcess:
    """etcdctl inside the node's netns; stdout as bytes (values stored encrypted are binary)."""
    cmd = node.nsenter(
        str(component_bin("etcd") / "etcdctl"), f"--endpoints=https://{node.address}:2379", f"--cacert={node.pki / 'etcd/ca.crt'}",
        f"--cert={node.pki / 'etcd/k8sd-client.crt'}", f"--key={node.pki / 'etcd/k8sd-client.key'}", "--dial-timeout=5s", *args,
    )
    return subprocess.run(cmd, capture_output=True, timeout=60)


def make_secret(api, name: str, value: str) -> None:
    from kubernetes import client

    api.create_namespaced_secret("default", client.V1Secret(metadata=client.V1ObjectMeta(name=name), string_data={"value": value}))


def secret_value(api, name: str) -> str:
    return base64.b64decode(api.read_namespaced_secret(name, "default").data["value"]).decode()


def last_line(r: subprocess.CompletedProcess) -> str:
    return r.stdout.strip().splitlines()[-1]


def private_key_bodies(node) -> list[bytes]:
    """A line from the middle of every private key file of the node: none may leave it."""
    out = []
    for f in node.pki.rglob("*.key"):
        lines = [l for l in f.read_bytes().splitlines() if l and not l.startswith(b"-----")]
        if lines:
            out.append(lines[len(lines) // 2])
    assert out, "the node has no key files?"
    return out


def test_inspect_bundle_holds_the_items_and_no_secret(node, tmp_path):
    api = core_api(node)
    value = f"inspect-plain-{uuid.uuid4().hex}"
    make_secret(api, "inspect-known", value)
    token = last_line(node.k8s("get-join-token", "inspect-worker", "--worker"))
    assert token.startswith("k8sj1_"), token
    out = tmp_path / "bundle.tar.gz"
    r = node.k8s("inspect", str(out), netns=True, timeout=600)
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr}"
    assert last_line(r) == str(out)
    assert out.stat().st_mode & 0o777 == 0o600
    with tarfile.open(out) as tar:
        tar.extractall(tmp_path / "x", filter="data")
    top = next((tmp_path / "x").iterdir())
    files = {str(p.relative_to(top)) for p in top.rglob("*") if p.is_file()}
    for expected in [
        "k8s/status.json", "k8s/certs-status.json", "k8s/features.json", "k8s/services.json", "etcd/members-and-health.json",
        "services/etcd.args", "services/kube-apiserver.args", "services/kubelet.args", "logs/k8sd.log", "logs/etcd.log",
        "logs/kube-apiserver.log", "kubernetes/nodes.json", "kubernetes/pods.json", "kubernetes/events.json", "host.json", "manifest.json",
    ]:
        assert expected in files, f"{expected} missing from the bundle: {sorted(files)}"
    manifest = json.loads((top / "manifest.json").read_text())
    assert manifest["errors"] == {}, manifest["errors"]
    assert "private keys" in manifest["never-included"] and manifest["created-at"], manifest
    status = json.loads((top / "k8s/status.json").read_text())
    assert status["node-name"] == node.name
    etcd = json.loads((top / "etcd/members-and-health.json").read_text())
    assert [m["name"] for m in etcd["members"]] == [node.name] and all(h["healthy"] for h in etcd["health"]), etcd
    host = json.loads((top / "host.json").read_text())
    assert host["cgroup-version"] in (1, 2) and host["kernel"]["release"] and host["iptables-backend"]
    nodes = json.loads((top / "kubernetes/nodes.json").read_text())
    assert [n["metadata"]["name"] for n in nodes["items"]] == [node.name]
    pods = json.loads((top / "kubernetes/pods.json").read_text())
    assert any(p["metadata"]["namespace"] == "kube-system" for p in pods["items"])
    certs = json.loads((top / "k8s/certs-status.json").read_text())
    assert any(c["name"] == "apiserver" for c in certs["certificates"])

    forbidden = [value.encode(), base64.b64encode(value.encode()), token.encode(), token.split(".")[0].encode(), b"PRIVATE KEY-----\n", b"client-key-data: L"]
    forbidden += private_key_bodies(node)
    for p in top.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            for f in forbidden:
                assert f not in data, f"{p.relative_to(top)} holds a secret ({f[:12]!r}...)"
    api.delete_namespaced_secret("inspect-known", "default")
    node.k8s("revoke-join-token", "inspect-worker")


def test_bad_input_is_refused_naming_the_key_or_file(node, tmp_path):
    cases = [
        (["set", "etcd-snapshot.bogus=1"], "etcd-snapshot.bogus"),
        (["set", "etcd-snapshot.schedule=61 * * * *"], "etcd-snapshot.schedule"),
        (["set", "etcd-snapshot.schedule=@every 1s"], "etcd-snapshot.schedule"),
        (["set", "etcd-snapshot.retention=0"], "etcd-snapshot.retention"),
        (["snapshot", "save", "--name", "Bad Name"], "--name"),
        (["snapshot", "restore", str(tmp_path / "missing.k8s-snapshot")], "missing.k8s-snapshot"),
    ]
    garbage = tmp_path / "garbage.k8s-snapshot"
    garbage.write_bytes(os.urandom(4096))
    cases.append((["snapshot", "restore", str(garbage)], "garbage.k8s-snapshot: is not a k8s snapshot"))
    for args, named in cases:
        r = node.k8s(*args)
        assert r.returncode != 0, f"k8s {' '.join(args)} was accepted: {r.stdout}"
        assert named in r.stderr, f"k8s {' '.join(args)}: the error does not name {named!r}: {r.stderr}"
    # Nothing changed: the schedule is still the default.
    r = node.k8s("get", "etcd-snapshot.schedule")
    assert r.returncode == 0 and r.stdout.strip() == "0 */12 * * *", r.stdout + r.stderr


def test_scheduled_snapshots_are_taken_and_pruned_to_retention(node):
    r = node.k8s("set", "etcd-snapshot.schedule=@every 10s", "etcd-snapshot.retention=2")
    assert r.returncode == 0, r.stderr
    try:
        def scheduled_saves() -> int:
            return sum('"etcd snapshot saved"' in l and '"scheduled":true' in l for l in node.log("k8sd").read_text().splitlines())

        before = scheduled_saves()
        wait_for("4 scheduled snapshots", lambda: scheduled_saves() - before >= 4, timeout=180, interval=2)
        listed = json.loads(node.k8s("snapshot", "list", "--output-format", "json").stdout)
        scheduled = [s for s in listed["snapshots"] if s["scheduled"]]
        assert len(scheduled) == 2, f"retention 2 left {len(scheduled)}: {scheduled}"
        for s in scheduled:
            assert Path(s["file"]).stat().st_mode & 0o777 == 0o600
    finally:
        assert node.k8s("set", "etcd-snapshot.schedule=0 */12 * * *", "etcd-snapshot.retention=5").returncode == 0


def test_snapshot_restore_brings_every_secret_back(node, tmp_path):
    api = core_api(node)
    values = {f"snap-secret-{i}": f"plain-{i}-{uuid.uuid4().hex}" for i in range(20)}
    for name, value in values.items():
        make_secret(api, name, value)

    r = node.k8s("snapshot", "save", "--name", "before", timeout=600)
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr}"
    snap = Path(last_line(r))
    assert snap.is_file() and snap.stat().st_mode & 0o777 == 0o600
    assert snap.parent.stat().st_mode & 0o777 == 0o700
    data = snap.read_bytes()
    for value in values.values():
        assert value.encode() not in data and base64.b64encode(value.encode()) not in data
    for marker in [b"PRIVATE KEY", b"BEGIN", b"snap-secret-", b"/registry/"]:
        assert marker not in data, f"the snapshot file holds {marker!r} in the clear"
    for body in private_key_bodies(node):
        assert body not in data
    assert str(snap) in node.k8s("snapshot", "list").stdout
    assert not [p.name for p in snap.parent.iterdir() if p.name.startswith(".staging-")], "a plaintext staging directory was left behind"

    make_secret(api, "after-snapshot", "later")

    # A flipped byte: refused before anything stops; the cluster is untouched.
    etcd_pid = node.service_pid("etcd")
    tampered = tmp_path / "tampered.k8s-snapshot"
    buf = bytearray(data)
    buf[len(buf) // 2] ^= 0x01
    tampered.write_bytes(bytes(buf))
    r = node.k8s("snapshot", "restore", str(tampered))
    assert r.returncode != 0 and "failed authentication" in r.stderr and "tampered.k8s-snapshot" in r.stderr, r.stdout + r.stderr
    assert node.service_pid("etcd") == etcd_pid
    assert secret_value(api, "after-snapshot") == "later"

    # Disaster: the etcd data directory is gone.
    node.stop()
    data_dir = node.common / "var/lib/etcd/data"
    shutil.rmtree(data_dir)
    node.start_k8sd()
    started = time.time()
    r = node.k8s("snapshot", "restore", str(snap), timeout=900)
    assert r.returncode == 0, f"restore failed:\n{r.stdout}\n{r.stderr}\n{node.diagnostics()}"
    print(f"restore took {time.time() - started:.1f} s")
    node.wait_ready(timeout=300)

    api = core_api(node)
    for name, value in values.items():
        assert secret_value(api, name) == value
    from kubernetes.client.rest import ApiException

    with pytest.raises(ApiException) as gone:
        api.read_namespaced_secret("after-snapshot", "default")
    assert gone.value.status == 404
    # Still encrypted at rest by the KMS plugin, with the restored ring.
    raw = etcdctl(node, "get", "/registry/secrets/default/snap-secret-0", "--print-value-only")
    assert raw.returncode == 0 and raw.stdout.startswith(b"k8s:enc:kms:v2:"), raw.stdout[:60] + raw.stderr
    members = json.loads(etcdctl(node, "member", "list", "-w", "json").stdout)["members"]
    assert [m["name"] for m in members] == [node.name]


def test_snapshot_of_another_cluster_is_refused_with_nothing_changed(testbed, node, tmp_path):
    other = bootstrapped_node(testbed, "snapother")
    try:
        r = other.k8s("snapshot", "save", "--name", "foreign", timeout=600)
        assert r.returncode == 0, r.stderr
        foreign = tmp_path / "foreign.k8s-snapshot"
        shutil.copyfile(last_line(r), foreign)
    finally:
        testbed.remove_node(other)
    etcd_pid = node.service_pid("etcd")
    r = node.k8s("snapshot", "restore", str(foreign))
    assert r.returncode != 0, r.stdout
    assert "foreign.k8s-snapshot" in r.stderr and "belongs to another cluster" in r.stderr, r.stderr
    assert node.service_pid("etcd") == etcd_pid
    assert node.status()["ready"]


def test_ha_key_travels_on_join_and_the_other_node_rejoins_after_restore(testbed, tmp_path):
    """Two control-plane nodes: the joiner receives the snapshot key; a snapshot taken on it restores
    on the first node, which becomes the only member; the second re-joins after a reset."""
    from membership_helpers import etcd_members, get_token, join

    first = bootstrapped_node(testbed, "ha1")
    second = testbed.add_node("ha2")
    try:
        second.start_k8sd()
        r = join(second, get_token(first, second.name))
        assert r.returncode == 0, f"join failed:\n{r.stdout}\n{r.stderr}\n{second.diagnostics()}"
        key1, key2 = (n.state_dir / "snapshot-key.json" for n in (first, second))
        assert key1.read_bytes() == key2.read_bytes()
        assert key2.stat().st_mode & 0o777 == 0o600
        api = core_api(first)
        make_secret(api, "ha-secret", "ha-value")

        r = second.k8s("snapshot", "save", "--name", "from-ha2", timeout=600)
        assert r.returncode == 0, r.stderr
        snap = tmp_path / "from-ha2.k8s-snapshot"
        shutil.copyfile(last_line(r), snap)
        make_secret(api, "ha-after", "gone after restore")

        r = first.k8s("snapshot", "restore", str(snap), timeout=900)
        assert r.returncode == 0, f"restore failed:\n{r.stdout}\n{r.stderr}\n{first.diagnostics()}"
        assert f"removed from the cluster: {second.name}" in r.stdout and "join it again" in r.stdout, r.stdout
        first.wait_ready(timeout=300)
        assert [m["name"] for m in etcd_members(first)] == [first.name]
        api = core_api(first)
        assert secret_value(api, "ha-secret") == "ha-value"

        # The second node re-joins: reset it, then join with a new token.
        second.stop()
        r = subprocess.run(second.nsenter("bash", str(Path(__file__).resolve().parents[2] / "bin/dev-reset")), capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, f"reset failed:\n{r.stdout}\n{r.stderr}"
        second.start_k8sd()
        r = join(second, get_token(first, second.name))
        assert r.returncode == 0, f"re-join failed:\n{r.stdout}\n{r.stderr}\n{second.diagnostics()}"
        assert sorted(m["name"] for m in etcd_members(first)) == sorted([first.name, second.name])
        assert key2.read_bytes() == key1.read_bytes()
        assert secret_value(core_api(second), "ha-secret") == "ha-value"
    finally:
        testbed.remove_nodes((second, first))


def test_aesgcm_cluster_restores_with_its_encryption_config(testbed, tmp_path):
    """With aesgcm instead of KMS the snapshot carries the EncryptionConfiguration's keys (sealed)."""
    n = bootstrapped_node(testbed, "snapaes", {"security": {"secrets-encryption": "aesgcm"}})
    try:
        api = core_api(n)
        make_secret(api, "aes-secret", "aes-value")
        r = n.k8s("snapshot", "save", timeout=600)
        assert r.returncode == 0, r.stderr
        snap = Path(last_line(r))
        enc = (n.common / "etc/encryption/enc.yaml").read_text()
        key_line = next(l for l in enc.splitlines() if "secret:" in l).split("secret:")[1].strip()
        assert key_line.encode() not in snap.read_bytes()
        api.delete_namespaced_secret("aes-secret", "default")
        r = n.k8s("snapshot", "restore", snap.name, timeout=900)
        assert r.returncode == 0, f"restore failed:\n{r.stdout}\n{r.stderr}\n{n.diagnostics()}"
        n.wait_ready(timeout=300)
        assert secret_value(core_api(n), "aes-secret") == "aes-value"
        raw = etcdctl(n, "get", "/registry/secrets/default/aes-secret", "--print-value-only")
        assert raw.stdout.startswith(b"k8s:enc:aesgcm:v1:"), raw.stdout[:40]
    finally:
        testbed.remove_node(n)


SEAL_SCRIPT = r"""
const [repo, keyFile, ringFile, dbFile, out] = process.argv.slice(1);
const { openSync, closeSync, readFileSync, statSync } = await import('node:fs');
const { NodeCryptoBackend } = await import(`${repo}/dist/crypto/node.js`);
const { SnapshotKeyStore } = await import(`${repo}/dist/snapshots/key.js`);
const { sealSnapshot } = await import(`${repo}/dist/snapshots/format.js`);
const crypto = new NodeCryptoBackend();
const key = await new SnapshotKeyStore(crypto, keyFile).require();
const manifest = { name: 'crafted', createdAt: new Date().toISOString(), node: 'crafted', etcdVersion: 'v3', revision: 1, totalKeys: 0,
  dbBytes: statSync(dbFile).size, secretsEncryption: 'kms', kekRing: JSON.parse(readFileSync(ringFile, 'utf8')) };
const fd = openSync(out, 'wx', 0o600);
await sealSnapshot(crypto, key, manifest, dbFile, fd);
closeSync(fd);
"""


def test_a_restore_that_fails_after_the_stop_puts_the_old_data_back(node, tmp_path):
    """Fault injection: a correctly sealed snapshot (this node's key) of an etcd that is not a k8s
    cluster passes validation, then fails once etcd runs on it; the old data directory and the
    services must come back with every object."""
    from testbed import REPO

    api = core_api(node)
    make_secret(api, "survives-rollback", "still-here")
    # An empty etcd's snapshot, from a throwaway etcd on other ports inside the node's netns.
    data = tmp_path / "empty-etcd"
    etcd = subprocess.Popen(
        node.nsenter(str(component_bin("etcd") / "etcd"), f"--data-dir={data}", "--listen-client-urls=http://127.0.0.1:23790",
                     "--advertise-client-urls=http://127.0.0.1:23790", "--listen-peer-urls=http://127.0.0.1:23800",
                     "--initial-advertise-peer-urls=http://127.0.0.1:23800", "--initial-cluster=default=http://127.0.0.1:23800",
                     "--listen-metrics-urls=http://127.0.0.1:23810"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        db = tmp_path / "empty.db"
        wait_for("the throwaway etcd", lambda: node.sh(str(component_bin("etcd") / "etcdctl"), "--endpoints=http://127.0.0.1:23790",
                                                      "snapshot", "save", str(db)).returncode == 0, timeout=60)
    finally:
        etcd.terminate()
        etcd.wait(timeout=30)
    crafted = tmp_path / "crafted.k8s-snapshot"
    r = subprocess.run([str(REPO / "node_modules/node/bin/node"), "--input-type=module", "-e", SEAL_SCRIPT, str(REPO),
                        str(node.state_dir / "snapshot-key.json"), str(node.common / "etc/kms/kek-ring.json"), str(db), str(crafted)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr

    before = sorted(p.name for p in (node.common / "var/lib/etcd").iterdir())
    r = node.k8s("snapshot", "restore", str(crafted), timeout=900)
    assert r.returncode != 0, r.stdout
    assert "holds no cluster configuration" in r.stderr and "put back" in r.stderr, r.stdout + r.stderr
    for step in ("restore-data", "stop-services"):
        assert f"rolled back {step}" in r.stderr, r.stderr
    assert sorted(p.name for p in (node.common / "var/lib/etcd").iterdir()) == before, "the data directory was not put back as it was"
    node.wait_ready(timeout=300)
    assert secret_value(core_api(node), "survives-rollback") == "still-here"
