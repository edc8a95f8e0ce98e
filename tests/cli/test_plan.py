"""`canary plan`: the whole sequence the controller would write (same core and mesh code)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from support.traffic import managed_route
from typer.testing import CliRunner

from canary.cli.app import app

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ui"
ARGS = [
    "plan",
    str(EXAMPLE / "rollout.yaml"),
    "--virtualservice",
    str(EXAMPLE / "virtualservice.yaml"),
    "--destinationrule",
    str(EXAMPLE / "destinationrule.yaml"),
    "--version",
    "v2",  # the example asks for v1, the live version: plan the release a bump would start
]


def run(*extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, [*ARGS, *extra])
    return result.exit_code, result.output


def test_json_plan_walks_every_stage_in_order() -> None:
    code, output = run("-o", "json")
    assert code == 0, output
    steps = json.loads(output)
    shape = [(s["canaryWeight"], s["mirrorPercent"], s["headerRoute"]) for s in steps]
    assert shape == [
        (0, 100.0, False),
        (0, 0.0, True),
        (10, 0.0, False),
        (25, 0.0, False),
        (50, 0.0, False),
        (75, 0.0, False),
        (100, 0.0, False),
        (100, 0.0, False),
        (0, 0.0, False),
    ]
    stable_labels = [
        next(s for s in step["destinationRule"]["spec"]["subsets"] if s["name"] == "stable")[
            "labels"
        ]["version"]
        for step in steps
    ]
    assert stable_labels == ["v1"] * 7 + ["v2", "v2"]


def test_each_planned_virtual_service_carries_its_step() -> None:
    steps = json.loads(run("-o", "json")[1])
    mirror, header, ten = (s["virtualService"] for s in steps[:3])
    assert managed_route(mirror)["mirror"] == {"host": "ui", "subset": "canary"}
    assert managed_route(mirror)["mirrorPercentage"] == {"value": 100.0}
    names = [r.get("name") for r in header["spec"]["http"]]
    assert names == ["health", "ui-canary", "primary"]
    weights = {d["destination"]["subset"]: d["weight"] for d in managed_route(ten)["route"]}
    assert weights == {"stable": 90, "canary": 10}
    final = steps[-1]["virtualService"]
    assert managed_route(final)["route"] == [{"destination": {"host": "ui", "subset": "stable"}}]


def test_unmanaged_routes_and_fields_survive_every_step() -> None:
    original = yaml.safe_load((EXAMPLE / "virtualservice.yaml").read_text())
    health = original["spec"]["http"][0]
    for step in json.loads(run("-o", "json")[1]):
        vs = step["virtualService"]
        assert vs["spec"]["http"][0] == health
        assert managed_route(vs)["timeout"] == "10s"
        assert managed_route(vs)["retries"] == {"attempts": 2, "perTryTimeout": "3s"}


def test_yaml_plan_is_readable_documents() -> None:
    code, output = run()
    assert code == 0
    documents = [d for d in yaml.safe_load_all(output) if d]
    assert len(documents) == 18
    assert "# 9. v2 is live" in output


def test_plan_names_a_missing_route(tmp_path: Path) -> None:
    vs = yaml.safe_load((EXAMPLE / "virtualservice.yaml").read_text())
    vs["spec"]["http"][1]["name"] = "main"
    path = tmp_path / "vs.yaml"
    path.write_text(yaml.safe_dump(vs))
    dr = str(EXAMPLE / "destinationrule.yaml")
    result = CliRunner().invoke(app, [*ARGS[:2], "--vs", str(path), "--dr", dr, *ARGS[-2:]])
    assert result.exit_code == 1
    assert "no http route named 'primary'" in result.output
    assert "Traceback" not in result.output


def test_the_example_as_shipped_releases_nothing() -> None:
    """Issue 14: the shipped example started releasing v2 the moment it was applied."""
    result = CliRunner().invoke(app, [*ARGS[:-2], "-o", "json"])
    assert result.exit_code == 0, result.output
    steps = json.loads(result.output)
    assert [step["position"] for step in steps] == ["v1 is live"]
    assert steps[0]["canaryWeight"] == 0 and steps[0]["mirrorPercent"] == 0


@pytest.mark.parametrize(
    "labels", [{"app": "ui"}, {"app": "ui", "app.kubernetes.io/version": "v1"}]
)
def test_a_stable_subset_without_the_version_label_is_refused(
    tmp_path: Path, labels: dict[str, str]
) -> None:
    """Issue 14, defect 2: this plan once said "v2 is live" in one step."""
    dr = yaml.safe_load((EXAMPLE / "destinationrule.yaml").read_text())
    for subset in dr["spec"]["subsets"]:
        subset["labels"] = dict(labels)
    path = tmp_path / "dr.yaml"
    path.write_text(yaml.safe_dump(dr))
    result = CliRunner().invoke(app, [*ARGS[:4], "--dr", str(path), *ARGS[-2:]])
    assert result.exit_code == 1
    assert result.output.startswith(
        "error: DestinationRule shop/ui subset 'stable' has no version label"
    )
    assert "Rollout shop/ui cannot tell which version is live" in result.output
    assert len(result.output.strip().splitlines()) == 1
