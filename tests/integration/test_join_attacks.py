"""Joins driven by an attacker who holds a join token and nothing else (issue 13, findings 1, 2, 7).

The attacker is join_attacker.py: Python's ssl and the openssl CLI, speaking to the real cluster
API on port 6400 of a real control-plane node. Each test shows the attack refused and nothing
changed: no member, join record or token added or restored, no certificate in a reply, no file
in the control plane's PKI directory. The checks read etcd with etcdctl and the files directly.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import bootstrapped_node
from join_attacker import Attacker, Reply, token_payload
from membership_helpers import etcd_state_keys, get_token
from pkitools import openssl
from testbed import Node, TestBed, diff_snapshots, tree_snapshot

pytestmark = pytest.mark.slow

ATTACKER = Path(__file__).parent / "join_attacker.py"


@pytest.fixture(scope="module")
def cp(testbed: TestBed):
    node = bootstrapped_node(testbed, "jcp")
    yield node
    testbed.remove_node(node)


@pytest.fixture(scope="module")
def outsider(testbed: TestBed):
    """A netns of its own (k8sd never runs there): a second source address for the attacker."""
    node = testbed.add_node("jx")
    yield node
    testbed.remove_node(node)


def cluster_view(cp: Node) -> dict:
    return {
        "nodes": etcd_state_keys(cp, "/k8sd/nodes/"),
        "tokens": etcd_state_keys(cp, "/k8sd/tokens/"),
        "joins": etcd_state_keys(cp, "/k8sd/joins/"),
        "pki": tree_snapshot(cp.pki),
    }


def refused(r: Reply, *words: str) -> None:
    assert 400 <= r.status < 500, f"the join should have been refused, got {r.status}: {json.dumps(r.body)[:400]}"
    assert "certificates" not in r.metadata and "pki" not in r.metadata
    for w in words:
        assert w.lower() in r.error.lower(), r.error


def join_from(node: Node, workdir: Path, token: str, name: str, address: str) -> Reply:
    """The attacker's join made inside node's netns (its source address is node.address)."""
    req = {"workdir": str(workdir), "token": token, "name": name, "address": address}
    r = node.sh(sys.executable, str(ATTACKER), json.dumps(req), timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    return Reply(out["status"], out["body"])


def test_a_worker_cannot_claim_an_address_that_is_not_its_own(cp: Node, testbed: TestBed, tmp_path):
    token = get_token(cp, worker=True)
    attacker = Attacker(tmp_path / "addr")
    before = cluster_view(cp)
    foreign = str(ipaddress.ip_address(testbed.gateway) + 200)
    claims = {
        "::ffff:127.0.0.1": "IPv4-mapped",
        "::FFFF:7f00:1": "IPv4-mapped",
        f"::ffff:{cp.address}": "IPv4-mapped",
        "0.0.0.0": "unspecified",
        "::": "unspecified",
        "127.0.0.1": "loopback",
        "0:0:0:0:0:0:0:1": "loopback",
        "2001:DB8::1": "canonical",
        "2001:db8:0:0::1": "canonical",
        cp.address: "already used by node",
        foreign: "source address",
    }
    for address, why in claims.items():
        r = attacker.join(token, name="evil", address=address)
        refused(r, why)
        assert cluster_view(cp) == before, f"refusing {address} changed the cluster"
    # The address the connection really comes from is accepted (the honest case), once.
    ok = attacker.join(token, name="honest", address=testbed.gateway)
    assert ok.ok, ok.body
    assert set(ok.metadata["certificates"]) == {"kubelet.conf", "proxy.conf", "flannel.conf"}


def test_a_node_cannot_take_the_address_of_a_member(cp: Node, outsider: Node, tmp_path):
    """Uniqueness on its own: claims where the address is the connection's real source too."""
    token = get_token(cp, worker=True)
    before = cluster_view(cp)
    # From the control-plane node's own netns, as itself: the source matches, the address is taken.
    refused(join_from(cp, tmp_path / "same", token, "evil2", cp.address), "already used by node", cp.name)
    assert cluster_view(cp) == before
    # "honest" (first test) holds the bridge address; another netns cannot claim it.
    refused(join_from(outsider, tmp_path / "other", token, "evil3", cp.bed.gateway), "already used by node", "honest")
    assert cluster_view(cp) == before


