"""Helpers for the membership tests, on top of testbed.py: joins, tokens, the worker's images and
cgroups, waiting for Kubernetes objects, and forging tokens the way an attacker (or a copy-paste
accident) would."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Callable

import pytest
import yaml

from testbed import Node, component_bin, kill_and_wait, pod_processes_in, process_alive, remove_cgroups_under, unmount_under, wait_for, wait_until_gone  # noqa: F401 (process_alive, unmount_under and wait_for re-exported)

TOKEN_PREFIX = "k8sj1_"


def get_token(cp: Node, name: str | None = None, *, worker: bool = False, expires_in: str | None = None) -> str:
    args = ["get-join-token"] + ([name] if name else []) + (["--worker"] if worker else [])
    if expires_in:
        args += ["--expires-in", expires_in]
    r = cp.k8s(*args)
    assert r.returncode == 0, f"get-join-token failed: {r.stdout}\n{r.stderr}"
    token = r.stdout.strip().splitlines()[-1]
    assert token.startswith(TOKEN_PREFIX), r.stdout
    return token


def token_file(node: Node, token: str) -> Path:
    """The token in a 0600 file of the node's work dir, for --token-file (never on the command line)."""
    path = node.workdir / "join-token"
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return path


def join(node: Node, token: str, config: dict | None = None, timeout: str = "300s", name: str | None = None):
    """`k8s join-cluster --token-file` on node (started k8sd required)."""
    args = ["join-cluster", "--token-file", str(token_file(node, token)), "--name", name or node.name, "--address", node.address, "--timeout", timeout]
    text = None
    if config:
        args += ["--file", "-"]
        text = yaml.safe_dump(config)
    return node.k8s(*args, input=text, timeout=900)


def worker_join_config(node: Node) -> dict:
    """Worker join file for the test bed: eviction thresholds that a big, busy CI disk does not trip.
    (No --cgroup-root: k8sd gives every node under a K8S_ROOT a kubelet cgroup root of its own.)"""
    return {
        "extra-node-kubelet-args": {
            "--eviction-hard": "memory.available<50Mi,nodefs.available<1%,imagefs.available<1%",
        }
    }


def cgroup_root(node: Node) -> str:
    """The kubelet cgroup root k8sd derives for a node under K8S_ROOT, computed here independently
    (it must be known after the node's files are gone, for the teardown safety net)."""
    return "/k8s-" + hashlib.sha256(str(node.root).encode()).hexdigest()[:12]


def pod_processes(node: Node) -> list[int]:
    """Processes in the node's kubelet cgroup root (pods and their containers), cgroup v1 pids tree."""
    return pod_processes_in(cgroup_root(node))


def kill_pods_and_cgroups(node: Node) -> None:
    """Teardown safety net: kills anything left in the node's cgroup root and removes the cgroups."""
    for _ in range(3):
        pids = pod_processes(node)
        if not pids:
            break
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        kill_and_wait(pids, timeout=5)
    remove_cgroups_under(cgroup_root(node))


def seed_images(node: Node) -> None:
    """Copies the pause and busybox OCI archives into the node's side-load directory."""
    images = node.common / "images"
    images.mkdir(parents=True, exist_ok=True)
    shutil.copy(component_bin("pause") / "pause.tar", images / "pause.tar")
    shutil.copy(component_bin("test-images") / "busybox.tar", images / "busybox.tar")


def decode_token(token: str) -> tuple[dict, str]:
    body, mac = token[len(TOKEN_PREFIX):].rsplit(".", 1)
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))), mac


def forge_token(token: str, edit: Callable[[dict], None]) -> str:
    """Edits a token's payload and re-computes its checksum with its own secret: a token that is
    internally consistent but says something else (another address, fingerprint, expiry)."""
    payload, _ = decode_token(token)
    edit(payload)
    body = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")
    key = base64.urlsafe_b64decode(payload["s"] + "=" * (-len(payload["s"]) % 4))
    mac = hmac.new(key, ("k8s-join-token/v1\n" + body).encode(), hashlib.sha256).digest()[:16]
    return f"{TOKEN_PREFIX}{body}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"


def fingerprint_of(cert_pem: str) -> str:
    der = base64.b64decode("".join(l for l in cert_pem.splitlines() if "-----" not in l))
    return hashlib.sha256(der).hexdigest()


def cluster_fingerprint(node: Node) -> str:
    return fingerprint_of((node.state_dir / "cluster.crt").read_text())


