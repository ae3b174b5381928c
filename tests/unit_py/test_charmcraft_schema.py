"""charms/*/charmcraft.yaml against charmcraft's JSON schema, with the reference validator.

The vitest suite checks the same files with a small TypeScript validator
(charms/tests/charmcraft-schema.test.ts); this is the independent cross-check.
Needs: pip install jsonschema pyyaml.
"""

import json
import pathlib

import jsonschema
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCHEMA = pathlib.Path("/work/shared/schemas/charmcraft.json")
CHARMS = ["k8s", "k8s-worker"]


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def load(charm: str) -> dict:
    return yaml.safe_load((ROOT / "charms" / charm / "charmcraft.yaml").read_text())


@pytest.mark.parametrize("charm", CHARMS)
def test_charmcraft_yaml_is_valid(validator: jsonschema.Draft202012Validator, charm: str) -> None:
    errors = [f"{list(error.absolute_path)}: {error.message}" for error in validator.iter_errors(load(charm))]
    assert errors == []


@pytest.mark.parametrize(
    "change",
    [
        {"flavour": "vanilla"},
        {"type": "bundle"},
        {"base": "ubuntu@19.10"},
        {"parts": {}},
        {"platforms": {"any": {"build-on": ["amd64"], "build-for": ["amd64"]}}},
    ],
)
def test_invalid_variants_are_rejected(validator: jsonschema.Draft202012Validator, change: dict) -> None:
    assert list(validator.iter_errors({**load("k8s"), **change}))


@pytest.mark.parametrize("charm", CHARMS)
def test_config_defaults_match_their_types(charm: str) -> None:
    types = {"string": str, "int": int, "float": (int, float), "boolean": bool}
    for name, option in load(charm)["config"]["options"].items():
        assert isinstance(option["default"], types[option["type"]]), name
