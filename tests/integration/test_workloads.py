"""A cluster that runs workloads: the control-plane node is a Node, the side-loaded test image runs,
cluster DNS answers from a pod, and `k8s enable|disable|set|get` drive the features (real k8sd,
etcd, kube-apiserver, kubelet, containerd, flanneld, CoreDNS)."""

from __future__ import annotations

import json

import pytest

from membership_helpers import require_node_components, seed_images
from testbed import Node, TestBed, component_bin, wait_for

BUSYBOX = "docker.io/library/busybox:test"


def kubectl_json(node: Node, *args: str):
    r = node.kubectl(*args, "-o", "json")
    assert r.returncode == 0, f"kubectl {' '.join(args)}: {r.stderr}"
    return json.loads(r.stdout)


def feature_objects(node: Node, feature: str) -> list[str]:
    """Every object labelled with the feature, as kind/name (namespaced kinds in kube-system)."""
    names = []
    for kinds, ns in (("deployment,daemonset,service,configmap,serviceaccount", ["-n", "kube-system"]), ("clusterrole,clusterrolebinding", [])):
        r = node.kubectl("get", kinds, *ns, "-l", f"k8sd.io/feature={feature}", "-o", "name")
        assert r.returncode == 0, r.stderr
        names += r.stdout.split()
    return names


def run_in_pod(node: Node, pod: str, *cmd: str, timeout: float = 60):
    return node.kubectl("exec", pod, "--", *cmd, timeout=timeout)


@pytest.fixture(scope="module")
def single(testbed: TestBed):
    """A plain `k8s bootstrap` (network and dns on by default), with the busybox test image side-loaded."""
    require_node_components()
    node = testbed.add_node("wl1")
    node.start_k8sd()
    seed_images(node)
    r = node.bootstrap()
    assert r.returncode == 0, f"bootstrap failed:\n{r.stdout}\n{r.stderr}\n{node.diagnostics()}"
    node.wait_ready(timeout=300)
    yield node
    testbed.remove_node(node)


def test_the_control_plane_node_is_a_ready_schedulable_node(single: Node):
    nodes = kubectl_json(single, "get", "nodes")["items"]
    assert [n["metadata"]["name"] for n in nodes] == [single.name]
    n = nodes[0]
    assert any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
    assert "node-role.kubernetes.io/control-plane" in n["metadata"]["labels"]
    # Schedulable by default: no control-plane taint (the node lifecycle controller lifts the
    # transient not-ready taint a moment after Ready).
    wait_for("no taints", lambda: not kubectl_json(single, "get", "node", single.name)["spec"].get("taints"), timeout=60)
    st = single.status()
    assert st["ready"] and st["node-ready"]
    features = {f["name"]: f for f in st["features"]}
    assert features["network"]["enabled"] and features["network"]["ready"], features
    assert features["dns"]["message"] == "enabled at 10.152.183.10", features
    assert not features["ingress"]["enabled"]
    services = {s["name"]: s["state"] for s in st["services"]}
    for svc in ("containerd", "kubelet", "kube-proxy", "flanneld"):
        assert services.get(svc) == "running", services
    plain = single.k8s("status")
    assert "dns:" in plain.stdout and "enabled at 10.152.183.10" in plain.stdout, plain.stdout


def test_a_deployment_of_the_side_loaded_image_runs_and_resolves_cluster_names(single: Node):
    r = single.kubectl("create", "deployment", "hello", f"--image={BUSYBOX}", "--", "sh", "-c", "while true; do sleep 1; done")
    assert r.returncode == 0, r.stderr
    single.kubectl("patch", "deployment", "hello", "--type=json", "-p", '[{"op":"add","path":"/spec/template/spec/containers/0/imagePullPolicy","value":"Never"}]')
    r = single.kubectl("rollout", "status", "deployment/hello", "--timeout=180s", timeout=200)
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr}\n{single.diagnostics()}"
    pod = kubectl_json(single, "get", "pods", "-l", "app=hello")["items"][0]
    assert pod["spec"]["nodeName"] == single.name
    name = pod["metadata"]["name"]
    # busybox's nslookup sends the name as given (it does not apply the resolv.conf search list), so
    # it asks for the full name; the short name goes through the pod's resolver and its search list.
    out = wait_for("nslookup kubernetes.default.svc.cluster.local", lambda: (r := run_in_pod(single, name, "nslookup", "kubernetes.default.svc.cluster.local")).returncode == 0 and r.stdout, timeout=90)
    assert "Address: 10.152.183.1" in out, out
    ping = run_in_pod(single, name, "ping", "-c", "1", "-W", "1", "kubernetes.default")
    assert "PING kubernetes.default (10.152.183.1)" in ping.stdout, ping.stdout + ping.stderr
    resolv = run_in_pod(single, name, "cat", "/etc/resolv.conf").stdout
    assert "nameserver 10.152.183.10" in resolv and "svc.cluster.local" in resolv, resolv
    single.kubectl("delete", "deployment", "hello", "--wait=false")


