"""The release state machine: `advance(rollout, observed, now) -> Decision`.

Pure: time comes in as an argument, nothing here sleeps, reads a clock, logs or does I/O.
Every phase change goes through `TRANSITIONS`, one table of (phase, trigger) -> phase; a
trigger that the table does not allow raises `IllegalTransitionError` and changes nothing (for a
request from a person, that becomes a rejected request with a message).

A reconcile handles, in this order: leaving `Invalid`, the pending request, a change of
`spec.canary.version`, then the phase's own progress (readiness, a gate check, the release
sequence). Traffic is derived from the resulting status alone (`traffic_for`).

Four rules hold whatever the observations are:
- the canary's traffic goes up (a release starts, a step advances, a promotion) only when the
  canary workload was just observed ready; a wait longer than `readyTimeout` rolls back;
- a running release whose spec cannot be used is held, not abandoned (`Observed.spec_problem`):
  the controller passes the last valid spec, checks go on and a failure still rolls back, but
  nothing advances until the spec is fixed;
- a Rollout that cannot be steered at all is `Invalid`, and still answers every request: an
  abort is recorded at once and carried out when the mesh can be written again.
- a release begins (leaves Pending for its first stage) only with a release slot
  (`Observed.release_slot`, the controller's --max-concurrent-releases); without one it waits
  in Pending with no canary traffic. A release under way never needs one, nor does an abort.

Every phase change is an entry of `TRANSITIONS`, fired by `fire` and listed in
`Decision.transitions`, but one, documented here as h11 documents its one hand-coded
transition: an `Invalid` Rollout keeps the phase it suspended (`suspendedPhase`); leaving
`Invalid` returns to it (`_leave_invalid`), and a request answered while `Invalid` (an abort)
acts on it. Rules about the moment rather than the phase (no promotion before the canary is
ready, no resume past a manual gate, none while the spec cannot be used) refuse a request
with `RequestRefusedError` and change nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal, TypeVar

from canary.core.durations import format_duration
from canary.core.model import Rollout
from canary.core.path import (
    ANALYSED_STAGES,
    Position,
    boundary_target,
    next_position,
    required_checks,
    weight_at,
)
from canary.core.requests import Action, Request, pending_request
from canary.core.spec import (
    RELEASE_CANARY_FULL,
    RELEASE_SUBSET_MOVED,
    NoDataPolicy,
    RolloutSpec,
    Stage,
    WebhookCheck,
    WebhookType,
)
from canary.core.status import (
    HISTORY_LIMIT,
    RUNNING_PHASES,
    TERMINAL_PHASES,
    AnalysisRecord,
    Condition,
    GateResult,
    HandledRequest,
    HistoryEntry,
    PauseReason,
    Phase,
    RolloutStatus,
    Verdict,
)
from canary.core.traffic import Traffic, routing_of, traffic_for
from canary.core.webhooks import all_passed, answers_for, before_stage, gate_webhooks


class Trigger(StrEnum):
    INITIALISED = "initialised"
    RELEASE_STARTED = "releaseStarted"
    VERSION_REVERTED = "versionReverted"
    CANARY_READY = "canaryReady"
    READY_TIMEOUT = "readyTimeout"
    MANUAL_GATE = "manualGate"
    STEP_PASSED = "stepPassed"
    RELEASED = "released"
    GATES_FAILED = "gatesFailed"
    PAUSE = "pause"
    RESUME = "resume"
    RESUME_WAITING = "resume-waiting"  # a release paused before its canary was ready
    PROMOTE = "promote"
    PROMOTE_FULL = "promote-full"
    ABORT = "abort"
    RETRY = "retry"
    INVALID = "invalid"


ANYTHING = (None, *Phase)

TRANSITIONS: Mapping[tuple[Phase | None, Trigger], Phase] = {
    (None, Trigger.INITIALISED): Phase.SUCCEEDED,
    **{(p, Trigger.RELEASE_STARTED): Phase.PENDING for p in ANYTHING if p is not Phase.INVALID},
    **{(p, Trigger.VERSION_REVERTED): Phase.SUCCEEDED for p in (*RUNNING_PHASES, *TERMINAL_PHASES)},
    (Phase.PENDING, Trigger.CANARY_READY): Phase.PROGRESSING,
    (Phase.PENDING, Trigger.READY_TIMEOUT): Phase.ROLLED_BACK,
    (Phase.PROGRESSING, Trigger.READY_TIMEOUT): Phase.ROLLED_BACK,
    (Phase.PROGRESSING, Trigger.MANUAL_GATE): Phase.PAUSED,
    (Phase.PROGRESSING, Trigger.STEP_PASSED): Phase.PROGRESSING,
    (Phase.PROGRESSING, Trigger.RELEASED): Phase.SUCCEEDED,
    (Phase.PROGRESSING, Trigger.GATES_FAILED): Phase.ROLLED_BACK,
    (Phase.PAUSED, Trigger.GATES_FAILED): Phase.ROLLED_BACK,
    (Phase.PENDING, Trigger.PAUSE): Phase.PAUSED,
    (Phase.PROGRESSING, Trigger.PAUSE): Phase.PAUSED,
    (Phase.PAUSED, Trigger.RESUME): Phase.PROGRESSING,
    (Phase.PAUSED, Trigger.RESUME_WAITING): Phase.PENDING,
    (Phase.PROGRESSING, Trigger.PROMOTE): Phase.PROGRESSING,
    (Phase.PAUSED, Trigger.PROMOTE): Phase.PROGRESSING,
    (Phase.PROGRESSING, Trigger.PROMOTE_FULL): Phase.PROGRESSING,
    (Phase.PAUSED, Trigger.PROMOTE_FULL): Phase.PROGRESSING,
    **{(p, Trigger.ABORT): Phase.ABORTED for p in RUNNING_PHASES},
    (Phase.ROLLED_BACK, Trigger.RETRY): Phase.PENDING,
    (Phase.ABORTED, Trigger.RETRY): Phase.PENDING,
    **{(p, Trigger.INVALID): Phase.INVALID for p in ANYTHING},
}

BOUNDARY_ORDER = (WebhookType.PRE_STAGE, WebhookType.CONFIRM_PROMOTION)
WAITING_REQUEUE = timedelta(seconds=2)


class IllegalTransitionError(ValueError):
    """A trigger that the transition table does not allow in the current phase."""


class RequestRefusedError(ValueError):
    """A request that the phase allows but the moment does not; the message says why."""


@dataclass(frozen=True)
class Observed:
    """What the controller saw before calling `advance`.

    canary_ready: whether the canary workload is ready to take traffic, read this reconcile.
    gates: one result per gate when an analysis ran for this reconcile, None when it did not.
    stable_version: the version the DestinationRule's stable subset selects today.
    webhooks: the answers of the webhooks called for this reconcile (`webhooks_due`), by name.
    spec_problem: why the Rollout's own spec cannot be used; the Rollout given to `advance`
        then carries the last valid spec (`status.lastValidSpec`) and nothing advances.
    release_slot: whether a release that has not begun may begin now (the controller's
        --max-concurrent-releases); without one it waits in Pending. A release under way never
        needs one, nor does an abort or a rollback. running_releases and max_releases say, for
        the message, how many releases hold the slots and how many there are.
    """

    canary_ready: bool = True
    stable_version: str | None = None
    gates: tuple[GateResult, ...] | None = None
    workload: str = "the canary workload"
    webhooks: Mapping[str, GateResult] = field(default_factory=dict)
    spec_problem: str | None = None
    release_slot: bool = True
    running_releases: int = 0
    max_releases: int = 0


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Transition:
    """One entry of TRANSITIONS, as a reconcile fired it."""

    source: Phase | None
    trigger: Trigger
    target: Phase


@dataclass(frozen=True)
class Decision:
    status: RolloutStatus
    traffic: Traffic | None
    events: tuple[Event, ...] = ()
    requeue_after: timedelta | None = None
    transitions: tuple[Transition, ...] = ()  # in the order fired
    # the release asked for a release slot: it begins (or, without one, waits) on the answer
    slot_requested: bool = False


def fire(phase: Phase | None, trigger: Trigger) -> Phase:
    try:
        return TRANSITIONS[(phase, trigger)]
    except KeyError:
        raise IllegalTransitionError(f"{trigger.value} is not possible while {phase}") from None


# ---------------------------------------------------------------- advance


@dataclass
class _Edit:
    """A status being changed, with the events the change produced."""

    status: RolloutStatus
    now: datetime
    events: list[Event] = field(default_factory=list)
    moved: bool = False  # a position change happened in this reconcile
    transitions: list[Transition] = field(default_factory=list)

    def update(self, **changes: Any) -> None:
        self.status = self.status.model_copy(update=changes)

    def emit(self, type_: Literal["Normal", "Warning"], reason: str, message: str) -> None:
        self.events.append(Event(type_, reason, message))

    def transition(self, trigger: Trigger, message: str, **changes: Any) -> None:
        phase = fire(self.status.phase, trigger)
        self.transitions.append(Transition(self.status.phase, trigger, phase))
        self.update(phase=phase, message=message, **changes)


@dataclass
class _Draft(_Edit):
    """The status being built during one reconcile of a Rollout with a usable spec."""

    spec: RolloutSpec = field(kw_only=True)
    observed: Observed = field(default_factory=Observed)
    requeue_after: timedelta | None = None
    slot_requested: bool = False

    @property
    def answers(self) -> Mapping[str, GateResult]:
        """The webhooks' answers of this reconcile, by name."""
        return self.observed.webhooks

    @property
    def held_by(self) -> str | None:
        """Why nothing may advance now: the spec cannot be used."""
        return self.observed.spec_problem

    def requeue(self, after: timedelta) -> None:
        self.requeue_after = after if self.requeue_after is None else min(after, self.requeue_after)


