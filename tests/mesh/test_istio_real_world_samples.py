"""`canary lint` and `canary plan` on the real-world samples (tests/mesh/real_world_samples.py).

Aspects: a sample canary can steer passes lint and plans a whole release whose every object
Istio's CRD schema accepts whole, with the user's routes other than the managed one unchanged;
a sample it cannot steer is refused by lint and plan with the same one sentence (exit 1, no
traceback).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from real_world_samples import SAMPLES, Sample
from support.istio_crds import istio_violations
from typer.testing import CliRunner

from canary.cli.app import app
from canary.mesh.istio import route_index


def write(tmp_path: Path, sample: Sample) -> list[str]:
    paths = []
    for name, body in (
        ("rollout", sample.rollout()),
        ("vs", sample.virtual_service),
        ("dr", sample.destination_rule),
    ):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(body, sort_keys=False))
        paths.append(str(path))
    return paths


def run(*args: str) -> Any:
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.name for s in SAMPLES])
def test_lint_and_plan_agree_on_every_sample(tmp_path: Path, sample: Sample) -> None:
    rollout, vs, dr = write(tmp_path, sample)
    lint = run("lint", rollout, vs, dr)
    plan = run("plan", rollout, "--vs", vs, "--dr", dr, "-o", "json")
    if sample.refusal is not None:
        assert lint.exit_code == 1
        namespace = sample.rollout()["metadata"]["namespace"]
        expected = f"{rollout}: Rollout {namespace}/{sample.host}: {sample.refusal}"
        assert lint.output.strip() == expected
        assert plan.exit_code != 0
        assert sample.refusal in plan.output
        assert len(plan.output.strip().splitlines()) == 1
        return
    assert lint.exit_code == 0, lint.output
    assert plan.exit_code == 0, plan.output
    steps = yaml.safe_load(plan.output)
    weights = list(dict.fromkeys(s["canaryWeight"] for s in steps if s["canaryWeight"]))
    assert weights == sample.rollout()["spec"]["stages"]["split"]["steps"]
    index = route_index(sample.virtual_service, sample.host, sample.route)
    for step in steps:
        assert istio_violations(step["virtualService"]) == [], step["position"]
        assert istio_violations(step["destinationRule"]) == [], step["position"]
        http = [
            r
            for r in step["virtualService"]["spec"]["http"]
            if r.get("name") != f"{sample.host}-canary"
        ]
        original = sample.virtual_service["spec"]["http"]
        assert http[:index] + http[index + 1 :] == original[:index] + original[index + 1 :]
        managed = http[index]
        kept = {
            k: v
            for k, v in original[index].items()
            if k not in ("route", "mirror", "mirrorPercentage")
        }
        assert {k: v for k, v in managed.items() if k in kept} == kept
        for kind in ("tcp", "tls", "hosts", "gateways", "exportTo"):
            assert step["virtualService"]["spec"].get(kind) == sample.virtual_service["spec"].get(
                kind
            )
