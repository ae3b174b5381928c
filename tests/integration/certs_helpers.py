"""Helpers for the certificate and security tests (and tests/bench/certs.sh), on top of the test
bed in testbed.py: openssl-made CAs, what the apiserver serves, key/cert matching, raw etcd reads,
and API probes that run in the background while certificates change.

Everything is checked with independent tools: the openssl CLI, etcdctl, kubectl, Python's ssl.

Run as a script it is the probe of the benchmark:
    python3 certs_helpers.py probe --kubeconfig admin.conf --server 10.0.0.11:6443 \
        --path /readyz --interval 0.05 --out probe.log --duration 600
It appends "<unix time> <status or error>" lines until killed (or --duration runs out).
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pkitools import ec_key, openssl  # noqa: E402
from testbed import K8SD, Node, component_bin, wait_for  # noqa: E402,F401 (wait_for: for the tests that import it from here)

KUBECONFIG_NAMES = ["admin.conf", "controller.conf", "scheduler.conf", "proxy.conf", "kubelet.conf"]


# ---- openssl-made CAs ---------------------------------------------------------------------------
def root_ca(directory: Path, name: str = "root", cn: str = "Example Root CA") -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    key = ec_key(directory / f"{name}.key")
    crt = directory / f"{name}.crt"
    openssl(
        "req", "-x509", "-new", "-key", str(key), "-out", str(crt), "-days", "60", "-subj", f"/O=Example/CN={cn}",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )
    return crt, key


def intermediate_ca(directory: Path, name: str, root_crt: Path, root_key: Path, cn: str, days: int = 30) -> tuple[Path, Path]:
    """A CA (CA:TRUE, pathlen 0) signed by root: what an enterprise PKI hands a cluster."""
    key = ec_key(directory / f"{name}.key")
    csr, crt, ext = directory / f"{name}.csr", directory / f"{name}.crt", directory / f"{name}.ext"
    ext.write_text(
        "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\n"
    )
    openssl("req", "-new", "-key", str(key), "-out", str(csr), "-subj", f"/O=Example/OU=Kubernetes/CN={cn}")
    openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(root_crt), "-CAkey", str(root_key), "-CAcreateserial",
        "-out", str(crt), "-days", str(days), "-extfile", str(ext),
    )
    return crt, key


def expired_ca(directory: Path, name: str = "expired") -> tuple[Path, Path]:
    """A self-signed CA whose validity ended long ago (openssl ca takes explicit dates)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec_key(directory / f"{name}.key")
    csr, crt = directory / f"{name}.csr", directory / f"{name}.crt"
    db = directory / f"{name}-db"
    db.mkdir(exist_ok=True)
    (db / "index.txt").write_text("")
    (db / "serial").write_text("1000\n")
    conf = directory / f"{name}.cnf"
    conf.write_text(
        f"[ca]\ndefault_ca = x\n[x]\ndir = {db}\ndatabase = $dir/index.txt\nserial = $dir/serial\n"
        f"new_certs_dir = $dir\ndefault_md = sha256\npolicy = any\nunique_subject = no\ncopy_extensions = none\n"
        f"[any]\ncommonName = supplied\n[ext]\nbasicConstraints = critical,CA:TRUE\n"
        f"keyUsage = critical,keyCertSign,cRLSign\n"
    )
    openssl("req", "-new", "-key", str(key), "-out", str(csr), "-subj", f"/CN={name}-ca")
    openssl(
        "ca", "-batch", "-config", str(conf), "-selfsign", "-keyfile", str(key), "-in", str(csr), "-out", str(crt),
        "-startdate", "20200101000000Z", "-enddate", "20200201000000Z", "-extensions", "ext", "-notext",
    )
    return crt, key


# ---- certificate facts ----------------------------------------------------------------------------
@dataclass
class CertFacts:
    serial: str
    not_after: str
    issuer: str
    subject: str
    pem: str

    @property
    def issuer_cn(self) -> str:
        m = re.search(r"CN\s*=\s*([^,/]+)", self.issuer)
        return m.group(1).strip() if m else self.issuer


def cert_facts(pem: str) -> CertFacts:
    out = openssl("x509", "-noout", "-serial", "-enddate", "-issuer", "-subject", "-nameopt", "oneline", input=pem)
    kv = dict(line.split("=", 1) for line in out.strip().splitlines())
    return CertFacts(kv["serial"], kv["notAfter"], kv["issuer"].strip(), kv["subject"].strip(), pem)


