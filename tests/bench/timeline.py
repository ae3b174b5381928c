"""Time to ready, ours next to upstream kubeadm's, from one run each, back to back (issue 17 item 1).

Ours: one fresh node of the integration test bed (tests/integration/testbed.py), `k8s bootstrap`
with the default ECDSA P-256 keys and the network and dns features (FEATURES=default: a plain
bootstrap, with gateway, local-storage and metrics-server as well). Printed as a timeline from the start of `k8s bootstrap`:
every bootstrap step (the CLI's step lines, time-stamped as they arrive), every service start
(k8sd's "service started" log records), the first GET /readyz answered 200 (probed every 0.1 s
with admin.conf once it exists: what anchor-kubeadm.sh measures for kubeadm), `k8s bootstrap`'s
return (k8sd's post-bootstrap hooks run before it), the Node Ready, and each enabled feature (network, dns, ...) ready,
from `k8s status --output-format json` polled every 0.2 s (this is a benchmark, not a test).
Then RSS (its anonymous and file-backed parts) and PSS of every process of the node SETTLE s after
the working node, by program (k8sd among them), beside kubeadm's same processes.

kubeadm's: ../shared/tools/anchor-kubeadm.sh run (ANCHOR_ENCRYPTION=ECDSA-P256), its time to
/readyz and its RSS; not measured when the tool is missing or with ANCHOR=0.

Targets: /readyz <= 0.8 x kubeadm's; a working node <= 12 s and <= 2.5 x kubeadm's /readyz.
The machine is shared: the load average is printed with every figure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests/integration"))
from certs_helpers import kubeconfig_request  # noqa: E402
from testbed import K8S, TestBed, lean_bootstrap_config, proc_name  # noqa: E402

SETTLE = float(os.environ.get("SETTLE", "30"))
# FEATURES=lean (the default here): network and dns only, as the issue-17 figures were taken (kubeadm
# brings neither). FEATURES=default: a plain bootstrap, so gateway, local-storage and metrics-server
# too (tests/bench/npm-start.sh measures that through `npm start`).
FEATURES = os.environ.get("FEATURES", "lean")
ANCHOR = Path(os.environ.get("ANCHOR_TOOL", ROOT.parent / "shared/tools/anchor-kubeadm.sh"))


def load() -> str:
    a = os.getloadavg()
    return f"load {a[0]:.1f} {a[1]:.1f} {a[2]:.1f} on {os.cpu_count()} CPUs"


def program(pid: int) -> str:
    """The program's name; k8sd (a Node process) by its entry module."""
    try:
        if b"k8sd/main.js" in Path(f"/proc/{pid}/cmdline").read_bytes():
            return "k8sd"
    except OSError:
        pass
    return proc_name(pid)


def memory_by_program(pids: list[int]) -> dict[str, dict[str, int]]:
    """RSS, its anonymous and file-backed parts, and PSS (kB) of these processes, summed by program."""
    by: dict[str, dict[str, int]] = {}
    for p in pids:
        try:
            status = {l.split(":")[0]: int(l.split()[1]) for l in Path(f"/proc/{p}/status").read_text().splitlines() if l.startswith(("VmRSS:", "RssAnon:", "RssFile:"))}
            pss = int(next(l.split()[1] for l in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines() if l.startswith("Pss:")))
        except (OSError, StopIteration, ValueError):
            continue
        m = by.setdefault(program(p), {"rss": 0, "anon": 0, "file": 0, "pss": 0})
        m["rss"] += status.get("VmRSS", 0)
        m["anon"] += status.get("RssAnon", 0)
        m["file"] += status.get("RssFile", 0)
        m["pss"] += pss
    return by