def advance(rollout: Rollout, observed: Observed, now: datetime) -> Decision:
    """Decide the next status and traffic of one Rollout; deterministic in its arguments."""
    if rollout.status.stable_version is None and observed.stable_version is None:
        return invalid(rollout, _unknown_stable_version(rollout), now)
    draft = _Draft(rollout.status, now, spec=rollout.spec, observed=observed)
    before = rollout.status
    _leave_invalid(draft)
    _handle_request(draft, pending_request(rollout), _REQUEST_HANDLERS)
    _follow_version(draft, observed)
    _progress(draft, observed)
    _note_spec_problem(draft, before)
    _keep_valid_spec(draft)
    return Decision(
        status=_bookkeeping(draft.status, before, now, rollout.metadata.generation, draft.held_by),
        traffic=traffic_for(rollout.spec, draft.status),
        events=tuple(draft.events),
        requeue_after=draft.requeue_after,
        transitions=tuple(draft.transitions),
        slot_requested=draft.slot_requested,
    )


def _unknown_stable_version(rollout: Rollout) -> str:
    spec = rollout.spec
    return (
        f"the live version of Rollout {rollout.key} is not known: DestinationRule "
        f"{rollout.metadata.namespace}/{spec.destination_rule.name} subset "
        f"'{spec.stable.subset}' has no {spec.version_label} label; label it with the version "
        f"that runs now (or set spec.versionLabel to the label your pods carry)"
    )


