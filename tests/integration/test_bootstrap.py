"""A fresh K8S_ROOT bootstraps into a working control plane: the apiserver is ready, objects
written with the Python client read back through the Python client, kubectl and etcd, and
`k8s status` reports the node in every output format."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import uuid

import pytest
import yaml

from testbed import component_bin, go_build_setting, process_env, tree_snapshot, diff_snapshots


def test_readyz_answers_ok_with_the_admin_kubeconfig(cluster, kube_client):
    resp = kube_client.api_client.call_api("GET", kube_client.api_client.configuration.host + "/readyz")
    assert resp.status == 200
    assert resp.read() == b"ok"
    # The same from inside the node, through `k8s kubectl` (admin.conf on 127.0.0.1).
    r = cluster.k8s("kubectl", "get", "--raw", "/readyz", netns=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_objects_written_with_the_python_client_read_back_everywhere(cluster, kube_client):
    from kubernetes import client

    ns = f"it-{uuid.uuid4().hex[:8]}"
    secret_value = f"s3cret-{uuid.uuid4().hex}"
    kube_client.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    kube_client.create_namespaced_secret(
        ns, client.V1Secret(metadata=client.V1ObjectMeta(name="creds"), string_data={"password": secret_value})
    )
    kube_client.create_namespaced_config_map(
        ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="settings"), data={"colour": "teal", "size": "3"})
    )

    # Python client
    assert kube_client.read_namespace(ns).status.phase == "Active"
    sec = kube_client.read_namespaced_secret("creds", ns)
    assert base64.b64decode(sec.data["password"]).decode() == secret_value
    assert kube_client.read_namespaced_config_map("settings", ns).data == {"colour": "teal", "size": "3"}

    # kubectl (the bundled binary, inside the node's netns)
    r = cluster.kubectl("get", "namespace", ns, "-o", "jsonpath={.metadata.name}")
    assert r.returncode == 0 and r.stdout == ns, r.stderr
    r = cluster.kubectl("-n", ns, "get", "secret", "creds", "-o", "json")
    assert r.returncode == 0, r.stderr
    assert base64.b64decode(json.loads(r.stdout)["data"]["password"]).decode() == secret_value
    r = cluster.kubectl("-n", ns, "get", "configmap", "settings", "-o", "json")
    assert json.loads(r.stdout)["data"] == {"colour": "teal", "size": "3"}

    # etcd holds them.
    keys = subprocess.run([*etcdctl(cluster), "get", "--prefix", "--keys-only", f"/registry/"], capture_output=True, text=True)
    assert keys.returncode == 0, keys.stderr
    for key in (f"/registry/namespaces/{ns}", f"/registry/secrets/{ns}/creds", f"/registry/configmaps/{ns}/settings"):
        assert key in keys.stdout.splitlines()


def etcdctl(cluster) -> list[str]:
    """etcdctl from the root netns with the apiserver's etcd client certificate."""
    return [
        str(component_bin("etcd") / "etcdctl"),
        f"--endpoints=https://{cluster.address}:2379",
        f"--cacert={cluster.pki / 'etcd/ca.crt'}",
        f"--cert={cluster.pki / 'apiserver-etcd-client.crt'}",
        f"--key={cluster.pki / 'apiserver-etcd-client.key'}",
        "--dial-timeout=5s",
        "--command-timeout=10s",
    ]


def test_secrets_are_not_stored_in_plain_text(cluster, kube_client):
    from kubernetes import client

    ns = f"it-{uuid.uuid4().hex[:8]}"
    value = f"plain-{uuid.uuid4().hex}"
    kube_client.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    kube_client.create_namespaced_secret(ns, client.V1Secret(metadata=client.V1ObjectMeta(name="s"), string_data={"v": value}))
    raw = subprocess.run([*etcdctl(cluster), "get", f"/registry/secrets/{ns}/s", "--print-value-only"], capture_output=True)
    assert raw.returncode == 0, raw.stderr
    assert raw.stdout, "the secret is missing from etcd"
    assert value.encode() not in raw.stdout, "the secret is stored in etcd in plain text"
    assert raw.stdout.startswith(b"k8s:enc:"), raw.stdout[:40]  # an encryption provider's envelope


