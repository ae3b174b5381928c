"""Packaging checks: snapcraft.yaml and every rocks/*/rockcraft.yaml validate against the crafts'
JSON Schemas, every component part runs a recipe that has a pinned version, and the service
wrapper turns an args file into a command line.

Schemas are read from ../shared/schemas relative to the repository (verbatim copies of the
upstream snapcraft/rockcraft schemas); the schema tests skip when that directory is absent.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")
jsonschema = pytest.importorskip("jsonschema")

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = (REPO / ".." / "shared" / "schemas").resolve()
SNAPCRAFT_YAML = REPO / "snapcraft.yaml"
ROCKS = sorted((REPO / "rocks").glob("*/rockcraft.yaml"))
RECIPE_REF = re.compile(r"snap/components/([A-Za-z0-9._-]+)/build\.sh")
SERVICES = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "containerd",
    "k8s-apiserver-proxy",
]


def load_yaml(path: Path) -> dict:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def load_schema(name: str) -> dict:
    path = SCHEMAS / name
    if not path.is_file():
        pytest.skip(f"schema {name} not found: expected {path} (the shared/ directory beside the repository)")
    with path.open(encoding="utf-8") as f:
        return json.load(f)


def schema_errors(schema: dict, document: dict) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:300]}" for e in errors]


@pytest.fixture(scope="module")
def snapcraft() -> dict:
    return load_yaml(SNAPCRAFT_YAML)


def test_snapcraft_yaml_matches_schema(snapcraft: dict) -> None:
    schema = load_schema("snapcraft.json")
    assert schema_errors(schema, snapcraft) == []


def test_snapcraft_yaml_matches_its_base_project_schema(snapcraft: dict) -> None:
    # The top-level schema is a oneOf over bases, whose errors say little; the per-base
    # definition pinpoints the offending key.
    schema = load_schema("snapcraft.json")
    base = snapcraft["base"]
    definition = {"core22": "Core22Project", "core24": "Core24Project", "core26": "Core26Project"}[base]
    assert schema_errors({"$defs": schema["$defs"], "$ref": f"#/$defs/{definition}"}, snapcraft) == []


def test_rocks_exist_for_the_images_features_deploy() -> None:
    names = {p.parent.name for p in ROCKS}
    assert {"pause", "coredns", "metrics-server", "local-path-provisioner", "local-path-helper", "traefik"} <= names


@pytest.mark.parametrize("rock", ROCKS, ids=[p.parent.name for p in ROCKS])
def test_rockcraft_yaml_matches_schema(rock: Path) -> None:
    schema = load_schema("rockcraft.json")
    document = load_yaml(rock)
    assert schema_errors(schema, document) == []
    assert document["name"] == rock.parent.name


def component_parts(snapcraft: dict) -> dict[str, str]:
    """part name -> recipe name, for parts whose scripts run snap/components/<c>/build.sh."""
    found: dict[str, str] = {}
    for part_name, part in snapcraft["parts"].items():
        scripts = " ".join(str(part.get(k, "")) for k in ("override-pull", "override-build", "override-stage", "override-prime"))
        recipes = set(RECIPE_REF.findall(scripts))
        assert len(recipes) <= 1, f"part {part_name} runs several recipes: {sorted(recipes)}"
        if recipes:
            found[part_name] = recipes.pop()
    return found


def test_every_component_part_has_a_pinned_recipe(snapcraft: dict) -> None:
    parts = component_parts(snapcraft)
    assert parts, "no snapcraft part runs a snap/components/<c>/build.sh recipe"
    for part_name, recipe in parts.items():
        version = REPO / "snap" / "components" / recipe / "version"
        build = REPO / "snap" / "components" / recipe / "build.sh"
        assert build.is_file(), f"part {part_name}: {build} is missing"
        assert version.is_file(), f"part {part_name}: recipe {recipe} has no version file {version}"
        assert version.read_text(encoding="utf-8").strip(), f"part {part_name}: {version} is empty"


def test_component_parts_install_into_the_part_install_dir(snapcraft: dict) -> None:
    for part_name in component_parts(snapcraft):
        script = snapcraft["parts"][part_name]["override-build"]
        assert re.search(r"build\.sh\"?\s+\"?\$\{?(SNAPCRAFT|CRAFT)_PART_INSTALL", script), (
            f"part {part_name} must pass the part install dir as the recipe's OUT_DIR"
        )


def test_every_recipe_directory_is_complete() -> None:
    for recipe in sorted(p for p in (REPO / "snap" / "components").iterdir() if p.is_dir()):
        assert (recipe / "version").is_file(), f"{recipe.name}: no version file"
        assert (recipe / "build.sh").is_file(), f"{recipe.name}: no build.sh"


def test_services_start_disabled_through_the_wrapper(snapcraft: dict) -> None:
    apps = snapcraft["apps"]
    assert apps["k8sd"]["daemon"] and apps["k8sd"].get("install-mode") == "enable"
    assert "daemon" not in apps["k8s"], "k8s is the CLI, not a service"
    for name in SERVICES:
        app = apps[name]
        assert app.get("daemon"), f"{name} must be a daemon"
        assert app.get("install-mode") == "disable", f"{name} must be installed disabled (k8sd starts it)"
        assert app["command"] == f"wrappers/run-service {name}"


@pytest.mark.parametrize("hook", ["install", "configure", "remove"])
def test_hooks_are_executable(hook: str) -> None:
    path = REPO / "snap" / "hooks" / hook
    assert path.is_file(), f"missing hook {path}"
    assert path.stat().st_mode & stat.S_IXUSR, f"hook {path} is not executable"


def test_run_service_builds_the_command_line_from_args_and_env(tmp_path: Path) -> None:
    snap = tmp_path / "snap"
    common = tmp_path / "common"
    (snap / "bin").mkdir(parents=True)
    (common / "args").mkdir(parents=True)
    fake = snap / "bin" / "demo"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do echo "arg:$a"; done\necho "env:$FROM_SNAP:$OVERRIDDEN"\n')
    fake.chmod(0o755)
    (common / "args" / "demo").write_text('--a=1\n\n# comment\n--b="two words"\n  --c=x=y  \n')
    (common / "args" / "snap-env").write_text("FROM_SNAP=yes\nOVERRIDDEN=snap\n")
    (common / "args" / "demo-env").write_text('OVERRIDDEN="service"\n')
    env = {**os.environ, "SNAP": str(snap), "SNAP_COMMON": str(common)}
    env.pop("GOFIPS", None)
    env.pop("GODEBUG", None)
    out = subprocess.run(
        ["bash", str(REPO / "snap" / "wrappers" / "run-service"), "demo", "--extra"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    assert out == ["arg:--a=1", "arg:--b=two words", "arg:--c=x=y", "arg:--extra", "env:yes:service"]
