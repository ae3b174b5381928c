#!/usr/bin/env bash
# Membership figures on the netns test bed (tests/integration/testbed.py), real binaries:
#   join-cp        `k8s join-cluster` of a second control-plane node, CLI start to exit (RUNS times:
#                  join, remove-node, join again; median)
#   join-worker    `k8s join-cluster` of a worker, CLI start to exit, and until its Node is Ready
#   tokens         50 concurrent POST /1.0/k8sd/cluster/tokens on the local API (unix socket): p50/p99
#                  latency of each request and the wall time of the burst
#   memory         k8sd RSS on the first control-plane node: idle, then with 10 workers attached.
#                  The 10 workers are k8sd-level registrations, not full nodes: each does what a
#                  worker's k8sd does against the control plane (the token-authenticated join with
#                  two CSRs, then GET /1.0/k8sd/members every 15 s over mTLS) without running
#                  containerd/kubelet, which would not fit on this machine ten times over.
# Usage: sudo tests/bench/membership.sh     (RUNS=3; K8S_BENCH_KEEP=1 keeps the work dir)
set -euo pipefail

case "${1:-}" in -h|--help) sed -n '2,16p' "$0"; exit 0 ;; esac
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init membership.sh
bench_python yaml
bench_require_cmd openssl

RUNS=${RUNS:-3} ROOT=$root exec "$python" - <<'PY'
import base64, concurrent.futures, http.client, json, os, shutil, socket, ssl, statistics, subprocess, sys, tempfile, threading, time
from pathlib import Path

root = Path(os.environ["ROOT"])
sys.path.insert(0, str(root / "tests/integration"))
from testbed import TestBed  # noqa: E402
from membership_helpers import get_token, join, seed_images, worker_join_config, wait_for, kill_pods_and_cgroups, unmount_under  # noqa: E402

runs = int(os.environ["RUNS"])
bed = TestBed(workdir=Path(f"/tmp/k8s-membench-{os.getpid()}"))
ok = False
stop = threading.Event()
results = {}


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str):
        super().__init__("k8sd", timeout=120)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def local_call(sock: Path, method: str, path: str, body: dict | None = None) -> dict:
    c = UnixHTTP(str(sock))
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers={"content-type": "application/json"})
    r = c.getresponse()
    data = json.loads(r.read())
    c.close()
    if data.get("type") == "error":
        raise RuntimeError(data.get("error"))
    return data.get("metadata", {})


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def k8sd_pid(node) -> int:
    return int((node.state_dir / "k8sd.pid").read_text().strip())


def fake_worker(cp, i: int, token: str, work: Path, poll_until: threading.Event):
    """A worker's k8sd as the control plane sees it: join with CSRs, then poll the member list."""
    d = work / f"fw{i}"
    d.mkdir(parents=True, exist_ok=True)
    name = f"fw{i}"
    sh = lambda *a: subprocess.run(a, check=True, capture_output=True, text=True)  # noqa: E731
    sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
       "-subj", f"/CN=k8sd@{name}", "-keyout", str(d / "cluster.key"), "-out", str(d / "cluster.crt"))
    csrs = {}
    for conf, subj in (("kubelet.conf", f"/O=system:nodes/CN=system:node:{name}"), ("proxy.conf", "/CN=system:kube-proxy")):
        sh("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", subj,
           "-keyout", str(d / f"{conf}.key"), "-out", str(d / f"{conf}.csr"))
        csrs[conf] = (d / f"{conf}.csr").read_text()
    body, _ = token[len("k8sj1_"):].rsplit(".", 1)
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # a bench client; k8sd's own client pins the fingerprint
    ctx.load_cert_chain(d / "cluster.crt", d / "cluster.key")

    def call(method: str, path: str, data: dict | None = None) -> dict:
        c = http.client.HTTPSConnection(cp.address, 6400, context=ctx, timeout=30)
        c.request(method, path, body=json.dumps(data) if data is not None else None, headers={"content-type": "application/json"})
        out = json.loads(c.getresponse().read())
        c.close()
        if out.get("type") == "error":
            raise RuntimeError(out.get("error"))
        return out["metadata"]

    address = str(bed.network.network_address + 100 + i)
    reply = call("POST", "/1.0/k8sd/members/join", {
        "token": {"name": payload["n"], "secret": payload["s"]}, "role": "worker",
        "node": {"name": name, "address": address, "clusterCert": (d / "cluster.crt").read_text()}, "csrs": csrs,
    })
    assert reply["certificates"]["kubelet.conf"].startswith("-----BEGIN CERTIFICATE-----")
    while not poll_until.wait(15):
        call("GET", "/1.0/k8sd/members")


