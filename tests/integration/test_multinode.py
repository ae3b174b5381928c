"""Several nodes on one machine (issue 18): a control plane and two workers, each under its own
K8S_ROOT, joined with plain commands (no extra arguments). Their pods stay up side by side, every
path a node holds open is under its root or on the documented list (docs/multi-node.md), and
`npm run reset` leaves no process, mount, cgroup or file of the node behind."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from membership_helpers import bring_up, cgroup_root, tear_down
from testbed import CONTAINER_LOG_LINKS, REPO, Node, TestBed, processes_of_root, process_alive, wait_for

pytestmark = pytest.mark.slow

BUSYBOX = "docker.io/library/busybox:test"
STABLE_FOR = float(os.environ.get("K8S_TEST_STABLE_SECONDS", "300"))

# Host paths a node's processes may hold outside its root, each for the reason in docs/multi-node.md.
SHARED_PREFIXES = (
    "/dev/",  # devices, /dev/null, /dev/kmsg, /dev/pts
    "/proc/",
    "/sys/",
    "/run/containerd/s/",  # containerd's shim sockets: directory fixed at build time, names hashed per containerd socket
    "/var/lib/kubelet/device-plugins/",  # the kubelet's device-plugin socket: fixed upstream
)


class Trio:
    def __init__(self, bed: TestBed) -> None:
        self.cp = bed.add_node("mcp")
        self.w1 = bed.add_node("mw1")
        self.w2 = bed.add_node("mw2")

    @property
    def nodes(self) -> list[Node]:
        return [self.cp, self.w1, self.w2]

    @property
    def workers(self) -> list[Node]:
        return [self.w1, self.w2]

    def kubectl_ok(self, *args: str, input: str | None = None) -> str:
        r = self.cp.kubectl(*args, input=input, timeout=60)
        assert r.returncode == 0, f"kubectl {' '.join(args)}: {r.stderr}"
        return r.stdout


@pytest.fixture(scope="module")
def trio(testbed: TestBed):
    t = Trio(testbed)
    bring_up(t.cp, t.workers)  # plain joins: no join file, no extra arguments
    yield t
    tear_down(testbed, t.nodes)


@pytest.fixture(scope="module")
def pods(trio: Trio) -> dict[str, Node]:
    placed = {}
    for w in trio.workers:
        name = f"sleeper-{w.name}"
        manifest = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "nodeName": w.name,
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "main", "image": BUSYBOX, "imagePullPolicy": "Never", "command": ["sh", "-c", "while true; do sleep 1; done"]}],
            },
        }
        trio.kubectl_ok("apply", "-f", "-", input=json.dumps(manifest))
        placed[name] = w
    for name in placed:
        wait_for(f"{name} Running", lambda n=name: pod(trio, n)["status"].get("phase") == "Running", timeout=180, interval=2)
    return placed


def pod(trio: Trio, name: str) -> dict:
    return json.loads(trio.kubectl_ok("get", "pod", name, "-o", "json"))


def restarts(p: dict) -> int:
    return sum(c.get("restartCount", 0) for c in p["status"].get("containerStatuses", []))


def test_each_node_gets_a_cgroup_root_of_its_own_without_being_told(trio: Trio):
    roots = {n.name: n.kubelet_cgroup_root() for n in trio.nodes}
    assert all(roots[n.name] == cgroup_root(n) for n in trio.nodes), roots
    assert len(set(roots.values())) == 3
    for n in trio.nodes:
        assert Path("/sys/fs/cgroup/pids", roots[n.name].lstrip("/"), "kubepods").is_dir(), f"{n.name}: no kubepods under {roots[n.name]}"


def test_pods_on_both_workers_stay_running_with_no_restart_and_no_sandbox_change(trio: Trio, pods: dict[str, Node]):
    uids = {name: pod(trio, name)["metadata"]["uid"] for name in pods}
    deadline = time.time() + STABLE_FOR
    while True:
        for name, node in pods.items():
            p = pod(trio, name)
            assert p["metadata"]["uid"] == uids[name], f"{name} was re-created"
            assert p["status"].get("phase") == "Running", f"{name}: {p['status']}"
            assert restarts(p) == 0, f"{name} restarted: {p['status'].get('containerStatuses')}"
            assert p["spec"]["nodeName"] == node.name
        if time.time() >= deadline:
            break
        time.sleep(15)
    events = json.loads(trio.kubectl_ok("get", "events", "-A", "-o", "json"))["items"]
    changed = [f"{e['involvedObject'].get('name')}: {e.get('message')}" for e in events if e.get("reason") == "SandboxChanged"]
    assert not changed, changed


def held_paths(pid: int) -> set[str]:
    """Files a process holds open and unix sockets it holds (matched through its netns's socket table)."""
    out: set[str] = set()
    inodes: set[str] = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
            elif target.startswith("/"):
                out.add(target.removesuffix(" (deleted)"))
        for line in Path(f"/proc/{pid}/net/unix").read_text().splitlines()[1:]:
            f = line.split()
            if len(f) >= 8 and f[6] in inodes and f[7].startswith("/"):
                out.add(f[7])
    except OSError:
        pass
    return out


def test_every_path_a_node_holds_is_under_its_root_or_documented(trio: Trio, pods: dict[str, Node]):
    allowed_roots = [str(REPO) + "/", str(Path.home() / ".cache/k8s-ts") + "/", "/usr/", "/lib/", "/etc/ssl/", "/etc/ld.so.cache"]
    problems = []
    for node in trio.nodes:
        mine = str(node.root) + "/"
        workdir = str(node.workdir) + "/"
        pids = node.processes()
        assert pids, f"{node.name}: no processes found"
        for pid in pids:
            for p in held_paths(pid):
                if p.startswith((mine, workdir, *SHARED_PREFIXES, *allowed_roots)):
                    continue
                problems.append(f"{node.name}: pid {pid} ({Path(f'/proc/{pid}/comm').read_text().strip() if process_alive(pid) else '?'}) holds {p}")
    assert not problems, "\n".join(sorted(problems))
    # The kubelet links container logs in /var/log/containers whatever its flags say: each pod's link points into its own node's root.
    for name, node in pods.items():
        p = pod(trio, name)
        cid = p["status"]["containerStatuses"][0]["containerID"].split("://", 1)[1]
        link = CONTAINER_LOG_LINKS / f"{name}_default_main-{cid}.log"
        assert link.is_symlink(), f"no container log link {link}"
        assert os.path.realpath(link).startswith(str(node.root) + "/"), f"{link} -> {os.path.realpath(link)}"


def links_into(root: Path) -> list[str]:
    return [f for f in os.listdir(CONTAINER_LOG_LINKS) if os.readlink(CONTAINER_LOG_LINKS / f).startswith(str(root) + "/")]


def cgroup_dirs(node: Node) -> list[Path]:
    return [h / cgroup_root(node).lstrip("/") for h in Path("/sys/fs/cgroup").iterdir() if (h / cgroup_root(node).lstrip("/")).exists()]


def test_reset_leaves_no_process_mount_cgroup_or_file_of_the_node(trio: Trio, pods: dict[str, Node]):
    for node in [*trio.workers, trio.cp]:
        links_before = links_into(node.root)
        if node in trio.workers:
            assert links_before, f"{node.name}: expected container log links before the reset"
        r = subprocess.run(node.nsenter("bash", str(REPO / "bin/dev-reset")), capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, f"reset of {node.name} failed:\n{r.stdout}\n{r.stderr}"
        assert not processes_of_root(node.root), f"{node.name}: processes still name its root"
        assert not cgroup_dirs(node), f"{node.name}: cgroups left: {cgroup_dirs(node)}"
        mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines() if line.split()[4].startswith(str(node.root) + "/")]
        assert not mounts, f"{node.name}: mounts left: {mounts}"
        left = [str(p) for p in node.root.rglob("*")] if node.root.exists() else []
        assert not left, f"{node.name}: files left under its root: {left[:20]}"
        links = links_into(node.root)
        assert not links, f"{node.name}: container log links left: {links}"
        r = node.sh("ip", "-o", "link")
        assert "flannel.1" not in r.stdout and "cni0" not in r.stdout, f"{node.name}: links left:\n{r.stdout}"
        assert int(Path("/proc/sys/fs/inotify/max_user_instances").read_text()) >= 1024, "k8sd did not raise the inotify instance limit"
        r = node.sh("iptables-save")
        assert not [line for line in r.stdout.splitlines() if any(c in line for c in ("KUBE-", "FLANNEL-", "K8SD-NP", "CNI-"))], f"{node.name}: iptables rules left"
