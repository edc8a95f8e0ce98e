"""Which webhook checks are due, what they are sent, and how their answers count. Pure.

The controller asks `webhooks_due` before `advance` (as it asks `analysis_due` before querying
the gates), calls those webhooks through its adapter, and hands the answers to `advance` in
`Observed.webhooks`. The machine never trusts a missing answer: a webhook that should have
answered and did not is an `error` result, which holds and never promotes.

- gate: called with every analysis; counts like a gate (2xx pass, other status fail,
  timeout or connection error: error).
- pre-stage: called with the check that would complete the last step before `stage`, while
  that step's traffic is still in place; it joins that check like a gate (a failure counts
  toward `failureLimit`). Before the first stage a failure only holds: nothing is exposed yet.
- confirm-promotion: called at the same moment; anything but 2xx holds before `stage`
  (never a failure, never a rollback): an external manual gate. `canary promote` overrides.
- post-release: called once when a release ends (succeeded, rolled back or aborted).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from canary.core.model import Rollout
from canary.core.spec import RolloutSpec, Stage, WebhookCheck, WebhookType
from canary.core.status import RUNNING_PHASES, TERMINAL_PHASES, GateResult, RolloutStatus, Verdict

THRESHOLD = "2xx"


def before_stage(spec: RolloutSpec, type_: WebhookType, stage: Stage) -> tuple[WebhookCheck, ...]:
    """The webhooks of `type_` that run before `stage` starts."""
    return tuple(w for w in spec.analysis.webhooks_of(type_) if w.stage is stage)


def gate_webhooks(spec: RolloutSpec) -> tuple[WebhookCheck, ...]:
    return tuple(spec.analysis.webhooks_of(WebhookType.GATE))


def answers_for(
    hooks: tuple[WebhookCheck, ...], answers: Mapping[str, GateResult]
) -> tuple[GateResult, ...]:
    """One result per hook; a hook without an answer is an error (never a pass)."""
    return tuple(answers.get(hook.name) or unanswered(hook) for hook in hooks)


def unanswered(hook: WebhookCheck) -> GateResult:
    return GateResult(
        name=hook.name,
        verdict=Verdict.ERROR,
        threshold=THRESHOLD,
        message=f"webhook {hook.name} ({hook.type.value}) has not answered yet",
    )


def verdict_of_status(code: int) -> Verdict:
    """An answer's verdict: 2xx passes, any other status fails."""
    return Verdict.PASS if 200 <= code < 300 else Verdict.FAIL


def all_passed(results: tuple[GateResult, ...]) -> bool:
    return all(r.verdict is Verdict.PASS for r in results)


def post_release_due(before: RolloutStatus, after: RolloutStatus) -> bool:
    """Whether this decision ended a release (post-release webhooks run once, now)."""
    return before.phase in RUNNING_PHASES and after.phase in TERMINAL_PHASES


def payload(rollout: Rollout, hook: WebhookCheck, status: RolloutStatus | None = None) -> Any:
    """The JSON body of a webhook call: who, where in the release, which versions, metadata."""
    status = status or rollout.status
    return {
        "name": rollout.metadata.name,
        "namespace": rollout.metadata.namespace,
        "webhook": hook.name,
        "type": hook.type.value,
        "phase": status.phase.value if status.phase else None,
        "stage": status.stage.value if status.stage else None,
        "beforeStage": hook.stage.value if hook.stage else None,
        "step": status.step_index,
        "canaryWeight": status.canary_weight,
        "stableVersion": status.stable_version,
        "canaryVersion": status.canary_version or rollout.spec.canary.version,
        "metadata": dict(hook.metadata),
    }
