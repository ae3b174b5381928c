"""The cluster port under a flood of unauthenticated 4 MiB requests (see cluster-port.sh)."""

from __future__ import annotations

import argparse
import base64
import collections
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))

from membership_helpers import decode_token, get_token, join, kill_pods_and_cgroups, seed_images, unmount_under, worker_join_config  # noqa: E402
from testbed import TestBed  # noqa: E402

PORT = 6400
BODY = 4 * 1024 * 1024
CONCURRENCY = 200


def status_field(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tls(cert: tuple[Path, Path] | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(*cert)
    return ctx


def self_signed(d: Path, name: str) -> tuple[Path, Path]:
    crt, key = d / f"{name}.crt", d / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
                    "-subj", f"/CN=k8sd@{name}", "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True)
    return crt, key


def https_call(address: str, ctx: ssl.SSLContext, method: str, path: str, body: dict) -> tuple[int, dict]:
    import http.client

    c = http.client.HTTPSConnection(address, PORT, context=ctx, timeout=120)
    c.request(method, path, body=json.dumps(body), headers={"content-type": "application/json"})
    r = c.getresponse()
    out = json.loads(r.read() or b"{}")
    c.close()
    return r.status, out


def token_join(cp, name: str, address: str, work: Path) -> tuple[float, int, str]:
    """A worker's token-authenticated join as its k8sd sends it (cluster certificate, two CSRs), retried
    on 429 like k8sd's join client. Returns seconds, the last HTTP status and the error if any."""
    d = work / name
    d.mkdir(parents=True, exist_ok=True)
    crt, key = self_signed(d, name)
    csrs = {}
    for conf, subj in (("kubelet.conf", f"/O=system:nodes/CN=system:node:{name}"), ("proxy.conf", "/CN=system:kube-proxy"), ("flannel.conf", "/CN=k8sd:network")):
        subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", subj,
                        "-keyout", str(d / f"{conf}.key"), "-out", str(d / f"{conf}.csr")], check=True, capture_output=True)
        csrs[conf] = (d / f"{conf}.csr").read_text()
    payload, _ = decode_token(get_token(cp, name, worker=True))
    body = {"token": {"name": payload["n"], "secret": payload["s"]}, "role": "worker",
            "node": {"name": name, "address": address, "clusterCert": crt.read_text()}, "csrs": csrs}
    t0 = time.time()
    status, out = 0, {}
    while time.time() - t0 < 120:
        try:
            status, out = https_call(cp.address, tls((crt, key)), "POST", "/1.0/k8sd/members/join", body)
        except OSError as e:
            status, out = 0, {"error": str(e)}
        if status != 429:
            break
        time.sleep(1)
    return time.time() - t0, status, "" if status == 200 else str(out.get("error"))