def first_pem(text: str) -> str:
    m = re.search(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", text, re.S)
    assert m, "no certificate in the text"
    return m.group(0) + "\n"


def all_pems(text: str) -> list[str]:
    return [m + "\n" for m in re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", text, re.S)]


def served_chain(address: str, port: int = 6443, timeout: float = 30) -> list[str]:
    """The certificates the server sends in its TLS handshake (openssl s_client -showcerts)."""
    r = subprocess.run(
        ["openssl", "s_client", "-connect", f"{address}:{port}", "-showcerts", "-servername", "kubernetes"],
        input="", capture_output=True, text=True, timeout=timeout,
    )
    chain = all_pems(r.stdout)
    assert chain, f"openssl s_client got no certificate from {address}:{port}: {r.stderr[-500:]}"
    return chain


def served_cert(address: str, port: int = 6443) -> CertFacts:
    return cert_facts(served_chain(address, port)[0])


def pubkey_of_cert(pem: str) -> str:
    return openssl("x509", "-noout", "-pubkey", input=pem)


def pubkey_of_key(pem: str) -> str:
    return openssl("pkey", "-pubout", input=pem)


def kubeconfig_user_pems(user: dict) -> tuple[str, str]:
    """(client certificate, client key) PEMs of a kubeconfig user: embedded, or named by path (the
    kubeconfigs of clients that reload their certificate)."""
    if "client-certificate" in user:
        return Path(user["client-certificate"]).read_text(), Path(user["client-key"]).read_text()
    return base64.b64decode(user["client-certificate-data"]).decode(), base64.b64decode(user["client-key-data"]).decode()


def kubeconfig_credentials(path: Path) -> tuple[str, str, str]:
    """(CA bundle, client certificate, client key) PEMs of a kubeconfig."""
    doc = yaml.safe_load(Path(path).read_text())
    cert, key = kubeconfig_user_pems(doc["users"][0]["user"])
    return base64.b64decode(doc["clusters"][0]["cluster"]["certificate-authority-data"]).decode(), cert, key


def cert_key_pairs(node: Node) -> dict[str, tuple[str, str]]:
    """name -> (certificate PEM, key PEM) for every .crt/.key pair under pki/ and every kubeconfig."""
    pairs: dict[str, tuple[str, str]] = {}
    for crt in sorted(node.pki.rglob("*.crt")):
        key = crt.with_suffix(".key")
        rel = str(crt.relative_to(node.pki))
        if key.exists():  # leaves and CAs (a CA file may be a bundle: its first certificate is the CA)
            pairs[rel] = (crt.read_text(), key.read_text())
    for name in KUBECONFIG_NAMES:
        f = node.root / "etc/kubernetes" / name
        if f.exists():
            _, c, k = kubeconfig_credentials(f)
            pairs[name] = (c, k)
    return pairs


def mismatched_pairs(node: Node) -> list[str]:
    """Names whose certificate does not belong to its key (empty when the set is consistent)."""
    return [n for n, (c, k) in cert_key_pairs(node).items() if pubkey_of_cert(first_pem(c)) != pubkey_of_key(k)]


# ---- processes ------------------------------------------------------------------------------------
def start_k8sd_with_env(node: Node, env: dict[str, str], timeout: float = 30) -> None:
    """node.start_k8sd(), with extra environment variables (test hooks) for k8sd only."""
    console = node.workdir / "k8sd.console.log"
    out = open(console, "ab")
    extra = [f"{k}={v}" for k, v in env.items()]
    cmd = node.nsenter("env", *extra, str(K8SD))
    node.k8sd_proc = subprocess.Popen(
        cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, cwd=node.workdir
    )
    out.close()
    deadline = time.time() + timeout
    while time.time() < deadline:
        if node.socket_answers():
            return
        if node.k8sd_proc.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError(f"k8sd on {node.name} did not open {node.socket}:\n{node.diagnostics()}")


def k8sd_pid(node: Node) -> int | None:
    f = node.state_dir / "k8sd.pid"
    try:
        return int(f.read_text().strip())
    except (OSError, ValueError):
        return None


def kubectl_as(node: Node, kubeconfig: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """kubectl inside the node's netns with any kubeconfig (they point at 127.0.0.1:6443)."""
    kubectl = str(component_bin("kubernetes") / "kubectl")
    return node.sh(kubectl, f"--kubeconfig={kubeconfig}", *args, timeout=timeout)


def k8sd_log_records(node: Node) -> list[dict]:
    f = node.log("k8sd")
    out = []
    if f.exists():
        for line in f.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


# ---- raw etcd ---------------------------------------------------------------------------------
def etcdctl(node: Node, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """etcdctl inside the netns with the apiserver's etcd client certificate."""
    etcdctl_bin = str(component_bin("etcd") / "etcdctl")
    return node.sh(
        etcdctl_bin, "--endpoints=https://127.0.0.1:2379", f"--cacert={node.pki / 'etcd/ca.crt'}",
        f"--cert={node.pki / 'apiserver-etcd-client.crt'}", f"--key={node.pki / 'apiserver-etcd-client.key'}", *args,
        timeout=timeout,
    )


def etcd_secrets(node: Node) -> dict[str, bytes]:
    """Every key under /registry/secrets with its raw (stored) value."""
    r = etcdctl(node, "get", "--prefix", "/registry/secrets", "-w", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv["value"]) for kv in doc.get("kvs", [])}


# ---- API probes -------------------------------------------------------------------------------
def kubeconfig_request(kubeconfig_text: str, server: str, path: str, timeout: float = 3.0) -> int:
    """One request as a freshly started kubectl would make it: credentials read from the given
    kubeconfig text, a new TLS connection that verifies the server against the kubeconfig's CA,
    the server replaced by `server` (host:port reachable from here). Returns the HTTP status."""
    return kubeconfig_get(kubeconfig_text, server, path, timeout)[0]


def kubeconfig_get(kubeconfig_text: str, server: str, path: str, timeout: float = 3.0) -> tuple[int, bytes]:
    """kubeconfig_request() that also returns the body."""
    doc = yaml.safe_load(kubeconfig_text)
    user = doc["users"][0]["user"]
    cluster = doc["clusters"][0]["cluster"]
    ctx = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
    # Like Go (kubectl): any certificate in the bundle is a trust anchor, an intermediate CA too.
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    with tempfile.TemporaryDirectory() as d:
        cf, kf = Path(d) / "c", Path(d) / "k"
        cert, key = kubeconfig_user_pems(user)
        cf.write_text(cert)
        kf.write_text(key)
        ctx.load_cert_chain(cf, kf)
    host, _, port = server.rpartition(":")
    conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@dataclass
class ProbeResult:
    t: float
    ok: bool
    detail: str


@dataclass
class Probe:
    """Calls fn every `interval` seconds in a thread; fn returns normally for success."""

    name: str
    fn: Callable[[], object]
    interval: float = 0.1
    results: list[ProbeResult] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            t = time.time()
            try:
                detail = self.fn()
                self.results.append(ProbeResult(t, True, str(detail)))
            except Exception as e:
                self.results.append(ProbeResult(t, False, f"{type(e).__name__}: {e}".splitlines()[0][:200]))
            self._stop.wait(max(0.0, self.interval - (time.time() - t)))

    def start(self) -> "Probe":
        self._thread.start()
        return self

    def stop(self) -> "Probe":
        self._stop.set()
        self._thread.join(timeout=30)
        return self

    @property
    def failures(self) -> list[ProbeResult]:
        return [r for r in self.results if not r.ok]

    def first_failure_after(self, t0: float) -> ProbeResult | None:
        return next((r for r in self.results if r.t >= t0 and not r.ok), None)

    def longest_gap(self) -> float:
        return longest_gap([(r.t, r.ok) for r in self.results])

    def summary(self) -> str:
        fails = self.failures
        s = f"{self.name}: {len(self.results)} requests, {len(fails)} failed"
        if fails:
            s += f" (first at {fails[0].t:.2f}: {fails[0].detail}; last at {fails[-1].t:.2f})"
        return s


def longest_gap(samples: list[tuple[float, bool]]) -> float:
    """Longest time between two consecutive successful samples (0 with fewer than two)."""
    ok = [t for t, good in samples if good]
    return max((b - a for a, b in zip(ok, ok[1:])), default=0.0)


# ---- the benchmark's probe process ------------------------------------------------------------
def _probe_main(argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="certs_helpers.py probe")
    p.add_argument("--kubeconfig", required=True, help="re-read before every request (like a fresh kubectl)")
    p.add_argument("--server", required=True, help="host:port")
    p.add_argument("--path", default="/readyz")
    p.add_argument("--interval", type=float, default=0.05)
    p.add_argument("--duration", type=float, default=900, help="stop by itself after this many seconds")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    end = time.time() + a.duration
    with open(a.out, "a", buffering=1) as out:
        while not stop["now"] and time.time() < end:
            t = time.time()
            try:
                status = str(kubeconfig_request(Path(a.kubeconfig).read_text(), a.server, a.path, timeout=2.0))
            except Exception as e:
                status = type(e).__name__
            out.write(f"{t:.3f} {status}\n")
            time.sleep(max(0.0, a.interval - (time.time() - t)))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "probe":
        sys.exit(_probe_main(sys.argv[2:]))
    print(__doc__, file=sys.stderr)
    sys.exit(2)
