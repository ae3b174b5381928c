"""Online CA rotation on a multi-node cluster: two control-plane nodes and a worker with a pod.

The tests run in order and share the cluster (module scope):
- with the worker's k8sd not answering, `k8s rotate-certs-ca` refuses up front, names the node
  and changes nothing;
- a rotation whose worker stops answering half-way stops with an error that names the phase and
  the node, stays recorded in etcd (joins are refused meanwhile), and the next run resumes it
  where it stopped; API probes against both API servers see no failed request throughout;
- afterwards every node holds only the new CAs (checked with openssl), both API servers serve a
  certificate of the new CA, the worker is Ready and `kubectl logs`/`exec` reach its pod (the
  kubelet's serving certificate and the API servers' kubelet client certificate are both new),
  and `k8s config` from the second control-plane node works.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from certs_helpers import Probe, all_pems, cert_facts, etcdctl, first_pem, k8sd_pid, kubeconfig_credentials, kubeconfig_request, served_chain
from membership_helpers import (
    etcd_state_keys,
    get_token,
    join,
    kill_pods_and_cgroups,
    safety_net,
    seed_images,
    unmount_under,
    wait_for,
    worker_join_config,
    require_node_components,
)
from pkitools import openssl
from testbed import K8S, Node, TestBed, component_bin, diff_snapshots, tree_snapshot

pytestmark = pytest.mark.slow

ROTATED_CA_FILES = {"ca": "ca.crt", "client-ca": "client-ca.crt", "front-proxy-ca": "front-proxy-ca.crt", "kubelet-ca": "kubelet-ca.crt"}
WORKER_CA_FILES = {"ca": "ca.crt", "client-ca": "client-ca.crt"}
CP_KUBECONFIGS = ["admin.conf", "controller.conf", "scheduler.conf"]
WORKER_KUBECONFIGS = ["kubelet.conf", "proxy.conf"]
# "rotate-certs-ca:   <phase> on <node> (<role>): <what it did>"
NODE_LINE = re.compile(r"rotate-certs-ca:\s+(trust|reissue|retire) on (\S+) \((control-plane|worker)\): (.*)")


@dataclass
class Cluster:
    bed: TestBed
    cp1: Node
    cp2: Node
    worker: Node
    old_cas: dict[str, str] = field(default_factory=dict)
    old_admin_conf: str = ""
    # What the rotation runs printed, and when.
    lines: list[tuple[float, str]] = field(default_factory=list)

    @property
    def nodes(self) -> list[Node]:
        return [self.cp1, self.cp2, self.worker]

    def kubectl_ok(self, *args: str, via: Node | None = None, timeout: float = 60) -> str:
        r = (via or self.cp1).kubectl(*args, timeout=timeout)
        assert r.returncode == 0, f"kubectl {' '.join(args)}: {r.stderr}"
        return r.stdout

    def node_ready(self, name: str) -> bool:
        node = json.loads(self.kubectl_ok("get", "node", name, "-o", "json"))
        return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", []))


@pytest.fixture(scope="module")
def ha(testbed: TestBed):
    require_node_components()
    c = Cluster(testbed, testbed.add_node("rcp1"), testbed.add_node("rcp2"), testbed.add_node("rw1"))
    try:
        for n in c.nodes:
            n.start_k8sd()
        seed_images(c.worker)
        r = c.cp1.bootstrap()
        assert r.returncode == 0, f"bootstrap failed:\n{r.stdout}\n{r.stderr}\n{c.cp1.diagnostics()}"
        c.cp1.wait_ready()
        r = join(c.cp2, get_token(c.cp1, c.cp2.name))
        assert r.returncode == 0, f"join of {c.cp2.name} failed:\n{r.stdout}\n{r.stderr}\n{c.cp2.diagnostics()}"
        c.cp2.wait_ready()
        r = join(c.worker, get_token(c.cp1, c.worker.name, worker=True), worker_join_config(c.worker))
        assert r.returncode == 0, f"worker join failed:\n{r.stdout}\n{r.stderr}\n{c.worker.diagnostics()}"
        wait_for("the worker node to be Ready", lambda: c.node_ready(c.worker.name), timeout=240, interval=2)
        yield c
    finally:
        for n in c.nodes:
            resume_k8sd(n)
        testbed.remove_nodes(c.nodes, cleanup=safety_net)


# ---- helpers ------------------------------------------------------------------------------------
def pause_k8sd(node: Node) -> int:
    """SIGSTOP: the node's k8sd accepts TCP connections but never answers (a hung or unreachable node)."""
    pid = k8sd_pid(node)
    assert pid, f"no k8sd pid on {node.name}"
    os.kill(pid, signal.SIGSTOP)
    return pid


