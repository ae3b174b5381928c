"""Issue 13, findings 3 and 6, driven as an attacker would on a real cluster.

Keys (finding 3): an attacker who holds the apiserver's etcd client certificate (or an etcd
snapshot) reads every key under k8sd's prefix; no private key may be there, in PEM or in DER
form, after bootstrap, during and after a CA rotation, after a control-plane join, and after an
old cluster's plaintext record was migrated. A Secret is not readable in an `etcdctl snapshot save`.

Cluster port (finding 6): callers without credentials are refused before their body is read,
header dribbling is cut off by the timeout, and concurrent unauthenticated requests beyond the cap
get 429; nothing is registered or consumed meanwhile.

The module's tests run in order on one cluster (cp1, joined later by cp2).
"""

from __future__ import annotations

import base64
import json
import re
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from certs_helpers import etcdctl, k8sd_pid
from membership_helpers import etcd_state_keys, get_token, join
from pkitools import openssl
from testbed import Node, TestBed, wait_for

pytestmark = pytest.mark.slow

PORT = 6400
CA_KEY_FILES = ["ca.key", "client-ca.key", "front-proxy-ca.key", "etcd/ca.key", "serviceaccount.key"]


@pytest.fixture(scope="module")
def cp(testbed: TestBed):
    cp1, cp2 = testbed.add_node("kp1"), testbed.add_node("kp2")
    for n in (cp1, cp2):
        n.start_k8sd()
    r = cp1.bootstrap()
    assert r.returncode == 0, f"bootstrap failed:\n{r.stdout}\n{r.stderr}\n{cp1.diagnostics()}"
    cp1.wait_ready()
    yield cp1, cp2
    testbed.remove_nodes((cp2, cp1))


# ---- what an attacker reads from etcd ------------------------------------------------------------
def k8sd_values(node: Node) -> dict[str, bytes]:
    """Every key under /k8sd/ with its raw value, read with the apiserver's etcd client certificate."""
    r = etcdctl(node, "get", "--prefix", "/k8sd/", "-w", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv["value"]) for kv in doc.get("kvs", [])}


def parses_as_der_private_key(data: bytes) -> bool:
    """openssl's own decoder: PKCS#8 or a traditional EC/RSA private key in DER."""
    if len(data) < 32:
        return False
    r = subprocess.run(["openssl", "pkey", "-inform", "DER", "-noout"], input=data, capture_output=True, timeout=30)
    return r.returncode == 0


def strings_in(doc) -> list[str]:
    if isinstance(doc, str):
        return [doc]
    if isinstance(doc, dict):
        return [s for v in doc.values() for s in strings_in(v)]
    if isinstance(doc, list):
        return [s for v in doc for s in strings_in(v)]
    return []


def private_keys_in(value: bytes) -> list[str]:
    """Ways the value reveals a private key: a PEM marker, or the value, a JSON string inside it,
    or a base64 run inside either of those parsing as a DER private key."""
    found = []
    if b"PRIVATE KEY" in value:
        found.append("PEM 'PRIVATE KEY' marker")
    candidates = [value]
    try:
        candidates += [s.encode() for s in strings_in(json.loads(value))]
    except (ValueError, UnicodeDecodeError):
        pass
    decoded = []
    for c in candidates:
        for run in re.findall(rb"[A-Za-z0-9+/_-]{40,}={0,2}", c):
            for decode in (base64.b64decode, base64.urlsafe_b64decode):
                try:
                    decoded.append(decode(run + b"=" * (-len(run) % 4)))
                except ValueError:
                    continue
    for i, c in enumerate(candidates + decoded):
        if parses_as_der_private_key(c):
            found.append(f"DER private key (candidate {i})")
    return found


def assert_no_private_key_in_etcd(node: Node) -> dict[str, bytes]:
    values = k8sd_values(node)
    assert "/k8sd/pki/cluster" in values, sorted(values)
    leaks = {k: f for k, v in values.items() if (f := private_keys_in(v))}
    assert not leaks, f"private keys readable under /k8sd/ with the apiserver's etcd client certificate: {leaks}"
    return values


def key_material(node: Node) -> dict[str, list[bytes]]:
    """The CA and service-account keys on the node's disk, as the byte strings a leak would contain."""
    out = {}
    for f in CA_KEY_FILES:
        pem = (node.pki / f).read_text()
        der = subprocess.run(["openssl", "pkey", "-outform", "DER"], input=pem.encode(), capture_output=True, check=True).stdout
        body = "".join(l for l in pem.splitlines() if "-----" not in l)
        out[f] = [der, base64.b64encode(der), body.encode(), body[:48].encode()]
    return out