def etcdctl(cp: Node, *args: str):
    """etcdctl inside cp's netns against its local etcd, with k8sd's etcd client certificate."""
    pki = cp.pki / "etcd"
    r = cp.sh(
        str(component_bin("etcd") / "etcdctl"),
        "--endpoints=https://127.0.0.1:2379",
        f"--cacert={pki / 'ca.crt'}",
        f"--cert={pki / 'k8sd-client.crt'}",
        f"--key={pki / 'k8sd-client.key'}",
        "--command-timeout=5s",
        *args,
    )
    assert r.returncode == 0, r.stderr
    return r


def etcd_members(cp: Node) -> list[dict]:
    """etcdctl member list (JSON) against cp's etcd with its k8sd client certificate."""
    r = etcdctl(cp, "member", "list", "-w", "json")
    members = json.loads(r.stdout).get("members", [])
    return [{"name": m.get("name", ""), "learner": bool(m.get("isLearner")), "peer": (m.get("peerURLs") or [""])[0]} for m in members]


def etcd_state_keys(cp: Node, prefix: str) -> list[str]:
    r = etcdctl(cp, "get", "--prefix", "--keys-only", prefix)
    return sorted(k for k in r.stdout.splitlines() if k.strip())


def kill_node_hard(node: Node) -> list[int]:
    """kill -9 of k8sd and every service of the node (no clean shutdown at all)."""
    pids = node.processes()
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_until_gone(pids, 10)
    return pids


def local_api(node: Node, method: str, path: str, body: dict | None = None, timeout: float = 120) -> dict:
    """A call on k8sd's local API (the unix socket), as the CLI makes it; raises on an error reply."""
    import http.client
    import socket

    class UnixHTTP(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(str(node.socket))

    c = UnixHTTP("k8sd", timeout=timeout)
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers={"content-type": "application/json"})
    data = json.loads(c.getresponse().read())
    c.close()
    if data.get("type") == "error":
        raise RuntimeError(data.get("error"))
    return data.get("metadata", {})


def kubeconfig_cert_serial(path: Path) -> str:
    """Serial of a kubeconfig's client certificate, embedded or named by path (via openssl)."""
    import subprocess

    from certs_helpers import kubeconfig_user_pems

    doc = yaml.safe_load(path.read_text())
    pem = kubeconfig_user_pems(doc["users"][0]["user"])[0].encode()
    r = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=pem, capture_output=True, check=True)
    return r.stdout.decode().strip()


NODE_COMPONENTS = [("containerd", "containerd"), ("runc", "runc"), ("cni", "bridge"), ("pause", "pause.tar"), ("test-images", "busybox.tar"), ("flannel", "flanneld"), ("coredns", "coredns.tar")]


def require_node_components() -> None:
    """Fails the module at once, saying what to build, when a worker component is missing."""
    for component, binary in NODE_COMPONENTS:
        try:
            built = (component_bin(component) / binary).exists()
        except subprocess.CalledProcessError:
            built = False
        if not built:
            pytest.fail(f"{component}/{binary} is not built: run bin/dev-setup etcd kubernetes containerd runc cni pause coredns flannel test-images", pytrace=False)


def bring_up(cp: Node, workers: list[Node], worker_config: Callable[[Node], dict | None] = lambda _: None) -> None:
    """Starts k8sd on every node with the images seeded, bootstraps cp (network and DNS on), joins
    each worker with a worker token (and worker_config(worker) as its join file, if any), and waits
    until every node is ready."""
    require_node_components()
    for node in (cp, *workers):
        node.start_k8sd()
        seed_images(node)
    r = cp.bootstrap()
    assert r.returncode == 0, f"bootstrap failed:\n{r.stdout}\n{r.stderr}\n{cp.diagnostics()}"
    cp.wait_ready(timeout=300)
    for w in workers:
        r = join(w, get_token(cp, w.name, worker=True), worker_config(w))
        assert r.returncode == 0, f"join of {w.name} failed:\n{r.stdout}\n{r.stderr}\n{w.diagnostics()}"
    for w in workers:
        w.wait_ready(timeout=300)


def tear_down(bed, nodes: list[Node]) -> None:
    """Removes the nodes still on the bed, side by side, with the safety net for pods, cgroups and mounts."""
    bed.remove_nodes(nodes, cleanup=safety_net)


def safety_net(node: Node) -> None:
    """After a node's removal: anything left in its cgroup root, its cgroups and its mounts."""
    try:
        kill_pods_and_cgroups(node)
    finally:
        unmount_under(node.root)