def resume_k8sd(node: Node) -> None:
    pid = k8sd_pid(node)
    if pid:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


def etcd_value(cp: Node, key: str) -> str | None:
    r = etcdctl(cp, "get", key, "--print-value-only")
    assert r.returncode == 0, r.stderr
    return r.stdout.strip() or None


def subject_cn(pem: str) -> str:
    m = re.search(r"CN\s*=\s*([^,/]+)", cert_facts(pem).subject)
    assert m, cert_facts(pem).subject
    return m.group(1).strip()


def fingerprint(pem: str) -> str:
    return openssl("x509", "-noout", "-fingerprint", "-sha256", input=pem).strip().split("=", 1)[1]


def issued_by(leaf_pem: str, ca_pem: str, tmp: Path) -> bool:
    """openssl verify of the leaf against exactly this CA (nothing else trusted)."""
    ca, leaf = tmp / "ca.pem", tmp / "leaf.pem"
    ca.write_text(ca_pem)
    leaf.write_text(first_pem(leaf_pem))
    r = subprocess.run(["openssl", "verify", "-CAfile", str(ca), str(leaf)], capture_output=True, text=True)
    return r.returncode == 0


def pod_manifest(node: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "rot", "namespace": "default"},
        "spec": {
            "nodeName": node,
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


def logs_and_exec_work(ha: Cluster, via: Node) -> bool:
    logs = via.kubectl("logs", "rot", timeout=30)
    if logs.returncode != 0 or "hello-from-rot" not in logs.stdout:
        return False
    ex = via.kubectl("exec", "rot", "--", "echo", "exec-ok", timeout=30)
    return ex.returncode == 0 and "exec-ok" in ex.stdout


def run_rotation(ha: Cluster, on_line=None) -> tuple[int, str, str]:
    """`k8s rotate-certs-ca` on cp1, its stderr read line by line as it streams (on_line(line) per line)."""
    proc = subprocess.Popen([str(K8S), "rotate-certs-ca"], env=ha.cp1.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err: list[str] = []

    def read():
        for line in proc.stderr:
            ha.lines.append((time.time(), line.rstrip("\n")))
            err.append(line)
            if on_line:
                on_line(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    out = proc.stdout.read()
    rc = proc.wait(timeout=1200)
    reader.join(timeout=10)
    return rc, out, "".join(err)


def api_probe(name: str, kubeconfig: Callable[[], str], server: Node) -> Probe:
    def call():
        status = kubeconfig_request(kubeconfig(), f"{server.address}:6443", "/api/v1/namespaces/default", timeout=10)
        if status != 200:
            raise RuntimeError(f"HTTP {status}")
        return status

    return Probe(name, call, interval=0.25)


# ---- tests ---------------------------------------------------------------------------------------
def test_a_pod_runs_on_the_worker(ha: Cluster):
    r = ha.cp1.kubectl("apply", "-f", "-", input=json.dumps(pod_manifest(ha.worker.name)))
    assert r.returncode == 0, r.stderr
    wait_for("the pod to run", lambda: json.loads(ha.kubectl_ok("get", "pod", "rot", "-o", "json"))["status"].get("phase") == "Running", timeout=180, interval=2)
    wait_for("logs and exec through cp2", lambda: logs_and_exec_work(ha, ha.cp2), timeout=90, interval=2)
    ha.old_cas = {name: (ha.cp1.pki / f).read_text() for name, f in ROTATED_CA_FILES.items()}
    ha.old_admin_conf = ha.cp1.admin_conf.read_text()
    for name, pem in ha.old_cas.items():
        assert len(all_pems(pem)) == 1, f"{name}: one CA before any rotation"


def test_rotation_is_refused_while_a_node_does_not_answer_and_nothing_changes(ha: Cluster):
    before = {n.name: tree_snapshot(n.root / "etc/kubernetes") for n in ha.nodes}
    pki_before = etcd_value(ha.cp1, "/k8sd/pki/cluster")
    pause_k8sd(ha.worker)
    try:
        t0 = time.time()
        r = ha.cp1.k8s("rotate-certs-ca", timeout=300)
        took = time.time() - t0
    finally:
        resume_k8sd(ha.worker)
    msg = r.stdout + r.stderr
    print(f"\nrotate-certs-ca with {ha.worker.name}'s k8sd stopped: rc {r.returncode} after {took:.0f} s: {msg.strip()[-400:]}")
    assert r.returncode != 0, "the rotation started although a node does not answer"
    assert f"{ha.worker.name} (worker)" in msg, msg
    assert "remove-node" in msg and "nothing was changed" in msg, msg
    assert took < 120, f"refused only after {took:.0f} s"
    for n in ha.nodes:
        assert diff_snapshots(before[n.name], tree_snapshot(n.root / "etc/kubernetes")) == [], n.name
    assert etcd_value(ha.cp1, "/k8sd/pki/cluster") == pki_before
    assert etcd_state_keys(ha.cp1, "/k8sd/pki/") == ["/k8sd/pki/cluster"], "no rotation may be recorded"
    assert etcd_state_keys(ha.cp1, "/k8sd/locks/") == [], "the join lock must be released"


def test_a_rotation_that_stops_on_a_node_is_recorded_and_resumes_while_the_api_serves(ha: Cluster):
    old_admin = ha.old_admin_conf
    probes = [
        api_probe("fresh-cp1", lambda: ha.cp1.admin_conf.read_text(), ha.cp1),
        api_probe("fresh-cp2", lambda: ha.cp2.admin_conf.read_text(), ha.cp2),
        api_probe("old-admin-cp2", lambda: old_admin, ha.cp2),
    ]
    for p in probes:
        p.start()
    time.sleep(2)
    t_start = time.time()
    paused = threading.Event()

    def stop_worker_once_checked(line: str) -> None:
        # The worker answered the check; it stops answering before its turn in the trust phase.
        if "every node answers" in line and not paused.is_set():
            pause_k8sd(ha.worker)
            paused.set()

    try:
        rc, out, err = run_rotation(ha, stop_worker_once_checked)
        print(f"\nfirst run (worker stopped after the check): rc {rc}\n{err}")
        assert paused.is_set(), err
        assert rc != 0, "the rotation finished although the worker stopped answering"
        assert f'the trust phase failed on worker node "{ha.worker.name}"' in err, err
        # The CLI gives the command in this install's form (src/install.ts): `sudo … bin/k8s …` here.
        assert re.search(r'run "[^"]*\bk8s rotate-certs-ca" again', err), err
        record = json.loads(etcd_value(ha.cp1, "/k8sd/pki/ca-rotation") or "{}")
        assert record.get("phase") == "trust" and sorted(record.get("done", [])) == [ha.cp1.name, ha.cp2.name], {k: record.get(k) for k in ("phase", "done", "lastError")}
        assert record["lastError"]["node"] == ha.worker.name
        assert etcd_state_keys(ha.cp1, "/k8sd/locks/") == [], "a stopped rotation releases the join lock"

        # While the rotation is unfinished, no node joins (it would miss the trust phase).
        spare = ha.bed.add_node("rx1")
        try:
            spare.start_k8sd()
            r = join(spare, get_token(ha.cp1, spare.name, worker=True), worker_join_config(spare), timeout="120s")
            assert r.returncode != 0, "a worker joined during an unfinished CA rotation"
            assert "CA rotation" in r.stdout + r.stderr and "has not finished" in r.stdout + r.stderr, r.stdout + r.stderr
            assert f"/k8sd/nodes/{spare.name}" not in etcd_state_keys(ha.cp1, "/k8sd/nodes/")
        finally:
            ha.bed.remove_node(spare)
            kill_pods_and_cgroups(spare)
            unmount_under(spare.root)
    finally:
        resume_k8sd(ha.worker)

    try:
        rc, out, err = run_rotation(ha)
        print(f"\nsecond run (resumed): rc {rc}\n{out}{err}")
        assert rc == 0, out + err + ha.bed.diagnostics()
        t_end = time.time()
        time.sleep(3)
    finally:
        for p in probes:
            p.stop()
    assert "resuming the CA rotation" in err and "in its trust phase" in err, err
    assert "Rotated" in out and all(n.name in out for n in ha.nodes), out

    # Each phase ran exactly once on every node, each phase everywhere before the next began.
    done = [(t, m.group(1), m.group(2), m.group(3)) for t, line in ha.lines if (m := NODE_LINE.match(line))]
    assert sorted((ph, n) for _, ph, n, _ in done) == sorted((ph, n.name) for ph in ("trust", "reissue", "retire") for n in ha.nodes), done
    assert [ph for _, ph, _, _ in done] == ["trust"] * 3 + ["reissue"] * 3 + ["retire"] * 3, done
    assert {n: role for _, _, n, role in done} == {ha.cp1.name: "control-plane", ha.cp2.name: "control-plane", ha.worker.name: "worker"}
    phase_started = {ph: min(t for t, p, _, _ in done if p == ph) for ph in ("reissue", "retire")}
    retire_line = next(t for t, line in ha.lines if line.startswith("rotate-certs-ca: Retiring"))

    rel = lambda t: f"{t - t_start:+.1f} s"  # noqa: E731
    report = [f"rotation (both runs) took {t_end - t_start:.0f} s; retire began at {rel(retire_line)}"]
    report += [f"  {p.summary()}; longest gap {p.longest_gap():.1f} s" for p in probes]
    print("\n".join(report))
    fresh1, fresh2, old = probes
    assert fresh1.failures == [] and fresh2.failures == [], f"{fresh1.summary()}\n{fresh2.summary()}"
    assert len(fresh1.results) > 20 and len(fresh2.results) > 20
    # The kubeconfig from before the rotation keeps working until the old CAs retire.
    first_old = old.first_failure_after(t_start)
    assert first_old is None or first_old.t >= retire_line, f"the old kubeconfig failed before the retire phase: {first_old}"
    assert phase_started["reissue"] < phase_started["retire"]
    assert etcd_state_keys(ha.cp1, "/k8sd/pki/") == ["/k8sd/pki/cluster"], "a finished rotation leaves no record"
    assert etcd_state_keys(ha.cp1, "/k8sd/locks/") == []


def test_every_node_holds_only_the_new_cas(ha: Cluster, tmp_path):
    new = {name: (ha.cp1.pki / f).read_text() for name, f in ROTATED_CA_FILES.items()}
    old_fps = {fingerprint(pem) for pem in ha.old_cas.values()}
    for name, pem in new.items():
        assert len(all_pems(pem)) == 1, f"{name} on {ha.cp1.name}: the old CA is still in the bundle"
        assert fingerprint(pem) not in old_fps, f"{name} was not replaced"
        assert re.search(r"-\d{8}T\d{4}$", subject_cn(pem)), subject_cn(pem)
        assert subject_cn(pem) != subject_cn(ha.old_cas[name])
    for node, files in [(ha.cp2, ROTATED_CA_FILES), (ha.worker, WORKER_CA_FILES)]:
        for name, f in files.items():
            assert (node.pki / f).read_text().strip() == new[name].strip(), f"{f} on {node.name} differs from {ha.cp1.name}'s"
    # Kubeconfigs: only the new server CA is trusted, and the client certificate is from the new client CA.
    for node, names in [(ha.cp1, CP_KUBECONFIGS), (ha.cp2, CP_KUBECONFIGS), (ha.worker, WORKER_KUBECONFIGS)]:
        for kc in names:
            ca, cert, _ = kubeconfig_credentials(node.root / "etc/kubernetes" / kc)
            assert [fingerprint(p) for p in all_pems(ca)] == [fingerprint(new["ca"])], f"{kc} on {node.name} trusts {len(all_pems(ca))} CA(s)"
            assert issued_by(cert, new["client-ca"], tmp_path), f"{kc} on {node.name}: the client certificate is not from the new client CA"
    # Leaves on both control-plane nodes; the kubelet serving certificate on the worker.
    for node in (ha.cp1, ha.cp2):
        assert issued_by((node.pki / "apiserver.crt").read_text(), new["ca"], tmp_path), node.name
        assert issued_by((node.pki / "apiserver-kubelet-client.crt").read_text(), new["client-ca"], tmp_path), node.name
        assert issued_by((node.pki / "front-proxy-client.crt").read_text(), new["front-proxy-ca"], tmp_path), node.name
    serving = ha.worker.root / "var/lib/kubelet/pki/kubelet-server-current.pem"
    assert issued_by(serving.read_text(), new["kubelet-ca"], tmp_path), "the kubelet's serving certificate is not from the new kubelet CA"
    assert not issued_by(serving.read_text(), new["ca"], tmp_path), "the kubelet's serving certificate is from the CA clients trust for the apiserver"


def test_both_api_servers_serve_a_certificate_of_the_new_ca(ha: Cluster, tmp_path):
    new_ca = (ha.cp1.pki / "ca.crt").read_text()
    for node in (ha.cp1, ha.cp2):
        chain = wait_for(f"{node.name} to serve its certificate without the cross-signed CA", lambda: (c := served_chain(node.address)) and len(c) == 1 and c, timeout=90, interval=2)
        assert issued_by(chain[0], new_ca, tmp_path), f"{node.name} serves {cert_facts(chain[0]).issuer}"
    # The kubelet serves a certificate of the new kubelet CA (what the API servers verify for logs/exec).
    kubelet_leaf = served_chain(ha.worker.address, 10250)[0]
    assert issued_by(kubelet_leaf, (ha.cp1.pki / "kubelet-ca.crt").read_text(), tmp_path), cert_facts(kubelet_leaf).issuer
    # The kubeconfig from before the rotation is refused now: the old CAs are gone.
    with pytest.raises(Exception):
        assert kubeconfig_request(ha.old_admin_conf, f"{ha.cp2.address}:6443", "/api/v1/namespaces/default") == 200


def test_the_worker_is_ready_and_its_pod_answers_logs_and_exec(ha: Cluster):
    wait_for("the worker to be Ready", lambda: ha.node_ready(ha.worker.name), timeout=180, interval=2)
    for via in (ha.cp2, ha.cp1):
        wait_for(f"logs and exec through {via.name}", lambda: logs_and_exec_work(ha, via), timeout=180, interval=3)
    st = ha.worker.status()
    assert st["role"] == "worker" and st["ready"] is True, st


def test_k8s_config_from_the_second_control_plane_node_works(ha: Cluster):
    kc = ha.cp2.kubeconfig()
    assert kubeconfig_request(kc.read_text(), f"{ha.cp2.address}:6443", "/readyz") == 200
    r = subprocess.run([str(component_bin("kubernetes") / "kubectl"), f"--kubeconfig={kc}", "get", "nodes", "-o", "name"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert f"node/{ha.worker.name}" in r.stdout.split()
