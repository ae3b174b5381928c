"""Membership on the netns test bed: three control-plane nodes and one worker of one cluster.

The tests run in order and share the cluster (module scope): concurrent control-plane joins,
a worker join with a pod that runs and answers `kubectl logs`/`exec`, rejected tokens that
change nothing on either side, losing a node to kill -9, quorum-checked removal, self-removal,
and re-joins of removed nodes. Checks use independent clients: kubectl, etcdctl and the files.
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import json
import subprocess
import time
import uuid

import pytest

from membership_helpers import (
    cluster_fingerprint,
    etcd_members,
    etcd_state_keys,
    forge_token,
    get_token,
    join,
    kill_node_hard,
    kubeconfig_cert_serial,
    local_api,
    pod_processes,
    seed_images,
    tear_down,
    wait_for,
    worker_join_config,
    require_node_components,
)
from testbed import Node, TestBed, diff_snapshots, tree_snapshot

pytestmark = pytest.mark.slow


class Cluster:
    def __init__(self, bed: TestBed) -> None:
        self.bed = bed
        self.cp1, self.cp2, self.cp3 = (bed.add_node(n) for n in ("mcp1", "mcp2", "mcp3"))
        self.worker = bed.add_node("mw1")
        self.spare = bed.add_node("mx1")  # never joins: the target of rejected tokens
        self.used_token = ""

    @property
    def nodes(self) -> list[Node]:
        return [self.cp1, self.cp2, self.cp3, self.worker, self.spare]

    def voters(self, via: Node | None = None) -> list[str]:
        return sorted(m["name"] for m in etcd_members(via or self.cp1) if not m["learner"])

    def kubectl_ok(self, *args: str, via: Node | None = None, timeout: float = 60) -> str:
        r = (via or self.cp1).kubectl(*args, timeout=timeout)
        assert r.returncode == 0, f"kubectl {' '.join(args)}: {r.stderr}"
        return r.stdout




@pytest.fixture(scope="module")
def ha(testbed: TestBed):
    require_node_components()
    c = Cluster(testbed)
    for n in c.nodes:
        n.start_k8sd()
    seed_images(c.worker)
    r = c.cp1.bootstrap()
    assert r.returncode == 0, f"bootstrap failed:\n{r.stdout}\n{r.stderr}\n{c.cp1.diagnostics()}"
    c.cp1.wait_ready()
    yield c
    tear_down(testbed, c.nodes)


def test_two_control_plane_joins_run_concurrently_and_both_succeed(ha: Cluster):
    tokens = {n.name: get_token(ha.cp1, n.name) for n in (ha.cp2, ha.cp3)}
    listed = json.loads(ha.cp1.k8s("list-join-tokens", "--output-format", "json").stdout)
    assert {t["name"] for t in listed} >= {"mcp2", "mcp3"}
    assert all(t["role"] == "control-plane" and not t["expired"] for t in listed)
    assert not any(tokens["mcp2"] in json.dumps(t) for t in listed), "list-join-tokens must never show a token"

    # mcp3 joins with a join file: an extra SAN and an extra apiserver flag.
    configs = {"mcp2": None, "mcp3": {"extra-sans": ["mcp3.example.test"], "extra-node-kube-apiserver-args": {"--request-timeout": "120s"}}}
    started = time.time()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = dict(zip(("mcp2", "mcp3"), pool.map(lambda n: join(n, tokens[n.name], configs[n.name]), (ha.cp2, ha.cp3))))
    for name, r in results.items():
        assert r.returncode == 0, f"join of {name} failed:\n{r.stdout}\n{r.stderr}\n{ha.bed.diagnostics()}"
    print(f"two concurrent control-plane joins took {time.time() - started:.1f} s")
    ha.used_token = tokens["mcp2"]

    assert ha.voters() == ["mcp1", "mcp2", "mcp3"]
    for n in (ha.cp2, ha.cp3):
        st = n.wait_ready()
        assert st["role"] == "control-plane"
    st = ha.cp1.status()
    assert st["ha"] is True
    assert sorted(m["name"] for m in st["datastore"]["members"]) == ["mcp1", "mcp2", "mcp3"]
    args = (ha.cp3.common / "args/kube-apiserver").read_text().splitlines()
    assert "--request-timeout=120s" in args
    san = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", str(ha.cp3.pki / "apiserver.crt")], capture_output=True, text=True).stdout
    assert "DNS:mcp3.example.test" in san and f"IP Address:{ha.cp3.address}" in san
    # Used tokens are gone.
    names = {t["name"] for t in json.loads(ha.cp1.k8s("list-join-tokens", "--output-format", "json").stdout)}
    assert not names & {"mcp2", "mcp3"}
    # Each joined node serves the API with a certificate from the same CA, and sees the others' writes.
    ns = f"m-{uuid.uuid4().hex[:6]}"
    ha.kubectl_ok("create", "namespace", ns, via=ha.cp2)
    assert ns in ha.kubectl_ok("get", "namespace", ns, "-o", "name", via=ha.cp3)


def test_worker_joins_and_runs_a_pod_with_logs_and_exec(ha: Cluster):
    token = get_token(ha.cp2, ha.worker.name, worker=True)
    r = join(ha.worker, token, worker_join_config(ha.worker))
    assert r.returncode == 0, f"worker join failed:\n{r.stdout}\n{r.stderr}\n{ha.worker.diagnostics()}"

    def node_ready():
        out = ha.kubectl_ok("get", "node", ha.worker.name, "-o", "json")
        node = json.loads(out)
        ready = [c for c in node["status"].get("conditions", []) if c["type"] == "Ready"]
        return ready and ready[0]["status"] == "True" and node

    node = wait_for("the worker node to be Ready", node_ready, timeout=240, interval=2)
    st = ha.worker.status()
    assert st["role"] == "worker" and st["ready"] is True, st
    # flanneld runs with the network feature (on by default).
    assert {s["name"]: s["state"] for s in st["services"]} == dict.fromkeys(["containerd", "k8s-apiserver-proxy", "kubelet", "kube-proxy", "flanneld"], "running")
    assert node["metadata"]["labels"].get("k8sd.io/role") == "worker"
    assert wait_for("the worker role label", lambda: "node-role.kubernetes.io/worker" in json.loads(ha.kubectl_ok("get", "node", ha.worker.name, "-o", "json"))["metadata"]["labels"], timeout=60)

    # The kubelet's serving certificate came through a CSR that k8sd approved and signed.
    csrs = json.loads(ha.kubectl_ok("get", "csr", "-o", "json"))["items"]
    serving = [c for c in csrs if c["spec"]["signerName"] == "kubernetes.io/kubelet-serving" and c["spec"]["username"] == f"system:node:{ha.worker.name}"]
    assert serving, "no kubelet serving CSR from the worker"
    assert any(c["status"].get("certificate") for c in serving)
    assert any(cond["type"] == "Approved" and cond["reason"] == "K8sdAutoApproved" for c in serving for cond in c["status"].get("conditions", []))

    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "hello", "namespace": "default"},
        "spec": {
            "nodeName": ha.worker.name,
            "containers": [
                {
                    "name": "main",
                    "image": "docker.io/library/busybox:test",
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", "echo hello-from-$(hostname); while true; do sleep 1; done"],
                }
            ],
            "terminationGracePeriodSeconds": 1,
        },
    }
    r = ha.cp1.kubectl("apply", "-f", "-", input=json.dumps(pod))
    assert r.returncode == 0, r.stderr
    wait_for(
        "the pod to run",
        lambda: json.loads(ha.kubectl_ok("get", "pod", "hello", "-o", "json"))["status"].get("phase") == "Running",
        timeout=180,
        interval=2,
    )
    # logs and exec go apiserver → kubelet :10250, verified against the cluster CA.
    logs = wait_for("pod logs", lambda: (r := ha.cp3.kubectl("logs", "hello")).returncode == 0 and r.stdout, timeout=60)
    assert "hello-from-hello" in logs
    r = ha.cp1.kubectl("exec", "hello", "--", "sh", "-c", "echo exec-ok; cat /proc/1/cmdline | tr '\\0' ' '")
    assert r.returncode == 0, r.stderr
    assert "exec-ok" in r.stdout
    # The pod runs under the worker's own cgroup root, with a pod IP from the node's pod CIDR.
    assert pod_processes(ha.worker), "no processes in the worker's kubelet cgroup root"
    got = json.loads(ha.kubectl_ok("get", "pod", "hello", "-o", "json"))
    pod_cidr = json.loads(ha.kubectl_ok("get", "node", ha.worker.name, "-o", "json"))["spec"]["podCIDR"]
    assert ipaddress.ip_address(got["status"]["podIP"]) in ipaddress.ip_network(pod_cidr)
    # The first node's block is the first of the cluster CIDR: k8sd claims it as soon as the node
    # registers (first-pod-cidr.ts), or the controller manager's range allocator, which picks the
    # same block, got there first; the CNI config k8sd wrote before the kubelet started names it.
    # Every later node's block comes from the allocator. No block is given twice.
    blocks = {n["metadata"]["name"]: n["spec"]["podCIDR"] for n in json.loads(ha.kubectl_ok("get", "nodes", "-o", "json"))["items"]}
    assert blocks[ha.cp1.name] == "10.1.0.0/24", blocks
    assert len(set(blocks.values())) == len(blocks) >= 2, blocks
    assert all(ipaddress.ip_network(b).subnet_of(ipaddress.ip_network("10.1.0.0/16")) for b in blocks.values()), blocks
    conflist = json.loads((ha.cp1.root / "etc/cni/net.d/10-k8s-bridge.conflist").read_text())
    assert conflist["plugins"][0]["ipam"]["ranges"] == [[{"subnet": "10.1.0.0/24"}]], conflist


def test_worker_certificates_renew_through_the_control_plane(ha: Cluster):
    kubelet_conf = ha.worker.root / "etc/kubernetes/kubelet.conf"
    proxy_conf = ha.worker.root / "etc/kubernetes/proxy.conf"
    before = (kubeconfig_cert_serial(kubelet_conf), kubeconfig_cert_serial(proxy_conf))
    csrs_before = {c["metadata"]["name"] for c in json.loads(ha.kubectl_ok("get", "csr", "-o", "json"))["items"]}
    proxy_pid = ha.worker.service_pid("kube-proxy")
    out = local_api(ha.worker, "POST", "/1.0/k8sd/worker/certificates/renew", {"certificates": ["kubelet.conf", "proxy.conf", "kubelet"]})
    # kube-proxy reloads its client certificate (proxy.conf names the files); the kubelet restarts
    # for its serving certificate.
    assert sorted(out["restarted"]) == ["kubelet"]
    assert proxy_pid and ha.worker.service_pid("kube-proxy") == proxy_pid
    after = (kubeconfig_cert_serial(kubelet_conf), kubeconfig_cert_serial(proxy_conf))
    assert after[0] != before[0] and after[1] != before[1]
    assert oct(kubelet_conf.stat().st_mode & 0o777) == "0o600"

    def new_serving_cert_signed():
        items = json.loads(ha.kubectl_ok("get", "csr", "-o", "json"))["items"]
        fresh = [c for c in items if c["metadata"]["name"] not in csrs_before and c["spec"]["signerName"] == "kubernetes.io/kubelet-serving"]
        return any(c["status"].get("certificate") for c in fresh)

    wait_for("a new kubelet serving certificate", new_serving_cert_signed, timeout=120, interval=2)
    # The renewed client certificate works (the node stays Ready) and so does the serving one (logs).
    wait_for("pod logs after the renewal", lambda: (r := ha.cp1.kubectl("logs", "hello")).returncode == 0 and "hello-from" in r.stdout, timeout=120, interval=2)
    # `k8s refresh-certs` on the worker takes the same path through the control plane.
    mid = kubeconfig_cert_serial(kubelet_conf)
    r = ha.worker.k8s("refresh-certs", "--expires-in", "1y", "--certificates", "kubelet.conf")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "kubelet.conf" in r.stdout and "kubelet" in r.stdout
    assert kubeconfig_cert_serial(kubelet_conf) != mid


def _cluster_view(ha: Cluster) -> dict:
    return {
        "members": etcd_members(ha.cp1),
        "nodes": etcd_state_keys(ha.cp1, "/k8sd/nodes/"),
        "tokens": etcd_state_keys(ha.cp1, "/k8sd/tokens/"),
        "k8s-nodes": sorted(ha.kubectl_ok("get", "nodes", "-o", "name").split()),
    }


def _rejected_without_change(ha: Cluster, token: str, expect: str, name: str | None = None) -> str:
    before_local = tree_snapshot(ha.spare.root)
    before_cluster = _cluster_view(ha)
    r = join(ha.spare, token, timeout="60s", name=name)
    assert r.returncode != 0, f"the join should have been refused:\n{r.stdout}"
    assert expect.lower() in r.stderr.lower(), r.stderr
    assert diff_snapshots(before_local, tree_snapshot(ha.spare.root)) == []
    assert _cluster_view(ha) == before_cluster
    assert ha.spare.status(timeout=30)["role"] == "none"
    return r.stderr


def test_expired_token_is_refused_and_nothing_changes(ha: Cluster):
    token = get_token(ha.cp1, ha.spare.name, worker=True, expires_in="2s")
    time.sleep(3)
    err = _rejected_without_change(ha, token, "expired")
    assert "get-join-token" in err
    ha.cp1.k8s("revoke-join-token", ha.spare.name)


def test_reused_token_is_refused_and_nothing_changes(ha: Cluster):
    # mcp2's token was used by its join; presenting it again (under the name it is bound to) reaches
    # the cluster, which refuses it.
    assert ha.used_token
    _rejected_without_change(ha, ha.used_token, "already used, revoked, or never issued", name="mcp2")


def test_revoked_token_is_refused_and_nothing_changes(ha: Cluster):
    token = get_token(ha.cp1, ha.spare.name, worker=True)
    r = ha.cp1.k8s("revoke-join-token", ha.spare.name)
    assert r.returncode == 0, r.stderr
    _rejected_without_change(ha, token, "already used, revoked, or never issued")


def test_tampered_token_is_refused_locally_and_nothing_changes(ha: Cluster):
    token = get_token(ha.cp1, ha.spare.name, worker=True)
    body, mac = token.rsplit(".", 1)
    tampered = body[:-3] + ("A" if body[-3] != "A" else "B") + body[-2:] + "." + mac
    err = _rejected_without_change(ha, tampered, "invalid join token")
    assert "checksum" in err or "damaged" in err
    # The genuine token is still open: the tampered one never reached the cluster.
    assert ha.spare.name in ha.cp1.k8s("list-join-tokens").stdout
    ha.cp1.k8s("revoke-join-token", ha.spare.name)


def test_token_for_another_cluster_is_refused_before_the_secret_is_sent(ha: Cluster, cluster: Node):
    # A consistent token whose control-plane address now answers with another cluster's certificate
    # (cluster is the single-node cluster of conftest).
    token = get_token(ha.cp1, ha.spare.name, worker=True)
    other = forge_token(token, lambda p: p.update(e=[[f"{cluster.address}:6400", p["e"][0][1]]]))
    assert cluster_fingerprint(cluster) != cluster_fingerprint(ha.cp1)
    log_before = cluster.log("k8sd").read_text(errors="replace") if cluster.log("k8sd").exists() else ""
    err = _rejected_without_change(ha, other, "does not match the expected fingerprint")
    assert "Nothing was sent" in err
    log_after = cluster.log("k8sd").read_text(errors="replace") if cluster.log("k8sd").exists() else ""
    assert "join" not in log_after[len(log_before):], "the other cluster's k8sd saw a join request"
    ha.cp1.k8s("revoke-join-token", ha.spare.name)


def test_removing_a_healthy_node_while_another_is_dead_is_refused(ha: Cluster):
    killed = kill_node_hard(ha.cp3)
    assert killed
    # The API still takes writes with one of three control-plane nodes gone.
    name = f"after-kill-{uuid.uuid4().hex[:6]}"
    wait_for("a write to succeed", lambda: ha.cp1.kubectl("create", "configmap", name, "--from-literal=k=v").returncode == 0, timeout=60, interval=2)
    assert ha.kubectl_ok("get", "configmap", name, "-o", "jsonpath={.data.k}", via=ha.cp2) == "v"

    r = ha.cp1.k8s("remove-node", ha.cp2.name)
    assert r.returncode != 0
    assert "quorum" in r.stderr and ha.cp3.name in r.stderr, r.stderr
    assert ha.voters() == ["mcp1", "mcp2", "mcp3"]


def test_the_dead_node_is_removed_and_rejoins_after_a_local_reset(ha: Cluster):
    r = ha.cp1.k8s("remove-node", ha.cp3.name)
    assert r.returncode == 0, r.stderr
    assert "could not be told to clean up" in r.stderr  # it is dead
    assert ha.voters() == ["mcp1", "mcp2"]
    assert "/k8sd/nodes/mcp3" not in etcd_state_keys(ha.cp1, "/k8sd/nodes/")

    # Back from the dead: its own state still says it is a member. A forced self-removal resets it.
    ha.cp3.start_k8sd()
    r = ha.cp3.k8s("remove-node", ha.cp3.name, "--force", timeout=120)
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr}\n{ha.cp3.diagnostics()}"
    wait_for("mcp3 to forget the cluster", lambda: ha.cp3.status(timeout=30)["role"] == "none", timeout=90)
    assert not (ha.cp3.root / "var/snap/k8s/common/var/lib/etcd/data").exists()

    r = join(ha.cp3, get_token(ha.cp1, ha.cp3.name))
    assert r.returncode == 0, f"re-join failed:\n{r.stdout}\n{r.stderr}\n{ha.cp3.diagnostics()}"
    assert ha.voters() == ["mcp1", "mcp2", "mcp3"]
    ha.cp3.wait_ready()


def test_remove_node_keeps_quorum_and_the_removed_node_rejoins(ha: Cluster):
    r = ha.cp1.k8s("remove-node", ha.cp2.name)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "", r.stderr  # it was told to clean up
    assert ha.voters() == ["mcp1", "mcp3"]
    wait_for("mcp2 to clean up", lambda: ha.cp2.status(timeout=30)["role"] == "none", timeout=90)
    assert not (ha.cp2.pki / "ca.key").exists()
    assert not (ha.cp2.root / "etc/kubernetes/admin.conf").exists()
    assert not (ha.cp2.common / "var/lib/etcd/data").exists()
    assert not (ha.cp2.common / "args/kube-apiserver").exists()
    assert ha.cp2.processes() and all("k8sd" in " ".join(open(f"/proc/{p}/cmdline").read().split("\0")) for p in ha.cp2.processes())
    # The API keeps working on the remaining two.
    ha.kubectl_ok("create", "configmap", f"two-{uuid.uuid4().hex[:6]}", via=ha.cp3)

    r = join(ha.cp2, get_token(ha.cp1, ha.cp2.name))
    assert r.returncode == 0, f"re-join failed:\n{r.stdout}\n{r.stderr}"
    assert ha.voters() == ["mcp1", "mcp2", "mcp3"]


def test_a_node_removes_itself_and_gets_the_answer(ha: Cluster):
    r = ha.cp2.k8s("remove-node", ha.cp2.name)
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr}"
    assert "removed itself" in r.stdout
    wait_for("mcp2 to clean up", lambda: ha.cp2.status(timeout=30)["role"] == "none", timeout=90)
    assert ha.voters(via=ha.cp1) == ["mcp1", "mcp3"]
    r = join(ha.cp2, get_token(ha.cp3, ha.cp2.name))
    assert r.returncode == 0, f"re-join failed:\n{r.stdout}\n{r.stderr}"
    assert ha.voters() == ["mcp1", "mcp2", "mcp3"]


def test_the_last_control_plane_node_is_not_removed_without_force(cluster: Node):
    r = cluster.k8s("remove-node", cluster.name)
    assert r.returncode != 0
    assert "last control-plane node" in r.stderr
    assert cluster.status()["role"] == "control-plane"


def test_removing_the_worker_stops_its_pods_and_it_can_rejoin(ha: Cluster):
    assert pod_processes(ha.worker)
    r = ha.cp1.k8s("remove-node", ha.worker.name)
    assert r.returncode == 0, r.stderr
    wait_for("the worker to clean up", lambda: ha.worker.status(timeout=30)["role"] == "none", timeout=120)
    assert not ha.kubectl_ok("get", "nodes", "-o", "name").count(f"node/{ha.worker.name}")
    wait_for("the pod processes to be gone", lambda: not pod_processes(ha.worker), timeout=60)
    assert not (ha.worker.root / "etc/kubernetes/kubelet.conf").exists()
    assert not (ha.worker.root / "var/lib/kubelet").exists()
    r = join(ha.worker, get_token(ha.cp1, ha.worker.name, worker=True), worker_join_config(ha.worker))
    assert r.returncode == 0, f"worker re-join failed:\n{r.stdout}\n{r.stderr}\n{ha.worker.diagnostics()}"
