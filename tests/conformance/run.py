"""The upstream Kubernetes conformance tests (e2e.test of the pinned release, built by
snap/components/conformance) against a test bed of 1 control plane + 2 workers (one network
namespace and K8S_ROOT per node, tests/integration/testbed.py).

Every node side-loads the e2e images (built by the same recipe, named as e2e expects) from its
$SNAP_COMMON/images, so nothing is pulled. e2e.test runs inside the control-plane node's netns (as
sonobuoy would run it on a node), with the admin kubeconfig and --provider=skeleton; with --procs > 1
through the ginkgo CLI. Writes to --out: e2e.log, junit_01.xml (ginkgo's JUnit report), summary.txt
(counts and every failure with its message).

Default selection: [Conformance] tests of [sig-network] and [sig-node] that are not [Serial] or
[Disruptive].
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))

from membership_helpers import get_token, join, require_node_components, seed_images, tear_down, worker_join_config  # noqa: E402
from conftest import _interrupt  # noqa: E402  (SIGTERM -> KeyboardInterrupt, as for the integration tests)
from testbed import TestBed, component_bin  # noqa: E402

FOCUS = r"\[Conformance\]"
SKIP = r"\[Serial\]|\[Disruptive\]"
LABEL = r"\[sig-network\]|\[sig-node\]"


def build() -> Path:
    """The conformance recipe's output dir (bin/e2e.test, bin/ginkgo, images/)."""
    if shutil.which("mmdebstrap") is None:  # the recipe's one host tool, installed as bin/dev-setup installs its own
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "mmdebstrap"], check=True, env=env)
    r = subprocess.run(["bash", str(REPO / "snap" / "components" / "build-all.sh"), "conformance"], stdout=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise SystemExit(f"building the conformance recipe failed (exit {r.returncode}); its log is above")
    line = [x for x in r.stdout.splitlines() if x.startswith("conformance=")][-1]  # build-all prints name=bindir
    return Path(line.split("=", 1)[1]).parent


def image_archives(out: Path) -> list[tuple[Path, str]]:
    rows = (out / "images" / "list").read_text().split("\n")
    return [(out / "images" / f, name) for f, name in (row.split(" ", 1) for row in rows if row)]


def summarize(junit: Path, took: float) -> str:
    root = ET.parse(junit).getroot()
    passed, failed, skipped = [], [], 0
    for case in root.iter("testcase"):
        name = case.get("name", "")
        status = case.get("status", "")
        if case.find("skipped") is not None or status == "skipped":
            skipped += 1
            continue
        if name.startswith("[SynchronizedBeforeSuite]") or name.startswith("[SynchronizedAfterSuite]") or name.startswith("[ReportAfterSuite]") or name.startswith("[ReportBeforeSuite]"):
            if case.find("failure") is None and case.find("error") is None:
                continue
        bad = case.find("failure")
        if bad is None:
            bad = case.find("error")
        if bad is None:
            passed.append(name)
        else:
            msg = (bad.get("message") or bad.text or "").strip().splitlines()
            failed.append((name, " ".join(msg[:6])[:800]))
    lines = [f"passed {len(passed)}, failed {len(failed)}, skipped (not selected) {skipped}; {took / 60:.1f} min", ""]
    for name, msg in failed:
        lines += [f"FAIL {name}", f"     {msg}", ""]
    return "\n".join(lines)


def main() -> int:
    # A SIGTERM becomes a KeyboardInterrupt, so that the test bed is torn down (as in conftest.py).
    signal.signal(signal.SIGTERM, _interrupt)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(f"/tmp/k8s-conformance-{time.strftime('%Y%m%d-%H%M%S')}"))
    ap.add_argument("--procs", type=int, default=4, help="parallel ginkgo processes (1: e2e.test alone)")
    ap.add_argument("--focus", default=FOCUS)
    ap.add_argument("--skip", default=SKIP)
    ap.add_argument("--label", default=LABEL, help="what must come before --focus in a selected test's name (the sigs)")
    ap.add_argument("--timeout", default="6h", help="ginkgo suite timeout")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("conformance: run as root (network namespaces)")
    require_node_components()
    tools = build()
    e2e, ginkgo = tools / "bin" / "e2e.test", tools / "bin" / "ginkgo"
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"conformance: results in {args.out}", flush=True)

    keep = bool(os.environ.get("K8S_TEST_KEEP"))
    with TestBed() as bed:
        cp, w1, w2 = bed.add_node("ccp"), bed.add_node("cw1"), bed.add_node("cw2")
        nodes = [cp, w1, w2]
        try:
            for node in nodes:
                seed_images(node)
                images = node.common / "images"
                for archive, _ in image_archives(tools):
                    (images / f"e2e-{archive.name}").symlink_to(archive)
                node.start_k8sd()
            t0 = time.time()
            r = cp.bootstrap(None, timeout="600s")
            assert r.returncode == 0, f"bootstrap failed:\n{r.stdout}\n{r.stderr}\n{cp.diagnostics()}"
            cp.wait_ready(timeout=600)
            for w in (w1, w2):
                r = join(w, get_token(cp, w.name, worker=True), worker_join_config(w), timeout="600s")
                assert r.returncode == 0, f"join of {w.name} failed:\n{r.stdout}\n{r.stderr}\n{w.diagnostics()}"
            for w in (w1, w2):
                w.wait_ready(timeout=600)
            print(f"conformance: 1 control plane + 2 workers ready in {time.time() - t0:.0f} s", flush=True)
            for node in nodes:
                listed = node.sh(str(component_bin("containerd") / "ctr"), "--address", str(node.root / "run/containerd/containerd.sock"), "-n", "k8s.io", "images", "ls", "-q").stdout
                missing = [name for _, name in image_archives(tools) if name not in listed]
                assert not missing, f"{node.name} did not side-load {missing}"

            focus = f"({args.label}).*({args.focus})"  # the sig comes first in a test's full name
            # e2e writes junit_01.xml to --report-dir; --kubectl-path: the bundled kubectl, not whatever is on PATH.
            common = [f"--kubeconfig={cp.admin_conf}", "--provider=skeleton", f"--report-dir={args.out}",
                      f"--kubectl-path={component_bin('kubernetes') / 'kubectl'}"]
            if args.procs > 1:
                cmd = [str(ginkgo), f"--procs={args.procs}", "--no-color", "-v", f"--timeout={args.timeout}", f"--output-dir={args.out}",
                       f"--focus={focus}", f"--skip={args.skip}", str(e2e), "--", *common]
            else:
                cmd = [str(e2e), *common, f"--ginkgo.focus={focus}", f"--ginkgo.skip={args.skip}", f"--ginkgo.timeout={args.timeout}", "--ginkgo.no-color", "--ginkgo.v"]
            (args.out / "command.txt").write_text(" ".join(cmd) + "\n")
            t1 = time.time()
            with open(args.out / "e2e.log", "w") as log:
                rc = subprocess.run(cp.nsenter(*cmd), stdout=log, stderr=subprocess.STDOUT, cwd=args.out).returncode
            took = time.time() - t1
            junit = args.out / "junit_01.xml"
            summary = summarize(junit, took) if junit.exists() else f"no JUnit report (e2e exit {rc}); see {args.out / 'e2e.log'}"
            summary = f"e2e exit {rc}\n{summary}"
            (args.out / "summary.txt").write_text(summary + "\n")
            print(summary)
            return 0 if rc == 0 else 1
        finally:
            tear_down(bed, nodes)
            if keep:
                print(f"conformance: test bed work dir kept: {bed.workdir}")
            else:
                shutil.rmtree(bed.workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