def invalid(rollout: Rollout, message: str, now: datetime) -> Decision:
    """The Rollout cannot be steered: answer its request, then mark it Invalid (one message, a
    Warning Event, no traffic change). An abort is recorded now and carried out once the
    Rollout can be steered again."""
    return invalid_status(
        rollout.status, message, now, rollout.metadata.generation, pending_request(rollout)
    )


def invalid_status(
    status: RolloutStatus,
    message: str,
    now: datetime,
    generation: int | None,
    request: Request | None = None,
) -> Decision:
    """`invalid` for a Rollout whose spec could not even be read (only its status could)."""
    if status.phase is Phase.INVALID and status.message == message and request is None:
        return Decision(status=status, traffic=None)
    suspended = status.suspended_phase if status.phase is Phase.INVALID else status.phase
    edit = _Edit(status.model_copy(update={"phase": suspended}), now)
    _handle_request(edit, request, _INVALID_HANDLERS, refusal=f"the Rollout is invalid: {message}")
    if edit.status.phase not in RUNNING_PHASES:
        edit.update(last_valid_spec=None)
    source = status.phase if status.phase is Phase.INVALID else edit.status.phase
    now_invalid = fire(source, Trigger.INVALID)
    changed = edit.status.model_copy(
        update={
            "phase": now_invalid,
            "message": message,
            "suspended_phase": edit.status.phase,
        }
    )
    events = tuple(edit.events)
    if status.phase is not Phase.INVALID or status.message != message:
        events += (Event("Warning", "InvalidSpec", message),)
    return Decision(
        status=_bookkeeping(changed, status, now, generation),
        traffic=None,
        events=events,
        transitions=(*edit.transitions, Transition(source, Trigger.INVALID, now_invalid)),
    )


def _leave_invalid(draft: _Draft) -> None:
    if draft.status.phase is not Phase.INVALID:
        return
    draft.update(phase=draft.status.suspended_phase, suspended_phase=None, message="")
    message = "the Rollout is valid again; carrying on where it stood"
    if _restart_step(draft):
        message += "; the current step starts over"
    draft.emit("Normal", "Valid", message)


def _restart_step(draft: _Edit) -> bool:
    """Checks so far measured other traffic (an outage, a drift): the step starts over."""
    status = draft.status
    if status.phase not in (Phase.PROGRESSING, Phase.PAUSED) or status.stage not in ANALYSED_STAGES:
        return False
    draft.update(step_started_at=draft.now, passed_checks=0)
    return True


