"""`canary lint`: exit codes, one clear sentence per problem, never a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from canary.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "ui" / "rollout.yaml"


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["lint", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result.exit_code, result.output


def write(tmp_path: Path, body: Any, name: str = "r.yaml") -> str:
    path = tmp_path / name
    path.write_text(body if isinstance(body, str) else yaml.safe_dump(body))
    return str(path)


def example() -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    return body


def test_examples_are_valid() -> None:
    code, output = run(*sorted(str(p) for p in (ROOT / "examples" / "ui").glob("*.yaml")))
    assert code == 0, output
    assert output.startswith("ok:")


def test_invalid_rollout_names_field_and_fix(tmp_path: Path) -> None:
    body = example()
    body["spec"]["stages"]["split"]["steps"] = [10, 50, 25]
    code, output = run(write(tmp_path, body))
    assert code == 1
    assert "Rollout shop/ui: spec.stages.split.steps: steps must strictly increase" in output


def test_one_line_per_problem(tmp_path: Path) -> None:
    body = example()
    body["spec"]["analysis"]["failureLimit"] = 0
    body["spec"]["stages"]["mirror"]["percent"] = 0
    lines = run(write(tmp_path, body))[1].strip().splitlines()
    assert len(lines) == 2
    assert any("spec.analysis.failureLimit" in line for line in lines)
    assert any("spec.stages.mirror.percent" in line for line in lines)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("spec: [unclosed", "line 1, column"),
        ("- just\n- a list\n", "expected a Kubernetes object"),
        ("kind: Service\n", "no Rollout found"),
    ],
)
def test_bad_yaml_is_one_sentence(tmp_path: Path, text: str, expected: str) -> None:
    code, output = run(write(tmp_path, text))
    assert code == 1
    assert expected in output
    assert "Traceback" not in output


def test_missing_file(tmp_path: Path) -> None:
    code, output = run(str(tmp_path / "nope.yaml"))
    assert code == 1
    assert "nope.yaml: no such file" in output


# ---------------------------------------------------------------- what the controller refuses


def test_lint_refuses_a_stable_subset_without_the_version_label(tmp_path: Path) -> None:
    """Issue 14, defect 2: lint refuses it the way the controller and plan do."""
    dr = yaml.safe_load((ROOT / "examples" / "ui" / "destinationrule.yaml").read_text())
    for subset in dr["spec"]["subsets"]:
        subset["labels"] = {"app": "ui"}
    code, output = run(str(EXAMPLE), write(tmp_path, dr, "dr.yaml"))
    assert code == 1
    assert "DestinationRule shop/ui subset 'stable' has no version label" in output


def test_lint_refuses_a_canary_deployment_of_another_version(tmp_path: Path) -> None:
    body = example()
    body["spec"]["canary"]["version"] = "v3"  # the pipeline bumped; ui-v1 still runs v1
    deployment = ROOT / "examples" / "ui" / "deployment-v1.yaml"
    dr = ROOT / "examples" / "ui" / "destinationrule.yaml"
    code, output = run(write(tmp_path, body), str(deployment), str(dr))
    assert code == 1
    assert "Deployment shop/ui-v1 runs pods with version=v1, not version=v3" in output


def test_lint_refuses_a_subset_label_the_canary_pods_lack(tmp_path: Path) -> None:
    dr = yaml.safe_load((ROOT / "examples" / "ui" / "destinationrule.yaml").read_text())
    canary = next(s for s in dr["spec"]["subsets"] if s["name"] == "canary")
    canary["labels"]["track"] = "canary"
    deployment = ROOT / "examples" / "ui" / "deployment-v1.yaml"
    code, output = run(str(EXAMPLE), str(deployment), write(tmp_path, dr, "dr.yaml"))
    assert code == 1
    assert "subset 'canary' also selects track=canary" in output


def test_lint_refuses_an_unknown_query_placeholder(tmp_path: Path) -> None:
    body = example()
    body["spec"]["analysis"]["gates"].append(
        {"name": "errors", "query": 'sum(x{v="{{ canary.versio }}"})', "max": 1}
    )
    code, output = run(write(tmp_path, body))
    assert code == 1
    assert "spec.analysis.gates[errors].query: unknown placeholder {{ canary.versio }}" in output


@pytest.mark.parametrize(
    ("change", "warning"),
    [
        ({"analysis": {"failureLimit": 5000}}, "failureLimit 5000 rolls a failing canary back"),
        ({"promotion": {"settleDelay": "0s"}}, "settleDelay 0s sends stable traffic"),
        ({"analysis": {"noData": "pass"}}, "noData pass lets a check without data count"),
    ],
)
def test_lint_warns_on_settings_that_switch_a_protection_off(
    tmp_path: Path, change: dict[str, Any], warning: str
) -> None:
    body = example()
    for section, values in change.items():
        body["spec"][section].update(values)
    code, output = run(write(tmp_path, body))
    assert code == 0, output
    assert f"Rollout shop/ui: warning: spec.{next(iter(change))}." in output
    assert warning in output
    assert output.strip().endswith(f"ok: {tmp_path / 'r.yaml'}")
