"""The load-balancer feature on a real single-node cluster (k8sd, etcd, kube-apiserver, kubelet,
kube-proxy, containerd, flanneld) and a host of the bed's LAN that is not in the cluster (its own
netns on the bridge, like a client machine next to the nodes): a LoadBalancer Service gets an
address from load-balancer.cidrs and answers HTTP from that host in L2 mode (ARP through the
kernel), the node's own services are not reachable through that address, BGP mode opens a session
to a real gobgpd (built by our gobgp recipe) running as the router in the client's netns and
announces the address to it, bad input is refused with nothing changed, and disabling removes every
labelled object, the address, the guard chain and the route."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest

from membership_helpers import require_node_components, seed_images
from testbed import Node, TestBed, component_bin, wait_for

BUSYBOX = "docker.io/library/busybox:test"
LOCAL_ASN, PEER_ASN = 64512, 64513

WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: docker.io/library/busybox:test
        imagePullPolicy: Never
        command: [sh, -c, "mkdir -p /tmp/www && echo hello-through-the-load-balancer > /tmp/www/index.html && httpd -f -p 8080 -h /tmp/www"]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""


class Bed:
    def __init__(self, testbed: TestBed) -> None:
        self.testbed = testbed
        self.cp = testbed.add_node("lb1")
        # A plain host on the LAN (no k8sd): the HTTP client, and the BGP router in BGP mode.
        self.client = testbed.add_node("lbc")
        net = testbed.network
        self.pool_first, self.pool_last = str(net.network_address + 200), str(net.network_address + 203)
        self.pool = f"{self.pool_first}-{self.pool_last}"
        self.router: subprocess.Popen | None = None
        self.router_dir = self.client.workdir / "gobgp"

    def k8s_ok(self, *args: str, timeout: float = 300) -> str:
        r = self.cp.k8s(*args, timeout=timeout)
        assert r.returncode == 0, f"k8s {' '.join(args)}: {r.stdout}\n{r.stderr}"
        return r.stdout

    def settings(self) -> dict:
        return json.loads(self.k8s_ok("get", "load-balancer", "--output-format", "json"))

    def service_ip(self) -> str | None:
        r = self.cp.kubectl("get", "service", "web", "-o", "json")
        ingress = json.loads(r.stdout).get("status", {}).get("loadBalancer", {}).get("ingress", []) if r.returncode == 0 else []
        return ingress[0].get("ip") if ingress else None

    def fetch(self, ip: str, port: int = 80, scheme: str = "http") -> subprocess.CompletedProcess:
        """curl from the client host's netns."""
        return self.client.sh("curl", "-sS", "-k", "--max-time", "4", f"{scheme}://{ip}:{port}/", timeout=30)

    def node_addresses(self) -> str:
        return self.cp.sh("ip", "-o", "addr", "show").stdout

    # ---- the router: gobgpd in the client's netns ---------------------------------------------
    def gobgp(self, *args: str) -> subprocess.CompletedProcess:
        return self.client.sh(str(component_bin("gobgp") / "gobgp"), "--target", f"unix://{self.router_dir}/api.sock", *args, timeout=30)

    def start_router(self) -> None:
        self.router_dir.mkdir(parents=True, exist_ok=True)
        conf = self.router_dir / "gobgpd.toml"
        conf.write_text(
            f'[global.config]\n  as = {PEER_ASN}\n  router-id = "{self.client.address}"\n'
            f'[[neighbors]]\n  [neighbors.config]\n    neighbor-address = "{self.cp.address}"\n    peer-as = {LOCAL_ASN}\n'
            f'  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = "ipv4-unicast"\n'
        )
        log = open(self.router_dir / "gobgpd.log", "w")
        self.router = subprocess.Popen(
            self.client.nsenter(str(component_bin("gobgp") / "gobgpd"), "-f", str(conf), "--api-hosts", f"unix://{self.router_dir}/api.sock", "--log-plain"),
            stdout=log, stderr=subprocess.STDOUT,
        )
        wait_for("the router's API", lambda: self.gobgp("neighbor").returncode == 0, timeout=30)

    def stop_router(self) -> None:
        if self.router and self.router.poll() is None:
            self.router.terminate()
            self.router.wait(timeout=20)

    def session_state(self) -> str:
        r = self.gobgp("neighbor", "-j")
        peers = json.loads(r.stdout or "[]") if r.returncode == 0 else []
        return str(peers[0].get("state", {}).get("session_state", "")) if peers else ""

    def routes(self) -> dict:
        r = self.gobgp("global", "rib", "-a", "ipv4", "-j")
        return json.loads(r.stdout or "{}") if r.returncode == 0 else {}