def _note_spec_problem(draft: _Draft, before: RolloutStatus) -> None:
    """While the spec cannot be used: a Warning when the problem is new, and a message."""
    problem = draft.held_by
    if problem is None:
        return
    if _valid_condition_message(before) != problem:
        draft.emit("Warning", "InvalidSpec", f"{problem}; {_HELD}")
    draft.update(message=f"{problem}; {_HELD}")


_HELD = "the release holds on the last valid spec (checks go on and can still roll back)"


def _valid_condition_message(status: RolloutStatus) -> str | None:
    return next(
        (c.message for c in status.conditions if c.type == "Valid" and c.status == "False"), None
    )


def _keep_valid_spec(draft: _Draft) -> None:
    """A running release keeps its last valid spec in the status; nothing else does."""
    if draft.status.phase not in RUNNING_PHASES:
        draft.update(last_valid_spec=None)
    elif draft.held_by is None and draft.status.last_valid_spec != draft.spec:
        draft.update(last_valid_spec=draft.spec)


# ---------------------------------------------------------------- requests


E = TypeVar("E", bound=_Edit)


def _handle_request(
    draft: E,
    request: Request | None,
    handlers: Mapping[Action, Callable[[E], str]],
    refusal: str | None = None,
) -> None:
    """Answer the pending request once: a handler's result, or why it was not acted on."""
    if request is None:
        return
    if request.action is None:
        result = f"rejected: {request.problem}"
        draft.emit("Warning", "RequestRejected", result)
    elif request.expires is not None and draft.now >= request.expires:
        result = f"expired: {request.action.value} was not acted on; the CLI gave up on it"
        draft.emit("Warning", "RequestExpired", result)
    elif request.action not in handlers:
        result = f"rejected: {refusal}"
        draft.emit("Warning", "RequestRejected", result)
    else:
        try:
            result = handlers[request.action](draft)
            draft.emit("Normal", "RequestHandled", f"{request.action.value}: {result}")
        except IllegalTransitionError:
            result = f"rejected: {request.action.value} does nothing while {draft.status.phase}"
            draft.emit("Warning", "RequestRejected", result)
        except RequestRefusedError as refused:
            result = f"rejected: {refused}"
            draft.emit("Warning", "RequestRejected", result)
    draft.update(
        handled_request=HandledRequest(
            id=request.id,
            action=request.action.value if request.action else "unknown",
            time=draft.now,
            result=result,
        )
    )


def _request_pause(draft: _Draft) -> str:
    draft.transition(Trigger.PAUSE, "paused by request", paused_reason=PauseReason.USER)
    return "paused; weights hold until resume"


def _request_resume(draft: _Draft) -> str:
    if draft.status.paused_reason is PauseReason.MANUAL_GATE:
        raise RequestRefusedError(
            "the release waits at a manual gate: `canary promote` lets it through"
        )
    trigger = Trigger.RESUME_WAITING if draft.status.stage is Stage.WAITING else Trigger.RESUME
    draft.transition(trigger, "resumed", paused_reason=None)
    return "resumed"


def _ensure_promotable(draft: _Draft) -> None:
    """A promotion sends the canary more traffic: only a started release, on a usable spec, of
    a canary that is ready now."""
    status = draft.status
    waiting = status.stage in (None, Stage.WAITING)
    if waiting and status.paused_reason is not PauseReason.MANUAL_GATE:
        raise RequestRefusedError("the release has not started: its canary is not ready yet")
    if draft.held_by is not None:
        raise RequestRefusedError(f"{draft.held_by}; fix the spec before promoting")
    if status.stage is not Stage.RELEASE and not draft.observed.canary_ready:
        raise RequestRefusedError(f"{draft.observed.workload}; promote once it is ready")


def _request_promote(draft: _Draft) -> str:
    _ensure_promotable(draft)
    if draft.status.stage is Stage.RELEASE:
        return _carry_on_releasing(draft, Trigger.PROMOTE)
    draft.transition(Trigger.PROMOTE, "promoted by request", paused_reason=None)
    status = draft.status
    target = next_position(draft.spec, status.stage, status.step_index, status.canary_weight)
    _enter(draft, target)
    return f"promoted to {_describe(draft.spec, target)}"


def _request_promote_full(draft: _Draft) -> str:
    _ensure_promotable(draft)
    if draft.status.stage is Stage.RELEASE:
        return _carry_on_releasing(draft, Trigger.PROMOTE_FULL)
    draft.transition(Trigger.PROMOTE_FULL, "fully promoted by request", paused_reason=None)
    _enter(draft, Position(Stage.RELEASE, RELEASE_CANARY_FULL))
    return "promoted to the release sequence"


