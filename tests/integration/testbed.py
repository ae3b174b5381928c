"""A test bed of k8s nodes on one machine: one network namespace and one K8S_ROOT per node.

Layout (all names carry a per-session prefix, so parallel runs never clash):

    root netns:  bridge <prefix>br  with <subnet>.1/24
    node i:      netns  <prefix>-<name>, veth <prefix>h<i> (bridge side) <-> eth0 (netns side)
                 with <subnet>.<10+i>/24, lo up; K8S_ROOT = <workdir>/<name>/root

k8sd runs inside the node's netns (`nsenter --net`, not `ip netns exec`, which remounts /sys and
hides cgroupfs). The CLI reaches k8sd over the unix socket under K8S_ROOT, so it can run from the
root netns; anything that talks to 127.0.0.1 on the node (kubectl with admin.conf) runs inside.

Teardown is thorough and only touches what this bed made: every process inside the bed's
namespaces or carrying one of its K8S_ROOTs in its environment is killed, then the namespaces,
veths and bridge are deleted, and /run/netns is unmounted if this bed was the one that mounted it
and no namespace is left in it.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping

import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "bin" / "k8s"
K8SD = REPO / "bin" / "k8sd"
NETNS_DIR = Path("/run/netns")
RECORD = "bed.json"


_FIPS_ENV: dict[str, str] | None = None


def fips_env() -> dict[str, str]:
    """K8S_TEST_FIPS=1 runs every k8sd and CLI of the bed in FIPS mode on the test-built provider."""
    global _FIPS_ENV
    if os.environ.get("K8S_TEST_FIPS") != "1":
        return {}
    if _FIPS_ENV is None:
        out = subprocess.run(["bash", str(REPO / "tests" / "fips" / "build-provider.sh")], check=True, capture_output=True, text=True)
        provider = out.stdout.strip().splitlines()[-1]
        _FIPS_ENV = {"K8S_FIPS": "1", "OPENSSL_CONF": f"{provider}/openssl.cnf", "OPENSSL_MODULES": provider}
    return _FIPS_ENV


def component_bin(name: str) -> Path:
    """Cache bin dir of a pinned component (the same resolution the product uses). bin-dir.sh checks
    the entry's SHA-256 sums, so the answer is kept for the session (per cache root and FIPS setting)."""
    return _component_bin(name, os.environ.get("K8S_COMPONENT_CACHE", ""), os.environ.get("K8S_GOFIPS140", "\0"))


@functools.lru_cache(maxsize=None)
def _component_bin(name: str, _cache: str, _gofips: str) -> Path:
    out = subprocess.run(
        ["bash", str(REPO / "snap" / "components" / "bin-dir.sh"), name], check=True, capture_output=True, text=True
    )
    return Path(out.stdout.strip())


def run(cmd: list[str], *, check: bool = True, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=timeout, **kw)


def _is_mountpoint(path: Path) -> bool:
    try:
        with open("/proc/self/mountinfo") as f:
            return any(line.split()[4] == str(path) for line in f)
    except OSError:
        return False


def _proc_env(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    env = {}
    for item in raw.split(b"\0"):
        if b"=" in item:
            k, _, v = item.partition(b"=")
            env[k.decode(errors="replace")] = v.decode(errors="replace")
    return env


def _start_time(pid: int) -> int | None:
    """A process's start time in clock ticks since boot (tells a pid apart from a reused one)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rfind(")") + 2 :].split()[19])


def process_alive(pid: int) -> bool:
    """True for a live process; a zombie (PID 1 here reaps late) counts as gone once its last
    thread has exited: a SIGKILLed multi-threaded process shows Z for its main thread while the
    other threads still tear down, and until then its sockets still accept connections."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat[stat.rfind(")") + 2 :].split()[0] not in ("Z", "X"):
        return True
    try:
        return len(os.listdir(f"/proc/{pid}/task")) > 1
    except OSError:
        return False


def process_env(pid: int) -> dict[str, str]:
    """The environment a process was started with (/proc/<pid>/environ)."""
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(e.decode(errors="replace").split("=", 1) for e in raw if b"=" in e)