def flood_one(address: str, ctx: ssl.SSLContext, path: str, stop: threading.Event, outcomes: collections.Counter, lock: threading.Lock) -> None:
    chunk = b"x" * 65536
    while not stop.is_set():
        outcome = "error"
        try:
            with socket.create_connection((address, PORT), timeout=60) as raw, ctx.wrap_socket(raw) as s:
                s.sendall(f"POST {path} HTTP/1.1\r\nhost: k8sd\r\ncontent-type: application/json\r\ncontent-length: {BODY}\r\n\r\n".encode())
                for _ in range(BODY // len(chunk)):
                    s.sendall(chunk)
                s.settimeout(60)
                outcome = s.recv(64).split(b"\r\n")[0].decode(errors="replace")[9:12] or "closed"
        except (OSError, ssl.SSLError) as e:
            outcome = "closed by k8sd" if isinstance(e, (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError)) else type(e).__name__
        with lock:
            outcomes[outcome] += 1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    flood_seconds = float(os.environ.get("FLOOD_SECONDS", "60"))
    bed = TestBed(workdir=Path(f"/tmp/k8s-portbench-{os.getpid()}"))
    results: dict = {}
    ok = False
    stop = threading.Event()
    try:
        bed.setup()
        cp, w1 = bed.add_node("cp1"), bed.add_node("w1")
        for n in (cp, w1):
            n.start_k8sd()
        seed_images(w1)
        r = cp.bootstrap()
        if r.returncode != 0:
            sys.exit(f"bootstrap failed:\n{r.stdout}\n{r.stderr}\n{cp.diagnostics()}")
        cp.wait_ready()
        time.sleep(5)
        pid = int((cp.state_dir / "k8sd.pid").read_text().strip())
        work = Path(tempfile.mkdtemp(dir=bed.workdir))
        results["rss_before_mib"] = status_field(pid, "VmRSS") / 1024
        results["hwm_before_mib"] = status_field(pid, "VmHWM") / 1024

        attacker = self_signed(work, "attacker")
        outcomes: collections.Counter = collections.Counter()
        lock = threading.Lock()
        # Half without any client certificate on a member route, half with a self-signed one on the token route.
        flooders = [threading.Thread(target=flood_one, daemon=True, args=(cp.address, tls(None if i % 2 else attacker),
                                     "/1.0/k8sd/members/promote" if i % 2 else "/1.0/k8sd/members/join", stop, outcomes, lock))
                    for i in range(CONCURRENCY)]
        samples: list[int] = []

        def sample():
            while not stop.is_set():
                samples.append(status_field(pid, "VmRSS"))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t_flood = time.time()
        for t in flooders:
            t.start()
        time.sleep(5)
        join_result: dict = {}

        def cli_join():
            t0 = time.time()
            jr = join(w1, get_token(cp, w1.name, worker=True), worker_join_config(w1), timeout="600s")
            join_result.update(seconds=time.time() - t0, ok=jr.returncode == 0, error="" if jr.returncode == 0 else (jr.stderr or jr.stdout)[-500:])

        jt = threading.Thread(target=cli_join, daemon=True)
        jt.start()
        # From the root netns the join connection comes from the bridge's address: the node claims that one.
        secs, status, err = token_join(cp, "tj-flood", bed.gateway, work)
        results["token_join_flood"] = {"seconds": secs, "status": status, "error": err}
        jt.join(900)
        results["cli_worker_join_flood"] = join_result
        while time.time() - t_flood < flood_seconds:
            time.sleep(1)
        stop.set()
        for t in flooders:
            t.join(120)
        sampler.join(5)
        results["flood_seconds"] = time.time() - t_flood
        results["flood_requests"] = sum(outcomes.values())
        results["flood_outcomes"] = dict(outcomes)
        results["rss_peak_mib"] = max(samples) / 1024 if samples else 0
        results["hwm_after_mib"] = status_field(pid, "VmHWM") / 1024
        results["rss_after_mib"] = status_field(pid, "VmRSS") / 1024
        ok = True
    finally:
        stop.set()
        keep = os.environ.get("K8S_BENCH_KEEP") or not ok
        nodes = list(bed.nodes)
        try:
            bed.teardown()
            for n in nodes:
                kill_pods_and_cgroups(n)
                unmount_under(n.root)
        finally:
            if keep:
                print(f"work dir kept: {bed.workdir}", file=sys.stderr)
            else:
                shutil.rmtree(bed.workdir, ignore_errors=True)

    results["load_average"] = os.getloadavg()
    if args.json:
        print(json.dumps(results, indent=2))
        return
    j = results["cli_worker_join_flood"]
    print(f"k8sd RSS before the flood: {results['rss_before_mib']:.0f} MiB (VmHWM {results['hwm_before_mib']:.0f} MiB)")
    print(f"flood: {CONCURRENCY} concurrent unauthenticated 4 MiB requests for {results['flood_seconds']:.0f} s, "
          f"{results['flood_requests']} requests; outcomes {results['flood_outcomes']}")
    print(f"k8sd RSS during the flood: peak {results['rss_peak_mib']:.0f} MiB (VmHWM after {results['hwm_after_mib']:.0f} MiB), after {results['rss_after_mib']:.0f} MiB")
    print(f"token join (k8sd-level, a worker's join request with two CSRs) during the flood: {results['token_join_flood']['seconds']:.2f} s (HTTP {results['token_join_flood']['status']}{', ' + results['token_join_flood']['error'] if results['token_join_flood']['error'] else ''})")
    print("load average (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in results["load_average"]))
    print(f"worker join (k8s join-cluster) during the flood: {'succeeded' if j.get('ok') else 'FAILED'} in {j.get('seconds', 0):.1f} s"
          + (f": {j.get('error')}" if not j.get("ok") else ""))


if __name__ == "__main__":
    main()
