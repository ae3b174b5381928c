"""Certificate lifecycle on real single-node clusters: certs-status, refresh-certs (local and
external), automatic renewal of short-lived certificates, crash safety of a refresh, an external
(intermediate) CA, and online CA rotation under continuous API traffic.

Every check goes through an independent tool: openssl (s_client, verify, pkey), kubectl,
Python's ssl module, the official Python client.

Nodes: `crt` (module-wide: status, refresh, CA rotation), and one node per test for the cases
that need a special start (`crash`, `renew`, `xca`, `rej`); each is removed when its test ends.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from certs_helpers import (
    KUBECONFIG_NAMES,
    Probe,
    cert_facts,
    cert_key_pairs,
    expired_ca,
    first_pem,
    intermediate_ca,
    k8sd_log_records,
    kubeconfig_request,
    kubectl_as,
    mismatched_pairs,
    root_ca,
    served_chain,
    served_cert,
    start_k8sd_with_env,
    wait_for,
)
from pkitools import ec_key, openssl, self_signed_ca, signed_cert
from testbed import K8S, diff_snapshots, tree_snapshot

LEAVES = ["apiserver", "kubelet", "apiserver-kubelet-client", "front-proxy-client", "apiserver-etcd-client",
          "k8sd-etcd-client", "etcd-server", "etcd-peer"]
CAS = ["ca", "client-ca", "front-proxy-ca", "etcd-ca"]
EXPECTED_USER = {
    "admin.conf": "kubernetes-admin",
    "controller.conf": "system:kube-controller-manager",
    "scheduler.conf": "system:kube-scheduler",
    "proxy.conf": "system:kube-proxy",
}


def openssl_date(text: str) -> datetime:
    return datetime.strptime(text, "%b %d %H:%M:%S %Y %Z").replace(tzinfo=timezone.utc)


def certs_status(node) -> dict:
    r = node.k8s("certs-status", "--output-format", "json")
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


def by_name(status: dict) -> dict[str, dict]:
    return {c["name"]: c for c in status["certificates"]}


def whoami(node, kubeconfig: Path) -> str:
    r = kubectl_as(node, kubeconfig, "auth", "whoami", "-o", "json")
    assert r.returncode == 0, f"{kubeconfig.name}: {r.stderr}"
    return json.loads(r.stdout)["status"]["userInfo"]["username"]


def assert_every_kubeconfig_works(node) -> None:
    for name in KUBECONFIG_NAMES:
        user = whoami(node, node.root / "etc/kubernetes" / name)
        assert user == EXPECTED_USER.get(name, f"system:node:{node.name}"), (name, user)
    # And one made by `k8s config` for the root netns, through Python's TLS stack.
    kc = node.kubeconfig()
    assert kubeconfig_request(kc.read_text(), f"{node.address}:6443", "/readyz") == 200


def bootstrap_ready(node, config=None) -> None:
    r = node.bootstrap(config)
    assert r.returncode == 0, f"bootstrap failed:\n{r.stdout}\n{r.stderr}\n{node.diagnostics()}"
    node.wait_ready()


def assert_api_ready(node, timeout: float = 180) -> None:
    node.wait_ready(timeout=timeout)
    wait_for("kubectl get ns", lambda: node.kubectl("get", "ns", "default", "-o", "name").returncode == 0, 120)


@pytest.fixture(scope="module")
def node(testbed):
    n = testbed.add_node("crt")
    n.start_k8sd()
    bootstrap_ready(n)
    yield n
    testbed.remove_node(n)


# ---- certs-status -------------------------------------------------------------------------------
def test_certs_status_lists_every_certificate_and_ca_with_its_expiry(node):
    st = certs_status(node)
    assert st["node"] == node.name and st["role"] == "control-plane"
    certs = by_name(st)
    assert set(LEAVES + KUBECONFIG_NAMES + CAS) <= set(certs), sorted(certs)
    now = datetime.now(timezone.utc)
    for name in LEAVES + KUBECONFIG_NAMES:
        c = certs[name]
        assert c["kind"] in ("certificate", "kubeconfig")
        expires = datetime.fromisoformat(c["expires"].replace("Z", "+00:00"))
        assert timedelta(days=364) < expires - now <= timedelta(days=365, minutes=1), (name, c["expires"])
        assert 364 * 86400 < c["residual-seconds"] <= 365 * 86400 + 60
        assert c["externally-managed"] is False
    for name in CAS:
        assert certs[name]["kind"] == "ca"
        assert certs[name]["residual-seconds"] > 9 * 365 * 86400
    # The issuing CA of each leaf, as openssl reads it from the file.
    for name in ["apiserver", "apiserver-etcd-client"]:
        facts = cert_facts(Path(certs[name]["file"]).read_text())
        assert facts.issuer_cn == certs[name]["ca"], (name, facts.issuer)
    assert certs["apiserver"]["ca"] == "kubernetes-ca"
    assert certs["admin.conf"]["ca"] == "kubernetes-ca-client"
    assert certs["etcd-server"]["ca"] == "etcd-ca"


def test_certs_status_yaml_and_table_agree_with_json(node):
    js = certs_status(node)
    r = node.k8s("certs-status", "--output-format", "yaml")
    assert r.returncode == 0, r.stderr
    ya = yaml.safe_load(r.stdout)
    strip = lambda st: {c["name"]: (c["kind"], c["expires"], c["ca"]) for c in st["certificates"]}  # noqa: E731
    assert strip(ya) == strip(js)
    table = node.k8s("certs-status")
    assert table.returncode == 0
    assert "CERTIFICATE AUTHORITY" in table.stdout and "EXPIRES" in table.stdout
    for name in LEAVES + CAS:
        assert re.search(rf"^{re.escape(name)}\s+\d{{4}}-", table.stdout, re.M), name


def test_certs_status_check_within_sets_the_exit_code(node):
    ok = node.k8s("certs-status", "--check-within", "30d")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = node.k8s("certs-status", "--check-within", "400d")
    assert bad.returncode != 0
    assert "expire within 400d" in bad.stderr and "apiserver" in bad.stderr, bad.stderr
    # The CAs (10 years) are not counted as expiring within 400 days.
    listed = bad.stderr.split(":", 1)[1]
    assert not re.search(r"\b(client-ca|etcd-ca|front-proxy-ca)\b", listed), listed


# ---- refresh-certs ------------------------------------------------------------------------------
SERVED_PORTS = {"kube-apiserver": 6443, "etcd": 2379, "kubelet": 10250, "k8sd": 6400}


def served_serials(node) -> dict[str, str]:
    return {name: served_cert(node.address, port).serial for name, port in SERVED_PORTS.items()}


def test_refresh_certs_reissues_and_the_apiserver_serves_the_new_certificate(node):
    """refresh-certs of every certificate while /readyz is probed 5 times a second: kube-apiserver and
    etcd reload theirs from disk, the controller manager, scheduler, kube-proxy and flanneld reload
    their client certificates (their kubeconfigs name the files): none of them restarts, and the
    probe sees at most one failure. Only the kubelet restarts, for its serving certificate."""
    before = served_cert(node.address)
    served_before = served_serials(node)
    reloading = ("kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler", "kube-proxy", "flanneld")
    pids_before = {s: node.service_pid(s) for s in reloading if node.service_pid(s)}
    assert {"kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler", "kube-proxy"} <= set(pids_before), pids_before
    before_files = {n: cert_facts(first_pem(c)).serial for n, (c, _) in cert_key_pairs(node).items()}
    server = f"{node.address}:6443"

    def readyz():
        status = kubeconfig_request(node.admin_conf.read_text(), server, "/readyz", timeout=5)
        if status != 200:
            raise RuntimeError(f"HTTP {status}")
        return status

    probe = Probe("readyz", readyz, interval=0.2).start()
    wait_for("the probe's first answer", lambda: probe.results, 30, interval=0.2)
    t0 = time.time()
    r = node.k8s("refresh-certs", "--expires-in", "30d")
    took = time.time() - t0
    wait_for("two successful probes after refresh-certs", lambda: sum(1 for x in probe.results if x.t > t0 + took and x.ok) >= 2, 120, interval=0.2)
    probe.stop()
    assert r.returncode == 0, r.stdout + r.stderr + node.diagnostics()
    during = [x for x in probe.results if x.t >= t0]
    print(f"\nrefresh-certs --expires-in 30d took {took:.1f} s: {r.stdout.strip()}\n"
          f"  {probe.summary()}; longest gap between successes {probe.longest_gap():.2f} s")
    assert "Refreshed" in r.stdout
    assert len(during) >= 5 * took * 0.5, f"the probe ran too rarely: {len(during)} requests in {took:.1f} s"
    assert len([x for x in during if not x.ok]) <= 1, probe.summary()
    pids_after = {s: node.service_pid(s) for s in pids_before}
    assert pids_after == pids_before, f"these reload their certificates; they must not restart: {pids_before} -> {pids_after}"
    assert "Restarted: kubelet." in r.stdout, r.stdout  # its serving certificate; nothing else
    assert_api_ready(node)

    # Every server now serves its new certificate (read from the live socket), except k8sd's cluster
    # identity: it is pinned by fingerprint in the membership records and not part of refresh-certs.
    disk = {"kube-apiserver": node.pki / "apiserver.crt", "etcd": node.pki / "etcd/server.crt",
            "kubelet": node.root / "var/lib/kubelet/pki/kubelet-server-current.pem"}
    for name, path in disk.items():
        wait_for(f"{name} to serve a new certificate", lambda: served_cert(node.address, SERVED_PORTS[name]).serial != served_before[name], 90)
        assert served_cert(node.address, SERVED_PORTS[name]).serial == cert_facts(first_pem(path.read_text())).serial, name
    assert served_cert(node.address, SERVED_PORTS["k8sd"]).serial == served_before["k8sd"]

    after = wait_for("the apiserver to serve a new certificate",
                     lambda: (lambda f: f if f.serial != before.serial else None)(served_cert(node.address)), 90)
    expiry = openssl_date(after.not_after) - datetime.now(timezone.utc)
    assert timedelta(days=29, hours=23) < expiry <= timedelta(days=30, minutes=5), after.not_after
    assert after.issuer_cn == before.issuer_cn == "kubernetes-ca"
    # What is served is what is on disk.
    assert after.serial == cert_facts((node.pki / "apiserver.crt").read_text()).serial

    # Every leaf file and kubeconfig was re-issued, and each still matches its key.
    after_files = {n: cert_facts(first_pem(c)).serial for n, (c, _) in cert_key_pairs(node).items()}
    for name, serial in before_files.items():
        if name.endswith("ca.crt"):
            assert after_files[name] == serial, f"{name}: the CA must not change"
        else:
            assert after_files[name] != serial, f"{name} was not re-issued"
    assert mismatched_pairs(node) == []

    # certs-status agrees (30 days left now) and every kubeconfig still authenticates.
    assert node.k8s("certs-status", "--check-within", "29d").returncode == 0
    assert node.k8s("certs-status", "--check-within", "31d").returncode != 0
    assert_every_kubeconfig_works(node)


def test_refresh_certs_of_one_certificate_leaves_the_others(node):
    pairs = cert_key_pairs(node)
    r = node.k8s("refresh-certs", "--expires-in", "90d", "--certificates", "apiserver", "--extra-sans", "api.example.test")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Restarted" not in r.stdout, "the apiserver reloads its serving certificate; nothing must restart"
    now = cert_key_pairs(node)
    changed = sorted(n for n in pairs if pairs[n] != now[n])
    assert changed == ["apiserver.crt"], changed
    san = openssl("x509", "-noout", "-ext", "subjectAltName", input=now["apiserver.crt"][0])
    assert "DNS:api.example.test" in san
    wait_for("the apiserver to reload its certificate",
             lambda: served_cert(node.address).serial == cert_facts(now["apiserver.crt"][0]).serial, 90)
    unknown = node.k8s("refresh-certs", "--expires-in", "90d", "--certificates", "no-such-cert")
    assert unknown.returncode != 0 and "no-such-cert" in unknown.stderr


# ---- CA rotation under load -----------------------------------------------------------------------
def test_ca_rotation_keeps_the_api_available(node, tmp_path):
    """Probes run every 100 ms during `k8s rotate-certs-ca`:
    - fresh: admin.conf re-read before each request, new TLS connection (a new kubectl): 0 failures;
    - old-new-conn: the admin.conf from before the rotation, new TLS connection each time;
    - old-long-lived: one Python client made from the old admin.conf before the rotation."""
    from kubernetes import client as kclient
    from kubernetes import config as kconfig

    server = f"{node.address}:6443"
    old_text = node.admin_conf.read_text()
    old_copy = tmp_path / "old-admin.conf"
    old_copy.write_text(old_text.replace("https://127.0.0.1:6443", f"https://{server}"))
    old_api = kconfig.new_client_from_config(config_file=str(old_copy))
    old_core = kclient.CoreV1Api(old_api)
    old_ca_cn = cert_facts((node.pki / "ca.crt").read_text()).subject

    def fresh():
        status = kubeconfig_request(node.admin_conf.read_text(), server, "/api/v1/namespaces/default", timeout=10)
        if status != 200:
            raise RuntimeError(f"HTTP {status}")
        return status

    def old_new_conn():
        status = kubeconfig_request(old_text, server, "/api/v1/namespaces/default", timeout=10)
        if status != 200:
            raise RuntimeError(f"HTTP {status}")
        return status

    def old_long_lived():
        return old_core.read_namespace("default", _request_timeout=10).metadata.name

    probes = [Probe("fresh", fresh), Probe("old-new-conn", old_new_conn), Probe("old-long-lived", old_long_lived)]
    for p in probes:
        p.start()
    time.sleep(2)
    steps: dict[str, float] = {}
    t_start = time.time()
    proc = subprocess.Popen([str(K8S), "rotate-certs-ca"], env=node.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err_lines: list[str] = []

    def read_stderr():
        for line in proc.stderr:
            err_lines.append(line)
            m = re.match(r"rotate-certs-ca: ([\w-]+)", line)
            if m:
                steps[{"Adding": "trust", "Re-issuing": "reissue", "Retiring": "retire"}.get(m.group(1), m.group(1))] = time.time()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        out = proc.stdout.read()
        rc = proc.wait(timeout=600)
    finally:
        reader.join(timeout=10)
    t_end = time.time()
    time.sleep(3)
    for p in probes:
        p.stop()
    old_api.close()

    rel = lambda t: f"{t - t_start:+.2f} s" if t else "never"  # noqa: E731
    report = [f"rotate-certs-ca took {t_end - t_start:.1f} s; steps: " + ", ".join(f"{k} at {rel(v)}" for k, v in steps.items())]
    for p in probes:
        first = p.first_failure_after(t_start)
        report.append(f"  {p.summary()}; first failure {rel(first.t) if first else 'never'}; longest gap between successes {p.longest_gap():.2f} s")
    print("\n" + "\n".join(report))
    assert rc == 0, out + "".join(err_lines) + node.diagnostics()
    assert set(steps) == {"trust", "reissue", "retire"}, err_lines

    fresh_p, old_p, long_p = probes
    assert fresh_p.failures == [], fresh_p.summary()
    assert len(fresh_p.results) > 10
    # The old kubeconfig works at least until the re-issue step begins (its CA is cross-signed).
    first_old = old_p.first_failure_after(t_start)
    assert first_old is None or first_old.t >= steps["reissue"], f"old kubeconfig failed before re-issue: {first_old}"
    first_long = long_p.first_failure_after(t_start)
    assert first_long is None or first_long.t >= steps["reissue"], f"old client failed before re-issue: {first_long}"

    # After: new CAs everywhere, the apiserver serves a leaf of the new CA, the old kubeconfig is refused.
    certs = by_name(certs_status(node))
    for ca in ["ca", "client-ca", "front-proxy-ca", "kubelet-ca"]:
        assert re.search(r"-\d{8}T\d{4}$", certs[ca]["subject"]), (ca, certs[ca]["subject"])
    assert certs["etcd-ca"]["subject"] == "etcd-ca", "the etcd CA is not part of the online rotation"
    new_ca_pem = (node.pki / "ca.crt").read_text()
    assert len([1 for _ in re.finditer("BEGIN CERTIFICATE", new_ca_pem)]) == 1, "the old CA is still in the bundle"
    new_ca = cert_facts(new_ca_pem)
    assert new_ca.subject != old_ca_cn
    chain = served_chain(node.address)
    leaf = cert_facts(chain[0])
    assert leaf.issuer == new_ca.subject, (leaf.issuer, new_ca.subject)
    assert certs["apiserver"]["ca"] == new_ca.issuer_cn
    ca_file = tmp_path / "new-ca.crt"
    ca_file.write_text(new_ca_pem)
    leaf_file = tmp_path / "served.crt"
    leaf_file.write_text(chain[0])
    assert "OK" in openssl("verify", "-CAfile", str(ca_file), str(leaf_file))
    with pytest.raises(Exception):
        assert kubeconfig_request(old_text, server, "/api/v1/namespaces/default") == 200
    assert_api_ready(node)
    assert_every_kubeconfig_works(node)
    assert mismatched_pairs(node) == []


# ---- crash in the middle of a refresh -------------------------------------------------------------
# The journal and its roll-forward are file handling; the refresh that writes them signs as
# test_refresh_certs_reissues_and_the_apiserver_serves_the_new_certificate does (in FIPS mode too).
@pytest.mark.crypto_neutral
def test_a_crash_between_the_writes_of_a_refresh_leaves_a_consistent_set(testbed):
    node = testbed.add_node("crash")
    try:
        start_k8sd_with_env(node, {"K8S_TEST_CRASH_REFRESH_AT": "3"})
        bootstrap_ready(node)
        etc = node.root / "etc/kubernetes"
        before = tree_snapshot(etc)
        old = cert_key_pairs(node)

        r = node.k8s("refresh-certs", "--expires-in", "30d", timeout=120)
        assert r.returncode != 0, "k8sd was to kill itself during the commit"
        wait_for("k8sd to die", lambda: node.k8sd_proc.poll() is not None, 30, 0.2)

        journals = sorted(node.state_dir.glob("fileset-*.journal"))
        assert len(journals) == 1, journals
        moves = json.loads(journals[0].read_text())["moves"]
        assert len(moves) > 3
        # Three renames done, the rest pending: the on-disk set is mixed until recovery.
        done = [m for m in moves if not Path(m["from"]).exists()]
        pending = [m for m in moves if Path(m["from"]).exists()]
        assert len(done) == 3, done
        new_content = {m["to"]: Path(m["from"]).read_text() for m in pending}
        new_content.update({m["to"]: Path(m["to"]).read_text() for m in done})
        assert mismatched_pairs(node) != [], "the crash was expected to leave a certificate next to the wrong key"

        node.start_k8sd()  # no crash hook: k8sd rolls the journal forward at start
        assert not list(node.state_dir.glob("fileset-*.journal")), "the journal was not rolled forward"
        assert not list(etc.rglob("*.tmp-*")), "temporary files left behind"
        # Every file of the journal holds its new content; nothing else changed.
        for target, content in new_content.items():
            assert Path(target).read_text() == content, f"{target} is not the new version"
        touched = {str(Path(t).relative_to(etc)) for t in new_content}
        after = tree_snapshot(etc)
        others = [d for d in diff_snapshots(before, after) if d.split()[1].rstrip(":") not in touched]
        assert others == [], others
        assert mismatched_pairs(node) == []
        now = cert_key_pairs(node)
        renewed = sorted(n for n in old if old[n] != now[n])
        assert renewed and all(not n.endswith("ca.crt") for n in renewed), renewed
        for n in renewed:
            left = openssl_date(cert_facts(first_pem(now[n][0])).not_after) - datetime.now(timezone.utc)
            assert left < timedelta(days=31), (n, left)

        assert_api_ready(node)
        assert_every_kubeconfig_works(node)
    finally:
        testbed.remove_node(node)


# ---- automatic renewal ------------------------------------------------------------------------------
# The timer, the policy and the Event are backend-independent; the renewal itself is the refresh of
# test_refresh_certs_reissues_and_the_apiserver_serves_the_new_certificate (checked in FIPS mode too).
@pytest.mark.crypto_neutral
def test_short_lived_certificates_are_renewed_automatically(testbed):
    """lifetime 4m, renew-before 2m, check every 10 s. Leaves are back-dated 5 minutes, so their
    lifetime is 9 m and the renewal threshold max(9m/3, 2m) = 3 m: the first renewal is due about
    a minute after bootstrap."""
    node = testbed.add_node("renew")
    try:
        node.start_k8sd()
        bootstrap_ready(node, {"certificates": {"lifetime": "4m", "renew-before": "2m", "check-interval": "10s"}})
        first = by_name(certs_status(node))
        first_served = served_cert(node.address)
        left = datetime.fromisoformat(first["apiserver"]["expires"].replace("Z", "+00:00")) - datetime.now(timezone.utc)
        assert left <= timedelta(minutes=4), left
        probe = Probe("readyz", lambda: (lambda s: s if s == 200 else (_ for _ in ()).throw(RuntimeError(f"HTTP {s}")))(
            kubeconfig_request(node.admin_conf.read_text(), f"{node.address}:6443", "/readyz")), interval=0.2).start()
        t0 = time.time()
        try:
            def renewed():
                now = by_name(certs_status(node))
                return now if all(now[n]["expires"] > first[n]["expires"] for n in LEAVES + KUBECONFIG_NAMES if n in first) else None

            now = wait_for("every certificate to be renewed", renewed, 240, 2)
            took = time.time() - t0
            assert_api_ready(node)
            time.sleep(2)
        finally:
            probe.stop()
        print(f"\nrenewed {took:.0f} s after the first check; {probe.summary()}; longest /readyz gap {probe.longest_gap():.1f} s")

        served = served_cert(node.address)
        assert served.serial != first_served.serial
        assert openssl_date(served.not_after) > openssl_date(first_served.not_after)
        # k8sd logged the renewal ...
        logged = [r for r in k8sd_log_records(node) if r.get("message") == "renewed expiring certificates"]
        assert logged, "k8sd did not log the renewal"
        assert "apiserver" in logged[0]["certificates"]
        # ... and raised a Kubernetes Event before renewing.
        r = node.kubectl("get", "events", "-A", "--field-selector", "reason=CertificateExpirationWarning", "-o", "json")
        assert r.returncode == 0, r.stderr
        events = json.loads(r.stdout)["items"]
        assert events, "no CertificateExpirationWarning event"
        ev = events[0]
        assert ev["type"] == "Warning" and ev["involvedObject"]["kind"] == "Node" and ev["involvedObject"]["name"] == node.name
        assert "apiserver" in ev["message"]
        assert_every_kubeconfig_works(node)
    finally:
        testbed.remove_node(node)


# ---- an external (intermediate) CA ---------------------------------------------------------------
@pytest.fixture(scope="module")
def enterprise_pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("enterprise-pki")
    root = root_ca(d)
    inter = intermediate_ca(d, "k8s-intermediate", *root, cn="Example Kubernetes Intermediate CA")
    return {"dir": d, "root": root, "intermediate": inter}


def sans_of(pem: str) -> str:
    out = openssl("x509", "-noout", "-ext", "subjectAltName", input=pem)
    return out.splitlines()[1].strip().replace("IP Address:", "IP:")


@pytest.fixture(scope="module")
def xca(testbed, enterprise_pki):
    """A node whose cluster CA and client CA are the enterprise intermediate (with its key)."""
    int_crt, int_key = enterprise_pki["intermediate"]
    node = testbed.add_node("xca")
    node.start_k8sd()
    bootstrap_ready(node, {
        "ca-crt": int_crt.read_text(), "ca-key": int_key.read_text(),
        "client-ca-crt": int_crt.read_text(), "client-ca-key": int_key.read_text(),
    })
    yield node
    testbed.remove_node(node)


def test_an_intermediate_ca_signs_the_cluster(xca, enterprise_pki, tmp_path):
    node = xca
    root_crt, _ = enterprise_pki["root"]
    int_crt, _ = enterprise_pki["intermediate"]
    # The served certificate chains to the root through the intermediate (openssl verify).
    leaf = tmp_path / "served.crt"
    leaf.write_text(served_chain(node.address)[0])
    out = openssl("verify", "-CAfile", str(root_crt), "-untrusted", str(int_crt), str(leaf))
    assert out.strip().endswith("OK"), out
    assert cert_facts(leaf.read_text()).issuer == cert_facts(int_crt.read_text()).subject
    certs = by_name(certs_status(node))
    assert certs["ca"]["subject"] == "Example Kubernetes Intermediate CA"
    assert certs["ca"]["ca"] == "Example Root CA"
    assert certs["client-ca"]["subject"] == "Example Kubernetes Intermediate CA"
    assert certs["apiserver"]["ca"] == certs["admin.conf"]["ca"] == "Example Kubernetes Intermediate CA"
    assert certs["etcd-ca"]["subject"] == "etcd-ca"
    # Go clients (kubectl, the control plane) accept the chain.
    assert_every_kubeconfig_works(node)


def test_external_certificates_are_checked_then_installed(xca, enterprise_pki, tmp_path):
    """refresh-certs --external-certificates with an apiserver certificate from the enterprise PKI:
    bad ones (SANs, CA, key) are refused without a change, a good one is installed and served."""
    node = xca
    int_crt, int_key = enterprise_pki["intermediate"]
    current = (node.pki / "apiserver.crt").read_text()
    sans = sans_of(current)
    d = tmp_path / "ext"
    good = signed_cert(d, "good", int_crt, int_key, "/CN=kube-apiserver", usage="serverAuth", sans=sans)
    few_sans = signed_cert(d, "few-sans", int_crt, int_key, "/CN=kube-apiserver", usage="serverAuth", sans="DNS:kubernetes")
    foreign_ca = self_signed_ca(d / "foreign", "foreign", "Example Kubernetes Intermediate CA")
    foreign = signed_cert(d, "foreign-leaf", *foreign_ca, "/CN=kube-apiserver", usage="serverAuth", sans=sans)
    other_key = ec_key(d / "other.key")

    def install(crt: Path, key: Path) -> subprocess.CompletedProcess:
        text = yaml.safe_dump({"apiserver-crt": crt.read_text(), "apiserver-key": key.read_text()})
        return node.k8s("refresh-certs", "--external-certificates", "-", input=text)

    bad_cases = [
        ("wrong SANs", few_sans, "apiserver-crt", "SAN"),
        ("wrong CA", foreign, "apiserver-crt", "not signed"),
        ("key mismatch", (good[0], other_key), "apiserver-key", "does not match"),
    ]
    external_record = node.state_dir / "external-certificates.json"
    record_before = external_record.read_text() if external_record.exists() else None
    for what, (crt, key), field, needle in bad_cases:
        before = tree_snapshot(node.root / "etc/kubernetes")
        r = install(crt, key)
        msg = r.stdout + r.stderr
        assert r.returncode != 0, f"{what}: accepted"
        assert field in msg and needle in msg, f"{what}: {msg}"
        assert diff_snapshots(before, tree_snapshot(node.root / "etc/kubernetes")) == [], what
        assert (external_record.read_text() if external_record.exists() else None) == record_before, what

    r = install(*good)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "apiserver" in r.stdout
    assert (node.pki / "apiserver.crt").read_text() == good[0].read_text()
    wait_for("the apiserver to serve the external certificate",
             lambda: served_cert(node.address).serial == cert_facts(good[0].read_text()).serial, 90)
    certs = by_name(certs_status(node))
    assert certs["apiserver"]["externally-managed"] is True
    assert certs["kubelet"]["externally-managed"] is False
    # A local refresh leaves the external certificate alone and refuses to touch it by name.
    r = node.k8s("refresh-certs", "--expires-in", "30d", "--certificates", "apiserver")
    assert r.returncode != 0 and "externally managed" in r.stderr, r.stderr
    assert_every_kubeconfig_works(node)


def test_ca_rotation_is_refused_while_a_certificate_of_that_ca_is_external(xca):
    """The apiserver certificate is now externally managed (previous test): rotating the CA that
    signed it cannot re-issue it, so the rotation must be refused up front, changing nothing."""
    node = xca
    assert by_name(certs_status(node))["apiserver"]["externally-managed"] is True
    before = tree_snapshot(node.root / "etc/kubernetes")
    t0 = time.time()
    r = node.k8s("rotate-certs-ca", timeout=400)
    took = time.time() - t0
    msg = r.stdout + r.stderr
    print(f"\nrotate-certs-ca with an external apiserver certificate: rc {r.returncode} after {took:.0f} s: {msg.strip()[-300:]}")
    changes = diff_snapshots(before, tree_snapshot(node.root / "etc/kubernetes"))
    assert r.returncode != 0, "rotation went through although the apiserver certificate is external"
    assert "apiserver" in msg and "external" in msg, msg
    assert took < 30, f"refused only after {took:.0f} s"
    assert changes == [], changes


def test_k8sd_reaches_the_api_under_an_intermediate_ca(xca):
    """k8sd's own API client (re-encryption, events, CSR signer) trusts the intermediate as an anchor."""
    r = xca.k8s("secrets-encryption", "reencrypt", "--output-format", "json", timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["failed"] == 0


def test_bad_supplied_cas_are_refused_and_leave_the_root_untouched(testbed, enterprise_pki, tmp_path):
    root_crt, root_key = enterprise_pki["root"]
    int_crt, int_key = enterprise_pki["intermediate"]
    leaf_crt, _ = signed_cert(tmp_path, "leaf", int_crt, int_key, "/CN=not-a-ca", usage="serverAuth", sans="DNS:x")
    old_crt, old_key = expired_ca(tmp_path)
    cases = [
        ("ca-key does not match ca-crt", {"ca-crt": int_crt, "ca-key": root_key}, "ca-key", "does not match"),
        ("a leaf as ca-crt", {"ca-crt": leaf_crt, "ca-key": tmp_path / "leaf.key"}, "ca-crt", "not a CA"),
        ("an expired CA", {"ca-crt": old_crt, "ca-key": old_key}, "ca-crt", "expired"),
        ("client CA key mismatch", {"client-ca-crt": int_crt, "client-ca-key": root_key}, "client-ca-key", "does not match"),
        # Without its key k8sd cannot sign, so every leaf of that CA must be supplied: the first missing one is named.
        ("a CA without key and without leaves", {"ca-crt": int_crt}, "apiserver-crt", "without its key"),
    ]
    node = testbed.add_node("rej")
    try:
        node.start_k8sd()
        for what, files, key, needle in cases:
            before = tree_snapshot(node.root)
            r = node.bootstrap({k: Path(v).read_text() for k, v in files.items()}, timeout="60s")
            msg = r.stdout + r.stderr
            assert r.returncode != 0, f"{what}: accepted"
            assert key in msg and needle in msg, f"{what}: the message does not name {key!r} / {needle!r}: {msg}"
            changes = diff_snapshots(before, tree_snapshot(node.root))
            assert changes == [], f"{what}: K8S_ROOT changed: {changes}"
            assert node.status()["role"] == "none"
        bootstrap_ready(node)
        assert node.kubectl("get", "ns", "default", "-o", "name").returncode == 0
    finally:
        testbed.remove_node(node)
