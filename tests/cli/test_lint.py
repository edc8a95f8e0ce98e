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
