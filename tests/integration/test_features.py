"""The default features of a plain bootstrap, and local-storage and metrics-server in depth, on a real single-node cluster (k8sd, etcd,
kube-apiserver, kubelet, containerd, flanneld, the side-loaded local-path-provisioner, its busybox
helper and metrics-server images built by our recipes): a claim binds and its data lands under
local-storage.local-path, reclaim-policy is honoured, `kubectl top` answers through the aggregated
API with verified TLS on both sides, and disabling removes every object."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from membership_helpers import require_node_components, seed_images
from testbed import Node, TestBed, wait_for

BUSYBOX = "docker.io/library/busybox:test"
LOCAL_PATH = "/var/snap/k8s/common/rawfile-storage"


def kubectl_json(node: Node, *args: str):
    r = node.kubectl(*args, "-o", "json")
    assert r.returncode == 0, f"kubectl {' '.join(args)}: {r.stderr}"
    return json.loads(r.stdout)


def labelled(node: Node, feature: str) -> list[str]:
    """Every object labelled with the feature, in any namespace, as kind/name."""
    kinds = "deployment,daemonset,service,configmap,secret,serviceaccount,role,rolebinding"
    names = []
    for args in ((kinds, "-A"), ("clusterrole,clusterrolebinding,storageclass,namespace,apiservice",)):
        r = node.kubectl("get", *args, "-l", f"k8sd.io/feature={feature}", "-o", "name")
        assert r.returncode == 0, r.stderr
        names += r.stdout.split()
    return names


def feature_pods(node: Node, feature: str) -> str:
    """The feature's pods and their last log lines, for failure messages."""
    out = node.kubectl("get", "pods", "-A", "-o", "wide").stdout
    for ns in ("kube-system", "local-path-storage"):
        r = node.kubectl("-n", ns, "get", "pods", "-l", f"k8sd.io/feature={feature}", "-o", "name")
        for pod in r.stdout.split():
            out += f"\n---- {ns}/{pod}\n" + node.kubectl("-n", ns, "describe", pod).stdout[-2500:]
            logs = node.kubectl("-n", ns, "logs", pod, "--tail=40")
            prev = node.kubectl("-n", ns, "logs", pod, "--previous", "--tail=40")
            out += logs.stdout + logs.stderr + prev.stdout
    return out


@pytest.fixture(scope="module")
def single(testbed: TestBed):
    require_node_components()
    node = testbed.add_node("ft1")
    node.start_k8sd()
    seed_images(node)
    # A user's plain bootstrap: no file, so the default features come up with the node.
    started = time.monotonic()
    r = node.bootstrap(plain=True)
    assert r.returncode == 0, f"bootstrap failed:\n{r.stdout}\n{r.stderr}\n{node.diagnostics()}"
    node.wait_ready(timeout=300)
    print(f"\nMEASURE plain bootstrap to ready with the default features: {time.monotonic() - started:.1f} s")
    yield node
    testbed.remove_node(node)


def enable(node: Node, feature: str) -> float:
    started = time.monotonic()
    r = node.k8s("enable", feature, "--timeout", "420s", timeout=480)
    assert r.returncode == 0, r.stdout + r.stderr + feature_pods(node, feature)
    took = time.monotonic() - started
    print(f"\nMEASURE k8s enable {feature}: ready in {took:.1f} s")
    return took


PVC_POD = """
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 16Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: writer}
spec:
  securityContext: {runAsUser: 1000, runAsGroup: 1000, runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: w
    image: %s
    imagePullPolicy: Never
    command: [sh, -c, "mkdir -p /data/sub && echo hello-from-pod > /data/sub/hello && sleep 3600"]
    securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
    volumeMounts: [{name: data, mountPath: /data}]
  volumes:
  - name: data
    persistentVolumeClaim: {claimName: data}
""" % BUSYBOX


def test_a_plain_bootstrap_enables_the_default_features_of_canonical_kubernetes(single: Node):
    """network, dns, gateway, local-storage and metrics-server on and ready; ingress and
    load-balancer off; `k8s get` says the same."""
    features = {f["name"]: f for f in single.status()["features"]}
    on = sorted(name for name, f in features.items() if f["enabled"])
    assert on == ["dns", "gateway", "local-storage", "metrics-server", "network"], features
    assert all(features[name]["ready"] for name in on), features
    got = json.loads(single.k8s("get", "--output-format", "json").stdout)
    for name in on:
        assert got[f"{name}.enabled"] is True, got
    assert got["ingress.enabled"] is False and got["load-balancer.enabled"] is False, got
    # Each one's objects exist: the default StorageClass, the aggregated metrics API, the GatewayClass.
    sc = kubectl_json(single, "get", "storageclass", "local-path")
    assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    assert single.kubectl("get", "apiservice", "v1beta1.metrics.k8s.io").returncode == 0
    assert single.kubectl("get", "gatewayclass").returncode == 0