def _carry_on_releasing(draft: _Draft, trigger: Trigger) -> str:
    """Promoting inside the release sequence: it is already the last position, and entering
    it again would move the stable subset back (or, mid-settle, restart from the first stage).
    """
    draft.transition(trigger, draft.status.message, paused_reason=None)
    return "already in the release sequence; it carries on"


def _request_abort(draft: _Edit) -> str:
    _to_stable(draft, Trigger.ABORT, f"release of {draft.status.canary_version} aborted by request")
    draft.emit("Warning", "Aborted", draft.status.message)
    return "aborted; all traffic on stable"


def _request_retry(draft: _Draft) -> str:
    version = draft.status.canary_version or draft.spec.canary.version
    _start_release(draft, Trigger.RETRY, version, f"retrying the release of {version}")
    return f"retrying {version} from the first stage"


_REQUEST_HANDLERS: Mapping[Action, Callable[[_Draft], str]] = {
    Action.PAUSE: _request_pause,
    Action.RESUME: _request_resume,
    Action.PROMOTE: _request_promote,
    Action.PROMOTE_FULL: _request_promote_full,
    Action.ABORT: _request_abort,
    Action.RETRY: _request_retry,
}
# An Invalid Rollout cannot be steered: only an abort is taken (and carried out when it can).
_INVALID_HANDLERS: Mapping[Action, Callable[[_Edit], str]] = {Action.ABORT: _request_abort}


# ---------------------------------------------------------------- versions


def _follow_version(draft: _Draft, observed: Observed) -> None:
    wanted = draft.spec.canary.version
    status = draft.status
    if status.stable_version is None:
        live = observed.stable_version  # `advance` made sure it is known
        draft.update(stable_version=live, canary_version=live)
        draft.transition(Trigger.INITIALISED, f"{live} is live")
        draft.emit("Normal", "Initialised", f"{live} is the stable version")
        status = draft.status
    if wanted == status.canary_version:
        return
    if status.phase in RUNNING_PHASES:
        draft.emit(
            "Normal",
            "Superseded",
            f"release of {status.canary_version} replaced by {wanted}; restarting from stable",
        )
    if wanted == status.stable_version:
        _to_stable(draft, Trigger.VERSION_REVERTED, f"{wanted} is live; nothing to release")
        draft.update(canary_version=wanted)
        return
    _start_release(draft, Trigger.RELEASE_STARTED, wanted, f"releasing {wanted}")
    draft.emit("Normal", "ReleaseStarted", f"releasing {wanted} (stable: {status.stable_version})")


# What a status says when the canary has no traffic and nothing of a release is under way.
_NO_CANARY_TRAFFIC: Mapping[str, Any] = {
    "step_index": 0,
    "canary_weight": 0,
    "mirror_percent": 0.0,
    "header_route": False,
    "stable_subset_moved_at": None,
    "unready_since": None,
}


def _start_release(draft: _Draft, trigger: Trigger, version: str, message: str) -> None:
    draft.transition(
        trigger,
        message,
        canary_version=version,
        stage=Stage.WAITING,
        **_NO_CANARY_TRAFFIC,
        release_started_at=draft.now,
        stage_started_at=draft.now,
        step_started_at=draft.now,
        failed_checks=0,
        passed_checks=0,
        paused_reason=None,
        last_analysis=None,
    )
    draft.moved = True
    draft.requeue(timedelta(0))


def _to_stable(draft: _Edit, trigger: Trigger, message: str) -> None:
    draft.transition(
        trigger,
        message,
        stage=None,
        **_NO_CANARY_TRAFFIC,
        paused_reason=None,
    )
    draft.moved = True


# ---------------------------------------------------------------- progress


def _progress(draft: _Draft, observed: Observed) -> None:
    status = draft.status
    if status.phase is Phase.PENDING and status.stage is Stage.WAITING:
        _await_canary(draft, observed)
    elif status.phase in (Phase.PROGRESSING, Phase.PAUSED) and status.stage in ANALYSED_STAGES:
        # Gates read before a promote moved the release measured the old position.
        if observed.gates is not None and not draft.moved:
            _check(draft, observed.gates + _webhook_checks(draft))
    elif status.phase is Phase.PROGRESSING and status.stage is Stage.RELEASE and not draft.moved:
        _release(draft)


def _webhook_checks(draft: _Draft) -> tuple[GateResult, ...]:
    """Webhooks that count like gates in this check: gate, and pre-stage at a stage's end."""
    pre_stage: tuple[WebhookCheck, ...] = ()
    target = boundary_target(draft.spec, draft.status)
    if target is not None:
        pre_stage = before_stage(draft.spec, WebhookType.PRE_STAGE, target.stage)
    return answers_for(gate_webhooks(draft.spec) + pre_stage, draft.answers)


