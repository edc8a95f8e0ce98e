"""The project's own files through the real kubectl (validation on) against the sandbox.

Covers: `kubectl apply -f crds/`, then `-f examples/ui/` (the generated Rollout CRD with its schema,
the Istio CRDs, built-in kinds), `kubectl get cro` with the printer columns, `kubectl get
virtualservice ui -o yaml`, `kubectl patch` of a Rollout, and a schema violation in a Rollout
rejected by the server with its field path.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from support.binaries import require_binary

from canary_sandbox.apiserver import ApiServer, bundled_crd_paths

pytestmark = pytest.mark.kubectl
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def kubectl(tmp_path: Path) -> Iterator[list[str]]:
    binary = require_binary("kubectl")
    with ApiServer() as server:
        server.install_crd_files(bundled_crd_paths())
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
        yield [binary, "--kubeconfig", str(kubeconfig), "--cache-dir", str(tmp_path / "cache")]


def run(kubectl: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*kubectl, *args], capture_output=True, text=True, timeout=60, check=False
    )


def ok(kubectl: list[str], *args: str) -> str:
    result = run(kubectl, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_apply_crds_and_examples_then_get_and_patch(kubectl: list[str]) -> None:
    # As a new user types them: each directory whole, the namespace sorting first (issue 14).
    ok(kubectl, "apply", "-f", str(ROOT / "crds"))
    applied = ok(kubectl, "apply", "-f", str(ROOT / "examples" / "ui"))
    assert "rollout.canary.dev/ui created" in applied
    assert "virtualservice.networking.istio.io/ui created" in applied
    assert "deployment.apps/ui-v2 created" in applied

    listing = ok(kubectl, "get", "cro", "-n", "shop").splitlines()
    assert listing[0].split() == ["NAME", "PHASE", "STAGE", "WEIGHT", "STABLE", "CANARY", "AGE"]
    assert listing[1].split()[0] == "ui"

    shown = yaml.safe_load(ok(kubectl, "get", "virtualservice", "ui", "-n", "shop", "-o", "yaml"))
    assert [r["name"] for r in shown["spec"]["http"]] == ["health", "primary"]

    ok(kubectl, "patch", "cro", "ui", "-n", "shop", "--type", "merge",
       "-p", '{"spec": {"canary": {"version": "v3"}}}')  # fmt: skip
    rollout = yaml.safe_load(ok(kubectl, "get", "rollout", "ui", "-n", "shop", "-o", "yaml"))
    assert rollout["spec"]["canary"]["version"] == "v3"
    assert rollout["metadata"]["generation"] == 2

    again = ok(kubectl, "apply", "-f", str(ROOT / "examples" / "ui"))
    assert "rollout.canary.dev/ui configured" in again


def test_server_rejects_an_invalid_rollout_with_its_field_path(
    kubectl: list[str], tmp_path: Path
) -> None:
    ok(kubectl, "apply", "-f", str(ROOT / "crds" / "rollout.yaml"))
    ok(kubectl, "apply", "-f", str(ROOT / "examples" / "ui" / "00-namespace.yaml"))
    rollout = yaml.safe_load((ROOT / "examples" / "ui" / "rollout.yaml").read_text())
    rollout["spec"]["analysis"]["failureLimit"] = 0
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(rollout))
    result = run(kubectl, "apply", "-f", str(path))
    assert result.returncode != 0
    assert "spec.analysis.failureLimit" in result.stderr
