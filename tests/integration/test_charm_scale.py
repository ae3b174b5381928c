"""Many units of the packed charms form one cluster (issue 16): 1 -> 3 control-plane units through the
peer relation (one at a time), 0 -> 2 workers through k8s:k8s-cluster <-> k8s-worker:cluster, a cos-agent scrape of
every job a control-plane unit and a worker publish (k8sd, kube-apiserver, etcd, kubelet) with the credentials the
relation carries, then one control-plane unit and one worker are removed.

Each unit is a node of the netns test bed running the real `dispatch` of its packed charm, with its own
k8sd (started by the `snap install` of the packed snap, the snap-installation resource). The hook tools
are the stand-ins of test_charm; juju_model.JujuModel plays the controller: one store for relation data
and secrets, and the hooks Juju would fire (created, joined, changed until quiet, departed, broken,
update-status). After each step the test checks the units' statuses, the etcd members (etcdctl with
k8sd's client certificate) and the Kubernetes nodes (kubectl with the admin kubeconfig).

The steps are one module-scoped flow; each test is a step and needs the ones before it.
"""

from __future__ import annotations

import base64
import json
import re
import sys
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from juju_model import JujuModel, ModelUnit, Relation
from membership_helpers import etcd_members
from test_charm import unpack
from test_snap import snap_file  # noqa: F401  (the packed snap: every unit's snap-installation resource)
from testbed import REPO, Node, TestBed