def _await_canary(draft: _Draft, observed: Observed) -> None:
    first = next_position(draft.spec, Stage.WAITING, 0)
    if _held(draft) or not _has_release_slot(draft) or not _ready_for(draft, first):
        return
    if not all(_confirmed(draft, first, t) for t in BOUNDARY_ORDER):
        return
    draft.transition(Trigger.CANARY_READY, f"{observed.workload} is ready")
    _enter_or_wait_for_promotion(draft, first)


def _has_release_slot(draft: _Draft) -> bool:
    """Whether the release may begin: a slot under --max-concurrent-releases is free for it.
    Without one it waits in Pending, writing no traffic, calling no webhook and with no
    `readyTimeout` running (the queue is not the canary's fault): that clock starts when the
    slot is given."""
    draft.slot_requested = True
    status, observed = draft.status, draft.observed
    if observed.release_slot:
        if status.waiting_for_slot_since is not None:
            draft.update(
                waiting_for_slot_since=None, stage_started_at=draft.now, step_started_at=draft.now
            )
            draft.emit("Normal", "ReleaseSlotTaken", f"a release slot is free; {_RELEASING}")
        return True
    message = (
        f"waiting for a release slot: {observed.running_releases} of {observed.max_releases} "
        "concurrent releases are running (--max-concurrent-releases)"
    )
    if status.waiting_for_slot_since is None:
        draft.emit("Normal", "WaitingForReleaseSlot", message)
    draft.update(waiting_for_slot_since=status.waiting_for_slot_since or draft.now, message=message)
    draft.requeue(draft.spec.analysis.interval)
    return False


_RELEASING = "the release begins"


def _held(draft: _Draft) -> bool:
    """Nothing advances while the spec cannot be used (`_note_spec_problem` says so)."""
    if draft.held_by is None:
        return False
    draft.requeue(draft.spec.analysis.interval)
    return True


def _ready_for(draft: _Draft, target: Position) -> bool:
    """Whether the canary may take more traffic now. If not, the release waits for it, and
    rolls back once it has waited longer than `readyTimeout` (a release waits from its start)."""
    status, observed = draft.status, draft.observed
    if observed.canary_ready:
        if status.unready_since is not None:
            draft.update(unready_since=None)
        return True
    waiting = status.stage_started_at if status.stage is Stage.WAITING else None
    since = status.unready_since or waiting or draft.now
    deadline = draft.spec.canary.ready_timeout
    if draft.now - since > deadline:
        message = (
            f"{observed.workload}: not ready within {format_duration(deadline)} before "
            f"{_describe(draft.spec, target)}; fix the workload, then run `canary retry`"
        )
        _to_stable(draft, Trigger.READY_TIMEOUT, f"rolled back: {message}")
        draft.emit("Warning", "RolledBack", draft.status.message)
        return False
    message = f"waiting for the canary before {_describe(draft.spec, target)}: {observed.workload}"
    if status.unready_since is None and status.stage is not Stage.WAITING:
        draft.emit("Warning", "CanaryNotReady", message)
    draft.update(unready_since=since, message=message)
    draft.requeue(WAITING_REQUEUE)
    return False


def _check(draft: _Draft, gates: tuple[GateResult, ...]) -> None:
    analysis = draft.spec.analysis
    outcome = combine(gates)
    counted = count_as(outcome, analysis.no_data)
    status = draft.status
    failed = status.failed_checks + 1 if counted is Verdict.FAIL else status.failed_checks
    failed = 0 if counted is Verdict.PASS else failed
    passed = status.passed_checks
    if counted is Verdict.PASS and status.phase is Phase.PROGRESSING:
        passed += 1
    previous = status.last_analysis
    record = AnalysisRecord(time=draft.now, outcome=outcome, counted_as=counted, gates=list(gates))
    draft.update(failed_checks=failed, passed_checks=passed, last_analysis=record)
    if counted is not Verdict.PASS and (previous is None or previous.outcome is not outcome):
        draft.emit("Warning", _ANALYSIS_REASONS[counted], describe_gates(gates, outcome))
    if failed >= analysis.failure_limit:
        message = f"rolled back: {describe_gates(gates, Verdict.FAIL)}"
        _to_stable(draft, Trigger.GATES_FAILED, message)
        draft.emit("Warning", "RolledBack", message)
    elif (
        counted is Verdict.PASS
        and status.phase is Phase.PROGRESSING
        and passed >= required_checks(draft.spec, status.stage or Stage.SPLIT)
    ):
        target = next_position(draft.spec, status.stage, status.step_index, status.canary_weight)
        _enter_or_wait_for_promotion(draft, target)


