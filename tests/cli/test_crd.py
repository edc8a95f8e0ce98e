"""The committed CRD: generated from the models, structural, and what `canary crd` prints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from canary.cli.app import app
from canary.core.crd import rollout_crd

ROOT = Path(__file__).resolve().parents[2]


def test_committed_crd_is_up_to_date() -> None:
    committed = yaml.safe_load((ROOT / "crds" / "rollout.yaml").read_text())
    assert committed == rollout_crd(), "crds/rollout.yaml is stale: run `canary crd` to update it"


def test_canary_crd_prints_the_crd() -> None:
    result = CliRunner().invoke(app, ["crd"])
    assert result.exit_code == 0
    assert yaml.safe_load(result.output) == rollout_crd()


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    if not isinstance(node, dict):
        return []
    found = [(path, node)]
    for key, child in node.get("properties", {}).items():
        found += _walk(child, f"{path}.{key}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            found += _walk(node[key], f"{path}[{key}]")
    return found


def test_schema_is_structural() -> None:
    version = rollout_crd()["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    text = json.dumps(schema)
    for forbidden in ("$ref", "anyOf", "oneOf", "allOf", "$defs", '"const"'):
        assert forbidden not in text
    for path, node in _walk(schema):
        assert "type" in node, f"{path} has no type"
        assert not ("properties" in node and "additionalProperties" in node), path


def test_status_subresource_short_name_and_columns() -> None:
    crd = rollout_crd()
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    assert crd["spec"]["names"]["shortNames"] == ["cro"]
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Phase"] == ".status.phase"
    assert columns["Stage"] == ".status.stage"
    assert columns["Weight"] == ".status.canaryWeight"
    assert columns["Age"] == ".metadata.creationTimestamp"
