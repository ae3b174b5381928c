"""Fixtures for the integration tests: a session-wide test bed (one bridge, nodes on demand) and
a bootstrapped single-node cluster shared by the tests that only read from it.

Environment:
  K8S_TEST_KEEP=1      keep the work dir (K8S_ROOTs, logs) after the run; the namespaces are removed
  K8S_TEST_WORKDIR     where to put node roots (default /tmp/k8s-it-<prefix>; keep it short: unix
                       socket paths are limited to 108 bytes)
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from testbed import MIN_FREE_BYTES, RECORD, REPO, TestBed, component_bin, free_space, prune_kept  # noqa: E402

REQUIRED = [("etcd", "etcd"), ("etcd", "etcdctl"), ("kubernetes", "kube-apiserver"), ("kubernetes", "kubectl")]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes more than a minute")
    config.addinivalue_line(
        "markers",
        "crypto_neutral: what it checks does not depend on the crypto backend (its crypto is the same "
        "code that other tests of its module check in FIPS mode); the fips env leaves it out (tox.ini)",
    )
    # A SIGTERM (a CI time limit, `timeout`) becomes a KeyboardInterrupt, so that fixture
    # finalizers still tear the test bed down (network namespaces, k8sd and its services).
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _preflight() -> str | None:
    if os.geteuid() != 0:
        return "integration tests need root (network namespaces)"
    if not (REPO / "dist" / "k8sd" / "main.js").exists():
        return "dist/ is not built: run bin/dev-setup"
    for component, binary in REQUIRED:
        if not (component_bin(component) / binary).exists():
            return f"{component}/{binary} is not built: run bin/dev-setup"
    return None


@pytest.fixture(scope="session")
def testbed(request: pytest.FixtureRequest):
    problem = _preflight()
    if problem:
        pytest.fail(problem, pytrace=False)
    swept = TestBed.sweep_stale()
    if swept:
        print(f"\nremoved test beds left by killed sessions: {', '.join(swept)}", file=sys.stderr)
    bed_dir = os.environ.get("K8S_TEST_WORKDIR")
    _prune_kept_beds()
    problem = _disk_problem(Path(bed_dir).parent if bed_dir else Path("/tmp"))
    if problem:
        pytest.fail(problem, pytrace=False)
    bed = TestBed(Path(bed_dir) if bed_dir else None)
    bed.setup()
    request.config._k8s_testbed = bed  # for failure reports
    try:
        yield bed
    finally:
        failed = request.session.testsfailed > 0
        try:
            bed.teardown()
        finally:
            if os.environ.get("K8S_TEST_KEEP") or failed:
                prune_kept(bed.workdir)
                print(f"\ntest bed work dir kept (logs, configs, state; images and etcd data removed): {bed.workdir}", file=sys.stderr)
            else:
                shutil.rmtree(bed.workdir, ignore_errors=True)


def _prune_kept_beds(base: Path = Path("/tmp")) -> None:
    """Beds kept by earlier runs (no live record) keep their logs but give back their image stores:
    each node's containerd holds a few hundred MB, and a disk kubelet finds short evicts pods."""
    for workdir in base.glob("k8s-it-*"):
        if workdir.is_dir() and not (workdir / RECORD).exists():
            prune_kept(workdir)


def _disk_problem(path: Path) -> str | None:
    free, fraction = free_space(path)
    if free < MIN_FREE_BYTES:
        return (f"only {free / 1024**3:.1f} GiB ({fraction:.0%}) of the filesystem holding {path} is available; the nodes' "
                f"kubelets evict pods below 1 GiB and a bed needs a few GiB. Free space there (kept test beds: "
                f"/tmp/k8s-it-*) and run again.")
    return None


def bootstrapped_node(testbed: TestBed, name: str, config=None):
    """A new node with k8sd started and bootstrapped (config: bootstrap YAML text or dict), ready."""
    node = testbed.add_node(name)
    node.start_k8sd()
    r = node.bootstrap(config)
    assert r.returncode == 0, f"bootstrap of {name} failed:\n{r.stdout}\n{r.stderr}\n{node.diagnostics()}"
    node.wait_ready()
    return node


def core_api(node):
    """The official Python client (CoreV1Api) from the root netns, with the admin kubeconfig that
    `k8s config --server <address>:6443` prints."""
    from kubernetes import client, config

    return client.CoreV1Api(config.new_client_from_config(config_file=str(node.kubeconfig())))


@pytest.fixture(scope="session")
def cluster(testbed: TestBed):
    """One bootstrapped control-plane node, ready, shared by the whole session: tests that use it
    only read, or leave it as they found it. Tests that break things get a node of their own."""
    node = bootstrapped_node(testbed, "cp")
    yield node
    testbed.remove_node(node)


@pytest.fixture(scope="session")
def kube_client(cluster):
    api = core_api(cluster)
    yield api
    api.api_client.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed:
        bed = getattr(item.config, "_k8s_testbed", None)
        if bed is not None and bed.nodes:
            rep.sections.append(("k8s test bed logs", bed.diagnostics()))