def go_build_setting(binary: str, key: str) -> str | None:
    """A Go binary's build setting as the Go toolchain itself reports it (`go version -m`),
    independent of k8sd's own ELF reader."""
    out = subprocess.run(["go", "version", "-m", binary], capture_output=True, text=True, timeout=60, check=True).stdout
    for line in out.splitlines():
        parts = line.strip().split("\t")
        if len(parts) == 2 and parts[0] == "build" and parts[1].startswith(f"{key}="):
            return parts[1].split("=", 1)[1]
    return None


def pod_processes_in(cgroup_root: str) -> list[int]:
    """Live processes under a kubelet cgroup root (cgroup v1 pids tree): a node's pods."""
    base = Path("/sys/fs/cgroup/pids") / cgroup_root.lstrip("/")
    pids: set[int] = set()
    if base.exists():
        for procs in base.rglob("cgroup.procs"):
            try:
                pids.update(int(p) for p in procs.read_text().split())
            except OSError:
                continue
    return sorted(p for p in pids if process_alive(p))


def remove_cgroups_under(cgroup_root: str) -> None:
    """Removes the (emptied) cgroups under a kubelet cgroup root in every hierarchy, deepest first."""
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        base = hierarchy / cgroup_root.lstrip("/")
        if not base.is_dir():
            continue
        for d in sorted((p for p in base.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            try:
                d.rmdir()
            except OSError:
                pass
        try:
            base.rmdir()
        except OSError:
            pass


def unmount_under(root: Path) -> None:
    """Lazily unmounts whatever a node left mounted under its root (pod volumes, netns, rootfs)."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for p in sorted({p for p in points if p.startswith(str(root) + "/")}, key=len, reverse=True):
        subprocess.run(["umount", "-l", p], capture_output=True)


CONTAINER_LOG_LINKS = Path("/var/log/containers")


def remove_container_log_links(root: Path) -> None:
    """The kubelet links container logs in /var/log/containers whatever its root: drop a node's links."""
    try:
        names = os.listdir(CONTAINER_LOG_LINKS)
    except OSError:
        return
    for name in names:
        link = CONTAINER_LOG_LINKS / name
        try:
            if link.is_symlink() and os.readlink(link).startswith(str(root) + "/"):
                link.unlink()
        except OSError:
            pass


def lean_bootstrap_config(config: str | dict | None) -> str | dict | None:
    """The bed's bootstrap config (see Node.bootstrap): network and dns for no config, metrics-server
    off in a dict that does not mention it."""
    if config is None:
        return {"cluster-config": {"network": {"enabled": True}, "dns": {"enabled": True}, "metrics-server": {"enabled": False}}}
    if isinstance(config, dict):
        config = json.loads(json.dumps(config))
        config.setdefault("cluster-config", {}).setdefault("metrics-server", {"enabled": False})
    return config


def processes_of_root(root: Path) -> list[int]:
    """Live processes whose environment carries K8S_ROOT=root or whose command line names root."""
    pids = []
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        pid = int(entry.name)
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if _proc_env(pid).get("K8S_ROOT") == str(root) or f"{root}/" in cmdline:
            if process_alive(pid):
                pids.append(pid)
    return pids


def proc_name(pid: int) -> str:
    """Base name of the program (argv[0]); /proc/<pid>/comm is cut at 15 characters."""
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        return os.path.basename(argv0) or Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def kill_and_wait(pids: Iterable[int], timeout: float = 20) -> None:
    pids = [p for p in pids if process_alive(p)]
    for p in pids:
        try:
            os.kill(p, signal.SIGTERM)
        except ProcessLookupError:
            pass
    wait_until_gone(pids, timeout)
    for p in pids:
        if process_alive(p):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
    wait_until_gone(pids, 5)


def wait_until_gone(pids: Iterable[int], timeout: float) -> None:
    """Returns once none of pids is alive (see process_alive), or when timeout seconds are up."""
    pids = list(pids)
    deadline = time.time() + timeout
    while time.time() < deadline and any(process_alive(p) for p in pids):
        time.sleep(0.1)


def wait_for(what: str, check: Callable[[], object], timeout: float = 120, interval: float = 1.0):
    """Polls check() until it returns something truthy; fails with the last value or error."""
    deadline = time.time() + timeout
    last: object = None
    while time.time() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as e:  # keep polling; report the last error
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")


def tree_snapshot(root: Path, volatile: Iterable[str] = ("var/snap/k8s/common/var/log/",)) -> dict[str, tuple]:
    """Every path under root with its type, mode, size and (for regular files) a content digest.

    Files under a `volatile` prefix (logs) are recorded by path only: the daemon logs a refused
    request, which is expected.
    """
    import hashlib

    snap: dict[str, tuple] = {}
    volatile = tuple(volatile)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            st = p.lstat()
            kind = "d" if p.is_dir() and not p.is_symlink() else "l" if p.is_symlink() else "s" if p.is_socket() else "f"
            if any(rel.startswith(v) for v in volatile) and kind == "f":
                snap[rel] = (kind,)
                continue
            digest = ""
            if kind == "f":
                digest = hashlib.sha256(p.read_bytes()).hexdigest()
            snap[rel] = (kind, oct(st.st_mode & 0o7777), st.st_size if kind == "f" else 0, digest)
    return snap


def diff_snapshots(before: Mapping[str, tuple], after: Mapping[str, tuple]) -> list[str]:
    out = [f"added   {p}" for p in sorted(set(after) - set(before))]
    out += [f"removed {p}" for p in sorted(set(before) - set(after))]
    out += [f"changed {p}: {before[p]} -> {after[p]}" for p in sorted(set(before) & set(after)) if before[p] != after[p]]
    return out


@dataclass
class Node:
    bed: "TestBed"
    name: str
    index: int
    address: str
    netns: str
    veth_host: str
    workdir: Path

    def __post_init__(self) -> None:
        self.root = self.workdir / "root"
        self.root.mkdir(parents=True, exist_ok=True)
        self.k8sd_proc: subprocess.Popen | None = None

    # ---- paths -----------------------------------------------------------------------------
    @property
    def common(self) -> Path:
        return self.root / "var/snap/k8s/common"

    @property
    def pki(self) -> Path:
        return self.root / "etc/kubernetes/pki"

    @property
    def admin_conf(self) -> Path:
        return self.root / "etc/kubernetes/admin.conf"

    @property
    def state_dir(self) -> Path:
        return self.common / "var/lib/k8sd/state"

    @property
    def socket(self) -> Path:
        return self.state_dir / "control.socket"

    def log(self, svc: str) -> Path:
        return self.common / "var/log" / f"{svc}.log"

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(K8S_ROOT=str(self.root), K8S_NODE_NAME=self.name, **fips_env())
        return env

    # ---- running things --------------------------------------------------------------------
    def nsenter(self, *cmd: str) -> list[str]:
        """A command line that runs cmd inside this node's netns with its K8S_ROOT and name."""
        extra = [f"{k}={v}" for k, v in fips_env().items()]
        return ["nsenter", f"--net={NETNS_DIR / self.netns}", "env", f"K8S_ROOT={self.root}", f"K8S_NODE_NAME={self.name}", *extra, *cmd]

    def sh(self, *cmd: str, check: bool = False, timeout: float = 120, input: str | None = None) -> subprocess.CompletedProcess:
        """Runs cmd inside the netns."""
        return subprocess.run(self.nsenter(*cmd), capture_output=True, text=True, timeout=timeout, check=check, input=input)

    def start_k8sd(self, timeout: float = 30) -> None:
        console = self.workdir / "k8sd.console.log"
        # A k8sd that died leaves its socket file behind: without it, "answers" can only mean the new one.
        if not self.socket_answers():
            self.socket.unlink(missing_ok=True)
        out = open(console, "ab")
        # cwd: the node's work dir, so that nothing a service writes relative to its working
        # directory ends up in the repository.
        self.k8sd_proc = subprocess.Popen(
            self.nsenter(str(K8SD)), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            cwd=self.workdir,
        )
        out.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.socket_answers():
                return
            if self.k8sd_proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"k8sd on {self.name} did not open {self.socket}:\n{self.diagnostics()}")

    def socket_answers(self) -> bool:
        """True when k8sd accepts connections on its socket (a stale socket file does not)."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(1)
            s.connect(str(self.socket))
            return True
        except OSError:
            return False
        finally:
            s.close()

    def k8s(self, *args: str, input: str | None = None, timeout: float = 300, netns: bool = False) -> subprocess.CompletedProcess:
        """Runs the real CLI (from the root netns unless netns=True) against this node's k8sd."""
        cmd = self.nsenter(str(K8S), *args) if netns else [str(K8S), *args]
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout, input=input)

    def bootstrap(self, config: str | dict | None = None, *extra: str, timeout: str = "180s", plain: bool = False) -> subprocess.CompletedProcess:
        """`k8s bootstrap` on this node. plain=True is a user's plain bootstrap: no file, and with it
        the default features (network, dns, gateway, local-storage, metrics-server). Otherwise the
        bed stays lean, since each of gateway, local-storage and metrics-server adds a pod and its
        start to a node that most modules do not need them on: no config bootstraps with network and
        dns only, and a dict config gets metrics-server off unless it says otherwise (a bootstrap
        file turns it on). YAML text goes as written."""
        args = ["bootstrap", "--name", self.name, "--timeout", timeout, *extra]
        if not plain:
            config = lean_bootstrap_config(config)
        text = None
        if config is not None:
            text = config if isinstance(config, str) else yaml.safe_dump(config)
            args += ["--file", "-"]
        return self.k8s(*args, input=text, timeout=600)

    def kubectl(self, *args: str, timeout: float = 60, input: str | None = None) -> subprocess.CompletedProcess:
        """The bundled kubectl binary with admin.conf, inside the netns (server https://127.0.0.1:6443)."""
        kubectl = str(component_bin("kubernetes") / "kubectl")
        return self.sh(kubectl, f"--kubeconfig={self.admin_conf}", *args, timeout=timeout, input=input)

    def status(self, timeout: float = 60) -> dict:
        r = self.k8s("status", "--output-format", "json", timeout=timeout)
        try:
            return json.loads(r.stdout)
        except json.JSONDecodeError:
            raise AssertionError(f"k8s status printed no JSON (rc {r.returncode}):\n{r.stdout}\n{r.stderr}") from None

    def wait_ready(self, timeout: float = 180) -> dict:
        r = self.k8s("status", "--wait-ready", "--timeout", f"{int(timeout)}s", timeout=timeout + 30)
        assert r.returncode == 0, f"{self.name} not ready: {r.stdout}\n{r.stderr}\n{self.diagnostics()}"
        return self.status()

    def kubeconfig(self, server: str | None = None) -> Path:
        """Admin kubeconfig for clients in the root netns (server defaults to <address>:6443)."""
        server = server or f"{self.address}:6443"
        r = self.k8s("config", "--server", server)
        assert r.returncode == 0, r.stderr
        path = self.workdir / f"kubeconfig-{server.replace(':', '_').replace('/', '_')}"
        path.write_text(r.stdout)
        path.chmod(0o600)
        return path

    def service_pid(self, svc: str) -> int | None:
        for s in self.status().get("services", []):
            if s["name"] == svc:
                return s.get("pid")
        return None

    def stop(self, timeout: float = 120) -> subprocess.CompletedProcess:
        """`npm stop` for this node (bin/dev-stop with its K8S_ROOT)."""
        r = subprocess.run(
            ["bash", str(REPO / "bin" / "dev-stop")], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if self.k8sd_proc is not None:
            try:
                self.k8sd_proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        return r

    def kubelet_cgroup_root(self) -> str | None:
        """The kubelet's --cgroup-root (k8sd gives every node under a K8S_ROOT one of its own)."""
        try:
            for line in (self.common / "args" / "kubelet").read_text().splitlines():
                if line.startswith("--cgroup-root="):
                    return line.split("=", 1)[1].strip('"')
        except OSError:
            pass
        return None

    def pod_processes(self) -> list[int]:
        """Processes of this node's pods: everything in its kubelet cgroup root."""
        root = self.kubelet_cgroup_root()
        return pod_processes_in(root) if root and root != "/" else []

    def remove_cgroups(self) -> None:
        """Removes the (emptied) cgroups under the node's kubelet cgroup root in every hierarchy."""
        root = self.kubelet_cgroup_root()
        if root and root != "/":
            remove_cgroups_under(root)

    def processes(self) -> list[int]:
        """Live processes that belong to this node: in its netns, carrying its K8S_ROOT, or in its pods."""
        pids = set(processes_of_root(self.root))
        r = run(["ip", "netns", "pids", self.netns], check=False)
        pids.update(int(p) for p in r.stdout.split() if p.strip().isdigit() and process_alive(int(p)))
        pids.update(self.pod_processes())
        return sorted(pids)

    def kill_everything(self) -> None:
        """k8sd, its services and anything else left in the netns or holding the root."""
        for _ in range(3):
            pids = self.processes()
            if not pids:
                return
            kill_and_wait(pids)

    def diagnostics(self, lines: int = 30, service_lines: int = 8) -> str:
        """Tails of k8sd's logs (longer) and of each service log (shorter), for failure reports."""
        parts = [f"==== node {self.name} ({self.address}, netns {self.netns}, root {self.root})"]
        logs = [(self.workdir / "k8sd.console.log", lines)]
        for f in sorted((self.common / "var/log").glob("*.log")):
            logs.append((f, lines if f.name.startswith("k8sd") else service_lines))
        for f, n in logs:
            if f.exists() and f.name != "k8sd.log":  # k8sd.log repeats the console log as JSON
                tail = [line[:400] for line in f.read_text(errors="replace").splitlines()[-n:]]
                parts.append(f"---- {f.name} (last {len(tail)} lines)\n" + "\n".join(tail))
        if self.admin_conf.exists():
            # What the cluster says about its system pods: a feature that never gets ready shows why here.
            for what, args in (("kube-system pods", ("get", "pods", "-n", "kube-system", "-o", "wide")),
                               ("kube-system events", ("get", "events", "-n", "kube-system", "--sort-by=.lastTimestamp"))):
                try:
                    r = self.kubectl(*args, timeout=15)
                    out = (r.stdout or r.stderr).splitlines()[-20:]
                except subprocess.TimeoutExpired:
                    out = ["(kubectl timed out)"]
                parts.append(f"---- {what}\n" + "\n".join(line[:300] for line in out))
        return "\n".join(parts)


class TestBed:
    """A bridge plus N nodes. Use as a context manager or call teardown() yourself."""

    __test__ = False  # not a pytest test class

    def __init__(self, workdir: Path | None = None, prefix: str | None = None, subnet: str | None = None) -> None:
        self.prefix = prefix or self._free_prefix()
        assert len(self.prefix) <= 8, "interface names are limited to 15 characters"
        self.bridge = f"{self.prefix}br"
        # Short by default: unix socket paths under K8S_ROOT are limited to 108 bytes.
        self.workdir = Path(workdir) if workdir else Path("/tmp") / f"k8s-it-{self.prefix}"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.network = ipaddress.ip_network(subnet) if subnet else self._free_subnet()
        self.gateway = str(self.network.network_address + 1)
        self.nodes: list[Node] = []
        self._next_index = 1
        self._used_names: set[str] = set()
        self._mounted_netns_dir = False
        self._up = False

    # ---- set-up ----------------------------------------------------------------------------
    @staticmethod
    def _free_prefix() -> str:
        for _ in range(100):
            prefix = f"k8t{secrets.token_hex(2)}"
            taken = run(["ip", "link", "show", f"{prefix}br"], check=False).returncode == 0
            if not taken and not (Path("/tmp") / f"k8s-it-{prefix}").exists():
                return prefix
        raise RuntimeError("no free test bed prefix")

    @staticmethod
    def _free_subnet() -> ipaddress.IPv4Network:
        used = []
        for line in run(["ip", "-4", "route", "show", "table", "all"], check=False).stdout.splitlines():
            first = line.split()[0] if line.split() else ""
            if first in ("local", "broadcast") and len(line.split()) > 1:
                first = line.split()[1]
            try:
                used.append(ipaddress.ip_network(first, strict=False))
            except ValueError:
                continue
        for _ in range(200):
            candidate = ipaddress.ip_network(f"10.{secrets.choice(range(232, 250))}.{secrets.randbelow(256)}.0/24")
            if not any(candidate.overlaps(u) for u in used if u.prefixlen > 0):
                return candidate
        raise RuntimeError("no free /24 in 10.232.0.0-10.249.255.0")

    def setup(self) -> "TestBed":
        if os.geteuid() != 0:
            raise PermissionError("the test bed needs root (network namespaces, k8sd)")
        self._mounted_netns_dir = not _is_mountpoint(NETNS_DIR)
        self._up = True
        self._save_record()
        run(["ip", "link", "add", self.bridge, "type", "bridge"])
        run(["ip", "addr", "add", f"{self.gateway}/{self.network.prefixlen}", "dev", self.bridge])
        run(["ip", "link", "set", self.bridge, "up"])
        return self

    # A record of what this bed made, so that a later session can clean up after one that was
    # killed before its teardown ran (see sweep_stale).
    def _save_record(self) -> None:
        record = {
            "prefix": self.prefix,
            "bridge": self.bridge,
            "subnet": str(self.network),
            "owner": {"pid": os.getpid(), "start": _start_time(os.getpid())},
            "nodes": [{"name": n.name, "netns": n.netns, "veth_host": n.veth_host, "root": str(n.root)} for n in self.nodes],
        }
        (self.workdir / RECORD).write_text(json.dumps(record, indent=1))

    @staticmethod
    def sweep_stale(base: Path = Path("/tmp")) -> list[str]:
        """Tears down beds under base whose owning process is gone (a session killed before its
        teardown). Beds of live sessions, including parallel ones, are left alone."""
        swept = []
        for rec_file in sorted(base.glob(f"k8s-it-*/{RECORD}")):
            try:
                rec = json.loads(rec_file.read_text())
            except (OSError, ValueError):
                continue
            owner = rec.get("owner", {})
            if _start_time(owner.get("pid", -1)) == owner.get("start"):
                continue
            for n in rec.get("nodes", []):
                pids = set(processes_of_root(Path(n["root"])))
                r = run(["ip", "netns", "pids", n["netns"]], check=False)
                pids.update(int(p) for p in r.stdout.split() if p.isdigit())
                kill_and_wait(pids)
                run(["ip", "netns", "del", n["netns"]], check=False)
                run(["ip", "link", "del", n["veth_host"]], check=False)
            run(["ip", "link", "del", rec["bridge"]], check=False)
            rec_file.unlink(missing_ok=True)
            swept.append(rec["prefix"])
        return swept

    def __enter__(self) -> "TestBed":
        return self.setup()

    def __exit__(self, *exc) -> None:
        self.teardown()

    def add_node(self, name: str | None = None) -> Node:
        index = self._next_index
        self._next_index += 1
        name = name or f"n{index}"
        if name in self._used_names:  # each node gets a fresh netns and K8S_ROOT, even after a removal
            name = f"{name}-{index}"
        self._used_names.add(name)
        address = str(self.network.network_address + 10 + index)
        netns = f"{self.prefix}-{name}"
        veth_host, veth_node = f"{self.prefix}h{index}", f"{self.prefix}n{index}"
        node = Node(self, name, index, address, netns, veth_host, self.workdir / name)
        self.nodes.append(node)
        run(["ip", "netns", "add", netns])
        run(["ip", "link", "add", veth_host, "type", "veth", "peer", "name", veth_node])
        run(["ip", "link", "set", veth_host, "master", self.bridge])
        run(["ip", "link", "set", veth_host, "up"])
        run(["ip", "link", "set", veth_node, "netns", netns])
        inside = ["ip", "netns", "exec", netns]
        run([*inside, "ip", "link", "set", veth_node, "name", "eth0"])
        run([*inside, "ip", "addr", "add", f"{address}/{self.network.prefixlen}", "dev", "eth0"])
        run([*inside, "ip", "link", "set", "eth0", "up"])
        run([*inside, "ip", "link", "set", "lo", "up"])
        # Like any real host, a node has a default route (the bridge; the root netns does not forward):
        # host-network pods reach Service IPs through kube-proxy only when a route covers them.
        run([*inside, "ip", "route", "add", "default", "via", self.gateway])
        self._save_record()
        return node

    def add_nodes(self, count: int) -> list[Node]:
        return [self.add_node() for _ in range(count)]

    # ---- tear-down -------------------------------------------------------------------------
    def remove_node(self, node: Node) -> None:
        errors = []
        try:
            if node.socket.exists() or (node.state_dir / "k8sd.pid").exists():
                node.stop(timeout=60)
        except Exception as e:  # keep tearing down
            errors.append(f"dev-stop: {e}")
        node.kill_everything()
        node.remove_cgroups()
        unmount_under(node.root)
        remove_container_log_links(node.root)
        left = node.processes()
        if left:
            errors.append(f"processes left on {node.name}: {[(p, proc_name(p)) for p in left]}")
        run(["ip", "netns", "del", node.netns], check=False)
        run(["ip", "link", "del", node.veth_host], check=False)
        if node in self.nodes:
            self.nodes.remove(node)
        if errors:
            raise RuntimeError("; ".join(errors))

    def remove_nodes(self, nodes: Iterable[Node], cleanup: Callable[[Node], None] | None = None) -> None:
        """remove_node for several nodes side by side: a node's `npm stop` mostly waits (a control
        plane's kube-apiserver takes up to its 5 s stop grace), and the nodes' waits need not add
        up. Every node is removed (then cleanup(node), if given) even when another one fails; the
        errors are raised together."""
        wanted = [n for n in nodes if n in self.nodes]

        def remove(node: Node) -> None:
            try:
                self.remove_node(node)
            finally:
                if cleanup is not None:
                    cleanup(node)

        if not wanted:
            return
        with ThreadPoolExecutor(max_workers=len(wanted)) as pool:
            futures = [pool.submit(remove, n) for n in wanted]
        errors = [f"{n.name}: {f.exception()}" for n, f in zip(wanted, futures) if f.exception() is not None]
        if errors:
            raise RuntimeError("; ".join(errors))

    def teardown(self) -> None:
        if not self._up:
            return
        errors = []
        try:
            self.remove_nodes(list(self.nodes))
        except Exception as e:
            errors.append(str(e))
        run(["ip", "link", "del", self.bridge], check=False)
        (self.workdir / RECORD).unlink(missing_ok=True)
        if self._mounted_netns_dir and _is_mountpoint(NETNS_DIR):
            others = [p for p in NETNS_DIR.iterdir()] if NETNS_DIR.exists() else []
            if not others:
                run(["umount", str(NETNS_DIR)], check=False)
        self._up = False
        if errors:
            raise RuntimeError("test bed teardown: " + "; ".join(errors))

    def diagnostics(self) -> str:
        return "\n".join(n.diagnostics() for n in self.nodes)

    def reachable(self, node: Node, port: int, timeout: float = 1.0) -> bool:
        try:
            with socket.create_connection((node.address, port), timeout=timeout):
                return True
        except OSError:
            return False


# What a kept work dir does not need for a post-mortem: image blobs and snapshots (side-loaded
# again on the next run), etcd's data and WAL files (preallocated 64 MB each), and charm copies
# that carry a Node runtime. Logs, configs, certificates and k8sd's state stay.
BULKY = ("root/var/lib/containerd", "root/var/snap/k8s/common/var/lib/etcd", "charm")

# The nodes' kubelets evict pods when less than 1 GiB is free (evictionHard in worker-specs.ts), and a
# bed of a few nodes writes a few GiB (images, etcd): below this a session would fail for the disk.
MIN_FREE_BYTES = 5 * 1024**3


def prune_kept(workdir: Path) -> int:
    """Removes the bulky, reproducible parts of a kept bed's node dirs; returns the bytes freed."""
    freed = 0
    for node_dir in (p for p in workdir.iterdir() if p.is_dir()) if workdir.exists() else ():
        for rel in BULKY:
            target = node_dir / rel
            if target.exists() and not target.is_symlink():
                freed += sum(f.stat().st_size for f in target.rglob("*") if f.is_file() and not f.is_symlink())
                unmount_under(target)
                shutil.rmtree(target, ignore_errors=True)
    return freed


def free_space(path: Path) -> tuple[int, float]:
    """Bytes of path's filesystem an unprivileged writer may still use, as kubelet counts them, and their fraction."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize, (st.f_bavail / st.f_blocks if st.f_blocks else 1.0)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
