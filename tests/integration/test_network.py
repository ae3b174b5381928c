"""The cluster network across nodes (1 control plane + 2 workers, one network namespace each):
pod-to-pod over flannel's VXLAN, a ClusterIP Service reached by its DNS name from a pod on another
node, and NetworkPolicy (ingress and egress) enforced by kube-network-policies, all observed from
real pods."""

from __future__ import annotations

import json
import time

import pytest

from membership_helpers import bring_up, tear_down, worker_join_config
from testbed import Node, TestBed, wait_for

pytestmark = pytest.mark.slow

BUSYBOX = "docker.io/library/busybox:test"


class Net:
    def __init__(self, bed: TestBed) -> None:
        self.cp = bed.add_node("ncp")
        self.w1 = bed.add_node("nw1")
        self.w2 = bed.add_node("nw2")

    @property
    def nodes(self) -> list[Node]:
        return [self.cp, self.w1, self.w2]

    def kubectl_ok(self, *args: str, input: str | None = None, timeout: float = 60) -> str:
        r = self.cp.kubectl(*args, input=input, timeout=timeout)
        assert r.returncode == 0, f"kubectl {' '.join(args)}: {r.stderr}"
        return r.stdout

    def pod(self, name: str, node: Node, labels: dict[str, str], command: str) -> None:
        manifest = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": labels},
            "spec": {
                "nodeName": node.name,
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "main", "image": BUSYBOX, "imagePullPolicy": "Never", "command": ["sh", "-c", command]}],
            },
        }
        self.kubectl_ok("apply", "-f", "-", input=json.dumps(manifest))

    def pod_ip(self, name: str) -> str:
        return wait_for(f"{name} running with an IP", lambda: (p := json.loads(self.kubectl_ok("get", "pod", name, "-o", "json")))["status"].get("phase") == "Running" and p["status"].get("podIP"), timeout=180, interval=2)

    def fetch(self, pod: str, host: str, port: int = 8080) -> bool:
        """An HTTP GET from inside the pod (busybox nc: the static busybox's wget crashes in these pods)."""
        r = self.cp.kubectl("exec", pod, "--", "sh", "-c", f'printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 3 {host} {port}', timeout=30)
        return r.returncode == 0 and "hello-from-server" in r.stdout


def isolated_on(node: Node, pod: str) -> bool:
    """Whether k8sd on the node has put the pod behind a NetworkPolicy chain (iptables, read independently)."""
    r = node.sh("iptables", "-S", "K8SD-NP-FORWARD")
    return r.returncode == 0 and f'"default/{pod}"' in r.stdout


@pytest.fixture(scope="module")
def net(testbed: TestBed):
    n = Net(testbed)
    started = time.time()
    bring_up(n.cp, [n.w1, n.w2], worker_join_config)
    print(f"\n1 control plane + 2 workers ready with the network in {time.time() - started:.1f} s")
    yield n
    tear_down(testbed, n.nodes)


@pytest.fixture(scope="module")
def pods(net: Net):
    """A web server on worker 1; clients on worker 2 and on the control plane; a Service in front."""
    net.pod("server", net.w1, {"app": "server"}, "mkdir -p /www && echo hello-from-server > /www/index.html && httpd -f -vv -p 8080 -h /www")
    net.pod("client", net.w2, {"role": "client"}, "while true; do sleep 1; done")
    net.pod("stranger", net.cp, {"role": "stranger"}, "while true; do sleep 1; done")
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"app": "server"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    net.kubectl_ok("apply", "-f", "-", input=json.dumps(svc))
    return {name: net.pod_ip(name) for name in ("server", "client", "stranger")}


