"""The chart deploy/helm/canary and the real helm (tools/helm's build, `k8s_assets.ensure_helm`):
`helm_run` runs it, `render` is `helm template` parsed. Missing helm skips a test locally and
fails it under CI=true (`support.binaries.require_binary`)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml
from support.binaries import require_binary

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "canary"


def helm_run(*args: str, check: bool = True, kubeconfig: Path | None = None,
             timeout: float = 300) -> subprocess.CompletedProcess[str]:  # fmt: skip
    command = [require_binary("helm"), *args]
    if kubeconfig is not None:
        command += ["--kubeconfig", str(kubeconfig)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def set_args(values: dict[str, str]) -> list[str]:
    return [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]


def render(values: dict[str, str] | None = None, *extra: str, release: str = "canary",
           namespace: str = "canary-system") -> list[dict[str, Any]]:  # fmt: skip
    """`helm template` of the chart with `--set` values; the documents, CRDs included."""
    result = helm_run(
        "template", release, str(CHART), "-n", namespace, "--include-crds",
        *set_args(values or {}), *extra,
    )  # fmt: skip
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, (kind, name, [o["metadata"]["name"] for o in found])
    return found[0]


def kinds(objects: list[dict[str, Any]]) -> list[str]:
    return sorted(o["kind"] for o in objects)