def rss_mib(pid: int | str) -> float:
    return next(int(l.split()[1]) for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS:")) / 1024


def k8sd_rss(node: Node) -> float:
    return rss_mib((node.state_dir / "k8sd.pid").read_text().strip())


def labelled(node: Node) -> list[str]:
    r = node.kubectl("get", "clusterrole,clusterrolebinding,role,rolebinding,serviceaccount,deployment,daemonset,configmap,namespace", "-A", "-l", "k8sd.io/feature=load-balancer", "-o", "name")
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


@pytest.fixture(scope="module")
def bed(testbed: TestBed):
    require_node_components()
    if not (component_bin("gobgp") / "gobgpd").exists():
        pytest.fail("gobgp is not built: run bin/dev-setup (or bash snap/components/build-all.sh gobgp)", pytrace=False)
    b = Bed(testbed)
    try:
        b.cp.start_k8sd()
        seed_images(b.cp)
        r = b.cp.bootstrap()
        assert r.returncode == 0, f"bootstrap failed:\n{r.stdout}\n{r.stderr}\n{b.cp.diagnostics()}"
        b.cp.wait_ready(timeout=300)
        yield b
    finally:
        b.stop_router()
        testbed.remove_nodes((b.cp, b.client))
        shutil.rmtree(b.router_dir, ignore_errors=True)


def test_bad_input_is_refused_naming_key_and_value_and_nothing_changes(bed: Bed):
    before = bed.settings()
    for change, words in [
        ("load-balancer.cidrs=10.0.0.0/33", ["load-balancer.cidrs", "10.0.0.0/33"]),
        ("load-balancer.cidrs=10.0.0.20-10.0.0.10", ["load-balancer.cidrs", "10.0.0.20-10.0.0.10"]),
        ("load-balancer.bgp-peer-asn=4294967296", ["load-balancer.bgp-peer-asn", "4294967296", "1 to 4294967295"]),
        ("load-balancer.bgp-local-asn=0", ["load-balancer.bgp-local-asn", '"0"']),
        ("load-balancer.bgp-peer-port=70000", ["load-balancer.bgp-peer-port", "70000"]),
        ("load-balancer.bgp-peer-address=router", ["load-balancer.bgp-peer-address", "router"]),
    ]:
        r = bed.cp.k8s("set", change, "load-balancer.l2-mode=false")
        out = r.stdout + r.stderr
        assert r.returncode != 0, f"{change} was accepted: {out}"
        for w in words:
            assert w in out, f"{change}: '{w}' not in {out!r}"
        assert "nothing was changed" in out, out
    # Enabling with no pool: refused, naming the key to set.
    r = bed.cp.k8s("enable", "load-balancer", "--timeout", "30s")
    assert r.returncode != 0 and "load-balancer.cidrs" in r.stdout + r.stderr, r.stdout + r.stderr
    assert bed.settings() == before
    assert labelled(bed.cp) == []


def test_l2_service_gets_a_pool_address_and_answers_from_another_host(bed: Bed):
    bed.k8s_ok("set", f"load-balancer.cidrs={bed.pool}")
    rss_before = k8sd_rss(bed.cp)
    started = time.monotonic()
    bed.k8s_ok("enable", "load-balancer", "--timeout", "300s", timeout=360)
    print(f"\nMEASURE k8s enable load-balancer: ready in {time.monotonic() - started:.1f} s")
    assert sorted(labelled(bed.cp)) == ["clusterrole.rbac.authorization.k8s.io/k8sd:load-balancer", "clusterrolebinding.rbac.authorization.k8s.io/k8sd:load-balancer"]

    r = bed.cp.kubectl("apply", "-f", "-", input=WEB)
    assert r.returncode == 0, r.stderr
    started = time.monotonic()
    ip = wait_for("an address from the pool in the Service's status", bed.service_ip, timeout=60, interval=0.5)
    print(f"MEASURE LoadBalancer Service created -> address assigned: {time.monotonic() - started:.1f} s")
    assert ip == bed.pool_first, f"{ip} is not the pool's first address {bed.pool_first}"
    wait_for(f"{ip} on the node's eth0", lambda: f"inet {ip}/32" in bed.node_addresses(), timeout=30, interval=0.5)

    r = wait_for(f"HTTP through {ip} from {bed.client.name}", lambda: (x := bed.fetch(ip)).returncode == 0 and "hello-through-the-load-balancer" in x.stdout and x, timeout=180, interval=1)
    assert "hello-through-the-load-balancer" in r.stdout
    # The client learned the address by ARP from the node's interface.
    neigh = bed.client.sh("ip", "neigh", "show", ip).stdout
    mac = json.loads(bed.cp.sh("ip", "-j", "link", "show", "eth0").stdout)[0]["address"]  # not /sys: nsenter --net keeps the host's sysfs
    assert mac in neigh, f"{ip} resolves to {neigh!r}, not the node's {mac}"

    # The address leads to the Service only: the kubelet (10250) answers on the node's address, not on the VIP.
    assert bed.fetch(bed.cp.address, 10250, "https").returncode == 0, "kubelet not reachable on the node address (test premise)"
    assert bed.fetch(ip, 10250, "https").returncode != 0, f"the kubelet answers through the load-balancer address {ip}"

    print(f"MEASURE k8sd VmRSS before enable / serving one L2 address: {rss_before:.0f} / {k8sd_rss(bed.cp):.0f} MiB")
    status = bed.cp.status()
    line = json.dumps(status)
    assert "L2 mode" in line and bed.pool in line, line


def test_bgp_mode_session_established_and_route_announced(bed: Bed):
    ip = bed.service_ip()
    assert ip, "the L2 test's Service has no address"
    bed.start_router()
    bed.k8s_ok(
        "set", "load-balancer.bgp-mode=true", f"load-balancer.bgp-local-asn={LOCAL_ASN}", f"load-balancer.bgp-peer-address={bed.client.address}",
        f"load-balancer.bgp-peer-asn={PEER_ASN}", "load-balancer.bgp-peer-port=179",
    )
    started = time.monotonic()
    wait_for("the BGP session Established at the router", lambda: bed.session_state() in ("6", "established", "ESTABLISHED"), timeout=120, interval=1)
    routes = wait_for(f"{ip}/32 in the router's RIB", lambda: (rib := bed.routes()).get(f"{ip}/32") and rib, timeout=60, interval=1)
    print(f"\nMEASURE BGP mode set -> session Established and route received: {time.monotonic() - started:.1f} s")
    path = routes[f"{ip}/32"][0]
    nexthop = json.dumps(path)
    assert bed.cp.address in nexthop, f"next hop of {ip}/32 is not the node: {nexthop}"
    # The node's config: 0600, speaker connects out only (no BGP listener on the node).
    conf = bed.cp.state_dir / "load-balancer" / "gobgpd.toml"
    assert oct(conf.stat().st_mode & 0o777) == "0o600"
    assert "port = -1" in conf.read_text()
    assert ":179 " not in bed.cp.sh("ss", "-ltn").stdout
    pid = wait_for("gobgpd pid", lambda: bed.cp.sh("pgrep", "-f", str(conf)).stdout.split(), timeout=10)[0]
    print(f"MEASURE gobgpd (BGP speaker) VmRSS: {rss_mib(pid):.1f} MiB")


def test_disable_removes_every_object_address_rule_and_route(bed: Bed):
    ip = bed.service_ip()
    assert ip
    started = time.monotonic()
    bed.k8s_ok("disable", "load-balancer", "--timeout", "120s", timeout=180)
    # `k8s disable` returns once the setting is stored; the controller removes the objects next.
    wait_for("every load-balancer object removed", lambda: labelled(bed.cp) == [], timeout=90, interval=1)
    print(f"\nMEASURE k8s disable load-balancer -> objects removed: {time.monotonic() - started:.1f} s")
    wait_for(f"{ip} gone from the node", lambda: ip not in bed.node_addresses(), timeout=30, interval=0.5)
    assert bed.cp.sh("iptables", "-S", "K8SD-LB-INPUT").returncode != 0, "the guard chain is still there"
    assert "K8SD-LB-INPUT" not in bed.cp.sh("iptables", "-S", "INPUT").stdout
    wait_for("the Service's address released", lambda: bed.service_ip() is None, timeout=30, interval=0.5)
    wait_for("the route withdrawn at the router", lambda: f"{ip}/32" not in bed.routes(), timeout=60, interval=1)
    assert not (bed.cp.state_dir / "load-balancer").exists()
    assert bed.cp.sh("pgrep", "-f", "load-balancer/gobgpd.toml").stdout.strip() == ""
    assert bed.fetch(ip).returncode != 0, f"{ip} still answers after disable"
    # Settings stay for the next enable.
    assert bed.settings()["cidrs"] == [bed.pool]
