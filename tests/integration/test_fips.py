"""FIPS mode on the test-built OpenSSL FIPS provider (not validated; same algorithm rules):
k8sd and the CLI run on the provider, every crypto operation goes through the OpenSSL backend,
k8sd's own port offers only approved TLS, the components carry the FIPS settings, and a host
without the provider is refused. The whole suite also runs in FIPS mode: tox -e integration-fips."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

import testbed as tb
from testbed import K8SD, TestBed, go_build_setting, process_env


@pytest.fixture(scope="module")
def fips_node(testbed: TestBed):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("K8S_TEST_FIPS", "1")
        mp.setenv("K8S_CRYPTO_AUDIT", "1")
        mp.setenv("K8S_LOG_LEVEL", "debug")
        node = testbed.add_node("fips")
        node.start_k8sd(timeout=60)
        r = node.bootstrap()
        assert r.returncode == 0, f"{r.stdout}\n{r.stderr}\n{node.diagnostics()}"
        node.wait_ready()
        yield node
        node.stop()
        testbed.remove_node(node)


def s_client(address: str, *args: str) -> subprocess.CompletedProcess:
    """The host openssl (default provider, so it can offer what FIPS forbids) against k8sd's port 6400."""
    return subprocess.run(
        ["openssl", "s_client", "-connect", f"{address}:6400", "-brief", *args],
        input="", capture_output=True, text=True, timeout=20,
        env={"PATH": "/usr/bin:/bin"},
    )


def test_status_reports_fips_mode_and_provider(fips_node):
    st = fips_node.status()
    assert st["fips"]["enabled"] is True
    assert "FIPS" in st["fips"]["provider"]
    assert st["fips"]["version"]
    assert any("K8S_FIPS" in r for r in st["fips"]["requested-by"])
    assert st["ready"] is True