_ANALYSIS_REASONS = {
    Verdict.FAIL: "AnalysisFailed",
    Verdict.NO_DATA: "AnalysisHeld",
    Verdict.ERROR: "AnalysisHeld",
}


def combine(gates: tuple[GateResult, ...]) -> Verdict:
    """One check's outcome: any fail fails; else any error errs; else any no data holds."""
    verdicts = {g.verdict for g in gates}
    for verdict in (Verdict.FAIL, Verdict.ERROR, Verdict.NO_DATA):
        if verdict in verdicts:
            return verdict
    return Verdict.PASS if gates else Verdict.NO_DATA


def count_as(outcome: Verdict, policy: NoDataPolicy) -> Verdict:
    """How a check counts. No data follows `noData`; an error never passes (no data to trust).

    The result is PASS, FAIL or NO_DATA (hold: neither advances nor counts toward rollback).
    """
    if outcome in (Verdict.PASS, Verdict.FAIL):
        return outcome
    if policy is NoDataPolicy.FAIL:
        return Verdict.FAIL
    if policy is NoDataPolicy.PASS and outcome is Verdict.NO_DATA:
        return Verdict.PASS
    return Verdict.NO_DATA


def describe_gates(gates: tuple[GateResult, ...], outcome: Verdict) -> str:
    relevant = [g for g in gates if g.verdict is outcome] or list(gates)
    parts = []
    for gate in relevant:
        value = "no value" if gate.value is None else f"{gate.value:.4g}"
        threshold = f" (threshold {gate.threshold})" if gate.threshold else ""
        detail = f": {gate.message}" if gate.message and gate.verdict is not Verdict.PASS else ""
        parts.append(f"gate {gate.name} {gate.verdict.value}, {value}{threshold}{detail}")
    return "; ".join(parts) or "no gates"


def _confirmed(draft: _Draft, target: Position, type_: WebhookType) -> bool:
    """Whether the `type_` webhooks before `target`'s stage all answered 2xx; else hold."""
    hooks = before_stage(draft.spec, type_, target.stage)
    results = answers_for(hooks, draft.answers)
    if all_passed(results):
        return True
    waiting = next(r for r in results if r.verdict is not Verdict.PASS)
    detail = waiting.message or f"answered {waiting.value}"
    message = f"waiting for webhook {waiting.name} before stage {target.stage.value}: {detail}"
    if draft.status.message != message:
        kind: Literal["Normal", "Warning"] = "Normal"
        if type_ is WebhookType.PRE_STAGE:
            kind = "Warning"
        draft.emit(kind, "WaitingForConfirmation", message)
    draft.update(message=message)
    draft.requeue(draft.spec.analysis.interval)
    return False


def _enter_or_wait_for_promotion(draft: _Draft, target: Position) -> None:
    if _held(draft) or not _ready_for(draft, target):
        return
    entering_stage = target.stage is not draft.status.stage
    if entering_stage and not _confirmed(draft, target, WebhookType.CONFIRM_PROMOTION):
        return
    if entering_stage and target.stage in draft.spec.promotion.manual_before:
        message = f"waiting for `canary promote` before stage {target.stage.value}"
        draft.transition(Trigger.MANUAL_GATE, message, paused_reason=PauseReason.MANUAL_GATE)
        draft.emit("Normal", "WaitingForPromotion", message)
        return
    _enter(draft, target)


def _enter(draft: _Draft, target: Position) -> None:
    if draft.status.phase is Phase.PROGRESSING and draft.status.stage not in (None, Stage.WAITING):
        draft.transition(Trigger.STEP_PASSED, f"at {_describe(draft.spec, target)}")
    weight = weight_at(draft.spec, target)
    canary_weight, mirror, header = routing_of(target.stage, weight, draft.spec)
    stage_changed = target.stage is not draft.status.stage
    draft.update(
        stage=target.stage,
        step_index=target.step,
        canary_weight=canary_weight,
        mirror_percent=mirror,
        header_route=header,
        stable_subset_moved_at=None,
        unready_since=None,
        stage_started_at=draft.now if stage_changed else draft.status.stage_started_at,
        step_started_at=draft.now,
        passed_checks=0,
        failed_checks=0,
        message=f"at {_describe(draft.spec, target)}",
    )
    draft.moved = True
    reason = "StageStarted" if stage_changed else "StepAdvanced"
    draft.emit("Normal", reason, draft.status.message)
    if target.stage is Stage.RELEASE:
        draft.requeue(timedelta(0))