READY = {"status": "active", "message": "Ready"}
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def charm_dirs():
    """Both charms packed by charms/pack.sh and unzipped once (units of one application share the
    charm dir read-only, as nothing writes to it); the .charm files and the trees go afterwards."""
    work = Path(tempfile.mkdtemp(prefix="k8s-charm-scale-"))
    try:
        r = subprocess.run([str(REPO / "charms" / "pack.sh"), "--out", str(work), "k8s", "k8s-worker"], capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, f"charms/pack.sh failed:\n{r.stdout}\n{r.stderr}"
        files = [Path(line) for line in r.stdout.strip().splitlines() if line.endswith(".charm")]
        sizes = {f.name: f.stat().st_size for f in files}
        print(f"\n.charm sizes: {', '.join(f'{n} {s / 2**20:.1f} MiB' for n, s in sizes.items())}")
        dirs = {}
        for f in files:
            app = f.name.rsplit("_", 1)[0]
            dirs[app] = unpack(f, work / app)
            f.unlink()
        yield dirs
    finally:
        shutil.rmtree(work, ignore_errors=True)


class Deployment:
    def __init__(self, bed: TestBed, charm_dirs: dict[str, Path], snap: Path) -> None:
        self.bed, self.charm_dirs, self.snap = bed, charm_dirs, snap
        self.model = JujuModel()
        self.peer = self.model.relate({"k8s": "cluster"})
        self.workers_rel: Relation | None = None
        self.nodes: dict[str, Node] = {}
        self.removed: dict[str, ModelUnit] = {}
        self.uuid = "6f1c1a9e-2b1d-4c1e-9a0b-16c0ffee0016"

    def unit(self, name: str) -> ModelUnit:
        return self.model.units[name]

    def new_unit(self, unit: str, node_name: str) -> ModelUnit:
        node = self.bed.add_node(node_name)
        self.nodes[unit] = node
        # Not unit-<name>: test_charm, in the same session, keeps its units there.
        home = self.bed.workdir / f"scale-unit-{unit.replace('/', '-')}"
        home.mkdir()
        u = ModelUnit(node, self.charm_dirs[unit.split("/")[0]], home, unit=unit, resource=self.snap, model_uuid=self.uuid)
        self.model.add(u)
        return u

    def deploy_unit(self, unit: str, node_name: str) -> tuple[ModelUnit, float]:
        """Juju's order for a new unit: install, relation-created/joined, leader-elected (first unit)
        or leader-settings-changed, config-changed, start; then relation-changed until quiet and
        update-status until every unit is Active. Returns the unit and its seconds from install to Active."""
        u = self.new_unit(unit, node_name)
        started = time.monotonic()
        dispatches = [u.hook("install")]
        if u.app == "k8s":
            dispatches += self.model.join(u, self.peer)
            if "k8s" not in self.model.leaders:
                self.model.leaders["k8s"] = u.unit
                dispatches.append(u.hook("leader-elected"))
            else:
                dispatches.append(u.hook("leader-settings-changed"))
        else:
            self.model.leaders.setdefault(u.app, u.unit)
            dispatches.append(u.hook("leader-elected"))
        if self.workers_rel is not None:
            dispatches += self.model.join(u, self.workers_rel)
        dispatches += [u.hook("config-changed"), u.hook("start")]
        failed = [d for d in dispatches if d.rc != 0]
        assert not failed, u.report()
        self.model.settle()
        self.model.until_active(list(self.model.units.values()))
        return u, time.monotonic() - started

    def relate_workers(self) -> None:
        self.workers_rel = self.model.relate({"k8s": "k8s-cluster", "k8s-worker": "cluster"})
        for name in [n for n in self.model.units if n.startswith("k8s/")]:
            for d in self.model.join(self.unit(name), self.workers_rel):
                assert d.rc == 0, self.unit(name).report()

    def remove_unit(self, unit: str) -> None:
        """Juju's order: departed on the others and on the unit for each relation (broken off peers), then stop, remove."""
        u = self.unit(unit)
        for rel in [self.peer, self.workers_rel]:
            if rel is not None and u.unit in rel.units:
                for d in self.model.depart(u, rel):
                    assert d.rc == 0, u.report()
        for hook in ("stop", "remove"):
            assert u.hook(hook).rc == 0, u.report()
        self.removed[unit] = self.model.units.pop(unit)
        self.model.settle()

    def leader_node(self) -> Node:
        return self.nodes[self.model.leaders["k8s"]]

    def kubernetes_nodes(self) -> dict[str, bool]:
        """Node name -> Ready, from kubectl with the leader's admin kubeconfig."""
        r = self.leader_node().kubectl("get", "nodes", "-o", "jsonpath={range .items[*]}{.metadata.name} {.status.conditions[?(@.type=='Ready')].status}{'\\n'}{end}")
        assert r.returncode == 0, r.stderr
        return {name: status == "True" for name, status in (line.split() for line in r.stdout.strip().splitlines() if line.strip())}

    def runs_kubelet(self, unit: str) -> bool:
        services = self.nodes[unit].status().get("services")
        names = [s if isinstance(s, str) else s.get("name") for s in services or []]
        return not names or "kubelet" in names

    def check(self, control_plane: list[str], workers: list[str]) -> None:
        for name in control_plane + workers:
            assert self.unit(name).unit_status() == READY, self.unit(name).report()
        members = etcd_members(self.leader_node())
        assert sorted(m["name"] for m in members) == sorted(self.nodes[u].name for u in control_plane), members
        assert not [m for m in members if m["learner"]], members
        expected = {self.nodes[u].name for u in control_plane if self.runs_kubelet(u)} | {self.nodes[u].name for u in workers}
        nodes = self.kubernetes_nodes()
        assert set(nodes) == expected, nodes
        assert all(nodes.values()), nodes


@pytest.fixture(scope="module")
def deployment(testbed: TestBed, charm_dirs, snap_file: Path):  # noqa: F811
    d = Deployment(testbed, charm_dirs, snap_file)
    try:
        yield d
    finally:
        for unit in [*d.model.units.values(), *d.removed.values()]:
            print("\n" + unit.report())
        print("\ninstall -> Active: " + ", ".join(f"{k} {v:.0f} s" for k, v in TIMINGS.items()))
        testbed.remove_nodes(list(d.nodes.values()))


def test_the_first_unit_bootstraps(deployment: Deployment):
    _, seconds = deployment.deploy_unit("k8s/0", "cp0")
    TIMINGS["k8s/0 (bootstrap)"] = seconds
    deployment.check(["k8s/0"], [])


def test_a_second_control_plane_unit_joins_through_the_peer_relation(deployment: Deployment):
    u, seconds = deployment.deploy_unit("k8s/1", "cp1")
    TIMINGS["k8s/1 (control-plane join)"] = seconds
    deployment.check(["k8s/0", "k8s/1"], [])
    # The token travelled in a Juju secret, named the unit's address, and is gone once used.
    joins = [c for c in u.workload_calls() if c.startswith("k8s join-cluster")]
    assert len(joins) == 1 and "--token-file" in joins[0], joins
    leader_calls = deployment.unit("k8s/0").workload_calls()
    assert f"k8s get-join-token {deployment.nodes['k8s/1'].name} --address {deployment.nodes['k8s/1'].address}" in leader_calls
    assert not deployment.model.secrets, deployment.model.secrets
    assert deployment.unit("k8s/0").state()["relations"][deployment.peer.rid("k8s")]["data"]["k8s"].get(f"node.k8s/1") == deployment.nodes["k8s/1"].name


def test_a_third_control_plane_unit_makes_three_etcd_voters(deployment: Deployment):
    _, seconds = deployment.deploy_unit("k8s/2", "cp2")
    TIMINGS["k8s/2 (control-plane join)"] = seconds
    deployment.check(["k8s/0", "k8s/1", "k8s/2"], [])


def test_a_worker_joins_through_the_k8s_cluster_relation(deployment: Deployment):
    deployment.relate_workers()
    _, seconds = deployment.deploy_unit("k8s-worker/0", "w0")
    TIMINGS["k8s-worker/0 (worker join)"] = seconds
    deployment.check(["k8s/0", "k8s/1", "k8s/2"], ["k8s-worker/0"])
    worker_status = deployment.nodes["k8s-worker/0"].status()
    assert worker_status["role"] == "worker", worker_status


def test_a_second_worker_joins(deployment: Deployment):
    _, seconds = deployment.deploy_unit("k8s-worker/1", "w1")
    TIMINGS["k8s-worker/1 (worker join)"] = seconds
    deployment.check(["k8s/0", "k8s/1", "k8s/2"], ["k8s-worker/0", "k8s-worker/1"])
    assert deployment.nodes["k8s-worker/1"].status()["role"] == "worker"


def test_custom_registries_reach_the_worker_through_the_containerd_relation(deployment: Deployment):
    """containerd-custom-registries on k8s: the leader shares it on `containerd`; the worker writes
    hosts.d/<host>/hosts.toml (0600, credentials in it) where its containerd's config_path points;
    emptying the option removes it."""
    rel = deployment.model.relate({"k8s": "containerd", "k8s-worker": "containerd"})
    for name in list(deployment.model.units):
        for d in deployment.model.join(deployment.unit(name), rel):
            assert d.rc == 0, deployment.unit(name).report()
    registries = [{"url": "https://mirror.registry.test:5000", "host": "docker.io", "username": "puller", "password": "s3cret"}]

    def configure(value: str) -> None:
        for name in [n for n in deployment.model.units if n.startswith("k8s/")]:
            unit = deployment.unit(name)
            unit.update_state(lambda s: s["config"].__setitem__("containerd-custom-registries", value))
            assert unit.hook("config-changed").rc == 0, unit.report()
        deployment.model.settle()

    configure(json.dumps(registries))
    worker = deployment.nodes["k8s-worker/0"]
    hosts_dir = worker.root / "etc/containerd/hosts.d"
    config_toml = (worker.root / "etc/containerd/config.toml").read_text()
    assert f'config_path = "{hosts_dir}"' in config_toml.replace("'", '"'), config_toml
    hosts_toml = hosts_dir / "docker.io" / "hosts.toml"
    assert hosts_toml.stat().st_mode & 0o777 == 0o600
    text = hosts_toml.read_text()
    assert 'server = "https://mirror.registry.test:5000"' in text, text
    assert f'Authorization = ["Basic {base64.b64encode(b"puller:s3cret").decode()}"]' in text, text
    # Every control-plane unit writes them too, for its own containerd.
    assert (deployment.nodes["k8s/1"].root / "etc/containerd/hosts.d/docker.io/hosts.toml").exists()
    assert deployment.unit("k8s-worker/0").unit_status() == READY

    configure("[]")
    assert not (hosts_dir / "docker.io").exists()


# Runs inside the unit's netns, as grafana-agent (a subordinate on the unit's machine) would scrape: the job
# and token come on stdin (not argv), the CA and server name from the job, the answer goes to stdout as JSON.
SCRAPE = r"""
import http.client, json, socket, ssl, sys
job, token, path = json.load(sys.stdin)
host, port = job["static_configs"][0]["targets"][0].rsplit(":", 1)
raw = socket.create_connection((host, int(port)), timeout=30)
if job["scheme"] == "https":
    context = ssl.create_default_context(cadata=job["tls_config"]["ca"])
    raw = context.wrap_socket(raw, server_hostname=job["tls_config"].get("server_name", host))
headers = f"Authorization: Bearer {token}\r\n" if token else ""
raw.sendall(f"GET {path or job['metrics_path']} HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n".encode())
response = http.client.HTTPResponse(raw)
response.begin()
print(json.dumps([response.status, response.read().decode()]))
"""

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(\s+-?\d+)?$")


def fetch(node: Node, job: dict, token: str | None, path: str | None = None) -> tuple[int, str]:
    """GETs the job's target from the unit's netns, verifying TLS with the job's CA (and server_name)."""
    r = node.sh(sys.executable, "-c", SCRAPE, input=json.dumps([job, token, path]), timeout=60)
    assert r.returncode == 0, r.stderr
    status, body = json.loads(r.stdout)
    return status, body


def parse_prometheus(body: str) -> dict[str, float]:
    """Prometheus text format: every line a comment or a sample (name{labels} value [timestamp])."""
    samples = {}
    for line in body.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a Prometheus sample: {line!r}"
        samples[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    assert samples, "no samples"
    return samples


def relate_cos_agent(deployment: Deployment, name: str) -> dict:
    model = deployment.model
    unit = deployment.unit(name)
    rel = model.relate({unit.app: "cos-agent", "grafana-agent": "cos-agent"})
    rel.units.append("grafana-agent/0")
    for d in model.join(unit, rel):
        assert d.rc == 0, unit.report()
    model.settle()
    model.until_active(list(model.units.values()))
    return rel.data[name]


def test_cos_agent_scrape_jobs_answer_with_the_credentials_they_carry(deployment: Deployment):
    """Relating grafana-agent (played as relation data only) over cos-agent: a control-plane unit publishes jobs
    for its k8sd, kube-apiserver and etcd (and kubelet when it runs one), a worker for its k8sd and kubelet. Each
    answers Prometheus text to the job's credentials and 401 without them; the Kubernetes token reads metrics
    and nothing else."""
    expected = {
        "k8s/0": {"k8sd", "kube-apiserver", "etcd"} | ({"kubelet", "kubelet-cadvisor"} if deployment.runs_kubelet("k8s/0") else set()),
        "k8s-worker/0": {"k8sd", "kubelet", "kubelet-cadvisor"},
    }
    for name, components in expected.items():
        node = deployment.nodes[name]
        unit = deployment.unit(name)
        config = json.loads(relate_cos_agent(deployment, name)["config"])
        jobs = {job["job_name"].removesuffix(f"-{node.name}"): job for job in config["metrics_scrape_jobs"]}
        assert set(jobs) == components, sorted(jobs)
        assert {g["name"] for g in config["metrics_alert_rules"]["groups"]} == {"k8s-control-plane", "k8s-nodes"}
        assert len(config["dashboards"]) == 1
        log = json.dumps(unit.state()["juju-log"])
        for job in jobs.values():
            if "authorization" in job:
                assert job["authorization"]["credentials"] not in log, f"the {job['job_name']} token went to the log"

        samples_of = {}
        for component, job in jobs.items():
            token = job.get("authorization", {}).get("credentials")
            if token:
                status, _ = fetch(node, job, None)
                assert status == 401, (component, status)
            status, body = fetch(node, job, token)
            assert status == 200, (component, status, body[:500])
            samples_of[component] = parse_prometheus(body)

        expiries = {k: v for k, v in samples_of["k8sd"].items() if k.startswith("k8sd_certificate_expiry_seconds")}
        assert expiries and all(v > time.time() for v in expiries.values()), expiries
        if "kube-apiserver" in jobs:
            k8sd = samples_of["k8sd"]
            assert k8sd['k8sd_cluster_members{role="control-plane"}'] == 3, k8sd
            assert k8sd['k8sd_cluster_members{role="worker"}'] == 2, k8sd
            assert k8sd['k8sd_feature_enabled{feature="dns"}'] == 1, k8sd
            assert 'k8sd_certificate_expiry_seconds{certificate="apiserver.crt"}' in k8sd, sorted(expiries)
            assert any(k.startswith("apiserver_request_total") for k in samples_of["kube-apiserver"])
            assert samples_of["etcd"]["etcd_server_has_leader"] == 1
            assert jobs["etcd"]["static_configs"][0]["targets"] == ["127.0.0.1:2381"] and "authorization" not in jobs["etcd"]
            # Least privilege: the scrape token reads /metrics, not the API.
            api = dict(jobs["kube-apiserver"])
            token = api["authorization"]["credentials"]
            for path in ("/api/v1/secrets", "/api/v1/namespaces/kube-system/pods", "/apis/rbac.authorization.k8s.io/v1/clusterroles"):
                status, _ = fetch(node, api, token, path)
                assert status == 403, (path, status)
        if "kubelet" in jobs:
            assert f'kubelet_node_name{{node="{node.name}"}}' in samples_of["kubelet"], sorted(samples_of["kubelet"])[:20]
            assert any(k.startswith("machine_cpu_cores") or k.startswith("container_") for k in samples_of["kubelet-cadvisor"]), sorted(samples_of["kubelet-cadvisor"])[:20]
            # nodes/proxy (the kubelet's pod API) is not granted.
            status, _ = fetch(node, jobs["kubelet"], jobs["kubelet"]["authorization"]["credentials"], "/pods")
            assert status == 403, status
    deployment.check(["k8s/0", "k8s/1", "k8s/2"], ["k8s-worker/0", "k8s-worker/1"])


def test_removing_a_control_plane_unit_removes_its_node(deployment: Deployment):
    leaving = deployment.nodes["k8s/1"]
    deployment.remove_unit("k8s/1")
    removed = deployment.removed["k8s/1"]
    assert removed.unit_status() == {"status": "maintenance", "message": "Removed from the cluster"}, removed.report()
    assert "snap remove k8s --purge" in removed.workload_calls()
    calls = deployment.unit("k8s/0").workload_calls()
    assert f"k8s remove-node {leaving.name}" in calls, calls
    deployment.model.until_active(list(deployment.model.units.values()))
    deployment.check(["k8s/0", "k8s/2"], ["k8s-worker/0", "k8s-worker/1"])
    assert not leaving.socket_answers(), "the removed unit's k8sd still answers"


def test_removing_a_worker_unit_removes_its_node(deployment: Deployment):
    leaving = deployment.nodes["k8s-worker/0"]
    deployment.remove_unit("k8s-worker/0")
    removed = deployment.removed["k8s-worker/0"]
    assert removed.unit_status() == {"status": "maintenance", "message": "Removed from the cluster"}, removed.report()
    assert "snap remove k8s --purge" in removed.workload_calls()
    assert f"k8s remove-node {leaving.name}" in deployment.unit("k8s/0").workload_calls()
    deployment.model.until_active(list(deployment.model.units.values()))
    deployment.check(["k8s/0", "k8s/2"], ["k8s-worker/1"])
    assert not leaving.socket_answers(), "the removed worker's k8sd still answers"
