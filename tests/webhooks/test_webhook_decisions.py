"""Webhook checks in the pure core: when each type is due, how its answers count, holds.

Aspects: a gate webhook joins every check (2xx pass, other status fail and rolls back at
failureLimit, error holds); a missing answer is an error, never a pass; pre-stage joins only
the check that completes the step before its stage and a failure there counts toward
rollback; confirm-promotion holds before its stage (never rolls back) until it answers 2xx,
also before the first stage; post-release is due once, when a release ends.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from canary.core.machine import Observed, advance, subset_moved
from canary.core.model import Rollout
from canary.core.path import analysis_due, webhooks_due
from canary.core.spec import Stage
from canary.core.status import GateResult, Phase, Verdict
from canary.core.webhooks import post_release_due
from canary_sandbox.stack import example_release

T0 = datetime(2030, 1, 1, tzinfo=UTC)
INTERVAL = timedelta(seconds=30)


def rollout_with(*hooks: dict[str, Any], failure_limit: int = 2) -> Rollout:
    """A split-only release (50 then 100, one check each) of v2 with these webhooks."""
    data = example_release()
    data["spec"]["stages"] = {
        "headerCanary": {"match": [{"headers": {"x": {"exact": "y"}}}], "duration": "30s"},
        "split": {"steps": [50, 100], "interval": "30s"},
    }
    data["spec"]["analysis"]["failureLimit"] = failure_limit
    data["spec"]["analysis"]["webhooks"] = list(hooks)
    return Rollout.model_validate(data)


def hook(name: str, type_: str, stage: str | None = None) -> dict[str, Any]:
    body = {"name": name, "type": type_, "url": f"http://127.0.0.1:1/{name}"}
    if stage is not None:
        body["stage"] = stage
    return body


def answer(name: str, verdict: Verdict, code: int | None = None) -> GateResult:
    value = float(code) if code is not None else None
    return GateResult(name=name, verdict=verdict, value=value, threshold="2xx")


def passing_gates(rollout: Rollout) -> tuple[GateResult, ...]:
    return tuple(
        GateResult(name=g.name, verdict=Verdict.PASS, value=100.0)
        for g in rollout.spec.analysis.gates
    )


class Driver:
    """Reconciles one rollout as the controller does: due webhooks answered by `answers`."""

    def __init__(self, rollout: Rollout) -> None:
        self.rollout = rollout
        self.now = T0
        self.called: list[list[str]] = []

    def tick(self, answers: dict[str, GateResult] | None = None, ready: bool = True) -> None:
        due = webhooks_due(self.rollout, self.now, ready)
        self.called.append([h.name for h in due])
        given = {h.name: (answers or {})[h.name] for h in due if h.name in (answers or {})}
        gates = passing_gates(self.rollout) if analysis_due(self.rollout, self.now) else None
        observed = Observed(canary_ready=ready, stable_version="v1", gates=gates, webhooks=given)
        decision = advance(self.rollout, observed, self.now)
        status = subset_moved(decision.status, self.now) or decision.status  # after its writes
        self.rollout = self.rollout.model_copy(update={"status": status})
        self.now += INTERVAL

    @property
    def status(self) -> Any:
        return self.rollout.status


def started(rollout: Rollout) -> Driver:
    driver = Driver(rollout)
    driver.tick(ready=False)  # initialise on v1, start the release of v2, wait for it
    return driver


def test_a_gate_webhook_is_called_with_every_check_and_a_pass_lets_the_release_through() -> None:
    driver = started(rollout_with(hook("smoke", "gate")))
    for _ in range(12):
        driver.tick({"smoke": answer("smoke", Verdict.PASS, 200)})
        if driver.status.phase is Phase.SUCCEEDED:
            break
    assert driver.status.phase is Phase.SUCCEEDED
    checks = [c for c in driver.called if c]
    assert checks and all(c == ["smoke"] for c in checks)


def test_a_failing_gate_webhook_rolls_back_at_the_failure_limit() -> None:
    driver = started(rollout_with(hook("smoke", "gate"), failure_limit=2))
    driver.tick()  # canary ready: header canary starts
    assert driver.status.stage is Stage.HEADER_CANARY
    driver.tick({"smoke": answer("smoke", Verdict.FAIL, 500)})
    assert driver.status.phase is Phase.PROGRESSING
    assert driver.status.failed_checks == 1
    driver.tick({"smoke": answer("smoke", Verdict.FAIL, 500)})
    assert driver.status.phase is Phase.ROLLED_BACK
    assert "gate smoke fail, 500 (threshold 2xx)" in driver.status.message


def test_an_unanswered_or_erring_gate_webhook_holds_and_never_promotes() -> None:
    driver = started(rollout_with(hook("smoke", "gate")))
    driver.tick()
    for answers in ({}, {"smoke": answer("smoke", Verdict.ERROR)}) * 3:
        driver.tick(answers)
        assert (driver.status.phase, driver.status.stage) == (
            Phase.PROGRESSING,
            Stage.HEADER_CANARY,
        )
        assert driver.status.failed_checks == 0
        assert driver.status.last_analysis.outcome is Verdict.ERROR


def test_pre_stage_runs_only_with_the_check_that_ends_the_previous_stage() -> None:
    driver = started(rollout_with(hook("accept", "pre-stage", "split")))
    driver.tick()  # header canary starts; its single check is the one that ends it
    driver.tick({"accept": answer("accept", Verdict.PASS, 204)})
    assert driver.called[-1] == ["accept"]
    assert (driver.status.stage, driver.status.canary_weight) == (Stage.SPLIT, 50)
    driver.tick()
    assert driver.called[-1] == []  # not called again inside split


def test_a_failing_pre_stage_counts_toward_rollback_and_an_error_holds() -> None:
    driver = started(rollout_with(hook("accept", "pre-stage", "split"), failure_limit=2))
    driver.tick()
    driver.tick({"accept": answer("accept", Verdict.ERROR)})
    assert (driver.status.stage, driver.status.failed_checks) == (Stage.HEADER_CANARY, 0)
    driver.tick({"accept": answer("accept", Verdict.FAIL, 409)})
    assert (driver.status.stage, driver.status.failed_checks) == (Stage.HEADER_CANARY, 1)
    driver.tick({"accept": answer("accept", Verdict.FAIL, 409)})
    assert driver.status.phase is Phase.ROLLED_BACK


def test_confirm_promotion_holds_before_its_stage_until_it_answers_2xx() -> None:
    driver = started(rollout_with(hook("approve", "confirm-promotion", "split")))
    driver.tick()
    for verdict, code in ((Verdict.FAIL, 403), (Verdict.ERROR, None), (Verdict.FAIL, 500)):
        driver.tick({"approve": answer("approve", verdict, code)})
        assert driver.called[-1] == ["approve"]
        assert (driver.status.phase, driver.status.stage) == (
            Phase.PROGRESSING,
            Stage.HEADER_CANARY,
        )
        assert "waiting for webhook approve before stage split" in driver.status.message
    driver.tick({"approve": answer("approve", Verdict.PASS, 200)})
    assert (driver.status.stage, driver.status.canary_weight) == (Stage.SPLIT, 50)


def test_confirm_promotion_before_the_first_stage_keeps_the_release_pending() -> None:
    driver = started(rollout_with(hook("approve", "confirm-promotion", "headerCanary")))
    driver.tick({"approve": answer("approve", Verdict.FAIL, 423)})
    assert (driver.status.phase, driver.status.stage) == (Phase.PENDING, Stage.WAITING)
    driver.tick({"approve": answer("approve", Verdict.PASS, 200)})
    assert (driver.status.phase, driver.status.stage) == (Phase.PROGRESSING, Stage.HEADER_CANARY)


def test_boundary_webhooks_are_not_called_while_the_canary_is_not_ready() -> None:
    driver = started(rollout_with(hook("approve", "confirm-promotion", "headerCanary")))
    driver.tick(ready=False)
    assert driver.called[-1] == []


def test_post_release_is_due_exactly_when_a_release_ends() -> None:
    driver = started(rollout_with(hook("done", "post-release")))
    ends = []
    for _ in range(12):
        before = driver.status
        driver.tick()
        ends.append(post_release_due(before, driver.status))
    assert driver.status.phase is Phase.SUCCEEDED
    assert ends.count(True) == 1
