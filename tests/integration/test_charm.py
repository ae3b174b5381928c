"""The packed k8s charm deploys a real cluster (issue 5).

The charm is packed with charms/pack.sh and unzipped; every hook runs its real `dispatch` (the
bundled Node and the compiled charm) the way the Juju unit agent does: JUJU_* environment,
JUJU_DISPATCH_PATH=hooks/<hook> or actions/<action>, cwd the charm dir, the hook tools first on
PATH. The hook tools are recording stand-ins (juju_hooktools.py) over a JSON state file. The
workload is real: each hook runs inside the node's network namespace (with its own UTS namespace,
hostname = node name, as on a Juju machine); `snap` is a recording stand-in whose `install k8s`
starts this repository's k8sd for the node (what the snap's install does) and whose `list k8s`
reports the version of the built Kubernetes component; the k8s command is a wrapper that runs
bin/k8s with the node's K8S_ROOT (and `k8s kubectl` inside the netns).

Environment:
  K8S_TEST_CHARM=path/to/k8s_amd64.charm   use this .charm instead of packing charms/k8s
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from juju_hooktools import new_state
from test_snap import snap_file  # noqa: F401  (the packed snap: the charm's snap-installation resource)
from testbed import K8S, K8SD, NETNS_DIR, REPO, Node, TestBed, component_bin, wait_for

HOOKTOOLS = Path(__file__).resolve().parent / "juju_hooktools.py"
LEAN_OPTIONS = {"local-storage-enabled": False, "metrics-server-enabled": False}
TOOLS = [
    "config-get", "is-leader", "relation-ids", "relation-list", "relation-get", "relation-set", "status-set",
    "status-get", "application-version-set", "juju-log", "open-port", "close-port", "opened-ports", "network-get",
    "action-get", "action-set", "action-fail", "action-log", "state-get", "state-set", "state-delete",
    "secret-add", "secret-get", "secret-set", "secret-grant", "secret-revoke", "secret-remove", "resource-get",
]
# Tools that print something: the charm must ask each for JSON.
PRINTING_TOOLS = {"config-get", "is-leader", "relation-ids", "relation-list", "relation-get", "network-get",
                  "action-get", "state-get", "secret-get"}
SNAP_VERSION = (REPO / "snap" / "components" / "kubernetes" / "version").read_text().strip()
HOOK_TIMEOUT = 900  # the charm allows bootstrap 15 minutes
UPDATE_STATUS_ROUNDS = 6


# ---- the charm ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def charm_file(tmp_path_factory) -> Path:
    given = os.environ.get("K8S_TEST_CHARM")
    if given:
        return Path(given).resolve()
    out = tmp_path_factory.mktemp("charm")
    r = subprocess.run([str(REPO / "charms" / "pack.sh"), "--out", str(out), "k8s"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"charms/pack.sh failed:\n{r.stdout}\n{r.stderr}"
    return Path(r.stdout.strip().splitlines()[-1])


def unpack(charm: Path, into: Path) -> Path:
    """Unzips a .charm as Juju does, keeping the executable bits."""
    with zipfile.ZipFile(charm) as archive:
        for info in archive.infolist():
            path = Path(archive.extract(info, into))
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                path.chmod(mode)
    return into


# ---- one Juju unit -----------------------------------------------------------------------------
@dataclass
class Dispatch:
    path: str
    started: float  # epoch seconds
    rc: int
    seconds: float
    stdout: str
    stderr: str


@dataclass
class JujuUnit:
    """A k8s unit on a test-bed node: its charm dir, hook tools, snap and k8s stand-ins."""

    node: Node
    charm_dir: Path
    home: Path
    unit: str = "k8s/0"
    resource: Path | None = None  # the snap-installation resource (the packed .snap)
    model_uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    dispatches: list[Dispatch] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.tools = self.home / "tools"
        self.tools.mkdir(parents=True)
        for tool in TOOLS:
            (self.tools / tool).symlink_to(HOOKTOOLS)
        self.state_file = self.home / "juju-state.json"
        self.calls_file = self.home / "hook-tool-calls.jsonl"
        self.workload_log = self.home / "workload-calls.log"
        self.snap_dir = self.home / "snap-state"
        self.snap_dir.mkdir()
        self.calls_file.touch()
        self.workload_log.touch()
        config = yaml.safe_load((self.charm_dir / "config.yaml").read_text())["options"]
        defaults = {name: opt["default"] for name, opt in config.items() if "default" in opt}
        # Lean units, as the test bed's own nodes: the charm's defaults turn on local-storage and
        # metrics-server (as Canonical's charm), a pod each on every unit's cluster that these
        # tests do not look at (the option mapping has unit tests in charms/k8s/tests).
        defaults.update(LEAN_OPTIONS)
        cidr = f"{self.node.bed.network.network_address}/{self.node.bed.network.prefixlen}"
        state = new_state(unit=self.unit, config=defaults, address=self.node.address, cidr=cidr)
        if self.resource:
            state["resources"] = {"snap-installation": str(self.resource)}
        self.state_file.write_text(json.dumps(state))
        self.snap = self._write_snap_standin()
        self.k8s = self._write_k8s_wrapper()

    # ---- stand-ins ---------------------------------------------------------------------------
    def _write_snap_standin(self) -> Path:
        n = self.node
        # Where the dev install keeps the built components (the snap's $SNAP): <cache>/<name>/<version>/bin
        cache = component_bin("kubernetes").parents[2]
        path = self.home / "snap"
        path.write_text(f"""#!/bin/bash