def cpu_by_program(pids: list[int]) -> dict[str, float]:
    """CPU seconds (user + system) each program has used so far, summed over its processes."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            name = program(p)
        except (OSError, IndexError):
            continue
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def memory(pids: list[int]) -> tuple[int, int, dict[str, int]]:
    """Total RSS and PSS (kB) of these processes, and RSS by program name."""
    by = memory_by_program(pids)
    return sum(m["rss"] for m in by.values()), sum(m["pss"] for m in by.values()), {n: m["rss"] for n, m in by.items()}


def ours() -> dict:
    bed = TestBed(workdir=Path(f"/tmp/k8s-timeline-{os.getpid()}"))
    events: list[tuple[float, str]] = []
    ok = False
    try:
        bed.setup()
        node = bed.add_node("tl")
        t_k8sd = time.time()
        node.start_k8sd()
        k8sd_start = time.time() - t_k8sd
        log_offset = node.log("k8sd").stat().st_size if node.log("k8sd").exists() else 0
        load_at_start = load()
        t0 = time.time()
        # The test bed's own lean bootstrap file, unless a plain bootstrap is asked for.
        lean = None if FEATURES == "default" else yaml.safe_dump(lean_bootstrap_config(None))
        args = [str(K8S), "bootstrap", "--timeout", "300s", *(["--file", "-"] if lean else [])]
        proc = subprocess.Popen(args, env=node.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        proc.stdin.write(lean or "")
        proc.stdin.close()

        def read_steps() -> None:
            for line in proc.stderr:
                m = re.match(r"bootstrap: (.+)", line.strip())
                if m:
                    events.append((time.time() - t0, f"step: {m.group(1)}"))

        ready_at: list[float] = []
        cpu_at_readyz: dict[str, float] = {}
        stop = threading.Event()

        def probe_readyz() -> None:
            while not stop.is_set():
                try:
                    if kubeconfig_request(node.admin_conf.read_text(), f"{node.address}:6443", "/readyz", timeout=2) == 200:
                        ready_at.append(time.time() - t0)
                        cpu_at_readyz.update(cpu_by_program(node.processes()))
                        return
                except Exception:  # not there yet: no admin.conf, refused, not ready
                    pass
                stop.wait(0.1)

        reader = threading.Thread(target=read_steps, daemon=True)
        reader.start()
        prober = threading.Thread(target=probe_readyz, daemon=True)
        prober.start()
        out = proc.stdout.read()
        rc = proc.wait(timeout=600)
        t_returned = time.time() - t0
        reader.join(timeout=10)
        prober.join(timeout=30)
        stop.set()
        if rc != 0:
            raise RuntimeError(f"bootstrap failed:\n{out}\n{node.diagnostics()}")
        if not ready_at:
            raise RuntimeError("/readyz never answered 200 to the probe")
        t_readyz = ready_at[0]
        events.append((t_readyz, "GET /readyz 200 (first)"))
        events.append((t_returned, "k8s bootstrap returned"))
        seen: set[str] = set()
        t_working = None
        deadline = time.time() + 300
        while time.time() < deadline:
            r = node.k8s("status", "--output-format", "json", timeout=60)
            now = time.time() - t0
            if r.returncode == 0:
                st = json.loads(r.stdout)
                marks = {"Node Ready": st.get("node-ready")}
                marks.update({f"feature {f['name']} ready": f.get("ready") for f in st.get("features", []) if f.get("enabled")})
                for k, v in marks.items():
                    if v and k not in seen:
                        seen.add(k)
                        events.append((now, k))
                if st.get("ready") and all(marks.values()):
                    t_working = now
                    events.append((now, "working node: k8s status ready (Node Ready, every enabled feature ready)"))
                    break
            time.sleep(0.2)
        if t_working is None:
            raise RuntimeError(f"the node was not ready within 300 s:\n{node.diagnostics()}")
        for line in node.log("k8sd").read_text(errors="replace")[log_offset:].splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            milestone = rec.get("message") in ("gave the first node its pod CIDR", "wrote the pod network config")
            if (rec.get("message") == "service started" or milestone) and rec.get("timestamp"):
                ts = time.mktime(time.strptime(rec["timestamp"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone + float("0." + rec["timestamp"][20:23])
                events.append((ts - t0, f"k8sd: {rec['message']}" if milestone else f"service started: {rec.get('svc')}"))
        events.extend(dns_milestones(node, t0))
        working_load = load()
        time.sleep(SETTLE)
        by = memory_by_program(node.processes())
        ok = True
        return {"k8sd_start": k8sd_start, "readyz": t_readyz, "returned": t_returned, "working": t_working, "events": sorted(events),
                "rss_kb": sum(m["rss"] for m in by.values()), "pss_kb": sum(m["pss"] for m in by.values()), "mem_by": by,
                "load_start": load_at_start, "load_working": working_load, "load_memory": load(), "cpu_at_readyz": cpu_at_readyz}
    finally:
        bed.teardown()
        if ok or not os.environ.get("K8S_BENCH_KEEP"):
            shutil.rmtree(bed.workdir, ignore_errors=True)


def _epoch(ts: str) -> float:
    """An RFC 3339 time (seconds, or micro/nanoseconds as klog and MicroTime write them) as epoch seconds."""
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z", ts)
    if not m:
        raise ValueError(ts)
    return time.mktime(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")) - time.timezone + float(m.group(2) or 0)


def dns_milestones(node, t0: float) -> list[tuple[float, str]]:
    """Where the dns feature's time goes: its objects' events (the API's), and the controller manager's start-up (its log)."""
    out: list[tuple[float, str]] = []
    r = node.kubectl("get", "events", "-n", "kube-system", "-o", "json")
    if r.returncode == 0:
        for e in json.loads(r.stdout).get("items", []):
            obj = e.get("involvedObject", {})
            if "coredns" not in obj.get("name", ""):
                continue
            ts = e.get("eventTime") or e.get("firstTimestamp")
            if ts:
                out.append((_epoch(ts) - t0, f"dns: {obj.get('kind')} {e.get('reason')}"))
    r = node.kubectl("get", "nodes", "-o", "json")
    if r.returncode == 0:
        for n in json.loads(r.stdout).get("items", []):
            out.append((_epoch(n["metadata"]["creationTimestamp"]) - t0, "node: Node registered"))
    r = node.kubectl("get", "pods", "-n", "kube-system", "-l", "k8s-app=kube-dns", "-o", "json")
    if r.returncode == 0:
        for p in json.loads(r.stdout).get("items", []):
            out.append((_epoch(p["metadata"]["creationTimestamp"]) - t0, "dns: Pod created"))
            for c in p.get("status", {}).get("conditions", []):
                if c.get("lastTransitionTime"):
                    out.append((_epoch(c["lastTransitionTime"]) - t0, f"dns: Pod {c['type']}={c['status']}"))
    # klog lines: "I1207 18:50:01.123456 ..." (UTC, no year)
    year = time.gmtime(t0).tm_year
    marks = {"Successfully acquired lease": "kcm: lease acquired", "Starting controller": None, "Caches are synced": None}
    try:
        text = node.log("kube-controller-manager").read_text(errors="replace")
        if os.environ.get("K8S_BENCH_LOGS"):  # a directory: keep the services' logs of the run
            for svc in ("kube-controller-manager", "etcd", "kube-apiserver", "kubelet", "containerd", "k8sd"):
                if node.log(svc).exists():
                    shutil.copy(node.log(svc), Path(os.environ["K8S_BENCH_LOGS"]) / f"{svc}.log")
    except OSError:
        text = ""
    for line in text.splitlines():
        m = re.match(r"I(\d\d)(\d\d) (\d\d:\d\d:\d\d\.\d+)", line)
        if not m:
            continue
        for key, label in marks.items():
            if key not in line:
                continue
            if label is None:
                c = re.search(r'controller="?([\w-]+)', line)
                if not c or c.group(1) not in ("deployment", "replicaset", "serviceaccount-token", "root-ca-certificate-publisher", "endpointslice", "node-ipam-controller", "nodeipam", "token-cleaner"):
                    continue
                label = f"kcm: {key.lower()} {c.group(1)}"
            ts = f"{year}-{m.group(1)}-{m.group(2)}T{m.group(3)}Z"
            out.append((_epoch(ts) - t0, label))
    return out


def kubeadm() -> dict | None:
    if os.environ.get("ANCHOR") == "0" or not ANCHOR.exists():
        return None
    env = dict(os.environ, ANCHOR_ENCRYPTION=os.environ.get("ANCHOR_ENCRYPTION", "ECDSA-P256"), ANCHOR_PROJECT=str(ROOT))
    before = load()
    r = subprocess.run(["bash", str(ANCHOR), "run"], env=env, capture_output=True, text=True, timeout=1800, cwd=ROOT)
    out = r.stdout + r.stderr
    m = re.search(r"kubeadm anchor: init ([\d.]+)s, readyz ([\d.]+)s, rss total (\d+) MB \((.*)\)", out)
    if r.returncode != 0 or not m:
        raise RuntimeError(f"anchor-kubeadm.sh run failed (exit {r.returncode}):\n{out[-3000:]}")
    # Its log lines: "RSS split, MB: etcd anon 27/file 24, ...; PSS total of the six: 540 MB" and
    # "also resident: containerd shims 40 MB, pause containers 1 MB" (not in its total).
    rss_mb = {KUBEADM_LABELS[k]: int(v) for k, v in re.findall(r"(\w+) (\d+)", m.group(4)) if k in KUBEADM_LABELS}
    split = {KUBEADM_LABELS[k]: (int(a), int(f)) for k, a, f in re.findall(r"(\w+) anon (\d+)/file (\d+)", out) if k in KUBEADM_LABELS}
    pss = re.search(r"PSS total of the six: (\d+) MB", out)
    also = re.search(r"containerd shims (\d+) MB, pause containers (\d+) MB", out)
    return {"init": float(m.group(1)), "readyz": float(m.group(2)), "rss_mb": int(m.group(3)), "detail": m.group(4),
            "rss_by_mb": rss_mb, "split_mb": split, "pss_mb": int(pss.group(1)) if pss else None,
            "shims_mb": int(also.group(1)) if also else None, "pause_mb": int(also.group(2)) if also else None,
            "load_start": before, "load_end": load()}


# anchor-kubeadm.sh's labels for the six processes it counts, as our programs are named.
KUBEADM_LABELS = {"etcd": "etcd", "apiserver": "kube-apiserver", "cm": "kube-controller-manager", "sched": "kube-scheduler",
                  "kubelet": "kubelet", "containerd": "containerd"}


def print_memory(o: dict, k: dict | None) -> None:
    """Per program: ours (RSS = anon + file, PSS) beside kubeadm's same process; the node totals."""
    mb = lambda kb: kb / 1024  # noqa: E731
    print(f"\nmemory {SETTLE:.0f} s after ready, MB ({o['load_memory']} at ours): RSS (anon + file), PSS")
    print(f"  {'program':26} {'ours RSS':>9} {'anon':>6} {'file':>6} {'PSS':>6}   {'kubeadm RSS':>11} {'anon':>6} {'file':>6}")
    names = sorted(o["mem_by"], key=lambda n: -o["mem_by"][n]["rss"])
    names += [n for n in (k or {}).get("rss_by_mb", {}) if n not in names]
    for n in names:
        m = o["mem_by"].get(n)
        ours = f"{mb(m['rss']):9.0f} {mb(m['anon']):6.0f} {mb(m['file']):6.0f} {mb(m['pss']):6.0f}" if m else f"{'-':>9} {'':6} {'':6} {'':6}"
        theirs = ""
        if k and n in k.get("rss_by_mb", {}):
            a, f = k.get("split_mb", {}).get(n, (None, None))
            theirs = f"{k['rss_by_mb'][n]:11d} {a if a is not None else '?':>6} {f if f is not None else '?':>6}"
        print(f"  {n:26} {ours}   {theirs}")
    print(f"  {'total':26} {mb(o['rss_kb']):9.0f} {'':6} {'':6} {mb(o['pss_kb']):6.0f}   "
          + (f"{k['rss_mb']:11d}   (PSS {k['pss_mb']}; its shims {k['shims_mb']} and pause {k['pause_mb']} not counted)" if k else ""))
    k8sd = o["mem_by"].get("k8sd")
    if k8sd:
        print(f"k8sd: RSS {mb(k8sd['rss']):.0f} MB (anon {mb(k8sd['anon']):.0f}, file {mb(k8sd['file']):.0f}), PSS {mb(k8sd['pss']):.0f} MB; target <= 60 MB")


def print_ours(o: dict) -> None:
    print(f"\nours: `k8s bootstrap` on one netns node of the test bed ({o['load_start']} at the start; k8sd started in {o['k8sd_start']:.1f} s before)")
    for t, what in o["events"]:
        print(f"  {t:6.2f} s  {what}")
    print(f"ours: RSS {o['rss_kb'] / 1024:.0f} MB, PSS {o['pss_kb'] / 1024:.0f} MB, {SETTLE:.0f} s after the working node ({o['load_memory']}); by program: "
          + ", ".join(f"{n} {m['rss'] / 1024:.0f}" for n, m in sorted(o["mem_by"].items(), key=lambda x: -x[1]["rss"])))
    cpu = o.get("cpu_at_readyz") or {}
    if cpu:
        print(f"ours: CPU seconds used by the first /readyz ({sum(cpu.values()):.2f} s on {os.cpu_count()} CPUs in {o['readyz']:.2f} s): "
              + ", ".join(f"{n} {c:.2f}" for n, c in sorted(cpu.items(), key=lambda x: -x[1]) if c >= 0.01))
    print(f"ours: working node at {o['load_working']}", flush=True)


def main() -> int:
    order = os.environ.get("ORDER", "ours,kubeadm").split(",")
    res: dict[str, dict | None] = {}
    for who in order:
        print(f"timeline: running {who}…", file=sys.stderr, flush=True)
        if who == "ours":
            res[who] = ours()
            print_ours(res[who])
        else:
            try:
                res[who] = kubeadm()
            except RuntimeError as e:  # ours is still worth printing
                print(f"kubeadm: not measured: {e}", file=sys.stderr)
                res[who] = None
    o, k = res["ours"], res.get("kubeadm")
    print_memory(o, k)
    print(f"\n{'':38} {'ours':>8} {'kubeadm':>8} {'ratio':>6} target")
    if k:
        print(f"{'/readyz (s)':38} {o['readyz']:8.1f} {k['readyz']:8.1f} {o['readyz'] / k['readyz']:6.2f} <= 0.8")
        print(f"{'working node vs kubeadm /readyz (s)':38} {o['working']:8.1f} {k['readyz']:8.1f} {o['working'] / k['readyz']:6.2f} <= 2.5, and <= 12 s")
        print(f"{'RSS after settling (MB)':38} {o['rss_kb'] / 1024:8.0f} {k['rss_mb']:8d} {o['rss_kb'] / 1024 / k['rss_mb']:6.2f} <= 1.0")
        if k.get("pss_mb"):
            print(f"{'PSS after settling (MB)':38} {o['pss_kb'] / 1024:8.0f} {k['pss_mb']:8d} {o['pss_kb'] / 1024 / k['pss_mb']:6.2f}")
        print(f"kubeadm: init {k['init']:.1f} s; RSS {k['detail']}; {k['load_start']} at its start, {k['load_end']} at its end")
    else:
        print(f"{'/readyz (s)':38} {o['readyz']:8.1f}")
        print(f"{'working node (s)':38} {o['working']:8.1f}      (kubeadm not measured)")
    return 0 if k or os.environ.get("ANCHOR") == "0" else 1


if __name__ == "__main__":
    sys.exit(main())