# ---- finding 3: keys -----------------------------------------------------------------------------
def test_the_detector_finds_a_plain_key_in_pem_der_and_base64_form(cp):
    cp1, _ = cp
    pem = (cp1.pki / "ca.key").read_bytes()
    der = subprocess.run(["openssl", "pkey", "-outform", "DER"], input=pem, capture_output=True, check=True).stdout
    assert private_keys_in(json.dumps({"cas": {"ca": {"key": pem.decode()}}}).encode())
    assert private_keys_in(der)
    assert private_keys_in(json.dumps({"k": base64.b64encode(der).decode()}).encode())
    assert not private_keys_in((cp1.pki / "ca.crt").read_bytes())


def test_etcd_holds_no_private_key_after_bootstrap(cp):
    cp1, _ = cp
    values = assert_no_private_key_in_etcd(cp1)
    record = json.loads(values["/k8sd/pki/cluster"])
    # Every CA in the record (whatever the PKI table holds) has its key wrapped, and so has the service-account key.
    assert record["cas"], record
    for name, ca in record["cas"].items():
        assert ca["key"].startswith("k8sd-wrapped/v1:"), name
    assert record["serviceAccountKey"].startswith("k8sd-wrapped/v1:")
    key_file = cp1.state_dir / "pki-wrapping-key.json"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert json.loads(key_file.read_text())["id"] in record["serviceAccountKey"]


def test_an_etcd_snapshot_reveals_neither_a_secret_nor_a_ca_key(cp, tmp_path):
    cp1, _ = cp
    marker = f"top-secret-{time.time_ns()}"
    r = cp1.kubectl("create", "secret", "generic", "keys-probe", f"--from-literal=password={marker}")
    assert r.returncode == 0, r.stderr
    snap = tmp_path / "etcd.snapshot"
    r = etcdctl(cp1, "snapshot", "save", str(snap), timeout=120)
    assert r.returncode == 0, r.stderr
    data = snap.read_bytes()
    assert len(data) > 100_000
    # The snapshot is what etcd stores: the Secret is there, encrypted.
    assert b"/registry/secrets/default/keys-probe" in data
    assert marker.encode() not in data and base64.b64encode(marker.encode()) not in data
    assert b"PRIVATE KEY" not in data
    for f, forms in key_material(cp1).items():
        for form in forms:
            assert form not in data, f"{f} is readable in an etcd snapshot"
    cp1.kubectl("delete", "secret", "keys-probe")


def test_a_plaintext_record_from_an_older_k8sd_is_wrapped_on_start(cp):
    """Migration: an older k8sd left the keys in the clear; the new one wraps them when it starts,
    compacts the history, and the cluster keeps working with them (later tests rotate and join)."""
    cp1, _ = cp
    values = k8sd_values(cp1)
    record = json.loads(values["/k8sd/pki/cluster"])
    files = {"ca": "ca.key", "client-ca": "client-ca.key", "front-proxy-ca": "front-proxy-ca.key", "etcd-ca": "etcd/ca.key", "kubelet-ca": "kubelet-ca.key"}
    for name, ca in record["cas"].items():
        if "key" in ca:
            ca["key"] = (cp1.pki / files[name]).read_text()
    record["serviceAccountKey"] = (cp1.pki / "serviceaccount.key").read_text()
    r = etcdctl(cp1, "put", "/k8sd/pki/cluster", json.dumps(record))
    assert r.returncode == 0, r.stderr
    plaintext_rev = json.loads(etcdctl(cp1, "get", "/k8sd/pki/cluster", "-w", "json").stdout)["kvs"][0]["mod_revision"]
    assert b"PRIVATE KEY" in k8sd_values(cp1)["/k8sd/pki/cluster"]
    (cp1.state_dir / "pki-wrapping-key.json").unlink()

    cp1.stop()
    cp1.start_k8sd()
    cp1.wait_ready(timeout=300)
    wait_for("k8sd to wrap the plaintext record", lambda: b"PRIVATE KEY" not in k8sd_values(cp1)["/k8sd/pki/cluster"], timeout=120)
    assert_no_private_key_in_etcd(cp1)
    assert (cp1.state_dir / "pki-wrapping-key.json").stat().st_mode & 0o777 == 0o600
    old = etcdctl(cp1, "get", "/k8sd/pki/cluster", f"--rev={plaintext_rev}")
    assert old.returncode != 0 and "compacted" in old.stderr, f"the plaintext revision is still readable: {old.stdout[:200]}"
    log = cp1.log("k8sd").read_text()
    assert "wrapped CA keys that the datastore held in plaintext" in log


