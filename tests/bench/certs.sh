#!/usr/bin/env bash
# Certificate operations on a real single-node cluster (one netns node of the integration test
# bed, tests/integration/testbed.py): how long they take and how long the API is unavailable.
#
# Usage: sudo tests/bench/certs.sh            (RUNS=3 by default; needs dist/ and the components)
#        OPS="refresh-certs" tests/bench/certs.sh   (only these operations; both by default)
#        PROBE_INTERVAL=0.05                        (seconds between probes; 0.2 = 5/s by default)
#
# Measures, RUNS times each, median reported:
#   refresh-certs   `k8s refresh-certs --expires-in 30d` end to end (CLI start to exit), then
#                   until `k8s status --wait-ready` says ready again
#   rotate-certs-ca `k8s rotate-certs-ca` end to end (trust, re-issue, retire), then ready again
# API unavailability = the longest gap between two successful GET /readyz (HTTP 200) seen by a
# probe in a separate process: 5 per second (issue 17's probe), admin.conf re-read and a new TLS
# connection each time (as a fresh kubectl would), over the window from the command's start to
# ready again; `failed` counts the probes that got no 200. `apiserver` says whether kube-apiserver
# was restarted (its pid changed).
# The node is torn down at the end; its work dir is kept on failure or with K8S_BENCH_KEEP=1.
set -euo pipefail

runs=${RUNS:-3}
case "${1:-}" in -h|--help) sed -n '2,18p' "$0"; exit 0 ;; esac
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init certs.sh
bench_python yaml

OPS=${OPS:-refresh-certs rotate-certs-ca} PROBE_INTERVAL=${PROBE_INTERVAL:-0.2} RUNS=$runs ROOT=$root exec "$python" - <<'PY'
import os, signal, statistics, subprocess, sys, time
from pathlib import Path

root = Path(os.environ["ROOT"])
sys.path.insert(0, str(root / "tests/integration"))
from testbed import TestBed  # noqa: E402
from certs_helpers import longest_gap  # noqa: E402

runs = int(os.environ["RUNS"])
ops = os.environ["OPS"].split()
interval = os.environ["PROBE_INTERVAL"]
# Not under /tmp/k8s-it-*: that is the integration suites' namespace, swept by their clean-ups.
bed = TestBed(workdir=Path(f"/tmp/k8s-certbench-{os.getpid()}"))
probe = None
rows = []
ok = False
try:
    bed.setup()
    node = bed.add_node("bench")
    node.start_k8sd()
    r = node.bootstrap()
    if r.returncode != 0:
        sys.exit(f"bootstrap failed:\n{r.stdout}\n{r.stderr}\n{node.diagnostics()}")
    node.wait_ready()
    log = bed.workdir / "readyz-probe.log"
    probe = subprocess.Popen(
        [sys.executable, str(root / "tests/integration/certs_helpers.py"), "probe", "--kubeconfig", str(node.admin_conf),
         "--server", f"{node.address}:6443", "--path", "/readyz", "--interval", interval, "--out", str(log), "--duration", "1800"],
        stdin=subprocess.DEVNULL,
    )
    time.sleep(3)

    def samples(t0, t1):
        out = []
        for line in log.read_text().splitlines():
            t, status = line.split()
            if t0 - 1 <= float(t) <= t1 + 1:
                out.append((float(t), status == "200"))
        return out

    def measure(op, args):
        pid0 = node.service_pid("kube-apiserver")
        t0 = time.time()
        r = node.k8s(*args, timeout=900)
        t1 = time.time()
        if r.returncode != 0:
            sys.exit(f"{op} failed:\n{r.stdout}\n{r.stderr}\n{node.diagnostics()}")
        node.wait_ready(timeout=300)
        # Ready by k8sd's own probe; let the external probe see a few answers too.
        deadline = time.time() + 60
        while time.time() < deadline and not any(ok for t, ok in samples(time.time() - 0.5, time.time())):
            time.sleep(0.1)
        t2 = time.time()
        time.sleep(1)
        s = samples(t0, t2)
        rows.append({"op": op, "cmd": t1 - t0, "ready": t2 - t0, "gap": longest_gap(s), "n": len(s),
                     "failed": sum(1 for _, ok in s if not ok),
                     "apiserver": "same" if node.service_pid("kube-apiserver") == pid0 else "restarted"})
        print(f"  {op} run {sum(1 for x in rows if x['op'] == op)}: {rows[-1]['cmd']:.1f} s, ready again after "
              f"{rows[-1]['ready']:.1f} s, longest /readyz gap {rows[-1]['gap']:.2f} s", file=sys.stderr, flush=True)
        time.sleep(5)

    commands = {"refresh-certs": ["refresh-certs", "--expires-in", "30d"], "rotate-certs-ca": ["rotate-certs-ca"]}
    for op in ops:
        for _ in range(runs):
            measure(op, commands[op])
    ok = True
finally:
    if probe is not None:
        probe.send_signal(signal.SIGTERM)
        try:
            probe.wait(timeout=10)
        except subprocess.TimeoutExpired:
            probe.kill()
    bed.teardown()
    if not ok or os.environ.get("K8S_BENCH_KEEP"):
        print(f"work dir kept: {bed.workdir}", file=sys.stderr)
    else:
        import shutil
        shutil.rmtree(bed.workdir, ignore_errors=True)

load = os.getloadavg()
print(f"\ncertificate operations, single node, {runs} runs each, /readyz probed every {interval} s "
      f"(load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}, {os.cpu_count()} CPUs)")
print(f"{'operation':<17} {'run':>4} {'command (s)':>12} {'ready again (s)':>16} {'API gap (s)':>12} {'probes':>7} {'failed':>7} {'apiserver':>10}")
for op in ops:
    mine = [x for x in rows if x["op"] == op]
    for i, x in enumerate(mine, 1):
        print(f"{op:<17} {i:>4} {x['cmd']:>12.1f} {x['ready']:>16.1f} {x['gap']:>12.2f} {x['n']:>7} {x['failed']:>7} {x['apiserver']:>10}")
    med = lambda k: statistics.median(x[k] for x in mine)  # noqa: E731
    print(f"{op:<17} {'med':>4} {med('cmd'):>12.1f} {med('ready'):>16.1f} {med('gap'):>12.2f}")
PY
