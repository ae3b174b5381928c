"""A hostile client of k8sd's cluster API (port 6400), written independently of k8sd's own client:
Python's ssl and the openssl CLI. It holds what an attacker with a join token holds (the token
text) and nothing else, and says whatever it likes in the join request.

Run in-process from the root netns (its source address is the bed's bridge address), or inside a
node's netns with `python3 join_attacker.py <json request>` (prints the JSON reply)."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import socket
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from pkitools import openssl, self_signed_leaf  # noqa: E402

WORKER_CLIENT_CERTS = ("kubelet.conf", "proxy.conf", "flannel.conf")


def token_payload(token: str) -> dict:
    body = token[len("k8sj1_"):].rsplit(".", 1)[0]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


@dataclass
class Reply:
    status: int
    body: dict

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def error(self) -> str:
        return str(self.body.get("error", ""))

    @property
    def metadata(self) -> dict:
        return self.body.get("metadata") or {}


class Attacker:
    """An identity (a self-signed cluster certificate) and the calls an attacker can make with it."""

    def __init__(self, workdir: Path, name: str = "attacker", key_args: tuple[str, ...] = (), identity_key_args: tuple[str, ...] = ()) -> None:
        """key_args: openssl genpkey arguments for the CSR keys; identity_key_args: for the cluster
        certificate's key (both EC P-256 by default)."""
        workdir.mkdir(parents=True, exist_ok=True)
        self.dir = workdir
        if identity_key_args:
            self.key = workdir / f"{name}.key"
            self.crt = workdir / f"{name}.crt"
            openssl("genpkey", *identity_key_args, "-out", str(self.key))
            openssl("req", "-x509", "-new", "-key", str(self.key), "-out", str(self.crt), "-days", "30", "-subj", f"/CN={name}")
        else:
            self.crt, self.key = self_signed_leaf(workdir, name)
        self.key_args = key_args

    @property
    def cluster_cert(self) -> str:
        return self.crt.read_text()

    def csr(self, name: str, subject: str) -> str:
        """A certificate request with a fresh key (EC P-256 unless key_args say otherwise)."""
        key = self.dir / f"{name}.key"
        openssl("genpkey", *(self.key_args or ("-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")), "-out", str(key))
        return openssl("req", "-new", "-key", str(key), "-subj", subject)

    def worker_csrs(self, node: str) -> dict[str, str]:
        subjects = {"kubelet.conf": f"/O=system:nodes/CN=system:node:{node}", "proxy.conf": "/CN=system:kube-proxy", "flannel.conf": "/CN=k8sd:network"}
        return {c: self.csr(f"{node}-{c}", subjects[c]) for c in WORKER_CLIENT_CERTS}

    def call(self, endpoint: str, fingerprint: str, method: str, path: str, body: dict | None, timeout: float = 60) -> Reply:
        host, port = endpoint.rsplit(":", 1)
        host = host.strip("[]")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # pinned below, as k8sd's own client does
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # an attacker may present a weak key of its own
        ctx.load_cert_chain(str(self.crt), str(self.key))
        raw = socket.create_connection((host, int(port)), timeout=timeout)
        tls = ctx.wrap_socket(raw)
        presented = hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()
        if presented != fingerprint:
            tls.close()
            raise RuntimeError(f"{endpoint} is not the cluster of the token (fingerprint {presented})")
        conn = http.client.HTTPSConnection(host, int(port), timeout=timeout, context=ctx)
        conn.sock = tls
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers={"content-type": "application/json"})
        resp = conn.getresponse()
        data = json.loads(resp.read() or b"{}")
        conn.close()
        return Reply(resp.status, data)

    def join(self, token: str, *, name: str, address: str, role: str = "worker", fips: bool | None = None, csrs: dict | None = None) -> Reply:
        p = token_payload(token)
        endpoint, fingerprint = p["e"][0]
        body: dict = {
            "token": {"name": p["n"], "secret": p["s"]},
            "role": role,
            "node": {"name": name, "address": address, "clusterCert": self.cluster_cert},
        }
        if role == "worker":
            body["csrs"] = csrs if csrs is not None else self.worker_csrs(name)
        if fips is not None:
            body["fips"] = fips
        return self.call(endpoint, fingerprint, "POST", "/1.0/k8sd/members/join", body)

    def as_member(self, token: str, method: str, path: str, body: dict | None = None) -> Reply:
        """A call on a member-only route with this identity (it is a member once a join succeeded)."""
        endpoint, fingerprint = token_payload(token)["e"][0]
        return self.call(endpoint, fingerprint, method, path, body)


def main(argv: list[str]) -> int:
    req = json.loads(argv[1])
    a = Attacker(Path(req["workdir"]), req.get("identity", "attacker"))
    r = a.join(req["token"], name=req["name"], address=req["address"], role=req.get("role", "worker"))
    print(json.dumps({"status": r.status, "body": r.body}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
