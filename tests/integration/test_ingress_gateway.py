"""The ingress and gateway features on a real single-node cluster (k8sd, etcd, kube-apiserver,
kubelet, containerd, flanneld, kube-proxy, CoreDNS, and Traefik and the Gateway API CRDs built by
our recipes): an Ingress routes HTTP to a pod and serves HTTPS with the default TLS secret (the
served certificate is checked with Python's ssl), an HTTPRoute routes HTTP to a pod, disabling each
feature removes every object labelled with it (the Gateway API CRDs included) and leaves the other
one routing, and bad input is refused with nothing changed. Traffic goes from the test host to the
node's address and the data planes' node ports, as a client outside the cluster would."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import subprocess
import time

import pytest

from membership_helpers import require_node_components, seed_images
from testbed import Node, TestBed, component_bin, wait_for

BUSYBOX = "docker.io/library/busybox:test"
TLS_SECRET = "ck-default-tls"
MARKER = "hello-through-the-data-plane"

BACKEND = """
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  securityContext: {runAsUser: 1000, runAsGroup: 1000, runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: web
    image: %s
    imagePullPolicy: Never
    command: [sh, -c, "mkdir -p /tmp/www && echo %s > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"]
    ports: [{containerPort: 8080}]
    readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
    securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  rules:
  - host: web.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
""" % (BUSYBOX, MARKER)

GATEWAY = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: ck-gateway
  listeners:
  - {name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: Same}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web}
spec:
  parentRefs: [{name: gw}]
  hostnames: [route.example]
  rules:
  - backendRefs: [{name: web, port: 80}]
"""


def kubectl_json(node: Node, *args: str):
    r = node.kubectl(*args, "-o", "json")
    assert r.returncode == 0, f"kubectl {' '.join(args)}: {r.stderr}"
    return json.loads(r.stdout)


def labelled(node: Node, feature: str) -> list[str]:
    """Every object labelled with the feature, namespaced kinds in any namespace, as kind/name."""
    names = []
    for args in (("deployment,service,configmap,secret,serviceaccount", "-A"), ("clusterrole,clusterrolebinding,ingressclass,customresourcedefinition",)):
        r = node.kubectl("get", *args, "-l", f"k8sd.io/feature={feature}", "-o", "name")
        assert r.returncode == 0, r.stderr
        names += r.stdout.split()
    r = node.kubectl("get", "gatewayclass", "-l", f"k8sd.io/feature={feature}", "-o", "name")
    if r.returncode == 0:
        names += r.stdout.split()
    else:
        # The Gateway API is gone (kubectl says so in one of two ways, with or without its discovery cache).
        assert "the server doesn't have a resource type" in r.stderr or "could not find the requested resource" in r.stderr, r.stderr
    return names


def diagnostics(node: Node, feature: str) -> str:
    out = node.kubectl("get", "pods", "-A", "-o", "wide").stdout
    r = node.kubectl("-n", "kube-system", "get", "pods", "-l", f"k8sd.io/feature={feature}", "-o", "name")
    for pod in r.stdout.split():
        out += f"\n---- {pod}\n" + node.kubectl("-n", "kube-system", "describe", pod).stdout[-2500:]
        logs = node.kubectl("-n", "kube-system", "logs", pod, "--tail=40")
        out += logs.stdout + logs.stderr
    return out


def enable(node: Node, feature: str) -> None:
    started = time.monotonic()
    r = node.k8s("enable", feature, "--timeout", "300s", timeout=360)
    assert r.returncode == 0, r.stdout + r.stderr + diagnostics(node, feature)
    print(f"\nMEASURE k8s enable {feature}: ready in {time.monotonic() - started:.1f} s")


def node_port(node: Node, feature: str, name: str) -> int:
    svc = kubectl_json(node, "-n", "kube-system", "get", "service", f"ck-{feature}-traefik")
    return next(p["nodePort"] for p in svc["spec"]["ports"] if p["name"] == name)


def http_get(node: Node, port: int, host: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection(node.address, port, timeout=5)
    try:
        conn.request("GET", "/", headers={"Host": host})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


def routes(node: Node, port: int, host: str) -> bool:
    try:
        status, body = http_get(node, port, host)
    except OSError:
        return False
    return status == 200 and MARKER in body


def https_get(node: Node, port: int, host: str) -> tuple[bytes, int, str] | None:
    """The certificate the data plane serves for SNI `host` (DER), the status and the body; None while it does not answer."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((node.address, port), timeout=5) as raw, ctx.wrap_socket(raw, server_hostname=host) as s:
            der = s.getpeercert(binary_form=True)
            s.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    except OSError:
        return None
    head, _, body = data.decode(errors="replace").partition("\r\n\r\n")
    return der, int(head.split()[1]), body


def proxied_get(node: Node, port: int, host: str) -> str:
    """An HTTP request behind a PROXY protocol v1 header, as a load balancer in front would send it; the raw response."""
    try:
        with socket.create_connection((node.address, port), timeout=5) as s:
            s.sendall(f"PROXY TCP4 198.51.100.7 {node.address} 40000 {port}\r\nGET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    except OSError as e:
        return f"error: {e}"
    return data.decode(errors="replace")


@pytest.fixture(scope="module")
def single(testbed: TestBed):
    """A plain bootstrap, the busybox test image side-loaded, a backend pod behind a Service."""
    require_node_components()
    for component, built in (("traefik", "traefik.tar"), ("gateway-api", "gateway-api-standard.yaml")):
        try:
            present = (component_bin(component) / built).exists()
        except subprocess.CalledProcessError:
            present = False
        if not present:
            pytest.fail(f"{component}/{built} is not built: run bin/dev-setup (or bash snap/components/build-all.sh {component})", pytrace=False)
    node = testbed.add_node("ig1")
    node.start_k8sd()
    seed_images(node)
    r = node.bootstrap()
    assert r.returncode == 0, f"bootstrap failed:\n{r.stdout}\n{r.stderr}\n{node.diagnostics()}"
    node.wait_ready(timeout=300)
    yield node
    testbed.remove_node(node)


@pytest.fixture(scope="module")
def default_cert(single: Node, tmp_path_factory) -> bytes:
    """A self-signed pair in the Secret kube-system/ck-default-tls; returns the certificate (DER)."""
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
         "-subj", "/CN=default.ingress.test", "-keyout", str(d / "tls.key"), "-out", str(d / "tls.crt")],
        check=True, capture_output=True,
    )
    (d / "tls.key").chmod(0o600)
    r = single.kubectl("-n", "kube-system", "create", "secret", "tls", TLS_SECRET, "--cert", str(d / "tls.crt"), "--key", str(d / "tls.key"))
    assert r.returncode == 0, r.stderr
    der = subprocess.run(["openssl", "x509", "-in", str(d / "tls.crt"), "-outform", "DER"], check=True, capture_output=True).stdout
    (d / "tls.key").unlink()
    return der


def test_bad_input_is_refused_and_nothing_changes(single: Node):
    before = single.k8s("get", "--output-format", "json")
    assert before.returncode == 0, before.stderr
    # Ingress needs the network: turning network off and ingress on in one change is refused whole.
    r = single.k8s("set", "network.enabled=false", "ingress.enabled=true")
    assert r.returncode != 0
    assert "ingress.enabled" in r.stderr and "needs the network feature" in r.stderr and "nothing was changed" in r.stderr, r.stderr
    r = single.k8s("set", "ingress.default-tls-secret=Not_A_Name")
    assert r.returncode != 0 and "ingress.default-tls-secret" in r.stderr and "not a Secret name" in r.stderr, r.stderr
    r = single.k8s("set", "ingress.enable-proxy-protocol=maybe")
    assert r.returncode != 0 and "ingress.enable-proxy-protocol" in r.stderr and "not a boolean" in r.stderr, r.stderr
    after = single.k8s("get", "--output-format", "json")
    assert json.loads(after.stdout) == json.loads(before.stdout)
    assert labelled(single, "ingress") == [] and labelled(single, "gateway") == []


def test_ingress_routes_http_and_serves_https_with_the_default_tls_secret(single: Node, default_cert: bytes):
    r = single.k8s("set", f"ingress.default-tls-secret={TLS_SECRET}")
    assert r.returncode == 0, r.stderr
    enable(single, "ingress")
    cls = kubectl_json(single, "get", "ingressclass", "ck-ingress")
    assert cls["metadata"]["annotations"]["ingressclass.kubernetes.io/is-default-class"] == "true"
    r = single.kubectl("apply", "-f", "-", input=BACKEND)
    assert r.returncode == 0, r.stderr
    r = single.kubectl("wait", "pod/web", "--for=condition=Ready", "--timeout=180s", timeout=200)
    assert r.returncode == 0, r.stderr + single.kubectl("describe", "pod", "web").stdout
    # The default IngressClass was filled in by the API server.
    assert kubectl_json(single, "get", "ingress", "web")["spec"]["ingressClassName"] == "ck-ingress"

    http_port = node_port(single, "ingress", "http")
    wait_for("the Ingress routes HTTP to the pod", lambda: routes(single, http_port, "web.example"), timeout=120)
    status, _ = http_get(single, http_port, "nothing.example")
    assert status == 404

    https_port = node_port(single, "ingress", "https")
    served = wait_for(
        "HTTPS served with the default TLS secret's certificate",
        lambda: (res := https_get(single, https_port, "web.example")) is not None and res[0] == default_cert and res,
        timeout=120,
    )
    assert served[1] == 200 and MARKER in served[2], served
    st = {f["name"]: f for f in single.status()["features"]}["ingress"]
    assert st["enabled"] and st["ready"] and f"HTTP on node port {http_port}" in st["message"], st
    assert "ingress:" in single.k8s("status").stdout


def test_enable_proxy_protocol_accepts_a_proxy_header(single: Node):
    port = node_port(single, "ingress", "http")
    # Without it, a PROXY line is not HTTP: refused.
    assert MARKER not in proxied_get(single, port, "web.example")
    r = single.k8s("set", "ingress.enable-proxy-protocol=true")
    assert r.returncode == 0, r.stderr
    wait_for("a request behind a PROXY header routed", lambda: MARKER in proxied_get(single, port, "web.example"), timeout=180, interval=2)
    r = single.k8s("set", "ingress.enable-proxy-protocol=false")
    assert r.returncode == 0, r.stderr


def test_httproute_routes_http_to_the_pod(single: Node):
    enable(single, "gateway")
    crds = single.kubectl("get", "crd", "-l", "k8sd.io/feature=gateway", "-o", "name").stdout.split()
    assert "customresourcedefinition.apiextensions.k8s.io/httproutes.gateway.networking.k8s.io" in crds, crds
    assert kubectl_json(single, "get", "gatewayclass", "ck-gateway")["spec"]["controllerName"] == "traefik.io/gateway-controller"
    r = single.kubectl("apply", "-f", "-", input=GATEWAY)
    assert r.returncode == 0, r.stderr
    port = node_port(single, "gateway", "http")
    wait_for(
        "the HTTPRoute routes HTTP to the pod",
        lambda: routes(single, port, "route.example"),
        timeout=120,
    )
    route = kubectl_json(single, "get", "httproute", "web")
    conds = {c["type"]: c["status"] for p in route["status"]["parents"] for c in p["conditions"]}
    assert conds.get("Accepted") == "True", route["status"]
    # The ingress data plane does not serve Gateway API routes, and the reverse.
    assert not routes(single, node_port(single, "ingress", "http"), "route.example")
    assert not routes(single, port, "web.example")


def test_disabling_gateway_removes_its_objects_and_crds_and_ingress_keeps_routing(single: Node):
    assert any("customresourcedefinition" in o for o in labelled(single, "gateway"))
    r = single.k8s("disable", "gateway", "--timeout", "240s", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    wait_for("every gateway object removed, CRDs included", lambda: labelled(single, "gateway") == [], timeout=180, interval=2)
    assert single.kubectl("get", "crd", "httproutes.gateway.networking.k8s.io").returncode != 0
    assert single.k8s("get", "gateway.enabled").stdout.strip() == "false"
    port = node_port(single, "ingress", "http")
    wait_for("the Ingress still routes", lambda: routes(single, port, "web.example"), timeout=60)


def test_disabling_ingress_removes_its_objects_and_the_cluster_keeps_working(single: Node):
    r = single.k8s("disable", "ingress", "--timeout", "240s", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    wait_for("every ingress object removed", lambda: labelled(single, "ingress") == [], timeout=180, interval=2)
    # Our Secret is not the feature's: it stays.
    assert single.kubectl("-n", "kube-system", "get", "secret", TLS_SECRET).returncode == 0
    st = {f["name"]: f for f in single.status()["features"]}
    assert st["dns"]["ready"] and st["network"]["ready"] and not st["ingress"]["enabled"] and not st["gateway"]["enabled"], st


def test_list_images_names_traefik_and_the_node_has_it(single: Node):
    images = single.k8s("list-images").stdout.split()
    traefik = [i for i in images if i.startswith("k8s-ts.local/traefik:")]
    assert traefik, images
    node_images = {n for i in kubectl_json(single, "get", "node", single.name)["status"]["images"] for n in i.get("names", [])}
    assert set(traefik) <= node_images, node_images