def _describe(spec: RolloutSpec, position: Position) -> str:
    if position.stage is Stage.SPLIT:
        return f"split step {position.step + 1} ({weight_at(spec, position)}% canary)"
    if position.stage is Stage.RELEASE:
        return "release (100% canary)"
    return f"stage {position.stage.value}"


def _release(draft: _Draft) -> None:
    """canary 100 -> stable subset moves to the new version -> settle -> stable 100.

    The settle is measured from `stableSubsetMovedAt`, which the controller stamps
    (`subset_moved`) after the DestinationRule write that moved the labels, whoever made it
    and however long after the decision: a crash or a failover between the two cannot cut it.
    """
    status = draft.status
    if _held(draft):
        return
    if status.step_index == RELEASE_CANARY_FULL:
        draft.update(
            step_index=RELEASE_SUBSET_MOVED,
            stable_subset_moved_at=None,
            step_started_at=draft.now,
            message=f"stable subset now selects {status.canary_version}; settling",
        )
        draft.moved = True
        draft.requeue(draft.spec.promotion.settle_delay)
        return
    if status.stable_subset_moved_at is None:
        draft.requeue(WAITING_REQUEUE)  # the write that moves the labels has not been made
        return
    settled_at = status.stable_subset_moved_at + draft.spec.promotion.settle_delay
    if draft.now < settled_at:
        draft.requeue(settled_at - draft.now)
        return
    version = status.canary_version
    draft.update(stable_version=version)
    _to_stable(draft, Trigger.RELEASED, f"{version} is live")
    draft.emit("Normal", "Succeeded", f"{version} released")


def subset_moved(status: RolloutStatus, now: datetime) -> RolloutStatus | None:
    """The status after the controller's write that moved the stable subset to the new version
    (the settle starts now); None when there is nothing to stamp."""
    if not status.stable_subset_moved or status.stable_subset_moved_at is not None:
        return None
    return status.model_copy(update={"stable_subset_moved_at": now})


# ---------------------------------------------------------------- bookkeeping


def _bookkeeping(
    status: RolloutStatus,
    before: RolloutStatus,
    now: datetime,
    generation: int | None,
    spec_problem: str | None = None,
) -> RolloutStatus:
    """History on every position change, conditions, observed generation; only a release
    waiting in Pending waits for a release slot."""
    if status.waiting_for_slot_since is not None and (status.phase, status.stage) != (
        Phase.PENDING,
        Stage.WAITING,
    ):
        status = status.model_copy(update={"waiting_for_slot_since": None})
    history = status.history
    if (status.phase, status.stage, status.step_index) != (
        before.phase,
        before.stage,
        before.step_index,
    ):
        entry = HistoryEntry(
            time=now,
            phase=status.phase or Phase.PENDING,
            stage=status.stage,
            step=status.step_index,
            canary_weight=status.canary_weight,
            message=status.message,
        )
        history = [*history, entry][-HISTORY_LIMIT:]
    return status.model_copy(
        update={
            "history": history,
            "conditions": _conditions(status, now, generation, spec_problem),
            "observed_generation": generation,
        }
    )


def _conditions(
    status: RolloutStatus, now: datetime, generation: int | None, spec_problem: str | None
) -> list[Condition]:
    running = status.phase in RUNNING_PHASES
    valid = status.phase is not Phase.INVALID and spec_problem is None
    progress = str(status.phase or "Unknown")
    if status.waiting_for_slot_since is not None:
        progress = "WaitingForReleaseSlot"
    wanted = {
        "Valid": ("True" if valid else "False", "Valid" if valid else "InvalidSpec"),
        "Progressing": ("True" if running else "False", progress),
    }
    existing = {c.type: c for c in status.conditions}
    conditions = []
    for kind, (state, reason) in wanted.items():
        old = existing.get(kind)
        since = old.last_transition_time if old is not None and old.status == state else now
        message = status.message if kind == "Progressing" or state == "False" else ""
        conditions.append(
            Condition(
                type=kind,
                status=state,
                reason=reason,
                message=message,
                last_transition_time=since,
                observed_generation=generation,
            )
        )
    return conditions


def traffic_restored(rollout: Rollout, now: datetime, what: str) -> Decision:
    """The mesh did not carry what the status says (a crash between the status write and the
    traffic write, or someone edited a managed route) and the controller has just rewritten
    it. Checks so far measured other traffic, so the current step starts over."""
    edit = _Edit(rollout.status, now)
    message = f"{what} did not match the Rollout's position; restored"
    if _restart_step(edit):
        message += "; the current step starts over"
    return Decision(
        status=edit.status,
        traffic=traffic_for(rollout.spec, edit.status),
        events=(Event("Warning", "TrafficRestored", message),),
    )