def test_a_ca_rotation_keeps_old_and_new_keys_wrapped(cp):
    cp1, _ = cp
    seen: dict[str, set[bytes]] = {}
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            try:
                for k, v in k8sd_values(cp1).items():
                    seen.setdefault(k, set()).add(v)
            except (AssertionError, json.JSONDecodeError, subprocess.TimeoutExpired):
                pass
            time.sleep(0.2)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        r = cp1.k8s("rotate-certs-ca", timeout=900)
    finally:
        stop.set()
        t.join(30)
    assert r.returncode == 0, f"rotate-certs-ca failed:\n{r.stdout}\n{r.stderr}\n{cp1.diagnostics()}"
    rotation = seen.get("/k8sd/pki/ca-rotation", set())
    assert rotation, "never saw the CA-rotation record in etcd during the rotation"
    for v in rotation:
        doc = json.loads(v)
        for side in ("old", "fresh"):
            for name, ca in doc[side].items():
                assert ca["key"].startswith("k8sd-wrapped/v1:"), (side, name)
    leaks = {k: f for k, vs in seen.items() for v in vs if (f := private_keys_in(v))}
    assert not leaks, f"private keys in etcd during the rotation: {leaks}"
    assert_no_private_key_in_etcd(cp1)
    cp1.wait_ready(timeout=300)


def test_a_control_plane_join_hands_over_the_wrapping_key_and_etcd_stays_clean(cp):
    cp1, cp2 = cp
    r = join(cp2, get_token(cp1, cp2.name))
    assert r.returncode == 0, f"join failed:\n{r.stdout}\n{r.stderr}\n{cp2.diagnostics()}"
    cp2.wait_ready(timeout=300)
    k1 = json.loads((cp1.state_dir / "pki-wrapping-key.json").read_text())
    f2 = cp2.state_dir / "pki-wrapping-key.json"
    assert f2.stat().st_mode & 0o777 == 0o600
    assert json.loads(f2.read_text())["id"] == k1["id"]
    # The joined node can use the wrapped keys: its certificates refresh, signed with the CA keys it unwraps.
    r = cp2.k8s("refresh-certs", "--expires-in", "1y", timeout=600)
    assert r.returncode == 0, f"refresh-certs on cp2:\n{r.stdout}\n{r.stderr}"
    assert_no_private_key_in_etcd(cp1)
    assert_no_private_key_in_etcd(cp2)


# ---- finding 6: the cluster port -----------------------------------------------------------------
def tls_context(cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the attacker does not care who answers
    if cert:
        ctx.load_cert_chain(*cert)
    return ctx


def attacker_cert(d: Path) -> tuple[Path, Path]:
    crt, key = d / "attacker.crt", d / "attacker.key"
    if not crt.exists():
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
                "-subj", "/CN=k8sd@attacker", "-keyout", str(key), "-out", str(crt))
    return crt, key


def connect(node: Node, cert: tuple[Path, Path] | None = None, timeout: float = 10) -> ssl.SSLSocket:
    raw = socket.create_connection((node.address, PORT), timeout=timeout)
    return tls_context(cert).wrap_socket(raw)


def head(method: str, path: str, length: int) -> bytes:
    return f"{method} {path} HTTP/1.1\r\nhost: k8sd\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n\r\n".encode()


def status_line(s: ssl.SSLSocket, timeout: float) -> str:
    s.settimeout(timeout)
    data = b""
    while b"\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n")[0].decode()


