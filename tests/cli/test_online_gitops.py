"""examples/gitops: the Argo CD health check (run by a real Lua), and the files agree.

The Lua tests need an interpreter (Debian: `apt-get install -y lua5.4`, which `./dev test`
installs): they skip without one, and fail under CI=true.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.binaries import require_binary

ROOT = Path(__file__).resolve().parents[2]
GITOPS = ROOT / "examples" / "gitops"
HEALTH_LUA = GITOPS / "argocd" / "health-rollout.lua"
HEALTH_KEY = "resource.customizations.health.canary.dev_Rollout"


def lua_literal(value: Any) -> str:
    """A JSON-like value as a Lua table constructor."""
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"[{json.dumps(k)}] = {lua_literal(v)}" for k, v in value.items()) + "}"
        )
    if isinstance(value, list):
        return "{" + ", ".join(lua_literal(v) for v in value) + "}"
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def health(obj: dict[str, Any]) -> tuple[str, str]:
    lua = shutil.which("lua5.4") or shutil.which("lua") or require_binary("lua5.4")
    script = (
        f"obj = {lua_literal(obj)}\n"
        f"local hs = assert(loadfile({json.dumps(str(HEALTH_LUA))}))()\n"
        'io.write(hs.status, "\\n", hs.message)\n'
    )
    done = subprocess.run([lua, "-"], input=script, capture_output=True, text=True, check=True)
    status, message = done.stdout.split("\n", 1)
    return status, message


def rollout(phase: str | None, wanted: str = "v2", **status: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"name": "ui", "generation": 2},
        "spec": {"canary": {"version": wanted}},
    }
    if phase is not None:
        body["status"] = {
            "phase": phase,
            "canaryVersion": "v2",
            "observedGeneration": 2,
            "message": "the message",
            **status,
        }
    return body


@pytest.mark.parametrize(
    ("phase", "expected"),
    [
        ("Succeeded", "Healthy"),
        ("Pending", "Progressing"),
        ("Progressing", "Progressing"),
        ("Paused", "Progressing"),
        ("RolledBack", "Degraded"),
        ("Aborted", "Degraded"),
        ("Invalid", "Degraded"),
    ],
)
def test_health_of_each_phase(phase: str, expected: str) -> None:
    status, message = health(rollout(phase))
    assert status == expected
    assert "the message" in message


def test_paused_at_a_manual_gate_says_promote() -> None:
    status, message = health(rollout("Paused", pausedReason="manualGate"))
    assert status == "Progressing"
    assert "kubectl canary promote" in message


@pytest.mark.parametrize(
    "stale",
    [rollout("Succeeded", wanted="v3"), rollout("Succeeded", observedGeneration=1), rollout(None)],
)
def test_the_previous_release_is_not_healthy_yet(stale: dict[str, Any]) -> None:
    status, message = health(stale)
    assert status == "Progressing"
    assert "Waiting for the canary controller" in message


def test_argocd_cm_embeds_the_lua_file() -> None:
    config = yaml.safe_load((GITOPS / "argocd" / "argocd-cm.yaml").read_text())
    assert config["data"][HEALTH_KEY] == HEALTH_LUA.read_text()


def test_every_yaml_parses() -> None:
    files = sorted(GITOPS.rglob("*.yaml"))
    assert len(files) == 4
    for path in files:
        assert all(isinstance(doc, dict) for doc in yaml.safe_load_all(path.read_text())), path


def test_application_ignores_the_fields_the_controller_writes() -> None:
    app = yaml.safe_load((GITOPS / "argocd" / "application.yaml").read_text())
    ignored = {entry["kind"]: entry for entry in app["spec"]["ignoreDifferences"]}
    vs_paths = " ".join(ignored["VirtualService"]["jqPathExpressions"])
    for field in (".route", ".mirror", ".mirrorPercentage", '"ui-canary"'):
        assert field in vs_paths
    assert "RespectIgnoreDifferences=true" in app["spec"]["syncPolicy"]["syncOptions"]


def test_release_script_sed_fallback_changes_only_the_version(tmp_path: Path) -> None:
    script = (GITOPS / "pipeline" / "release.sh").read_text()
    sed = re.search(r'sed -i -E "(.+)" "\$\{rollout_file\}"', script)
    assert sed is not None
    expression = sed.group(1).replace("${version}", "v9")
    target = tmp_path / "rollout.yaml"
    original = (ROOT / "examples" / "ui" / "rollout.yaml").read_text()
    target.write_text(original)
    subprocess.run(["sed", "-i", "-E", expression, str(target)], check=True)
    before, after = yaml.safe_load(original), yaml.safe_load(target.read_text())
    assert after["spec"]["canary"]["version"] == "v9"
    after["spec"]["canary"]["version"] = before["spec"]["canary"]["version"]
    assert after == before