def test_disable_dns_removes_every_object_and_enable_brings_them_back(single: Node):
    assert feature_objects(single, "dns"), "the dns feature made no labelled objects"
    r = single.k8s("disable", "dns", "--timeout", "180s")
    assert r.returncode == 0, r.stdout + r.stderr
    wait_for("every dns object removed", lambda: feature_objects(single, "dns") == [], timeout=120)
    assert single.k8s("get", "dns.enabled").stdout.strip() == "false"
    assert {f["name"]: f for f in single.status()["features"]}["dns"]["message"] == "disabled"
    # The kubelet no longer points pods at a DNS Service that is gone.
    wait_for("kubelet clusterDNS cleared", lambda: "clusterDNS" not in kubelet_config(single), timeout=60)

    r = single.k8s("enable", "dns", "--timeout", "240s")
    assert r.returncode == 0, r.stdout + r.stderr + single.diagnostics()
    kinds = {o.split("/")[0] for o in feature_objects(single, "dns")}
    assert {"deployment.apps", "service", "configmap", "serviceaccount", "clusterrole.rbac.authorization.k8s.io"} <= kinds, kinds
    assert "clusterDNS" in kubelet_config(single)


def kubelet_config(node: Node) -> str:
    return (node.common / "args/conf.d/kubelet-config.yaml").read_text()


def test_set_upstream_nameservers_changes_the_corefile(single: Node):
    r = single.k8s("set", "dns.upstream-nameservers=9.9.9.9,1.1.1.1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "dns.upstream-nameservers=9.9.9.9,1.1.1.1"

    def corefile() -> str:
        return kubectl_json(single, "-n", "kube-system", "get", "configmap", "coredns")["data"]["Corefile"]

    wait_for("the new upstreams in the Corefile", lambda: "forward . 9.9.9.9 1.1.1.1" in corefile(), timeout=60)
    assert single.k8s("get", "dns.upstream-nameservers").stdout.strip() == "9.9.9.9,1.1.1.1"
    r = single.k8s("set", "dns.upstream-nameservers=/etc/resolv.conf")
    assert r.returncode == 0, r.stderr
    wait_for("the Corefile back on resolv.conf", lambda: "forward . /etc/resolv.conf" in corefile(), timeout=60)


@pytest.mark.parametrize(
    "args, named",
    [
        (("set", "nosuch.key=1"), "nosuch.key"),
        (("enable", "nosuch"), "nosuch"),
        (("set", "dns.service-ip=not-an-ip"), "dns.service-ip"),
        (("set", "dns.service-ip=10.99.0.10"), "dns.service-ip"),
        (("set", "dns.enabled=true", "dns.nosuch=1"), "dns.nosuch"),
        (("set", "ingress.enable-proxy-protocol=maybe"), "ingress.enable-proxy-protocol"),
        (("set", "ingress.default-tls-secret=Not_A_Name"), "ingress.default-tls-secret"),
    ],
)
def test_bad_input_is_refused_with_the_key_named_and_nothing_changes(single: Node, args, named):
    before = json.loads(single.k8s("get", "--output-format", "json").stdout)
    r = single.k8s(*args)
    assert r.returncode != 0, r.stdout
    assert named in r.stderr, r.stderr
    after = json.loads(single.k8s("get", "--output-format", "json").stdout)
    assert after == before


def test_set_dns_service_ip_moves_the_service_and_the_kubelet(single: Node):
    r = single.k8s("set", "dns.service-ip=10.152.183.53")
    assert r.returncode == 0, r.stderr
    try:
        wait_for("kube-dns at the new address", lambda: kubectl_json(single, "-n", "kube-system", "get", "service", "kube-dns")["spec"]["clusterIP"] == "10.152.183.53", timeout=90)
        wait_for("the kubelet pointed at it", lambda: "10.152.183.53" in kubelet_config(single), timeout=60)
    finally:
        assert single.k8s("set", "dns.service-ip=10.152.183.10").returncode == 0
        wait_for("kube-dns back", lambda: kubectl_json(single, "-n", "kube-system", "get", "service", "kube-dns")["spec"]["clusterIP"] == "10.152.183.10", timeout=90)


def test_list_images_names_what_the_node_runs(single: Node):
    r = single.k8s("list-images")
    assert r.returncode == 0, r.stderr
    images = r.stdout.split()
    assert any(i.startswith("k8s-ts.local/coredns:") for i in images), images
    assert any(i.startswith("registry.k8s.io/pause:") for i in images), images


def test_side_loaded_images_are_pinned_against_image_garbage_collection(single: Node):
    """kubelet's image GC (at 85% disk use) removes unused images unless the runtime reports them
    pinned; a side-loaded image removed that way could never come back (nothing is pulled)."""
    ctr = str(component_bin("containerd") / "ctr")
    r = single.sh(ctr, "--address", str(single.root / "run/containerd/containerd.sock"), "--namespace", "k8s.io", "images", "ls")
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines()[1:] if line.strip()]
    named = {row[0]: row for row in rows if not row[0].startswith("sha256:")}
    for image in ("k8s-ts.local/coredns", "registry.k8s.io/pause", "docker.io/library/busybox:test"):
        matches = [row for name, row in named.items() if name.startswith(image)]
        assert matches, f"{image} is not in containerd: {sorted(named)}"
        assert all("io.cri-containerd.pinned=pinned" in " ".join(row) for row in matches), matches


def test_control_plane_taints_from_the_bootstrap_file(testbed: TestBed):
    require_node_components()
    node = testbed.add_node("wl2")
    try:
        node.start_k8sd()
        r = node.bootstrap({"control-plane-taints": ["node-role.kubernetes.io/control-plane:NoSchedule"]})
        assert r.returncode == 0, r.stdout + r.stderr
        node.wait_ready(timeout=300)
        n = kubectl_json(node, "get", "node", node.name)
        assert {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"} in n["spec"]["taints"]
        # With a file, features are on only when it says so (as in Canonical Kubernetes).
        st = node.status()
        assert not any(f["enabled"] for f in st["features"]), st["features"]
        assert "flanneld" not in {s["name"] for s in st["services"]}
    finally:
        testbed.remove_node(node)