def test_local_storage_binds_writes_under_local_path_and_deletes_with_the_claim(single: Node):
    enable(single, "local-storage")
    sc = kubectl_json(single, "get", "storageclass", "local-path")
    assert sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    assert sc["reclaimPolicy"] == "Delete" and sc["volumeBindingMode"] == "WaitForFirstConsumer"
    ns = kubectl_json(single, "get", "namespace", "local-path-storage")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"

    r = single.kubectl("apply", "-f", "-", input=PVC_POD)
    assert r.returncode == 0, r.stderr
    r = single.kubectl("wait", "pod/writer", "--for=condition=Ready", "--timeout=240s", timeout=260)
    assert r.returncode == 0, f"{r.stderr}\n{single.kubectl('describe', 'pod', 'writer').stdout}\n{single.kubectl('-n', 'local-path-storage', 'logs', 'deploy/local-path-provisioner').stdout[-3000:]}"
    pvc = kubectl_json(single, "get", "pvc", "data")
    assert pvc["status"]["phase"] == "Bound" and pvc["spec"]["storageClassName"] == "local-path"
    pv = kubectl_json(single, "get", "pv", pvc["spec"]["volumeName"])
    src = pv["spec"].get("hostPath") or pv["spec"].get("local")
    vol_dir = Path(src["path"])
    base = single.root / LOCAL_PATH.lstrip("/")
    assert vol_dir.parent == base, (vol_dir, base)
    hello = vol_dir / "sub" / "hello"
    wait_for("the pod's file on the node", lambda: hello.exists() and hello.read_text() == "hello-from-pod\n", timeout=60)
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"

    # reclaim-policy Delete: the directory goes with the claim (the helper pod removes what the
    # pod's non-root user wrote).
    assert single.kubectl("delete", "pod", "writer", "--wait=true", "--timeout=120s", timeout=150).returncode == 0
    assert single.kubectl("delete", "pvc", "data", "--wait=true", "--timeout=120s", timeout=150).returncode == 0
    wait_for("the PV deleted", lambda: single.kubectl("get", "pv", pv["metadata"]["name"]).returncode != 0, timeout=180)
    wait_for("the volume directory removed", lambda: not vol_dir.exists(), timeout=120)
    assert base.is_dir()