def test_reserved_and_taken_names_are_refused(cp: Node, outsider: Node, tmp_path):
    token = get_token(cp, worker=True)
    before = cluster_view(cp)
    for name in ("kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "localhost", cp.name, "honest"):
        r = join_from(outsider, tmp_path / "names", token, name, outsider.address)
        refused(r, name)
        assert cluster_view(cp) == before, f"refusing the name {name} changed the cluster"
    # A token cannot even be issued for such a name.
    for name in ("kubernetes", "localhost"):
        r = cp.k8s("get-join-token", name, "--worker")
        assert r.returncode != 0 and "reserved" in r.stderr, r.stdout + r.stderr
    assert cluster_view(cp) == before


def _verifies(cert_pem: str, ca_file: Path) -> bool:
    r = subprocess.run(["openssl", "verify", "-CAfile", str(ca_file), "-partial_chain"], input=cert_pem, capture_output=True, text=True, timeout=30)
    return r.returncode == 0


def test_kubelet_serving_certificates_have_a_ca_no_client_trusts_for_the_apiserver(cp: Node, tmp_path):
    """A kubelet serving certificate, however obtained, is useless for impersonating the apiserver."""
    from certs_helpers import served_chain

    kubelet_ca = cp.pki / "kubelet-ca.crt"
    assert kubelet_ca.exists()
    assert (cp.pki / "kubelet-ca.key").stat().st_mode & 0o777 == 0o600
    serving = served_chain(cp.address, 10250)[0]
    assert _verifies(serving, kubelet_ca), "the kubelet's serving certificate is not issued by the kubelet CA"
    assert not _verifies(serving, cp.pki / "ca.crt"), "a kubelet serving certificate verifies against the CA clients trust for the apiserver"
    # What every kubeconfig (workers' included) trusts for the apiserver: the server CA only.
    kubelet_ca_pem = kubelet_ca.read_text().strip()
    for conf in ("admin.conf", "kubelet.conf", "proxy.conf", "flannel.conf"):
        doc = yaml.safe_load((cp.root / "etc/kubernetes" / conf).read_text())
        bundle = base64.b64decode(doc["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
        assert kubelet_ca_pem not in bundle, f"{conf} trusts the kubelet CA"
        assert _verifies(served_chain(cp.address, 6443)[0], _write(tmp_path / f"{conf}.ca", bundle))
    # kube-apiserver verifies kubelets with that CA, and it works: logs and exec go through it.
    args = (cp.root / "var/snap/k8s/common/args/kube-apiserver").read_text()
    assert f"--kubelet-certificate-authority={cp.pki / 'kubelet-ca.crt'}" in args.replace('"', "")
    r = cp.kubectl("get", "--raw", f"/api/v1/nodes/{cp.name}/proxy/healthz")
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr
    # The kubelet CA is listed with the other CAs (and so renewed, refreshed and rotated with them).
    listed = json.loads(cp.k8s("certs-status", "--output-format", "json").stdout)
    cas = {c["name"]: c for c in (listed.get("certificates", listed) if isinstance(listed, dict) else listed) if c.get("kind") == "ca"}
    assert "kubelet-ca" in cas and cas["kubelet-ca"]["subject"] != cas["ca"]["subject"], cas


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_worker_token_is_single_use_even_after_an_abort(cp: Node, outsider: Node, tmp_path):
    token = get_token(cp, worker=True)
    token_key = f"/k8sd/tokens/{token_payload(token)['n']}"
    workdir = tmp_path / "reuse"
    first = join_from(outsider, workdir, token, "reuse-a", outsider.address)
    assert first.ok, first.body
    assert set(first.metadata["certificates"]) == {"kubelet.conf", "proxy.conf", "flannel.conf"}
    assert token_key not in etcd_state_keys(cp, "/k8sd/tokens/")
    # The same identity (its cluster certificate) asks the cluster to undo the join.
    member = Attacker.__new__(Attacker)
    member.dir, member.crt, member.key, member.key_args = workdir, workdir / "attacker.crt", workdir / "attacker.key", ()
    before = cluster_view(cp)
    abort = member.as_member(token, "POST", "/1.0/k8sd/members/abort", {"name": "reuse-a"})
    assert abort.status in (403, 409), abort.body
    assert "remove-node" in abort.error
    promote = member.as_member(token, "POST", "/1.0/k8sd/members/promote", {"name": "reuse-a", "memberId": "1"})
    assert promote.status == 403, promote.body
    assert cluster_view(cp) == before
    assert "/k8sd/nodes/reuse-a" in before["nodes"], "the worker's record must stay, for remove-node to find"
    # The join left no record that could put the token back.
    assert token_key not in before["tokens"]
    assert "/k8sd/joins/reuse-a" not in before["joins"]
    # The token is spent: a second identity is refused.
    second = Attacker(tmp_path / "second", "second")
    r = second.join(token, name="reuse-b", address=cp.bed.gateway)
    refused(r, "not valid in this cluster")
    assert cluster_view(cp) == before
    # What the worker was told to trust for the apiserver: not the kubelet CA.
    kubelet_ca = (cp.pki / "kubelet-ca.crt").read_text().strip()
    assert kubelet_ca not in first.metadata["caCert"], "a worker must not trust the kubelet CA for the apiserver"


def test_the_operator_may_name_an_address_that_is_not_the_source(cp: Node, tmp_path):
    """Behind NAT a node joins with an address its connections do not come from: the operator names
    it on the token, and only that address (still unique and unicast) is accepted."""
    natted = str(ipaddress.ip_address(cp.bed.gateway) + 230)
    r = cp.k8s("get-join-token", "natw", "--worker", "--address", natted)
    assert r.returncode == 0, r.stdout + r.stderr
    token = r.stdout.strip().splitlines()[-1]
    listed = json.loads(cp.k8s("list-join-tokens", "--output-format", "json").stdout)
    entries = listed.get("tokens", listed) if isinstance(listed, dict) else listed
    assert any(t["name"] == "natw" and t.get("address") == natted for t in entries), listed
    attacker = Attacker(tmp_path / "nat")
    before = cluster_view(cp)
    refused(attacker.join(token, name="natw", address=str(ipaddress.ip_address(natted) + 1)), "source address")
    assert cluster_view(cp) == before
    ok = attacker.join(token, name="natw", address=natted)
    assert ok.ok, ok.body
    # A malformed or special address is refused when the token is issued.
    for bad in ("::ffff:127.0.0.1", "0.0.0.0", "not-an-ip"):
        r = cp.k8s("get-join-token", "natw2", "--worker", "--address", bad)
        assert r.returncode != 0 and "--address" in r.stderr, r.stdout + r.stderr