try:
    bed.setup()
    cp1, cp2, w1 = bed.add_node("cp1"), bed.add_node("cp2"), bed.add_node("w1")
    for n in (cp1, cp2, w1):
        n.start_k8sd()
    seed_images(w1)
    r = cp1.bootstrap()
    if r.returncode != 0:
        sys.exit(f"bootstrap failed:\n{r.stdout}\n{r.stderr}\n{cp1.diagnostics()}")
    cp1.wait_ready()
    time.sleep(5)
    results["rss_idle_mib"] = rss_kib(k8sd_pid(cp1)) / 1024

    # Control-plane join, RUNS times (join, remove, join again).
    cp_times = []
    for i in range(runs):
        token = get_token(cp1, cp2.name)
        t0 = time.time()
        r = join(cp2, token)
        cp_times.append(time.time() - t0)
        if r.returncode != 0:
            sys.exit(f"control-plane join failed:\n{r.stdout}\n{r.stderr}\n{bed.diagnostics()}")
        if i < runs - 1:
            r = cp1.k8s("remove-node", cp2.name)
            assert r.returncode == 0, r.stderr
            wait_for("cp2 to leave", lambda: cp2.status(timeout=30)["role"] == "none", timeout=120)
    results["join_cp_s"] = cp_times

    # Worker join: CLI time and time to a Ready Node.
    token = get_token(cp1, w1.name, worker=True)
    t0 = time.time()
    r = join(w1, token, worker_join_config(w1))
    t_cli = time.time() - t0
    if r.returncode != 0:
        sys.exit(f"worker join failed:\n{r.stdout}\n{r.stderr}\n{w1.diagnostics()}")

    def ready():
        out = cp1.kubectl("get", "node", w1.name, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}")
        return out.returncode == 0 and out.stdout.strip() == "True"

    wait_for("the worker to be Ready", ready, timeout=300, interval=0.5)
    results["join_worker_cli_s"] = t_cli
    results["join_worker_ready_s"] = time.time() - t0

    # 50 concurrent token requests on the local API.
    lat = []

    def one(i: int) -> float:
        s = time.time()
        local_call(cp1.socket, "POST", "/1.0/k8sd/cluster/tokens", {"name": f"bench-{i}", "worker": True, "expiresInSeconds": 600})
        return time.time() - s

    t0 = time.time()
    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        lat = sorted(pool.map(one, range(50)))
    results["tokens_wall_s"] = time.time() - t0
    results["tokens_p50_ms"] = statistics.median(lat) * 1000
    results["tokens_p99_ms"] = lat[min(len(lat) - 1, int(round(0.99 * len(lat))) - 1)] * 1000
    for i in range(50):
        local_call(cp1.socket, "POST", "/1.0/k8sd/cluster/tokens/revoke", {"name": f"bench-{i}"})

    # Memory with 10 workers attached (k8sd-level registrations polling the member list).
    results["rss_before_workers_mib"] = rss_kib(k8sd_pid(cp1)) / 1024
    work = Path(tempfile.mkdtemp(dir=bed.workdir))
    threads = []
    for i in range(10):
        tok = get_token(cp1, f"fw{i}", worker=True)
        t = threading.Thread(target=fake_worker, args=(cp1, i, tok, work, stop), daemon=True)
        t.start()
        threads.append(t)
    time.sleep(75)
    members = [k for k in cp1.sh(str(Path(subprocess.run(["bash", str(root / "snap/components/bin-dir.sh"), "etcd"], capture_output=True, text=True).stdout.strip()) / "etcdctl"),
                                "--endpoints=https://127.0.0.1:2379", f"--cacert={cp1.pki / 'etcd/ca.crt'}", f"--cert={cp1.pki / 'etcd/k8sd-client.crt'}",
                                f"--key={cp1.pki / 'etcd/k8sd-client.key'}", "get", "--prefix", "--keys-only", "/k8sd/nodes/").stdout.split() if k.startswith("/k8sd/nodes/fw")]
    results["registered_fake_workers"] = len(members)
    results["rss_with_10_workers_mib"] = rss_kib(k8sd_pid(cp1)) / 1024
    stop.set()
    ok = True
finally:
    stop.set()
    keep = os.environ.get("K8S_BENCH_KEEP") or not ok
    try:
        nodes = list(bed.nodes)
        bed.teardown()
        for n in nodes:
            kill_pods_and_cgroups(n)
            unmount_under(n.root)
    finally:
        if keep:
            print(f"work dir kept: {bed.workdir}", file=sys.stderr)
        else:
            shutil.rmtree(bed.workdir, ignore_errors=True)

if results:
    cp = results["join_cp_s"]
    print(f"join control-plane node (CLI, n={len(cp)}): median {statistics.median(cp):.1f} s  (runs: {', '.join(f'{x:.1f}' for x in cp)})")
    print(f"join worker: CLI {results['join_worker_cli_s']:.1f} s, Node Ready after {results['join_worker_ready_s']:.1f} s")
    print(f"50 concurrent token requests: p50 {results['tokens_p50_ms']:.0f} ms, p99 {results['tokens_p99_ms']:.0f} ms, burst {results['tokens_wall_s']:.2f} s")
    print(f"k8sd RSS on cp1: idle {results['rss_idle_mib']:.0f} MiB; before workers {results['rss_before_workers_mib']:.0f} MiB; "
          f"with {results['registered_fake_workers']} workers attached {results['rss_with_10_workers_mib']:.0f} MiB (k8sd-level registrations)")
PY