def test_local_storage_reclaim_policy_is_reflected_in_the_storage_class(single: Node):
    r = single.k8s("set", "local-storage.reclaim-policy=Retain")
    assert r.returncode == 0, r.stderr
    try:
        wait_for("StorageClass Retain", lambda: kubectl_json(single, "get", "storageclass", "local-path")["reclaimPolicy"] == "Retain", timeout=120)
        r = single.k8s("set", "local-storage.default=false")
        assert r.returncode == 0, r.stderr
        wait_for(
            "StorageClass no longer the default",
            lambda: kubectl_json(single, "get", "storageclass", "local-path")["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "false",
            timeout=120,
        )
        assert single.k8s("get", "local-storage.reclaim-policy").stdout.strip() == "Retain"
    finally:
        single.k8s("set", "local-storage.reclaim-policy=Delete", "local-storage.default=true")
    wait_for("StorageClass Delete again", lambda: kubectl_json(single, "get", "storageclass", "local-path")["reclaimPolicy"] == "Delete", timeout=120)


@pytest.mark.parametrize(
    "args, named, says",
    [
        (("set", "local-storage.reclaim-policy=Foo"), "local-storage.reclaim-policy", "Delete or Retain"),
        (("set", "local-storage.local-path=relative/dir"), "local-storage.local-path", "absolute path"),
        (("set", "local-storage.local-path=/etc"), "local-storage.local-path", "system directory"),
        (("set", "metrics-server.enabled=perhaps"), "metrics-server.enabled", "not a boolean"),
    ],
)
def test_bad_feature_input_is_refused_with_the_key_named_and_nothing_changes(single: Node, args, named, says):
    before = json.loads(single.k8s("get", "--output-format", "json").stdout)
    r = single.k8s(*args)
    assert r.returncode != 0, r.stdout
    assert named in r.stderr and says in r.stderr, r.stderr
    assert json.loads(single.k8s("get", "--output-format", "json").stdout) == before


def test_metrics_server_serves_kubectl_top_through_the_aggregated_api(single: Node):
    enable(single, "metrics-server")
    dep = kubectl_json(single, "-n", "kube-system", "get", "deployment", "metrics-server")
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not any("insecure" in a for a in args), args
    assert "--kubelet-certificate-authority=/etc/metrics-server/kubelet-ca/ca.crt" in args, args
    # The kubelet CA metrics-server trusts is the one that signed this node's kubelet serving certificate.
    kubelet_ca = kubectl_json(single, "-n", "kube-system", "get", "configmap", "metrics-server-kubelet-ca")["data"]["ca.crt"]
    assert (single.pki / "kubelet-ca.crt").read_text().strip() in kubelet_ca
    assert (single.pki / "ca.crt").read_text().strip() not in kubelet_ca, "metrics-server must trust only the kubelet CA for kubelets"

    def available():
        api = kubectl_json(single, "get", "apiservice", "v1beta1.metrics.k8s.io")
        conds = {c["type"]: c for c in api["status"].get("conditions", [])}
        return conds.get("Available", {}).get("status") == "True" and api
    try:
        api = wait_for("APIService Available", available, timeout=180, interval=3)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{feature_pods(single, 'metrics-server')}") from None
    assert api["spec"].get("insecureSkipTLSVerify") in (None, False)
    secret = kubectl_json(single, "-n", "kube-system", "get", "secret", "metrics-server-tls")
    assert api["spec"]["caBundle"] == secret["data"]["ca.crt"]
    assert api["spec"]["caBundle"] != __import__("base64").b64encode((single.pki / "ca.crt").read_bytes()).decode()

    started = time.monotonic()
    out = wait_for("kubectl top nodes", lambda: (r := single.kubectl("top", "nodes", "--no-headers")).returncode == 0 and r.stdout, timeout=240, interval=5)
    print(f"\nMEASURE kubectl top nodes answered {time.monotonic() - started:.1f} s after the APIService was Available")
    assert single.name in out, out
    fields = out.split()
    assert fields[1].endswith("m") and fields[3].endswith("Mi"), out
    pods = wait_for("kubectl top pods -A", lambda: (r := single.kubectl("top", "pods", "-A", "--no-headers")).returncode == 0 and "metrics-server" in r.stdout and r.stdout, timeout=180, interval=5)
    print("\nMEASURE kubectl top pods -A:\n" + pods)
    assert "coredns" in pods, pods

    # k8sd keeps the serving certificate while it is valid: later passes of the feature controller
    # (every 20 s) neither re-issue it nor roll the pod.
    dep_gen = kubectl_json(single, "-n", "kube-system", "get", "deployment", "metrics-server")["metadata"]["generation"]
    time.sleep(50)
    again = kubectl_json(single, "-n", "kube-system", "get", "secret", "metrics-server-tls")
    assert again["data"]["tls.crt"] == secret["data"]["tls.crt"]
    assert kubectl_json(single, "-n", "kube-system", "get", "deployment", "metrics-server")["metadata"]["generation"] == dep_gen


def test_disabling_removes_every_object_of_the_feature(single: Node):
    for feature in ("metrics-server", "local-storage"):
        enable(single, feature)  # already on when the module runs in order
    for feature in ("metrics-server", "local-storage"):
        assert labelled(single, feature), f"{feature} made no labelled objects"
        r = single.k8s("disable", feature, "--timeout", "240s", timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        wait_for(f"every {feature} object removed", lambda: labelled(single, feature) == [], timeout=180, interval=3)
        assert single.k8s("get", f"{feature}.enabled").stdout.strip() == "false"
    assert single.kubectl("get", "apiservice", "v1beta1.metrics.k8s.io").returncode != 0
    wait_for("namespace local-path-storage gone", lambda: single.kubectl("get", "namespace", "local-path-storage").returncode != 0, timeout=180, interval=3)
    # dns keeps working.
    st = {f["name"]: f for f in single.status()["features"]}
    assert st["dns"]["ready"] and not st["metrics-server"]["enabled"] and not st["local-storage"]["enabled"], st


def test_list_images_names_the_feature_images_and_the_node_has_them(single: Node):
    images = single.k8s("list-images").stdout.split()
    wanted = ["k8s-ts.local/local-path-provisioner:v0.0.30", "k8s-ts.local/local-path-helper:v0.0.30", "k8s-ts.local/metrics-server:v0.8.0"]
    assert set(wanted) <= set(images), images
    # Side-loaded into the node's containerd (the kubelet reports the images it has): nothing is pulled.
    node_images = {n for i in kubectl_json(single, "get", "node", single.name)["status"]["images"] for n in i.get("names", [])}
    assert set(wanted) <= node_images, node_images
