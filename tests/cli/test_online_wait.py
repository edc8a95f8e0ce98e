"""`canary wait`: the pipeline step and its exit codes.

Aspects: `waiting.decide` over plain dicts (every phase, the current-release rule, --for paused,
--paused-ok); then the command against the sandbox: every exit code, a status that still
describes the previous release, progress lines a CI log can read, not-found.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_online_sandbox import Sandbox, sandbox_fixture, status  # noqa: F401

from canary.cli.waiting import ExitCode, WaitFor, decide, is_current_release, timeout_outcome

FAST = ("--interval", "50ms")


def rollout(phase: str | None, *, wanted: str = "v2", generation: int = 1, **st: Any) -> Any:
    body: dict[str, Any] = {
        "metadata": {"name": "ui", "namespace": "shop", "generation": generation},
        "spec": {"canary": {"version": wanted}},
    }
    if phase is not None:
        body["status"] = status(phase, **st)
    return body


# ---------------------------------------------------------------- decide (pure)


@pytest.mark.parametrize(
    ("phase", "code"),
    [
        ("Succeeded", ExitCode.SUCCEEDED),
        ("RolledBack", ExitCode.FAILED),
        ("Aborted", ExitCode.FAILED),
        ("Invalid", ExitCode.FAILED),
        ("Pending", None),
        ("Progressing", None),
    ],
)
def test_each_phase_of_the_current_release(phase: str, code: ExitCode | None) -> None:
    live = {"stable": "v2"} if phase == "Succeeded" else {}  # a release that succeeded is live
    outcome = decide(rollout(phase, **live))
    assert (outcome.code if outcome else None) == code


def test_paused_for_promotion_is_3_unless_paused_ok() -> None:
    paused = rollout("Paused", pausedReason="manualGate", message="waiting before split")
    outcome = decide(paused)
    assert outcome is not None and outcome.code is ExitCode.PAUSED
    assert "kubectl canary promote ui -n shop" in outcome.message
    assert decide(paused, paused_ok=True) == decide(paused, WaitFor.PAUSED)
    assert decide(paused, paused_ok=True).code is ExitCode.SUCCEEDED  # type: ignore[union-attr]


def test_paused_by_a_person_keeps_waiting() -> None:
    assert decide(rollout("Paused", pausedReason="user")) is None


@pytest.mark.parametrize(
    "previous",
    [
        rollout("Succeeded", wanted="v3", version="v2"),  # v3 pushed, status still about v2
        rollout("RolledBack", wanted="v3", version="v2"),
        rollout("Succeeded", generation=2),  # a spec change not observed yet
        rollout("Paused", generation=2, pausedReason="manualGate"),
        rollout(None),  # never reconciled
    ],
)
def test_a_status_about_the_previous_release_never_ends_the_wait(previous: Any) -> None:
    assert not is_current_release(previous)
    assert decide(previous) is None
    assert decide(previous, paused_ok=True) is None


def test_invalid_counts_once_the_generation_is_observed() -> None:
    # An invalid spec may never be picked up as a version, so its generation is what counts.
    assert decide(rollout("Invalid", wanted="v3", version="v2")).code is ExitCode.FAILED  # type: ignore[union-attr]
    assert decide(rollout("Invalid", generation=2)) is None


def test_timeout_says_where_the_release_stood() -> None:
    outcome = timeout_outcome(rollout("Progressing", message="at split step 2"), "5m")
    assert outcome.code is ExitCode.TIMEOUT
    assert outcome.message == (
        "timed out after 5m: Rollout shop/ui still Progressing (at split step 2)"
    )
    stale = timeout_outcome(rollout("Succeeded", wanted="v3"), "5m")
    assert "the controller has not picked up the new version yet" in stale.message


# ---------------------------------------------------------------- the command


@pytest.mark.parametrize(
    ("phase", "extra", "args", "code"),
    [
        ("Succeeded", {"stable": "v2"}, [], 0),
        ("RolledBack", {}, [], 1),
        ("Aborted", {}, [], 1),
        ("Invalid", {}, [], 1),
        ("Paused", {"pausedReason": "manualGate"}, [], 3),
        ("Paused", {"pausedReason": "manualGate"}, ["--paused-ok"], 0),
        ("Paused", {"pausedReason": "manualGate"}, ["--for", "paused"], 0),
    ],
)
def test_exit_codes(
    sandbox: Sandbox, phase: str, extra: dict[str, Any], args: list[str], code: int
) -> None:
    sandbox.create_rollout(with_status=status(phase, message=f"it is {phase}", **extra))
    result = sandbox.cli("wait", "ui", "-n", "shop", *args, *FAST)
    assert result.exit_code == code, result.output
    assert f"it is {phase}" in result.output


def test_timeout_exits_2(sandbox: Sandbox) -> None:
    sandbox.create_rollout(with_status=status("Progressing", stage="mirror"))
    result = sandbox.cli("wait", "ui", "--timeout", "200ms", *FAST)
    assert result.exit_code == 2
    assert "error" not in result.output
    assert "timed out after 200ms: Rollout shop/ui still Progressing" in result.output


def test_does_not_exit_on_the_previous_releases_success(sandbox: Sandbox) -> None:
    # v3 was just pushed; the status still says v2 Succeeded.
    sandbox.create_rollout(version="v3", with_status=status("Succeeded", stable="v2"))
    progressing = status("Progressing", version="v3", stable="v2", stage="mirror", message="m")
    done = status("Succeeded", version="v3", stable="v3", message="v3 is live")
    sandbox.after_reads(3, lambda: sandbox.set_status(progressing))
    sandbox.after_reads(6, lambda: sandbox.set_status(done))
    result = sandbox.cli("wait", "ui", *FAST)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "waiting for the controller to pick up v3" in lines[0]
    assert "Progressing" in lines[1] and "mirror" in lines[1]
    assert "Succeeded" in lines[2]
    assert lines[-1] == "Rollout shop/ui: v3 is live"
    assert sandbox.reads() >= 6


def test_does_not_exit_on_the_previous_releases_rollback(sandbox: Sandbox) -> None:
    sandbox.create_rollout(version="v3", with_status=status("RolledBack", version="v2"))
    done = status("Succeeded", version="v3", stable="v3")
    sandbox.after_reads(3, lambda: sandbox.set_status(done))
    result = sandbox.cli("wait", "ui", *FAST)
    assert result.exit_code == 0, result.output


def test_progress_lines_are_one_per_change_and_plain(sandbox: Sandbox) -> None:
    sandbox.create_rollout(with_status=status("Progressing", stage="split", canaryWeight=10))
    sandbox.after_reads(4, lambda: sandbox.set_status({"canaryWeight": 25, "message": "25"}))
    final = status("RolledBack", message="success-rate failed twice", canaryWeight=0, stage=None)
    sandbox.after_reads(8, lambda: sandbox.set_status(final))
    result = sandbox.cli("wait", "ui", *FAST)
    assert result.exit_code == 1
    progress = [line.split()[1:4] for line in result.output.splitlines()[:-1]]
    assert progress == [
        ["Progressing", "split", "10%"],
        ["Progressing", "split", "25%"],
        ["RolledBack", "-", "0%"],
    ]
    assert "\x1b[" not in result.output
    assert result.output.splitlines()[-1] == "Rollout shop/ui RolledBack: success-rate failed twice"


def test_missing_rollout_has_its_own_exit_code(sandbox: Sandbox) -> None:
    result = sandbox.cli("wait", "nope", *FAST)
    assert result.exit_code == 4
    assert "Rollout shop/nope not found: check the name and namespace (-n)" in result.output


def test_a_wait_is_for_one_version_a_revert_fails_it(sandbox: Sandbox) -> None:
    """Issue 14: a pipeline that bumped to v3 once got exit 0 "v4 is live" after a revert."""
    sandbox.create_rollout(version="v3", with_status=status("Progressing", version="v3"))
    revert = {"spec": {"canary": {"version": "v2"}}}
    sandbox.after_reads(3, lambda: sandbox.patch_spec(revert))
    result = sandbox.cli("wait", "ui", *FAST)
    assert result.exit_code == 1, result.output
    assert "the release of v3 was superseded: spec.canary.version is now v2" in result.output


def test_a_wait_for_a_version_that_is_not_live_goes_on(sandbox: Sandbox) -> None:
    sandbox.create_rollout(version="v4", with_status=status("Succeeded", version="v4", stable="v4"))
    result = sandbox.cli("wait", "ui", "--version", "v3", "--timeout", "200ms", *FAST)
    assert result.exit_code == 1, result.output
    assert "the release of v3 was superseded" in result.output


def test_the_live_version_must_be_the_one_waited_for() -> None:
    succeeded_elsewhere = rollout("Succeeded", stable="v1")  # v2 asked, v1 still live
    assert decide(succeeded_elsewhere, version="v2") is None
    live = rollout("Succeeded", stable="v2")
    outcome = decide(live, version="v2")
    assert outcome is not None and outcome.code is ExitCode.SUCCEEDED


def test_a_zero_timeout_needs_no_unit(sandbox: Sandbox) -> None:
    """Issue 14: `--timeout 0` was refused while `0s` worked."""
    sandbox.create_rollout(with_status=status("Progressing", stage="mirror"))
    result = sandbox.cli("wait", "ui", "--timeout", "0", *FAST)
    assert result.exit_code == 2, result.output
    assert "timed out after 0" in result.output
