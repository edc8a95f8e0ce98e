"""What people are told about a release: notices derived from a Decision. Pure.

A notice is one of `NotificationEvent` with everything a chat message needs (where the release
stands, its versions, the failing gates of a rollback). The providers in `canary.notify`
format and deliver them; nothing here knows about HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass

from canary.core.machine import Decision
from canary.core.model import Rollout
from canary.core.spec import NotificationEvent
from canary.core.status import GateResult, RolloutStatus, Verdict

EVENT_OF_REASON = {
    "ReleaseStarted": NotificationEvent.RELEASE_STARTED,
    "StageStarted": NotificationEvent.STAGE_CHANGED,
    "WaitingForPromotion": NotificationEvent.WAITING_FOR_PROMOTION,
    "WaitingForConfirmation": NotificationEvent.WAITING_FOR_PROMOTION,
    "RolledBack": NotificationEvent.ROLLED_BACK,
    "Succeeded": NotificationEvent.SUCCEEDED,
    "Aborted": NotificationEvent.ABORTED,
    "InvalidSpec": NotificationEvent.INVALID,
}
WARNINGS = frozenset(
    {NotificationEvent.ROLLED_BACK, NotificationEvent.ABORTED, NotificationEvent.INVALID}
)


@dataclass(frozen=True)
class Notice:
    event: NotificationEvent
    namespace: str
    rollout: str
    message: str
    phase: str | None
    stage: str | None
    step: int
    canary_weight: int
    stable_version: str | None
    canary_version: str | None
    failed_gates: tuple[GateResult, ...] = ()

    @property
    def warning(self) -> bool:
        return self.event in WARNINGS

    @property
    def title(self) -> str:
        return f"{self.namespace}/{self.rollout}: {self.event.value}"


def notices_of(rollout: Rollout, decision: Decision) -> tuple[Notice, ...]:
    """One notice per event of the decision that people care about, in order."""
    notices = []
    for event in decision.events:
        kind = EVENT_OF_REASON.get(event.reason)
        if kind is not None:
            notices.append(_notice(rollout, decision.status, kind, event.message))
    return tuple(notices)


def _notice(
    rollout: Rollout, status: RolloutStatus, kind: NotificationEvent, message: str
) -> Notice:
    return Notice(
        event=kind,
        namespace=rollout.metadata.namespace,
        rollout=rollout.metadata.name,
        message=message,
        phase=status.phase.value if status.phase else None,
        stage=status.stage.value if status.stage else None,
        step=status.step_index,
        canary_weight=status.canary_weight,
        stable_version=status.stable_version,
        canary_version=status.canary_version,
        failed_gates=_failed_gates(status) if kind is NotificationEvent.ROLLED_BACK else (),
    )


def _failed_gates(status: RolloutStatus) -> tuple[GateResult, ...]:
    if status.last_analysis is None:
        return ()
    return tuple(g for g in status.last_analysis.gates if g.verdict is Verdict.FAIL)
