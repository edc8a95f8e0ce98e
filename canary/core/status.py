"""What the controller reports (`status`): the phase and stage, the traffic it set, the checks,
the history and the requests it answered."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

from pydantic import ConfigDict, Field, WithJsonSchema

from canary.core.spec import RELEASE_SUBSET_MOVED, RolloutSpec, Stage
from canary.core.wire import WireModel

HISTORY_LIMIT = 20
E = TypeVar("E", bound=StrEnum)


class Phase(StrEnum):
    PENDING = "Pending"
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    SUCCEEDED = "Succeeded"
    ROLLED_BACK = "RolledBack"
    ABORTED = "Aborted"
    INVALID = "Invalid"


TERMINAL_PHASES = frozenset({Phase.SUCCEEDED, Phase.ROLLED_BACK, Phase.ABORTED})
RUNNING_PHASES = (Phase.PENDING, Phase.PROGRESSING, Phase.PAUSED)


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NO_DATA = "noData"
    ERROR = "error"


class GateResult(WireModel):
    """One gate's reading at one check: what was measured, against what, and the verdict."""

    name: str
    verdict: Verdict
    value: float | None = None
    threshold: str | None = None
    samples: float | None = None
    query: str | None = None
    message: str | None = None


class AnalysisRecord(WireModel):
    time: datetime
    outcome: Verdict
    counted_as: Verdict
    gates: list[GateResult] = Field(default_factory=list)


class Condition(WireModel):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    last_transition_time: datetime
    observed_generation: int | None = None


class HistoryEntry(WireModel):
    time: datetime
    phase: Phase
    stage: Stage | None = None
    step: int | None = None
    canary_weight: int = 0
    message: str = ""


class HandledRequest(WireModel):
    id: str
    action: str
    time: datetime
    result: str


class PauseReason(StrEnum):
    USER = "user"
    MANUAL_GATE = "manualGate"


class RolloutStatus(WireModel):
    model_config = ConfigDict(extra="ignore")

    phase: Phase | None = None
    stage: Stage | None = None
    step_index: int = 0
    canary_weight: int = Field(default=0, ge=0, le=100)
    mirror_percent: float = Field(default=0.0, ge=0, le=100)
    header_route: bool = False
    stable_subset_moved_at: datetime | None = Field(
        default=None,
        description="When the controller's DestinationRule write moved the stable subset to the "
        "new version: the settle delay is measured from here.",
    )
    stable_version: str | None = None
    canary_version: str | None = None
    release_started_at: datetime | None = None
    stage_started_at: datetime | None = None
    step_started_at: datetime | None = None
    failed_checks: int = 0
    passed_checks: int = 0
    unready_since: datetime | None = Field(
        default=None,
        description="Since when an advance has waited for the canary workload to be ready.",
    )
    paused_reason: PauseReason | None = None
    waiting_for_slot_since: datetime | None = Field(
        default=None,
        description="Since when the release has waited in Pending for a release slot (the "
        "controller's --max-concurrent-releases): it starts when one frees.",
    )
    suspended_phase: Phase | None = None
    message: str = ""
    last_analysis: AnalysisRecord | None = None
    conditions: list[Condition] = Field(default_factory=list)
    history: Annotated[list[HistoryEntry], Field(max_length=HISTORY_LIMIT)] = Field(
        default_factory=list
    )
    handled_request: HandledRequest | None = None
    observed_generation: int | None = None
    last_valid_spec: Annotated[
        RolloutSpec | None,
        # A copy of spec: the CRD keeps it as it is (the controller validates it when it reads).
        WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
    ] = Field(
        default=None,
        description="The spec the running release last ran on: if the spec turns invalid "
        "mid-release, checks go on against this one and a failure still rolls back.",
    )

    @property
    def holds_release_slot(self) -> bool:
        """Whether this status shows a release under way (`holds_release_slot`)."""
        return holds_release_slot(self.phase, self.stage, self.paused_reason, self.suspended_phase)

    @property
    def stable_subset_moved(self) -> bool:
        """Whether the release has moved the stable subset to the new version."""
        return self.stage is Stage.RELEASE and self.step_index == RELEASE_SUBSET_MOVED


def holds_release_slot(
    phase: Phase | None,
    stage: Stage | None,
    paused_reason: PauseReason | None,
    suspended_phase: Phase | None,
) -> bool:
    """Whether a status shows a release under way, one that counts against the controller's
    --max-concurrent-releases: it has begun (the canary may have traffic) and has not ended.
    A Pending release has not begun, nor has one paused before it began (a resume returns it to
    Pending); an Invalid Rollout counts as the phase it suspended, since its canary keeps the
    traffic it had."""
    if phase is Phase.INVALID:
        phase = suspended_phase
    if phase is Phase.PROGRESSING:
        return True
    if phase is Phase.PAUSED:
        return stage not in (None, Stage.WAITING) or paused_reason is PauseReason.MANUAL_GATE
    return False


def wire_holds_release_slot(status: Mapping[str, Any]) -> bool:
    """`holds_release_slot` of a status as stored (camelCase, not validated): the controller
    asks it of every Rollout its watch brings, without parsing the whole status."""

    def enum(kind: type[E], raw: Any) -> E | None:
        try:
            return kind(raw) if raw is not None else None
        except ValueError:
            return None

    return holds_release_slot(
        enum(Phase, status.get("phase")),
        enum(Stage, status.get("stage")),
        enum(PauseReason, status.get("pausedReason")),
        enum(Phase, status.get("suspendedPhase")),
    )