def test_status_json_describes_the_node(cluster):
    st = cluster.status()
    assert st["ready"] is True
    assert st["node-name"] == cluster.name
    assert st["role"] == "control-plane"
    assert st["address"] == cluster.address
    assert st["ha"] is False
    assert st["datastore"]["type"] == "etcd"
    assert [(m["name"], m["address"], m["role"]) for m in st["datastore"]["members"]] == [(cluster.name, cluster.address, "voter")]
    assert set(st["versions"]) >= {"kubernetes", "etcd"}
    services = {s["name"]: s for s in st["services"]}
    # A control-plane node is a node too; flanneld runs with the network feature (on by default).
    assert set(services) == {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "containerd", "kubelet", "flanneld", "kube-proxy"}
    for s in services.values():
        assert s["state"] == "running", s
        assert isinstance(s["pid"], int) and s["pid"] > 0


def test_status_yaml_matches_json(cluster):
    as_json = cluster.status()
    r = cluster.k8s("status", "--output-format", "yaml")
    assert r.returncode == 0, r.stderr
    as_yaml = yaml.safe_load(r.stdout)
    # Volatile fields aside, both formats carry the same document.
    for doc in (as_json, as_yaml):
        for s in doc["services"]:
            s.pop("since", None)
    assert as_yaml == as_json


def test_status_plain_is_readable(cluster):
    r = cluster.k8s("status")
    assert r.returncode == 0, r.stderr
    fields = {}
    for line in r.stdout.splitlines():
        if ":" in line and not line.startswith(" "):
            k, _, v = line.partition(":")
            fields[k.strip()] = v.strip()
    assert fields["cluster status"] == "ready"
    assert fields["node"].startswith(f"{cluster.name} (control-plane, {cluster.address}")
    assert fields["high availability"] == "no"
    assert fields["datastore"].startswith("etcd")
    for svc in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        assert any(line.split()[:2] == [svc, "running"] for line in r.stdout.splitlines() if line.startswith("  ")), r.stdout


def test_status_rejects_an_unknown_output_format(cluster):
    r = cluster.k8s("status", "--output-format", "xml")
    assert r.returncode != 0
    assert "output-format" in (r.stdout + r.stderr)


@pytest.mark.parametrize("with_file", [False, True], ids=["no-file", "with-file"])
def test_bootstrap_on_a_bootstrapped_node_is_refused(cluster, with_file):
    before = tree_snapshot(cluster.root / "etc")
    r = cluster.bootstrap({"pod-cidr": "10.50.0.0/16"} if with_file else None, timeout="30s")
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert "already part of a cluster" in out, out
    assert f'"{cluster.name}"' in out, out
    assert "Bootstrapped" not in out
    assert diff_snapshots(before, tree_snapshot(cluster.root / "etc")) == []
    assert cluster.status()["ready"] is True


def test_the_daemon_refuses_a_second_bootstrap_too(cluster):
    """Bypassing the CLI's check: the API itself answers 409 and changes nothing."""
    r = subprocess.run(
        ["curl", "-sS", "--unix-socket", str(cluster.socket), "-X", "POST", "-H", "content-type: application/json",
         "-d", json.dumps({"config": "", "name": cluster.name}), "-w", "\n%{http_code}", "http://k8sd/1.0/k8sd/cluster"],
        capture_output=True, text=True, timeout=30,
    )
    body, _, code = r.stdout.rpartition("\n")
    assert code == "409", r.stdout
    assert "already part of a cluster" in json.loads(body)["error"]


def test_normal_mode_runs_the_same_binaries_with_fips140_off(cluster):
    """Normal mode: the Go components carry the FIPS module too (one build serves both modes), and
    k8sd turns its enforcement off, since such builds default to fips140=on."""
    if os.environ.get("K8S_TEST_FIPS") == "1":
        pytest.skip("the whole bed runs in FIPS mode")
    for svc in ("etcd", "kube-apiserver"):
        pid = cluster.service_pid(svc)
        assert "fips140=off" in process_env(pid).get("GODEBUG", "").split(","), svc
        assert (go_build_setting(os.readlink(f"/proc/{pid}/exe"), "GOFIPS140") or "").startswith("v1.0.0-"), svc
