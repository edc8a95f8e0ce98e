"""Deciding, from one Rollout as the API serves it, whether a pipeline may stop waiting.

Pure functions over plain dicts: no clock, no I/O. `canary wait` polls the Rollout and asks
`decide` after every read; the answer is None (keep waiting) or an `Outcome` with an exit code.

A wait is for one version: the one given with `--version`, else the spec's version when the
wait started. It succeeds only once that version is live; a spec that moves on to another
version (a newer release, a revert) ends it as failed, never as "some version is live".

Exit codes (documented in `canary wait --help` and examples/gitops):
    0  that version is live (or its release is paused for promotion, with --paused-ok)
    1  its release rolled back, was aborted or superseded, or the Rollout is invalid
    2  timeout: still running when --timeout ran out
    3  paused, waiting for `canary promote` (a manual gate)
    4  the Rollout does not exist
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

from canary.core.objects import Obj

FAILED_PHASES = frozenset({"RolledBack", "Aborted", "Invalid"})
MANUAL_GATE = "manualGate"


class ExitCode(IntEnum):
    SUCCEEDED = 0
    FAILED = 1
    TIMEOUT = 2
    PAUSED = 3
    NOT_FOUND = 4


class WaitFor(StrEnum):
    SUCCEEDED = "succeeded"  # the release is done: the new version is stable
    PAUSED = "paused"  # the release reached a manual gate (or succeeded): promote it next


@dataclass(frozen=True)
class Outcome:
    code: ExitCode
    message: str


def decide(
    rollout: Obj,
    wait_for: WaitFor = WaitFor.SUCCEEDED,
    paused_ok: bool = False,
    version: str | None = None,
) -> Outcome | None:
    """The exit for this Rollout as it is now, or None while the wait must go on.

    `version`: the version waited for (default: the spec's version now)."""
    status = rollout.get("status") or {}
    phase = status.get("phase")
    version = version or wanted_version(rollout)
    if phase == "Invalid" and has_observed_spec(rollout):
        return Outcome(ExitCode.FAILED, f"{key(rollout)} is invalid: {message_of(status)}")
    if wanted_version(rollout) != version:
        return Outcome(
            ExitCode.FAILED,
            f"{key(rollout)}: the release of {version} was superseded: spec.canary.version is "
            f"now {wanted_version(rollout)}",
        )
    if not is_current_release(rollout):
        return None
    if phase == "Succeeded":
        if status.get("stableVersion") != version:
            return None
        return Outcome(ExitCode.SUCCEEDED, f"{key(rollout)}: {describe_success(status)}")
    if phase in FAILED_PHASES:
        return Outcome(ExitCode.FAILED, f"{key(rollout)} {phase}: {message_of(status)}")
    if is_waiting_for_promotion(status):
        return paused_outcome(rollout, wait_for, paused_ok)
    return None


def release_ended(rollout: Obj) -> bool:
    """`get -w` stops here: the current release reached a phase it only leaves on a change."""
    outcome = decide(rollout)
    return outcome is not None and outcome.code is not ExitCode.PAUSED


def handled_request(rollout: Obj, request_id: str) -> Obj | None:
    """status.handledRequest when the controller has answered the request `request_id`."""
    handled = (rollout.get("status") or {}).get("handledRequest")
    if isinstance(handled, dict) and handled.get("id") == request_id:
        return handled
    return None


def paused_outcome(rollout: Obj, wait_for: WaitFor, paused_ok: bool) -> Outcome:
    status = rollout.get("status") or {}
    message = f"{key(rollout)} is paused for promotion: {message_of(status)}"
    if wait_for is WaitFor.PAUSED or paused_ok:
        return Outcome(ExitCode.SUCCEEDED, message)
    hint = f"run `kubectl canary promote {name_of(rollout)} -n {namespace_of(rollout)}`"
    return Outcome(ExitCode.PAUSED, f"{message} ({hint})")


def timeout_outcome(rollout: Obj | None, timeout: str) -> Outcome:
    if rollout is None:
        return Outcome(ExitCode.TIMEOUT, f"timed out after {timeout}")
    status = rollout.get("status") or {}
    if not is_current_release(rollout):
        where = "the controller has not picked up the new version yet"
    else:
        where = f"still {status.get('phase') or 'Pending'} ({message_of(status)})"
    return Outcome(ExitCode.TIMEOUT, f"timed out after {timeout}: {key(rollout)} {where}")


def is_current_release(rollout: Obj) -> bool:
    """True once the controller has seen this generation and works on spec.canary.version.

    Until then the status describes the previous release, whose Succeeded must not end a wait.
    """
    status = rollout.get("status") or {}
    wanted = wanted_version(rollout)
    return (
        has_observed_spec(rollout) and wanted is not None and status.get("canaryVersion") == wanted
    )


def wanted_version(rollout: Obj) -> str | None:
    """spec.canary.version: the version the Rollout is asked to make live."""
    version = ((rollout.get("spec") or {}).get("canary") or {}).get("version")
    return None if version is None else str(version)


def has_observed_spec(rollout: Obj) -> bool:
    status = rollout.get("status") or {}
    observed = status.get("observedGeneration")
    generation = (rollout.get("metadata") or {}).get("generation")
    if observed is None:
        return False
    return generation is None or int(observed) >= int(generation)


def is_waiting_for_promotion(status: Obj) -> bool:
    return status.get("phase") == "Paused" and status.get("pausedReason") == MANUAL_GATE


def describe_success(status: Obj) -> str:
    version = status.get("stableVersion") or status.get("canaryVersion") or "the new version"
    return f"{version} is live"


def message_of(status: Obj) -> str:
    return str(status.get("message") or "no message")


def name_of(rollout: Obj) -> str:
    return str((rollout.get("metadata") or {}).get("name", "?"))


def namespace_of(rollout: Obj) -> str:
    return str((rollout.get("metadata") or {}).get("namespace", "default"))


def key(rollout: Obj) -> str:
    return f"Rollout {namespace_of(rollout)}/{name_of(rollout)}"