def test_k8sd_port_offers_only_approved_tls(fips_node):
    ok = s_client(fips_node.address, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256")
    assert "Protocol version: TLSv1.2" in ok.stderr + ok.stdout, ok.stderr
    for args in (
        ["-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"],
        ["-tls1_3", "-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"],
        ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA"],
        ["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"],
        ["-tls1_2", "-curves", "X25519"],
    ):
        r = s_client(fips_node.address, *args)
        assert r.returncode != 0, f"k8sd accepted {args}: {r.stderr}"


def test_components_carry_the_fips_settings(fips_node):
    for svc in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        args = (fips_node.common / "args" / svc).read_text()
        suites = next(l for l in args.splitlines() if "cipher-suites=" in l).split("=", 1)[1].split(",")
        assert suites and all("_GCM_" in s and "ECDHE" in s for s in suites), suites
        # The running process has the setting in its environment.
        assert "fips140=on" in process_env(fips_node.service_pid(svc)).get("GODEBUG", "").split(","), svc


def test_go_components_run_their_fips_module_builds(fips_node):
    modules = fips_node.status()["fips"]["go-modules"]
    assert modules["etcd"].startswith("v1.0.0-") and modules["kubernetes"].startswith("v1.0.0-"), modules
    for svc in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        exe = os.readlink(f"/proc/{fips_node.service_pid(svc)}/exe")
        assert "-fips140-v1.0.0/" in exe, f"{svc} runs {exe}"
        assert go_build_setting(exe, "GOFIPS140") == modules["kubernetes" if svc != "etcd" else "etcd"]


def test_a_go_component_without_the_fips_module_is_refused(testbed: TestBed, tmp_path):
    """A component cache whose etcd is a Go binary built without the module (kube-bench, a test
    tool built the ordinary way, stands in for it): bootstrap names it and stops."""
    cache = tmp_path / "cache"
    etcd_bin = Path(tb.component_bin("etcd"))
    src_root = etcd_bin.parents[2]
    for comp in src_root.iterdir():
        (cache / comp.name).mkdir(parents=True)
        for entry in comp.iterdir():
            if entry != etcd_bin.parent:
                (cache / comp.name / entry.name).symlink_to(entry)
    fake = cache / "etcd" / etcd_bin.parent.name / "bin"
    fake.mkdir(parents=True)
    (fake.parent / ".complete").write_text("test\n")
    plain = Path(tb.component_bin("kube-bench")) / "kube-bench"
    assert go_build_setting(str(plain), "GOFIPS140") is None
    (fake / "etcd").symlink_to(plain)
    # Recorded as its recipe would, so that the checksum check passes and the FIPS check is what refuses it.
    subprocess.run(["bash", "-c", 'source "$1" && record_checksums "$2"', "_", str(tb.REPO / "snap/components/lib.sh"), str(fake.parent)], check=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("K8S_TEST_FIPS", "1")
        mp.setenv("K8S_COMPONENT_CACHE", str(cache))
        node = testbed.add_node("gofips")
        try:
            node.start_k8sd(timeout=60)
            r = node.bootstrap()
            assert r.returncode != 0
            assert "built without Go's FIPS 140-3 module" in r.stderr and "etcd" in r.stderr, r.stderr
            assert "snap/components/build-all.sh etcd" in r.stderr, r.stderr
            assert node.status()["role"] == "none"
            assert not (node.root / "etc/kubernetes/pki/ca.crt").exists(), "nothing may be left half-written"
        finally:
            node.stop()
            testbed.remove_node(node)


def test_every_crypto_operation_ran_in_the_openssl_backend(fips_node):
    entries = []
    for line in fips_node.log("k8sd").read_text().splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("message") == "crypto operation":
            entries.append(e)
    assert len(entries) >= 20, "bootstrap should have generated the whole PKI"
    assert {e["backend"] for e in entries} == {"openssl"}
    assert {"generateKeyPair", "createCertificate"} <= {e["operation"] for e in entries}


def test_fips_requested_without_a_provider_is_refused(testbed: TestBed):
    node = testbed.add_node("nofips")
    try:
        r = subprocess.run(
            node.nsenter("env", "K8S_FIPS=1", "OPENSSL_MODULES=/nonexistent/ossl-modules", "OPENSSL_CONF=/dev/null", str(K8SD)),
            capture_output=True, text=True, timeout=60,
        )
        assert r.returncode != 0
        assert "FIPS mode is requested" in r.stderr and "fips.so" in r.stderr, r.stderr
        assert not node.socket.exists(), "k8sd must not serve at all without FIPS"
        cli = subprocess.run(
            ["env", f"K8S_ROOT={node.root}", "K8S_FIPS=1", "OPENSSL_MODULES=/nonexistent/ossl-modules", str(tb.K8S), "status"],
            capture_output=True, text=True, timeout=60,
        )
        assert cli.returncode != 0 and "Refusing to run without FIPS" in cli.stderr
    finally:
        time.sleep(0.5)
        testbed.remove_node(node)


def test_a_fips_cluster_admits_only_fips_nodes(fips_node, testbed: TestBed, monkeypatch):
    """A node whose k8sd is not in FIPS mode is refused by the FIPS cluster before its token is
    used; and a join file asking for fips: true is refused by a non-FIPS k8sd before it calls out."""
    from membership_helpers import get_token, join

    token = get_token(fips_node, "plainw", worker=True)
    monkeypatch.delenv("K8S_TEST_FIPS")
    node = testbed.add_node("plainw")
    try:
        node.start_k8sd(timeout=60)
        r = join(node, token, {"fips": True}, timeout="60s")
        assert r.returncode != 0 and "fips: true is set but k8sd is not running in FIPS mode" in r.stderr, r.stderr
        r = join(node, token, timeout="60s")
        assert r.returncode != 0 and "this cluster runs in FIPS mode" in r.stderr, r.stderr
        assert node.status()["role"] == "none"
        listed = json.loads(fips_node.k8s("list-join-tokens", "--output-format", "json").stdout)
        assert any(t.get("name") == "plainw" for t in listed), f"the refused join must not use the token: {listed}"
    finally:
        node.stop()
        testbed.remove_node(node)


def test_a_fips_cluster_checks_what_it_can_of_a_joiner_that_says_fips(fips_node, testbed: TestBed, tmp_path):
    """`fips: true` is only a claim. The cluster checks what it can see of the joiner: the keys it
    presents (its cluster certificate, the TLS client certificate of the join connection, and its
    CSRs) must be approved ones, before the token is used; an honest claim goes through."""
    from join_attacker import Attacker
    from membership_helpers import etcd_state_keys, get_token

    token = get_token(fips_node, worker=True)
    before = {p: etcd_state_keys(fips_node, p) for p in ("/k8sd/nodes/", "/k8sd/tokens/", "/k8sd/joins/")}
    rsa1024 = ("-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024")
    for who, attacker in (
        ("cluster certificate", Attacker(tmp_path / "weak-id", "weakid", identity_key_args=rsa1024)),
        ("CSR", Attacker(tmp_path / "weak-csr", "weakcsr", key_args=rsa1024)),
    ):
        r = attacker.join(token, name="weak", address=testbed.gateway, fips=True)
        assert r.status == 400 and "1024" in r.error, f"a {who} with an RSA-1024 key: {r.body}"
        assert {p: etcd_state_keys(fips_node, p) for p in before} == before, f"the refused join ({who}) changed the cluster"
    ok = Attacker(tmp_path / "ok").join(token, name="fipsok", address=testbed.gateway, fips=True)
    assert ok.ok, ok.body