def membership_state(node: Node) -> tuple[list[str], list[str]]:
    return etcd_state_keys(node, "/k8sd/nodes/"), etcd_state_keys(node, "/k8sd/tokens/")


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def test_large_unauthenticated_bodies_are_refused_before_they_are_sent(cp, tmp_path):
    cp1, _ = cp
    before = membership_state(cp1)
    cert = attacker_cert(tmp_path)
    cases = [
        (None, "POST", "/1.0/k8sd/members/join", "403"),  # no client certificate at all
        (cert, "POST", "/1.0/k8sd/members/join", "413"),  # the token route: 64 KiB at most
        (cert, "POST", "/1.0/k8sd/members/promote", "403"),  # a member route, unknown certificate
        (cert, "POST", "/1.0/k8sd/ca-rotation/apply", "403"),  # control-plane-only route
    ]
    for c, method, path, want in cases:
        s = connect(cp1, c)
        t0 = time.time()
        s.sendall(head(method, path, 4 * 1024 * 1024))  # announce 4 MiB, send none of it
        line = status_line(s, timeout=5)
        s.close()
        assert line.startswith(f"HTTP/1.1 {want}"), f"{path} with {'a self-signed' if c else 'no'} certificate: {line!r} (the server waited for the body)"
        assert time.time() - t0 < 5
    assert membership_state(cp1) == before


def test_a_flood_of_large_chunked_bodies_does_not_grow_k8sd(cp, tmp_path):
    """50 senders each push a 4 MiB chunked body (all but its last chunk) and hold it there until
    all have: an k8sd that buffers what it is sent would now hold 200 MiB."""
    cp1, _ = cp
    pid = k8sd_pid(cp1)
    cert = attacker_cert(tmp_path)
    rss_before = rss_kib(pid)
    chunk = b"x" * 65536
    senders = 50
    all_sent = threading.Barrier(senders + 1)
    samples = [rss_before]
    stop = threading.Event()

    def flood():
        s = None
        try:
            s = connect(cp1, cert, timeout=60)
            s.sendall(b"POST /1.0/k8sd/members/join HTTP/1.1\r\nhost: k8sd\r\ntransfer-encoding: chunked\r\n\r\n")
            for _ in range(64):  # 4 MiB
                s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        except OSError:
            pass  # k8sd cut the body off and closed the connection: what it should do
        try:
            all_sent.wait(timeout=180)
        except threading.BrokenBarrierError:
            pass
        if s:
            s.close()

    def sample():
        while not stop.is_set():
            samples.append(rss_kib(pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    threads = [threading.Thread(target=flood, daemon=True) for _ in range(senders)]
    for t in threads:
        t.start()
    all_sent.wait(timeout=180)
    time.sleep(1)
    stop.set()
    sampler.join(5)
    for t in threads:
        t.join(30)
    growth_mib = (max(samples) - rss_before) / 1024
    assert growth_mib < 64, f"k8sd grew by {growth_mib:.0f} MiB while {senders} unauthenticated clients sent 4 MiB bodies"
    assert cp1.socket_answers(), "k8sd stopped answering"


def test_header_dribbling_is_cut_off(cp):
    cp1, _ = cp
    s = connect(cp1)
    t0 = time.time()
    closed_after = None
    request = b"GET /1.0 HTTP/1.1\r\nhost: k8sd\r\nx-slow: " + b"a" * 100
    try:
        for b in request:
            s.sendall(bytes([b]))
            time.sleep(0.5)
            if time.time() - t0 > 30:
                break
        s.settimeout(5)
        s.recv(4096)
    except OSError:
        pass
    closed_after = time.time() - t0
    s.close()
    assert closed_after < 25, f"the connection dribbling its headers stayed open {closed_after:.0f} s"


def test_concurrent_unauthenticated_requests_beyond_the_cap_get_429(cp, tmp_path):
    cp1, _ = cp
    before = membership_state(cp1)
    cert = attacker_cert(tmp_path)
    holders = []
    try:
        # Each holds a slot: a join request whose body never finishes.
        for _ in range(32):
            s = connect(cp1, cert)
            s.sendall(head("POST", "/1.0/k8sd/members/join", 1000) + b"{")
            holders.append(s)
        time.sleep(1)
        s = connect(cp1, cert)
        s.sendall(head("POST", "/1.0/k8sd/members/join", 2) + b"{}")
        line = status_line(s, timeout=5)
        s.close()
        assert line.startswith("HTTP/1.1 429"), line
    finally:
        for h in holders:
            h.close()
    # Slots come back when the holders go.
    def served():
        s = connect(cp1, cert)
        s.sendall(head("POST", "/1.0/k8sd/members/join", 2) + b"{}")
        line = status_line(s, timeout=5)
        s.close()
        return line.startswith("HTTP/1.1 400")

    wait_for("the untrusted slots to be released", served, timeout=30)
    assert membership_state(cp1) == before
