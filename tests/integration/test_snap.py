"""The k8s snap: `npm run snap` packs it (once per session; cached by its inputs), the test unsquashes
it and checks its meta/snap.yaml against snapcraft.yaml, that every app's command runs on the
snap's own Node, that the hooks are there, and what the snap must not carry (dev dependencies, test
images and tools, a second Node).

Then each hook runs as snapd runs it: SNAP pointing at the unsquashed tree, SNAP_COMMON,
SNAP_DATA, SNAP_REVISION, SNAP_NAME, on a node of the netns test bed, with a recording `snapctl` on
PATH (a stand-in for snapd at that seam: it logs every call and answers `get` from a JSON file).
The hooks, the CLI and k8sd they drive are the real ones."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import bootstrapped_node
from testbed import REPO, Node, TestBed, processes_of_root

HOOKS = ["install", "configure", "pre-refresh", "post-refresh", "remove"]
FEATURE_ARCHIVES = ["coredns.tar", "local-path-helper.tar", "local-path-provisioner.tar", "metrics-server.tar", "pause.tar", "traefik.tar"]
OWNED_CHAINS = ("KUBE-", "FLANNEL-", "K8SD-NP", "CNI-")

SNAPCTL_STANDIN = """#!/usr/bin/env python3
# snapctl stand-in for the hook tests: records every call; answers `get` from config.json the way
# snapctl prints values (strings raw, other values as JSON, unset as an empty line).
import json, os, sys
here = os.path.dirname(os.path.abspath(__file__))
args = sys.argv[1:]
with open(os.path.join(here, "calls.jsonl"), "a") as f:
    f.write(json.dumps(args) + "\\n")
if args and args[0] == "get":
    try:
        with open(os.path.join(here, "config.json")) as f:
            config = json.load(f)
    except FileNotFoundError:
        config = {}
    keys = [a for a in args[1:] if not a.startswith("-")]
    if "-d" in args or len(keys) > 1:
        print(json.dumps({k: config[k] for k in keys if k in config}, indent="\\t"))
    else:
        v = config.get(keys[0])
        print("" if v is None else v if isinstance(v, str) else json.dumps(v))