# `snap` for {self.unit}: records every call. `install <file>.snap --dangerous --classic` checks that the
# file is this project's packed k8s snap (its meta/snap.yaml) and starts k8sd for node {n.name} (what
# installing the snap does, from the dev install: snapd itself is not on the test bed); `list k8s`
# reports the built Kubernetes component's version.
printf '%s\\tsnap %s\\n' "$EPOCHREALTIME" "$*" >> '{self.workload_log}'
state='{self.snap_dir}'
case "$1 $2" in
  "list k8s")
    [ -f "$state/installed" ] || {{ echo "error: no matching snaps installed" >&2; exit 1; }}
    notes=classic; [ -f "$state/held" ] && notes=classic,held
    printf 'Name  Version  Rev   Tracking  Publisher  Notes\\nk8s   %s  x1    -         -          %s\\n' '{SNAP_VERSION}' "$notes" ;;
  "install "*.snap)
    [ "$3 $4" = "--dangerous --classic" ] || {{ echo "error: a local snap needs --dangerous, and k8s is classic: snap $*" >&2; exit 1; }}
    meta=$(unsquashfs -cat "$2" meta/snap.yaml) || {{ echo "error: cannot read snap file $2" >&2; exit 1; }}
    grep -qx 'name: k8s' <<< "$meta" && grep -qx 'version: {SNAP_VERSION}' <<< "$meta" || {{ echo "error: $2 is not the k8s {SNAP_VERSION} snap" >&2; exit 1; }}
    # The snap's own Node ($SNAP/bin/node), which the charm runs on. Unpacked aside and renamed into
    # place: a refresh must not write over the binary the running hook executes (snapd mounts a new
    # revision instead).
    rm -rf "$state/unpack"
    unsquashfs -q -n -d "$state/unpack" "$2" bin/node >/dev/null || {{ echo "error: cannot unpack bin/node from $2" >&2; exit 1; }}
    mkdir -p "$state/root/bin" && mv -f "$state/unpack/bin/node" "$state/root/bin/node" && rm -rf "$state/unpack"
    if [ ! -f "$state/installed" ]; then
      setsid nsenter --net='{NETNS_DIR / n.netns}' env K8S_ROOT='{n.root}' K8S_NODE_NAME='{n.name}' \\
        K8S_COMPONENT_CACHE='{cache}' '{K8SD}' \\
        >> '{n.workdir / "k8sd.console.log"}' 2>&1 < /dev/null &
      for _ in $(seq 1 600); do
        python3 -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])' '{n.socket}' 2>/dev/null && break
        sleep 0.1
      done
      touch "$state/installed"
    fi
    echo "k8s {SNAP_VERSION} installed" ;;
  "refresh --hold")
    [ "$3" = k8s ] || {{ echo "error: unexpected snap refresh $*" >&2; exit 1; }}
    touch "$state/held"; echo "General refreshes of \\"k8s\\" held indefinitely" ;;
  "remove k8s")
    K8S_ROOT='{n.root}' bash '{REPO / "bin" / "dev-stop"}' || true
    rm -rf "$state/installed" "$state/held" "$state/root"; echo "k8s removed" ;;
  *) echo "snap stand-in: unexpected 'snap $*'" >&2; exit 1 ;;
esac
""")
        path.chmod(0o755)
        return path

    def _write_k8s_wrapper(self) -> Path:
        n = self.node
        cache = component_bin("kubernetes").parents[2]
        path = self.home / "k8s"
        path.write_text(f"""#!/bin/bash