def test_every_node_is_ready_and_runs_flanneld(net: Net):
    nodes = json.loads(net.kubectl_ok("get", "nodes", "-o", "json"))["items"]
    assert sorted(n["metadata"]["name"] for n in nodes) == sorted(x.name for x in net.nodes)
    assert all(any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"]) for n in nodes)
    # flanneld announced each node's VXLAN endpoint on its Node object.
    assert all("flannel.alpha.coreos.com/public-ip" in n["metadata"].get("annotations", {}) for n in nodes), [n["metadata"].get("annotations") for n in nodes]
    for node in net.nodes:
        services = {s["name"]: s["state"] for s in node.status()["services"]}
        assert services.get("flanneld") == "running", (node.name, services)
        assert node.sh("ip", "-d", "link", "show", "flannel.1").returncode == 0
        # Pods get flanneld's VXLAN MTU: the first node's CNI config is written before flanneld runs,
        # with the MTU k8sd expects it to report, and must agree with what flanneld then reported.
        subnet = (node.common / "run/flannel/subnet.env").read_text()
        flannel_mtu = int(next(line.split("=", 1)[1] for line in subnet.splitlines() if line.startswith("FLANNEL_MTU=")))
        conflist = json.loads((node.root / "etc/cni/net.d/10-k8s-bridge.conflist").read_text())
        assert conflist["plugins"][0]["mtu"] == flannel_mtu, (node.name, conflist["plugins"][0], subnet)


def test_pod_to_pod_across_nodes(net: Net, pods):
    assert wait_for("client on nw2 reaches server on nw1 by pod IP", lambda: net.fetch("client", pods["server"]), timeout=60)
    assert wait_for("a pod on the control plane reaches it too", lambda: net.fetch("stranger", pods["server"]), timeout=60)
    # The server sees the client's own pod IP (no masquerading inside the cluster network).
    logs = net.kubectl_ok("logs", "server")
    assert pods["client"] in logs, logs[-500:]


def test_a_cluster_ip_service_by_dns_name_from_another_node(net: Net, pods):
    assert wait_for("web.default.svc.cluster.local from nw2", lambda: net.fetch("client", "web.default.svc.cluster.local", 80), timeout=90)
    assert wait_for("short name web from the control plane", lambda: net.fetch("stranger", "web", 80), timeout=60)


def test_network_policy_denies_then_allows(net: Net, pods):
    deny = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "server-deny-all", "namespace": "default"},
        "spec": {"podSelector": {"matchLabels": {"app": "server"}}, "policyTypes": ["Ingress"]},
    }
    allow = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "server-allow-clients", "namespace": "default"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "server"}},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}], "ports": [{"port": 8080}]}],
        },
    }
    url = pods["server"]
    assert wait_for("reachable before any policy", lambda: net.fetch("client", url), timeout=60)
    net.kubectl_ok("apply", "-f", "-", input=json.dumps(deny))
    try:
        wait_for("the server's node enforces the policy", lambda: isolated_on(net.w1, "server"), timeout=30)
        assert not net.fetch("client", url), "deny-all must block the client"
        assert not net.fetch("stranger", url), "deny-all must block every pod"
        net.kubectl_ok("apply", "-f", "-", input=json.dumps(allow))
        wait_for("the allow policy lets the client in", lambda: net.fetch("client", url), timeout=60)
        # ... and only the client: a pod without the label is still refused.
        assert not net.fetch("stranger", url)
    finally:
        net.cp.kubectl("delete", "networkpolicy", "server-deny-all", "server-allow-clients", "--ignore-not-found")
    wait_for("no chain left for the server", lambda: not isolated_on(net.w1, "server"), timeout=30)
    assert net.fetch("stranger", url), "reachable again without policies"


def test_network_policy_egress(net: Net, pods):
    url = pods["server"]
    deny_egress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "client-no-egress", "namespace": "default"},
        "spec": {"podSelector": {"matchLabels": {"role": "client"}}, "policyTypes": ["Egress"]},
    }
    net.kubectl_ok("apply", "-f", "-", input=json.dumps(deny_egress))
    try:
        wait_for("the client's node enforces the policy", lambda: isolated_on(net.w2, "client"), timeout=30)
        assert not net.fetch("client", url), "egress deny must block the client"
        assert net.fetch("stranger", url), "the policy selects only the client"
    finally:
        net.cp.kubectl("delete", "networkpolicy", "client-no-egress", "--ignore-not-found")
    wait_for("the client reaches the server again", lambda: net.fetch("client", url), timeout=60)