"""


# ---- the packed snap ---------------------------------------------------------------------------
@pytest.fixture(scope="session")
def snap_file() -> Path:
    started = time.monotonic()
    r = subprocess.run(["npm", "run", "--silent", "snap"], cwd=REPO, capture_output=True, text=True, timeout=3600)
    assert r.returncode == 0, f"npm run snap failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    path = Path(r.stdout.strip().splitlines()[-1])
    assert path.is_file() and path.suffix == ".snap", f"npm run snap's last line is not a .snap file: {path}"
    print(f"\nnpm run snap: {path} {path.stat().st_size / 2**20:.1f} MiB in {time.monotonic() - started:.0f} s")
    return path


@pytest.fixture(scope="session")
def snap_root(snap_file: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("snap") / "squashfs-root"
    r = subprocess.run(["unsquashfs", "-n", "-d", str(root), str(snap_file)], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"unsquashfs failed:\n{r.stderr}"
    yield root
    shutil.rmtree(root.parent, ignore_errors=True)  # 625 MiB unpacked


@pytest.fixture(scope="session")
def snapcraft() -> dict:
    return yaml.safe_load((REPO / "snapcraft.yaml").read_text())


@pytest.fixture(scope="session")
def snap_yaml(snap_root: Path) -> dict:
    return yaml.safe_load((snap_root / "meta/snap.yaml").read_text())


def test_snap_is_squashfs_xz_owned_by_root(snap_file: Path):
    r = subprocess.run(["unsquashfs", "-s", str(snap_file)], capture_output=True, text=True, check=True)
    assert "Compression xz" in r.stdout, r.stdout
    assert "Xattrs are not stored" in r.stdout and "Fragments are not stored" in r.stdout, r.stdout
    listing = subprocess.run(["unsquashfs", "-n", "-lln", str(snap_file)], capture_output=True, text=True, check=True).stdout
    owners = {line.split()[1] for line in listing.splitlines() if line[:1] in "-dl" and len(line.split()) > 5}
    assert owners == {"0/0"}, f"files not owned by root: {owners}"


def test_snap_yaml_is_runtime_metadata_from_snapcraft_yaml(snap_yaml: dict, snapcraft: dict):
    assert snap_yaml["name"] == snapcraft["name"] == "k8s"
    for key in ("summary", "description", "license", "base", "confinement", "grade", "title"):
        assert snap_yaml[key] == snapcraft[key], key
    assert snap_yaml["architectures"] == ["amd64"]
    # adopt-info: the kubernetes part's version.
    assert snap_yaml["version"] == (REPO / "snap/components/kubernetes/version").read_text().strip()
    for build_key in ("parts", "adopt-info", "build-base", "architectures-build-on"):
        assert build_key not in snap_yaml


def test_apps_match_snapcraft_yaml(snap_yaml: dict, snapcraft: dict):
    assert list(snap_yaml["apps"]) == list(snapcraft["apps"])
    for name, app in snapcraft["apps"].items():
        assert snap_yaml["apps"][name] == app, f"apps.{name} differs from snapcraft.yaml"
    daemons = [n for n, a in snap_yaml["apps"].items() if "daemon" in a]
    enabled = [n for n in daemons if snap_yaml["apps"][n].get("install-mode") != "disable"]
    assert enabled == ["k8sd"], "only k8sd starts at install; it starts the rest"


def test_every_app_command_exists_and_is_executable(snap_root: Path, snap_yaml: dict):
    for name, app in snap_yaml["apps"].items():
        wrapper, *args = app["command"].split()
        assert os.access(snap_root / wrapper, os.X_OK), f"apps.{name}: {wrapper} is not an executable in the snap"
        target = snap_root / "bin" / args[0]
        assert target.exists() and os.access(target, os.X_OK), f"apps.{name}: {wrapper} runs $SNAP/bin/{args[0]}, which is missing"


def snap_env(snap_root: Path, common: Path, **extra: str) -> dict[str, str]:
    """The environment snapd gives an app of a classic snap (no repo on PATH, the host's Node hidden)."""
    return {
        "SNAP": str(snap_root), "SNAP_COMMON": str(common), "SNAP_DATA": str(common.parent / "x1"), "SNAP_REVISION": "x1",
        "SNAP_NAME": "k8s", "SNAP_INSTANCE_NAME": "k8s", "SNAP_ARCH": "amd64", "HOME": "/root",
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "NODE_DISABLE_COMPILE_CACHE": "1", **extra,
    }


def test_cli_and_daemon_run_from_the_snap_on_its_own_node(snap_root: Path, tmp_path: Path):
    env = snap_env(snap_root, tmp_path / "common")
    r = subprocess.run([str(snap_root / "wrappers/run-cli"), "k8s", "--help"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "bootstrap" in r.stdout, f"k8s --help:\n{r.stdout}\n{r.stderr}"
    r = subprocess.run([str(snap_root / "wrappers/run-service"), "k8sd", "--help"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "k8sd" in r.stdout, f"k8sd --help:\n{r.stdout}\n{r.stderr}"
    # The launcher runs the snap's Node, not the host's (/usr/bin/node is on PATH here).
    r = subprocess.run([str(snap_root / "bin/node-runtime"), "-p", "process.execPath + ' ' + process.version"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    exec_path, version = r.stdout.split()
    assert exec_path == str(snap_root / "bin/node") and version.startswith("v24."), r.stdout
    # NODE_DISABLE_COMPILE_CACHE (which the remove hook relies on) keeps the launcher from writing there.
    assert not (tmp_path / "common").exists(), "running the CLI wrote into SNAP_COMMON"


def test_every_service_binary_runs(snap_root: Path, snap_yaml: dict, tmp_path: Path):
    env = snap_env(snap_root, tmp_path / "common")
    (tmp_path / "common/args").mkdir(parents=True)
    for name, app in snap_yaml["apps"].items():
        if "daemon" not in app or name in ("k8sd", "k8s-apiserver-proxy"):
            continue
        # run-service reads $SNAP_COMMON/args/<svc> (absent: no arguments) and appends ours.
        r = subprocess.run([str(snap_root / "wrappers/run-service"), name, "--version"], env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and r.stdout + r.stderr, f"{name} --version:\n{r.stdout}\n{r.stderr}"
    # The proxy needs the endpoints file k8sd writes: without it, it says so (from the snap's code).
    r = subprocess.run([str(snap_root / "wrappers/run-service"), "k8s-apiserver-proxy"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "--endpoints=<file> is required" in r.stdout + r.stderr, f"k8s-apiserver-proxy:\n{r.stdout}\n{r.stderr}"
    plugins = sorted(p.name for p in (snap_root / "opt/cni/bin").iterdir())
    assert {"bridge", "host-local", "loopback", "portmap"} <= set(plugins)
    assert not {"k8s", "kubelet", "node"} & set(plugins), "the CNI plugin dir holds other binaries (k8sd links all of it)"


def test_hooks_are_there_executable_and_the_ones_in_the_repo(snap_root: Path):
    for hook in HOOKS:
        f = snap_root / "meta/hooks" / hook
        assert f.is_file(), f"meta/hooks/{hook} missing"
        assert f.stat().st_mode & stat.S_IXUSR, f"meta/hooks/{hook} is not executable"
        assert f.read_bytes() == (REPO / "snap/hooks" / hook).read_bytes()


def test_snap_carries_one_node_no_dev_dependency_and_no_test_tool(snap_root: Path, snap_file: Path):
    lock = json.loads((REPO / "package-lock.json").read_text())["packages"]
    installed = []
    for d in (snap_root / "node_modules").iterdir():
        if d.name.startswith("."):
            continue
        installed += [f"{d.name}/{s.name}" for s in d.iterdir()] if d.name.startswith("@") else [d.name]
    dev = [p for p in installed if lock.get(f"node_modules/{p}", {}).get("dev")]
    assert not dev, f"dev dependencies in the snap: {dev}"
    assert "typescript" not in installed and "vitest" not in installed and "eslint" not in installed

    nodes = []
    for dirpath, _, files in os.walk(snap_root):
        for name in files:
            p = Path(dirpath, name)
            if "node" not in name or p.is_symlink():
                continue
            with open(p, "rb") as f:
                if f.read(4) == b"\x7fELF":
                    nodes.append(str(p.relative_to(snap_root)))
    assert nodes == ["bin/node"], f"Node runtimes in the snap: {nodes}"
    assert not (snap_root / "node_modules/node").exists()

    names = {p.name for p in snap_root.rglob("*")}
    for tool in ("kube-bench", "busybox", "busybox.tar", "e2e.test", "ginkgo", "test-images"):
        assert tool not in names, f"{tool} is in the snap"
    # The feature images (side-loaded by every node) and nothing else: no test image.
    assert sorted(p.name for p in (snap_root / "images").iterdir()) == FEATURE_ARCHIVES
    assert not (snap_root / "tests").exists() and not (snap_root / "src").exists()
    assert not (snap_root / "dist/snap").exists(), "the packer itself is in the snap"
    size = snap_file.stat().st_size / 2**20
    print(f"\nsnap size {size:.1f} MiB")
    assert size < 300, f"the snap is {size:.0f} MiB"


# ---- the hooks, run as snapd runs them on a node of the test bed -------------------------------
class Snapd:
    """Runs a hook of an unsquashed snap on a node with snapd's environment and a recording snapctl."""

    def __init__(self, node: Node, snap_root: Path, revision: str = "x1") -> None:
        self.node, self.snap_root, self.revision = node, snap_root, revision
        self.dir = node.workdir / "snapd-standin"
        self.dir.mkdir(exist_ok=True)
        (self.dir / "snapctl").write_text(SNAPCTL_STANDIN)
        (self.dir / "snapctl").chmod(0o755)
        (self.dir / "calls.jsonl").write_text("")

    def set(self, **config) -> None:
        (self.dir / "config.json").write_text(json.dumps({k.replace("_", "-"): v for k, v in config.items()}))

    def calls(self) -> list[list[str]]:
        return [json.loads(line) for line in (self.dir / "calls.jsonl").read_text().splitlines() if line]

    def run(self, hook: str, snap_root: Path | None = None, revision: str | None = None, **extra: str) -> subprocess.CompletedProcess:
        root = snap_root or self.snap_root
        rev = revision or self.revision
        # SNAP_COMMON where the node's Layout puts it; SNAP_DATA per revision, outside the node's
        # root (snapd removes it itself).
        env = {
            "K8S_ROOT": str(self.node.root), "K8S_NODE_NAME": self.node.name,
            "SNAP": str(root), "SNAP_COMMON": str(self.node.common), "SNAP_DATA": str(self.node.workdir / "snap-data" / rev),
            "SNAP_REVISION": rev, "SNAP_NAME": "k8s", "SNAP_INSTANCE_NAME": "k8s", "SNAP_ARCH": "amd64", "HOME": "/root",
            "PATH": f"{self.dir}:/usr/sbin:/usr/bin:/sbin:/bin", **extra,
        }
        # env -i: nothing of the test's own environment; K8S_ROOT re-roots the node as in the whole bed.
        cmd = self.node.nsenter("env", "-i", *[f"{k}={v}" for k, v in env.items()], str(root / "meta/hooks" / hook))
        return subprocess.run(cmd, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def fresh_node(testbed: TestBed) -> Node:
    node = testbed.add_node("snapfresh")
    yield node
    testbed.remove_node(node)


def test_install_hook_lays_out_snap_common_and_seeds_the_images(fresh_node: Node, snap_root: Path):
    snapd = Snapd(fresh_node, snap_root)
    r = snapd.run("install")
    assert r.returncode == 0, r.stderr
    for d in ("args/conf.d", "etc", "images", "run", "var/lib", "var/log"):
        assert (fresh_node.common / d).is_dir(), d
    assert (fresh_node.common / "args/k8sd").read_text() == ""
    for img in FEATURE_ARCHIVES:
        assert (fresh_node.common / "images" / img).read_bytes() == (snap_root / "images" / img).read_bytes()


BAD_CONFIG = [
    ({"fips": "yes"}, "fips"),
    ({"fips": True}, "fips"),  # a boolean is fine; this host is not FIPS-enabled, which is refused
    ({"http-proxy": "proxy.corp:3128"}, "http-proxy"),
    ({"https-proxy": "ftp://proxy.corp"}, "https-proxy"),
    ({"http-proxy": "http://proxy:3128\nLD_PRELOAD=/tmp/evil.so"}, "http-proxy"),
    ({"no-proxy": "10.0.0.0/8, .cluster.local"}, "no-proxy"),
    ({"no-proxy": "a,,b"}, "no-proxy"),
    ({"no-proxy": "host;rm -rf /"}, "no-proxy"),
]


def test_configure_refuses_bad_values_naming_the_option_and_writes_nothing(fresh_node: Node, snap_root: Path):
    if Path("/proc/sys/crypto/fips_enabled").exists() and Path("/proc/sys/crypto/fips_enabled").read_text().strip() == "1":
        pytest.skip("the fips=true refusal needs a host without FIPS mode")
    snapd = Snapd(fresh_node, snap_root)
    snapd.set(http_proxy="http://proxy.corp:3128", no_proxy="10.0.0.0/8,.cluster.local,localhost,::1")
    r = snapd.run("configure")
    assert r.returncode == 0, r.stderr
    env_file = fresh_node.common / "args/snap-env"
    good = env_file.read_text()
    assert "HTTP_PROXY=http://proxy.corp:3128\n" in good and "NO_PROXY=10.0.0.0/8,.cluster.local,localhost,::1\n" in good
    assert "GODEBUG=fips140=off\n" in good
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o644

    for config, option in BAD_CONFIG:
        snapd.set(**{k.replace("-", "_"): v for k, v in config.items()})
        r = snapd.run("configure")
        assert r.returncode != 0, f"{config} was accepted"
        assert f"k8s configure: {option}:" in r.stderr, f"{config}: the error does not name {option}:\n{r.stderr}"
        assert env_file.read_text() == good, f"{config}: snap-env changed"
        assert [p.name for p in (fresh_node.common / "args").iterdir() if p.name.startswith(".")] == [], "temp files left"
    # A proxy password is never echoed back.
    snapd.set(http_proxy="http://user:s3cret@proxy :3128")
    r = snapd.run("configure")
    assert r.returncode != 0 and "s3cret" not in r.stderr and "http-proxy" in r.stderr, r.stderr


def test_refresh_hooks_with_k8sd_down_leave_a_record_and_restart_nothing(fresh_node: Node, snap_root: Path):
    snapd = Snapd(fresh_node, snap_root)
    r = snapd.run("pre-refresh")
    assert r.returncode == 0, r.stderr
    record = (fresh_node.common / "var/lib/k8sd/refresh/pre-refresh").read_text()
    assert "revision=x1\n" in record and "k8sd-up=false\n" in record
    r = snapd.run("post-refresh", revision="x2")
    assert r.returncode == 0, r.stderr
    assert "snapd starts the services" in r.stderr
    lock = (fresh_node.common / "lock/post-refresh").read_text()
    assert "from=x1\n" in lock and "to=x2\n" in lock and "changed=\n" in lock, lock
    assert not [c for c in snapd.calls() if c[0] in ("restart", "start", "stop")], snapd.calls()


@pytest.fixture(scope="module")
def snap_node(testbed: TestBed) -> Node:
    node = bootstrapped_node(testbed, "snapnode")
    yield node
    testbed.remove_node(node)


def new_revision(snap_root: Path, tmp: Path, changed: str) -> Path:
    """A copy of the unsquashed snap (hard links) whose bin/<changed> differs by one byte."""
    rev = tmp / "rev2"
    subprocess.run(["cp", "-al", str(snap_root), str(rev)], check=True)
    target = (rev / "bin" / changed).resolve()
    data = target.read_bytes()
    target.unlink()
    target.write_bytes(data + b"\0")
    target.chmod(0o755)
    return rev


def test_pre_and_post_refresh_on_a_running_node_restart_only_what_changed(snap_node: Node, snap_root: Path, tmp_path: Path):
    snapd = Snapd(snap_node, snap_root)
    r = snapd.run("pre-refresh")
    assert r.returncode == 0, r.stderr
    record = (snap_node.common / "var/lib/k8sd/refresh/pre-refresh").read_text()
    assert "k8sd-up=true\n" in record, record
    recorded = {line.split()[1] for line in record.splitlines() if line.startswith("service ")}
    snap_yaml = yaml.safe_load((snap_root / "meta/snap.yaml").read_text())
    assert recorded == {n for n, a in snap_yaml["apps"].items() if "daemon" in a}

    rev2 = new_revision(snap_root, tmp_path, "etcd")
    try:
        r = snapd.run("post-refresh", snap_root=rev2, revision="x2")
    finally:
        shutil.rmtree(rev2, ignore_errors=True)
    assert r.returncode == 0, f"post-refresh failed:\n{r.stderr}"
    lock = (snap_node.common / "lock/post-refresh").read_text()
    assert "from=x1\n" in lock and "to=x2\n" in lock and "changed=etcd\n" in lock, lock
    restarts = [c for c in snapd.calls() if c[0] == "restart"]
    assert restarts == [["restart", "k8s.etcd"]], snapd.calls()
    assert not (snap_node.common / "var/lib/k8sd/refresh/pre-refresh").exists(), "the pre-refresh record outlived the refresh"
    assert snap_node.status()["ready"], "the node is not ready after post-refresh"


def test_remove_leaves_no_process_mount_interface_rule_or_file(snap_node: Node, snap_root: Path):
    assert snap_node.pod_processes(), "expected the node to run pods before the remove"
    cgroup = snap_node.kubelet_cgroup_root()
    assert cgroup and cgroup != "/", cgroup
    snapd = Snapd(snap_node, snap_root)
    r = snapd.run("remove")
    assert r.returncode == 0, r.stderr
    assert "x-cleanup could not" not in r.stderr, r.stderr
    stopped = [c[2] for c in snapd.calls() if c[:2] == ["stop", "--disable"]]
    snap_yaml = yaml.safe_load((snap_root / "meta/snap.yaml").read_text())
    assert sorted(stopped) == sorted(f"k8s.{n}" for n, a in snap_yaml["apps"].items() if "daemon" in a), stopped

    root = snap_node.root
    assert not processes_of_root(root), f"processes still name {root}"
    assert not snap_node.pod_processes(), "pod processes left"
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines() if line.split()[4].startswith(f"{root}/")]
    assert not mounts, f"mounts left: {mounts}"
    left = [str(p) for p in root.rglob("*")] if root.exists() else []
    assert not left, f"files left under the node's root: {left[:20]}"
    links = snap_node.sh("ip", "-o", "link").stdout
    assert "flannel.1" not in links and "cni0" not in links, f"interfaces left:\n{links}"
    rules = [line for line in snap_node.sh("iptables-save").stdout.splitlines() if any(c in line for c in OWNED_CHAINS)]
    assert not rules, f"iptables rules left: {rules[:10]}"
    cgroups = [str(h / cgroup.lstrip("/")) for h in Path("/sys/fs/cgroup").iterdir() if (h / cgroup.lstrip("/")).exists()]
    cgroups += [f"/sys/fs/cgroup{cgroup}"] if Path(f"/sys/fs/cgroup{cgroup}").exists() else []
    assert not cgroups, f"cgroups left: {cgroups}"
    shutil.rmtree(snap_node.workdir / "snap-data", ignore_errors=True)