# `k8s` for {self.unit}: the real CLI against node {n.name}; kubectl inside its netns (admin.conf is on 127.0.0.1).
# The charm must never put a join token on the command line (/proc/<pid>/cmdline is world-readable).
case " $* " in *" k8sj1_"*) echo "k8s stand-in: a join token was passed in argv" >&2; exit 97 ;; esac
printf '%s\\tk8s %s\\n' "$EPOCHREALTIME" "$*" >> '{self.workload_log}'
export K8S_ROOT='{n.root}' K8S_NODE_NAME='{n.name}' K8S_COMPONENT_CACHE='{cache}'
if [ "$1" = kubectl ]; then exec nsenter --net='{NETNS_DIR / n.netns}' '{K8S}' "$@"; fi
exec '{K8S}' "$@"
""")
        path.chmod(0o755)
        return path

    # ---- state -------------------------------------------------------------------------------
    def state(self) -> dict:
        return json.loads(self.state_file.read_text())

    def update_state(self, change) -> None:
        state = self.state()
        change(state)
        self.state_file.write_text(json.dumps(state))

    def calls(self, tool: str | None = None, dispatch: str | None = None) -> list[dict]:
        rows = [json.loads(line) for line in self.calls_file.read_text().splitlines() if line.strip()]
        return [r for r in rows if (tool is None or r["tool"] == tool) and (dispatch is None or r["dispatch"] == dispatch)]

    def workload_calls(self, timed: bool = False) -> list:
        """'snap …' and 'k8s …' lines, or (epoch seconds, line) pairs."""
        rows = [line.split("\t", 1) for line in self.workload_log.read_text().splitlines() if "\t" in line]
        return [(float(t), line) for t, line in rows] if timed else [line for _, line in rows]

    def create_peer_relation(self, endpoint: str = "cluster", rid: str = "cluster:0") -> str:
        app = self.unit.split("/")[0]
        self.update_state(lambda s: s["relations"].__setitem__(
            rid, {"endpoint": endpoint, "remote-app": app, "units": [self.unit], "created": True, "data": {app: {}, self.unit: {}}}
        ))
        return rid

    # ---- dispatch ----------------------------------------------------------------------------
    def _env(self, dispatch_path: str, extra: dict[str, str]) -> dict[str, str]:
        env = {
            "PATH": f"{self.tools}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "HOME": str(self.home),
            "JUJU_DISPATCH_PATH": dispatch_path,
            "JUJU_CHARM_DIR": str(self.charm_dir),
            "JUJU_UNIT_NAME": self.unit,
            "JUJU_MODEL_NAME": "charm-it",
            "JUJU_MODEL_UUID": self.model_uuid,
            "JUJU_VERSION": "3.6.8",
            "JUJU_MACHINE_ID": "0",
            "JUJU_PRINCIPAL_UNIT": "",
            "JUJU_AGENT_SOCKET_NETWORK": "unix",
            "FAKE_JUJU_STATE": str(self.state_file),
            "FAKE_JUJU_CALLS": str(self.calls_file),
            "K8S_CHARM_SNAP_CMD": str(self.snap),
            "K8S_CHARM_K8S_CMD": str(self.k8s),
            "K8S_CHARM_K8SD_SOCKET": str(self.node.socket),
            "K8S_CHARM_K8SD_STATE_DIR": str(self.node.state_dir),
            "K8S_CHARM_PKI_DIR": str(self.node.pki),
            # containerd's registry hosts dir (its CRI config_path) under the node's K8S_ROOT.
            "K8S_CHARM_CONTAINERD_HOSTS_DIR": str(self.node.root / "etc/containerd/hosts.d"),
            # The snap's Node, which the charm runs on (the stand-in's install lays it out, as the snap's would).
            "K8S_CHARM_NODE_BIN": str(self.snap_dir / "root" / "bin" / "node"),
        }
        env.update(extra)
        return env

    def dispatch(self, dispatch_path: str, extra_env: dict[str, str] | None = None, timeout: float = HOOK_TIMEOUT) -> Dispatch:
        """Runs ./dispatch inside the node's netns and a UTS namespace named after the node.

        Like the unit agent, keeps the relation data and unit state a hook wrote only if it exits 0.
        """
        env = self._env(dispatch_path, extra_env or {})
        before = self.state()
        cmd = [
            "nsenter", f"--net={NETNS_DIR / self.node.netns}", "unshare", "--uts",
            "sh", "-c", 'hostname "$0" && exec "$@"', self.node.name,
            "env", "-i", *[f"{k}={v}" for k, v in env.items()], "./dispatch",
        ]
        started, t0 = time.time(), time.monotonic()
        r = subprocess.run(cmd, cwd=self.charm_dir, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        d = Dispatch(dispatch_path, started, r.returncode, time.monotonic() - t0, r.stdout, r.stderr)
        self.dispatches.append(d)
        if r.returncode != 0:
            def rollback(s: dict) -> None:
                s["unit-state"] = before["unit-state"]
                for rid, rel in s["relations"].items():
                    if rid in before["relations"]:
                        rel["data"] = before["relations"][rid]["data"]
            self.update_state(rollback)
        return d

    def hook(self, name: str, **extra: str) -> Dispatch:
        return self.dispatch(f"hooks/{name}", {"JUJU_HOOK_NAME": name, **extra})

    def relation_hook(self, name: str, rid: str, remote_app: str, remote_unit: str = "") -> Dispatch:
        extra = {"JUJU_RELATION": rid.split(":")[0], "JUJU_RELATION_ID": rid, "JUJU_REMOTE_APP": remote_app}
        if remote_unit:
            extra["JUJU_REMOTE_UNIT"] = remote_unit
        return self.hook(name, **extra)

    def action(self, name: str, params: dict | None = None) -> tuple[Dispatch, dict]:
        """Runs an action; returns the dispatch and {results, failed, logs}."""
        action_id = str(len([d for d in self.dispatches if d.path.startswith("actions/")]) + 1)
        self.update_state(lambda s: s.__setitem__("action", {"name": name, "params": params or {}, "results": {}, "failed": None, "logs": []}))
        d = self.dispatch(f"actions/{name}", {"JUJU_ACTION_NAME": name, "JUJU_ACTION_UUID": action_id})
        outcome = self.state()["action"]
        self.update_state(lambda s: s.__setitem__("action", None))
        return d, outcome

    def unit_status(self) -> dict:
        return self.state()["status"]["unit"]

    def report(self) -> str:
        lines = [f"==== {self.unit} dispatches"]
        for d in self.dispatches:
            lines.append(f"{d.path}: rc {d.rc} in {d.seconds:.1f}s")
            if d.rc != 0 or d.stderr.strip():
                lines += [f"  | {line}" for line in (d.stdout + d.stderr).strip().splitlines()[-20:]]
        state = self.state()
        lines.append("status history: " + "; ".join(f"{h['status']} '{h['message']}' ({h['dispatch']})" for h in state["status-history"]))
        lines.append("juju-log (last 10):")
        lines += [f"  {e['level']} ({e['dispatch']}) {e['message'][:400]}" for e in state["juju-log"][-10:]]
        lines.append("workload calls: " + "; ".join(self.workload_calls()[-25:]))
        return "\n".join(lines)


# ---- the deployment ----------------------------------------------------------------------------
@dataclass
class Deployment:
    unit: JujuUnit
    deploy: list[Dispatch]


@pytest.fixture(scope="module")
def deployed(request: pytest.FixtureRequest, testbed: TestBed, charm_file: Path, snap_file: Path):
    """One unit of the k8s application, deployed as Juju 3 deploys it: install,
    cluster-relation-created (the peer relation), leader-elected, config-changed, start, then
    update-status (Juju's periodic hook) until the unit settles (at most a few rounds)."""
    node = testbed.add_node("juju-0")
    home = testbed.workdir / "unit-k8s-0"
    home.mkdir()
    charm_dir = unpack(charm_file, home / "charm")
    unit = JujuUnit(node, charm_dir, home, resource=snap_file)
    deploy: list[Dispatch] = []
    try:
        deploy.append(unit.hook("install"))
        rid = unit.create_peer_relation()
        deploy.append(unit.relation_hook("cluster-relation-created", rid, "k8s"))
        unit.update_state(lambda s: s.__setitem__("leader", True))
        deploy.append(unit.hook("leader-elected"))
        deploy.append(unit.hook("config-changed"))
        deploy.append(unit.hook("start"))
        for _ in range(UPDATE_STATUS_ROUNDS):
            deploy.append(unit.hook("update-status"))
            if unit.unit_status()["status"] == "active":
                break
            time.sleep(5)
        yield Deployment(unit, deploy)
    finally:
        print("\n" + unit.report())  # pytest shows it with -s, or for a failure
        try:
            testbed.remove_node(node)
        finally:
            shutil.rmtree(charm_dir, ignore_errors=True)


# ---- the tests ---------------------------------------------------------------------------------
def test_every_deploy_hook_succeeds(deployed):
    unit = deployed.unit
    assert [d.path for d in deployed.deploy[:5]] == [
        "hooks/install", "hooks/cluster-relation-created", "hooks/leader-elected", "hooks/config-changed", "hooks/start",
    ]
    failed = [d for d in deployed.deploy if d.rc != 0]
    assert not failed, unit.report()
    # Every call to a tool that prints asked for JSON, and none was refused.
    calls = unit.calls()
    assert calls
    for call in calls:
        assert call["rc"] == 0, f"{call['tool']} {call['args']} failed: {call.get('stderr')}"
        if call["tool"] in PRINTING_TOOLS:
            assert "--format=json" in call["args"], call


def test_the_leader_bootstraps_a_ready_cluster(deployed):
    unit = deployed.unit
    node = unit.node
    status = node.status()
    assert status["ready"] is True, status
    assert status["role"] == "control-plane"
    assert status["node-name"] == node.name
    assert status["address"] == node.address
    assert [m["name"] for m in status["datastore"]["members"]] == [node.name]

    workload = unit.workload_calls()
    # This project's packed snap, from the snap-installation resource; never Canonical's store snap.
    assert f"snap install {deployed.unit.resource} --dangerous --classic" in workload
    assert not [c for c in workload if c.startswith("snap install k8s")], workload
    assert "snap refresh --hold k8s" in workload
    bootstraps = [c for c in workload if c.startswith("k8s bootstrap")]
    assert bootstraps == [f"k8s bootstrap --file - --name {node.name} --address {node.address}"], workload
    # Bootstrapped by the leader, once: in leader-elected, the first hook where it is leader.
    bootstrapping = [h for h in unit.state()["status-history"] if h["message"] == "Bootstrapping Cluster"]
    assert [h["dispatch"] for h in bootstrapping] == ["hooks/leader-elected"]


def test_the_unit_ends_active_with_its_version_and_port(deployed):
    unit = deployed.unit
    state = unit.state()
    assert state["status"]["unit"] == {"status": "active", "message": "Ready"}, unit.report()
    status_sets = unit.calls("status-set")
    assert status_sets[-1]["args"] == ["--application=false", "active", "Ready"]
    seen = [(c["dispatch"], c["args"][1], c["args"][2]) for c in status_sets]
    assert ("hooks/install", "maintenance", "Installing k8s snap") in seen
    assert ("hooks/install", "waiting", "Waiting for the 'cluster' peer relation") in seen
    assert ("hooks/leader-elected", "maintenance", "Bootstrapping Cluster") in seen
    # Every hook after the bootstrap says Active, or waits for the node: `k8s status` is ready only
    # once the node is Ready and the enabled features (network, dns) are up, a few seconds later.
    after = [c for c in status_sets if c["dispatch"] in ("hooks/config-changed", "hooks/start", "hooks/update-status")]
    waiting = ["waiting", f"Node {unit.node.name} is not ready"]
    assert after and all(c["args"][1:] in (["active", "Ready"], waiting) for c in after), after
    assert after[-1]["args"][1:] == ["active", "Ready"]

    assert state["workload-version"] == SNAP_VERSION
    assert [c["args"] for c in unit.calls("application-version-set")][0] == [SNAP_VERSION]
    assert state["opened-ports"] == ["6443/tcp"]

    # What the leader recorded for the other units and for itself.
    app_bag = state["relations"]["cluster:0"]["data"]["k8s"]
    unit_bag = state["relations"]["cluster:0"]["data"]["k8s/0"]
    cluster_name = app_bag["cluster-name"]
    # node-address: published in install, before it was leader (a joining unit names its address for its token).
    assert unit_bag == {"node-name": unit.node.name, "node-address": unit.node.address, "joined": cluster_name}
    assert app_bag[f"node.k8s/0"] == unit.node.name
    assert json.loads(app_bag["bootstrap-config"]) == {
        "bootstrap-datastore": "", "bootstrap-pod-cidr": "10.1.0.0/16", "bootstrap-service-cidr": "10.152.183.0/24",
    }


def test_later_hooks_are_idempotent(deployed):
    unit = deployed.unit
    before = len(unit.workload_calls())
    d = unit.hook("update-status")
    assert d.rc == 0, unit.report()
    assert unit.unit_status() == {"status": "active", "message": "Ready"}
    new = unit.workload_calls()[before:]
    assert not [c for c in new if c.startswith(("k8s bootstrap", "k8s join-cluster", "snap install", "snap refresh"))], new


def _kubectl_in_netns(node: Node, kubeconfig: Path, *args: str) -> subprocess.CompletedProcess:
    return node.sh(str(component_bin("kubernetes") / "kubectl"), f"--kubeconfig={kubeconfig}", *args, timeout=60)


def test_get_kubeconfig_returns_a_kubeconfig_kubectl_can_use(deployed):
    unit = deployed.unit
    node = unit.node
    d, outcome = unit.action("get-kubeconfig")
    assert d.rc == 0, unit.report()
    assert outcome["failed"] is None, outcome["failed"]
    kubeconfig = outcome["results"]["kubeconfig"]
    doc = yaml.safe_load(kubeconfig)
    assert doc["kind"] == "Config"
    assert doc["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443"
    path = unit.home / "action-kubeconfig"
    path.write_text(kubeconfig)
    path.chmod(0o600)
    r = _kubectl_in_netns(node, path, "get", "ns", "-o", "jsonpath={.items[*].metadata.name}")
    assert r.returncode == 0, r.stderr
    assert {"default", "kube-system"} <= set(r.stdout.split())
    # action-set got the kubeconfig as one key=value argument.
    (call,) = unit.calls("action-set", "actions/get-kubeconfig")[:1]
    assert call["args"] == [f"kubeconfig={kubeconfig}"]


def test_get_kubeconfig_with_a_server_reaches_the_node_from_outside(deployed):
    unit = deployed.unit
    node = unit.node
    server = f"https://{node.address}:6443"
    d, outcome = unit.action("get-kubeconfig", {"server": server})
    assert d.rc == 0 and outcome["failed"] is None, (outcome, unit.report())
    kubeconfig = outcome["results"]["kubeconfig"]
    assert yaml.safe_load(kubeconfig)["clusters"][0]["cluster"]["server"] == server
    path = unit.home / "action-kubeconfig-server"
    path.write_text(kubeconfig)
    path.chmod(0o600)
    # From the root netns, over the test bed's bridge.
    r = subprocess.run(
        [str(component_bin("kubernetes") / "kubectl"), f"--kubeconfig={path}", "get", "ns", "default", "-o", "name"],
        capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "namespace/default"


def settle(unit) -> dict:
    """Runs update-status (Juju's periodic hook) until the unit is Active, as Juju would."""
    for _ in range(UPDATE_STATUS_ROUNDS):
        if unit.unit_status()["status"] == "active":
            break
        assert unit.hook("update-status").rc == 0, unit.report()
        time.sleep(5)
    return unit.unit_status()


def test_a_feature_toggle_after_bootstrap_reaches_the_cluster(deployed):
    """dns-enabled=false runs `k8s set dns.enabled=false`: CoreDNS leaves the cluster; true brings it back."""
    unit = deployed.unit
    node = unit.node
    before = len(unit.workload_calls())
    unit.update_state(lambda s: s["config"].__setitem__("dns-enabled", False))
    try:
        d = unit.hook("config-changed")
        assert d.rc == 0, unit.report()
        assert "k8s set dns.enabled=false" in unit.workload_calls()[before:]
        assert settle(unit) == {"status": "active", "message": "Ready"}, unit.report()
        r = node.k8s("get", "dns.enabled")
        assert r.returncode == 0 and r.stdout.strip() == "false", r.stdout + r.stderr
        wait_for("CoreDNS removed", lambda: node.kubectl("-n", "kube-system", "get", "deployment", "coredns").returncode != 0, timeout=120)
    finally:
        unit.update_state(lambda s: s["config"].__setitem__("dns-enabled", True))
        assert unit.hook("config-changed").rc == 0
        assert settle(unit) == {"status": "active", "message": "Ready"}, unit.report()
    assert node.k8s("get", "dns.enabled").stdout.strip() == "true"
    assert node.kubectl("-n", "kube-system", "get", "deployment", "coredns").returncode == 0


def test_get_kubeconfig_fails_cleanly_on_a_unit_without_a_cluster(testbed: TestBed, charm_file: Path, snap_file: Path):
    """The action on a unit whose k8sd runs but is not part of a cluster fails through action-fail."""
    node = testbed.add_node("juju-1")
    home = testbed.workdir / "unit-k8s-1"
    home.mkdir()
    unit = JujuUnit(node, unpack(charm_file, home / "charm"), home, unit="k8s/1", resource=snap_file)
    try:
        assert unit.hook("install").rc == 0, unit.report()
        assert node.socket_answers()
        d, outcome = unit.action("get-kubeconfig")
        assert d.rc == 0, unit.report()
        assert outcome["results"] == {}
        assert outcome["failed"] and outcome["failed"].startswith("cannot get the kubeconfig"), outcome
    finally:
        testbed.remove_node(node)


def test_without_a_snap_resource_or_channel_the_unit_is_blocked_and_installs_nothing(testbed: TestBed, charm_file: Path):
    """No Canonical store snap by default: with neither the resource nor `channel`, install says what to do."""
    node = testbed.add_node("juju-2")
    home = testbed.workdir / "unit-k8s-2"
    home.mkdir()
    charm_dir = unpack(charm_file, home / "charm")
    unit = JujuUnit(node, charm_dir, home, unit="k8s/2")
    try:
        d = unit.hook("install")
        assert d.rc == 0, unit.report()
        assert unit.unit_status() == {
            "status": "blocked",
            "message": "No k8s snap: attach the 'snap-installation' resource (a k8s .snap, or a tarball holding one) or set the 'channel' option",
        }
        assert not [c for c in unit.workload_calls() if c.startswith("snap install")]
        assert not node.socket_answers()
    finally:
        testbed.remove_node(node)
        shutil.rmtree(charm_dir, ignore_errors=True)


# ---- the etcd relation: an external datastore ---------------------------------------------------
def _openssl(*args: str, cwd: Path) -> None:
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def external_etcd_pki(where: Path, server_ip: str) -> dict[str, Path]:
    """A CA, an etcd server certificate for server_ip and a client certificate, as an etcd charm makes them."""
    where.mkdir(parents=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    _openssl("req", "-x509", *ec, "-days", "1", "-subj", "/CN=external-etcd-ca", "-keyout", "ca.key", "-out", "ca.crt", cwd=where)
    for name, cn, ext in (
        ("server", "etcd-server", f"subjectAltName=IP:{server_ip},IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth"),
        ("client", "k8s-external-client", "extendedKeyUsage=clientAuth"),
    ):
        (where / f"{name}.ext").write_text(ext + "\n")
        _openssl("req", *ec, "-subj", f"/CN={cn}", "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=where)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "1",
                 "-extfile", f"{name}.ext", "-out", f"{name}.crt", cwd=where)
    for key in where.glob("*.key"):
        key.chmod(0o600)
    return {name: where / name for name in ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")}


def test_the_leader_bootstraps_on_the_external_etcd_of_the_etcd_relation(testbed: TestBed, charm_file: Path, snap_file: Path):
    """A real etcd (mutual TLS, its own netns as its own machine) publishes its client URL and a client
    certificate on the etcd relation, as Canonical's etcd charm does; the leader bootstraps against it:
    no managed etcd runs, and the cluster's objects are in the external etcd."""
    etcd_node = testbed.add_node("ext-etcd")
    pki = external_etcd_pki(testbed.workdir / "ext-etcd-pki", etcd_node.address)
    url = f"https://{etcd_node.address}:2379"
    etcd_bin = component_bin("etcd")
    etcd = subprocess.Popen(
        etcd_node.nsenter(
            str(etcd_bin / "etcd"), "--name", "ext-etcd", "--data-dir", str(etcd_node.workdir / "etcd-data"),
            "--listen-client-urls", url, "--advertise-client-urls", url,
            "--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
            "--initial-cluster", "ext-etcd=http://127.0.0.1:2380",
            "--cert-file", str(pki["server.crt"]), "--key-file", str(pki["server.key"]),
            "--trusted-ca-file", str(pki["ca.crt"]), "--client-cert-auth",
        ),
        stdout=subprocess.DEVNULL, stderr=open(etcd_node.workdir / "etcd.log", "w"),
    )

    def etcdctl(*args: str) -> subprocess.CompletedProcess:
        return etcd_node.sh(str(etcd_bin / "etcdctl"), f"--endpoints={url}", f"--cacert={pki['ca.crt']}",
                            f"--cert={pki['client.crt']}", f"--key={pki['client.key']}", *args, timeout=60)

    node = testbed.add_node("juju-etcd")
    home = testbed.workdir / "unit-k8s-etcd"
    home.mkdir()
    unit = JujuUnit(node, unpack(charm_file, home / "charm"), home, resource=snap_file)
    try:
        wait_for("the external etcd to answer", lambda: etcdctl("endpoint", "health").returncode == 0, timeout=60)
        assert unit.hook("install").rc == 0, unit.report()
        rid = unit.create_peer_relation()
        assert unit.relation_hook("cluster-relation-created", rid, "k8s").rc == 0, unit.report()
        # The etcd relation exists, but the etcd charm has published only its URL so far.
        unit.update_state(lambda s: s["relations"].__setitem__("etcd:5", {
            "endpoint": "etcd", "remote-app": "etcd", "units": [unit.unit, "etcd/0"], "created": True,
            "data": {"etcd": {}, "etcd/0": {"connection_string": url}, "k8s": {}, unit.unit: {}},
        }))
        unit.update_state(lambda s: s.__setitem__("leader", True))
        assert unit.hook("leader-elected").rc == 0, unit.report()
        assert unit.unit_status() == {
            "status": "waiting", "message": "Waiting for etcd to publish connection_string, client_ca, client_cert, client_key",
        }
        assert not [c for c in unit.workload_calls() if c.startswith("k8s bootstrap")]

        unit.update_state(lambda s: s["relations"]["etcd:5"]["data"]["etcd/0"].update({
            "client_ca": pki["ca.crt"].read_text(), "client_cert": pki["client.crt"].read_text(), "client_key": pki["client.key"].read_text(),
        }))
        assert unit.relation_hook("etcd-relation-changed", "etcd:5", "etcd", "etcd/0").rc == 0, unit.report()
        for _ in range(UPDATE_STATUS_ROUNDS):
            if unit.unit_status()["status"] == "active":
                break
            time.sleep(5)
            assert unit.hook("update-status").rc == 0, unit.report()
        assert unit.unit_status() == {"status": "active", "message": "Ready"}, unit.report()

        status = node.wait_ready()
        assert status["ready"] is True, status
        assert node.service_pid("etcd") is None, "a managed etcd runs although the datastore is external"
        # The cluster's objects live in the external etcd (the apiserver's /registry prefix).
        r = etcdctl("get", "/registry/namespaces/kube-system", "--keys-only")
        assert r.returncode == 0 and "/registry/namespaces/kube-system" in r.stdout, (r.stdout, r.stderr)
        assert unit.state()["relations"][rid]["data"]["k8s"]["datastore"] == "external"
    finally:
        print("\n" + unit.report())
        try:
            testbed.remove_node(node)
        finally:
            etcd.terminate()
            etcd.wait(timeout=30)
            testbed.remove_node(etcd_node)


# ---- the upgrade flow --------------------------------------------------------------------------
def test_a_new_snap_resource_waits_for_pre_upgrade_check_then_the_unit_takes_its_turn(deployed, tmp_path):
    """On the deployed unit, with its `upgrade` peer relation: a new snap-installation resource (a
    tarball holding the packed snap) without pre-upgrade-check is refused; after the check (against
    the real cluster) stores the stack, upgrade-charm installs it, the unit reports completed, and
    the next hook clears the stack."""
    unit = deployed.unit
    rid = unit.create_peer_relation(endpoint="upgrade", rid="upgrade:7")
    assert unit.relation_hook("upgrade-relation-created", rid, "k8s").rc == 0, unit.report()
    assert unit.unit_status() == {"status": "active", "message": "Ready"}, unit.report()
    tarball = tmp_path / "snap-installation.tar.gz"
    subprocess.run(["tar", "-czf", str(tarball), "-C", str(unit.resource.parent), unit.resource.name], check=True)
    installs = lambda: [c for c in unit.workload_calls() if c.startswith("snap install")]  # noqa: E731
    before = len(installs())

    unit.update_state(lambda s: s["resources"].__setitem__("snap-installation", str(tarball)))
    assert unit.hook("upgrade-charm").rc == 0, unit.report()
    assert unit.unit_status() == {
        "status": "blocked",
        "message": "A new k8s snap resource is attached: run the pre-upgrade-check action on the leader to refresh the units one at a time",
    }
    assert len(installs()) == before

    d, outcome = unit.action("pre-upgrade-check")
    assert d.rc == 0 and outcome["failed"] is None, (outcome, unit.report())
    assert outcome["results"]["upgrade-order"] == "k8s/0"
    assert json.loads(unit.state()["relations"][rid]["data"]["k8s"]["upgrade-stack"]) == ["k8s/0"]

    assert unit.hook("upgrade-charm").rc == 0, unit.report()
    new = installs()[before:]
    assert len(new) == 1 and new[0].endswith(f"{unit.resource.name} --dangerous --classic") and str(tarball) not in new[0], new
    assert unit.state()["relations"][rid]["data"][unit.unit]["state"] == "completed", unit.report()
    assert unit.node.status()["ready"] is True

    assert unit.hook("update-status").rc == 0, unit.report()
    data = unit.state()["relations"][rid]["data"]
    assert "upgrade-stack" not in data["k8s"] and data[unit.unit]["state"] == "idle", data
    assert unit.unit_status() == {"status": "active", "message": "Ready"}, unit.report()
