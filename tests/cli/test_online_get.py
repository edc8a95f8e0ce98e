"""`canary get` (and `kubectl canary get`) against the sandbox API server.

Aspects: the table (one namespace, -A), one Rollout in detail (weight bar, gates, history,
events), -o json/yaml as stored, -w ending when the release ends, not-found, plugin discovery.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from support.binaries import require_binary
from test_online_sandbox import Sandbox, sandbox_fixture, status  # noqa: F401

from canary_sandbox.client import SandboxClient

SPLIT = status(
    "Progressing",
    stage="split",
    stepIndex=1,
    canaryWeight=25,
    message="at split step 2 (25% canary)",
    lastAnalysis={
        "time": "2024-05-01T12:00:00Z",
        "outcome": "fail",
        "countedAs": "fail",
        "gates": [
            {"name": "success-rate", "verdict": "fail", "value": 97.25, "threshold": ">= 99"},
            {"name": "p99-latency", "verdict": "pass", "value": 120.0, "threshold": "<= 500ms"},
        ],
    },
    failedChecks=1,
    history=[
        {"time": "2024-05-01T11:59:00Z", "phase": "Pending", "stage": "waiting", "message": "a"},
        {"time": "2024-05-01T12:00:00Z", "phase": "Progressing", "stage": "split", "step": 1,
         "canaryWeight": 25, "message": "at split step 2 (25% canary)"},
    ],
)  # fmt: skip


def lines(output: str) -> list[list[str]]:
    return [line.split() for line in output.strip().splitlines()]


def test_table_lists_the_namespace(sandbox: Sandbox) -> None:
    sandbox.create_rollout("ui", with_status=SPLIT)
    sandbox.create_rollout("cart", version="v7")
    sandbox.create_rollout("elsewhere", namespace="other")
    result = sandbox.cli("get")
    assert result.exit_code == 0, result.output
    header, *rows = lines(result.output)
    assert header == ["NAME", "PHASE", "STAGE", "WEIGHT", "STABLE", "CANARY", "AGE"]
    assert [row[:6] for row in rows] == [
        ["cart", "-", "-", "0%", "-", "-"],
        ["ui", "Progressing", "split", "25%", "v1", "v2"],
    ]
    assert "\x1b[" not in result.output  # no ANSI when not a terminal


WAITING = (
    "waiting for a release slot: 3 of 3 concurrent releases are running (--max-concurrent-releases)"
)


def test_a_release_waiting_for_a_slot_says_so_in_the_table_and_the_detail(
    sandbox: Sandbox,
) -> None:
    waiting = status(
        "Pending", stage="waiting", message=WAITING, waitingForSlotSince="2024-05-01T12:00:00Z"
    )
    sandbox.create_rollout("ui", with_status=waiting)
    _, *rows = lines(sandbox.cli("get").output)
    assert rows[0][:4] == ["ui", "Pending", "(waitingForSlot)", "waiting"]
    out = sandbox.cli("get", "ui").output
    assert "Phase          Pending (waitingForSlot)" in out
    assert f"Message        {WAITING}" in out


def test_all_namespaces_adds_the_namespace_column(sandbox: Sandbox) -> None:
    sandbox.create_rollout("ui")
    sandbox.create_rollout("elsewhere", namespace="other")
    header, *rows = lines(sandbox.cli("get", "-A").output)
    assert header[:2] == ["NAMESPACE", "NAME"]
    # the real control plane is the session's: other tiers' Rollouts may be in other namespaces
    ours = [row[:2] for row in rows if row[0] in ("other", "shop")]
    assert ours == [["other", "elsewhere"], ["shop", "ui"]]


def test_empty_namespace_says_so(sandbox: Sandbox) -> None:
    result = sandbox.cli("get", "-n", "empty")
    assert (result.exit_code, result.output) == (0, "No Rollouts found in namespace empty.\n")


def test_detail_shows_position_gates_history_and_events(sandbox: Sandbox) -> None:
    rollout = sandbox.create_rollout(with_status=SPLIT)
    sandbox.cluster.record_event(rollout, "Warning", "GateFailed", "success-rate 97.25 < 99")
    result = sandbox.cli("get", "ui")
    assert result.exit_code == 0, result.output
    out = result.output
    for expected in (
        "Name           shop/ui",
        "Phase          Progressing",
        "Step           2 of 5",
        "Canary weight  █████░░░░░░░░░░░░░░░ 25%",
        "Mirror         off",
        "Stable         v1",
        "Canary         v2",
        "Failed checks  1 of 2 (consecutive)",
        "Message        at split step 2 (25% canary)",
    ):
        assert expected in out, expected
    rows = lines(out)
    assert ["GATE", "VALUE", "THRESHOLD", "VERDICT"] in rows
    assert ["success-rate", "97.25", ">=", "99", "fail"] in rows
    assert ["p99-latency", "120", "<=", "500ms", "pass"] in rows
    squeezed = [" ".join(row) for row in rows]
    # its age: 0s in-process on the sandbox, a second or two through kubectl on the real one
    assert [
        s for s in squeezed if re.fullmatch(r"\d+s Warning GateFailed success-rate 97.25 < 99", s)
    ]
    assert any(s.endswith("Progressing split 2 25% at split step 2 (25% canary)") for s in squeezed)
    assert all(line == line.rstrip() for line in out.splitlines())


def test_detail_shows_the_events_of_this_rollout_object_only(sandbox: Sandbox) -> None:
    """Events outlive their object: an earlier Rollout `ui` and the Service `ui` have theirs."""
    earlier = sandbox.create_rollout()
    sandbox.cluster.record_event(earlier, "Warning", "RolledBack", "the earlier ui's")
    sandbox.cluster.record_event(service_ui(earlier), "Normal", "Synced", "the Service's")
    client = SandboxClient.from_kubeconfig(sandbox.kubeconfig)
    client.delete(client.path_of(earlier))
    current = sandbox.create_rollout(with_status=SPLIT)
    sandbox.cluster.record_event(current, "Normal", "StageStarted", "this ui's")
    result = sandbox.cli("get", "ui")
    assert result.exit_code == 0, result.output
    assert "this ui's" in result.output
    assert "the earlier ui's" not in result.output and "the Service's" not in result.output


def service_ui(rollout: dict[str, Any]) -> dict[str, Any]:
    """A Service named like the Rollout, as a reference for an Event (never created)."""
    metadata = rollout["metadata"]
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": metadata["name"], "namespace": metadata["namespace"],
                         "uid": "00000000-0000-4000-8000-000000000001"}}  # fmt: skip


def test_json_is_the_stored_object(sandbox: Sandbox) -> None:
    sandbox.create_rollout(with_status=SPLIT)
    result = sandbox.cli("get", "ui", "-o", "json")
    assert result.exit_code == 0
    printed = json.loads(result.output)
    stored = sandbox.rollout()
    assert printed == stored
    assert printed["status"]["lastAnalysis"] == SPLIT["lastAnalysis"]


def test_yaml_is_the_stored_object(sandbox: Sandbox) -> None:
    sandbox.create_rollout(with_status=SPLIT)
    result = sandbox.cli("get", "ui", "-o", "yaml")
    assert result.exit_code == 0
    assert list(yaml.safe_load_all(result.output)) == [sandbox.rollout()]


def test_list_as_json_is_a_v1_list(sandbox: Sandbox) -> None:
    sandbox.create_rollout("ui")
    sandbox.create_rollout("cart")
    printed = json.loads(sandbox.cli("get", "-o", "json").output)
    assert printed["kind"] == "List"
    assert [item["metadata"]["name"] for item in printed["items"]] == ["cart", "ui"]


def test_not_found_names_the_rollout_and_the_fix(sandbox: Sandbox) -> None:
    result = sandbox.cli("get", "nope", "-n", "shop")
    assert result.exit_code == 1
    assert result.output == (
        "error: Rollout shop/nope not found: check the name and namespace (-n)\n"
    )


def test_name_with_all_namespaces_is_refused(sandbox: Sandbox) -> None:
    result = sandbox.cli("get", "ui", "-A")
    assert result.exit_code == 1
    assert "drop -A" in result.output


def test_watch_prints_each_change_until_the_release_ends(sandbox: Sandbox) -> None:
    sandbox.create_rollout(with_status=SPLIT)
    final = status("Succeeded", stable="v2", message="v2 is live")
    sandbox.after_reads(1, lambda: sandbox.set_status(final))
    result = sandbox.cli("get", "ui", "-w", "-o", "json")
    assert result.exit_code == 0, result.output
    documents = [json.loads(d) for d in result.output.replace("}\n{", "}\0{").split("\0")]
    assert documents[0]["status"]["phase"] == "Progressing"
    assert documents[-1]["status"]["phase"] == "Succeeded"


def test_watch_detail_without_a_terminal_prints_each_state(sandbox: Sandbox) -> None:
    sandbox.create_rollout(with_status=SPLIT)
    rolled_back = status("RolledBack", message="success-rate failed twice; all traffic on stable")
    sandbox.after_reads(1, lambda: sandbox.set_status(rolled_back))
    result = sandbox.cli("get", "ui", "--watch")
    assert result.exit_code == 0, result.output
    assert result.output.index("Progressing") < result.output.index("RolledBack")
    assert "success-rate failed twice; all traffic on stable" in result.output


def test_watch_of_an_ended_release_returns_at_once(sandbox: Sandbox) -> None:
    sandbox.create_rollout(with_status=status("Succeeded", stable="v2"))
    result = sandbox.cli("get", "ui", "-w", "-o", "yaml")
    assert result.exit_code == 0
    assert yaml.safe_load(result.output)["status"]["phase"] == "Succeeded"


# ---------------------------------------------------------------- kubectl plugin discovery


def test_kubectl_finds_the_plugin(sandbox: Sandbox) -> None:
    kubectl = require_binary("kubectl")
    sandbox.create_rollout(with_status=SPLIT)
    venv_bin = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("KUBECONFIG", None)
    completed = subprocess.run(
        [kubectl, "canary", "get", "--kubeconfig", str(sandbox.kubeconfig)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    header, row = lines(completed.stdout)
    assert header[0] == "NAME"
    assert row[:4] == ["ui", "Progressing", "split", "25%"]
