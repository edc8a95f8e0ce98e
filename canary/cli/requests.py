"""promote, pause, resume, retry and abort: a request annotation on the Rollout, the
controller's answer awaited, and withdrawn if none comes."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from canary.cli import waiting
from canary.cli.errors import NO_CONTROLLER_HINT, UserError, first_line
from canary.cli.session import Session, explained, now_utc, read_rollout
from canary.core.objects import Obj, metadata_of, resource_version
from canary.kube.port import KubeError

ACK_POLL_SECONDS = 0.25


@dataclass(frozen=True)
class RequestOptions:
    timeout: timedelta = timedelta(seconds=10)
    wait: bool = True
    poll_seconds: float = ACK_POLL_SECONDS


@dataclass(frozen=True)
class RequestOutcome:
    code: int
    message: str


def request_metadata(action: Any, request_id: str, expires: datetime | None = None) -> Obj:
    """The metadata merge patch that asks the controller for `action`; spec is never touched."""
    from canary.core.model import REQUEST_ANNOTATION
    from canary.core.requests import encode_request

    return {"annotations": {REQUEST_ANNOTATION: encode_request(action, request_id, expires)}}


def send_request(
    session: Session,
    name: str,
    action: Any,
    options: RequestOptions,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    wall_clock: Callable[[], datetime] = now_utc,
) -> RequestOutcome:
    """Write the request annotation, then wait for the controller's answer in the status.

    A request the CLI waits for expires when the wait does: the controller never acts on it
    later, and on a timeout the CLI also withdraws it (`withdraw`), so what it reports is
    what happened.
    """
    request_id = str(uuid.uuid4())
    expires = wall_clock() + options.timeout if options.wait else None
    with explained(session, "patch", name):
        session.cluster.patch_rollout_metadata(
            session.namespace, name, request_metadata(action, request_id, expires)
        )
    key = f"Rollout {session.namespace}/{name}"
    if not options.wait:
        return RequestOutcome(0, f"{action.value} requested for {key} (request {request_id})")
    handled = await_answer(session, name, request_id, options, clock=clock, sleep=sleep)
    if handled is None:
        return withdraw(session, name, request_id, options, expires)
    return answered(key, handled)


def answered(key: str, handled: Obj) -> RequestOutcome:
    result = str(handled.get("result", ""))
    failed = result.startswith(("rejected", "expired"))
    return RequestOutcome(1 if failed else 0, f"{key}: {result}")


def withdraw(
    session: Session, name: str, request_id: str, options: RequestOptions, expires: datetime | None
) -> RequestOutcome:
    """No answer in time: take the request back. The controller stores an answer only while
    the Rollout is as it read it, so once the annotation is gone the request cannot be acted
    on; if it answered meanwhile, that answer is the outcome."""
    from canary.core.durations import format_duration
    from canary.core.model import REQUEST_ANNOTATION
    from canary.core.requests import parse_request
    from canary.kube.port import ConflictError

    key = f"Rollout {session.namespace}/{name}"
    silent = f"no controller answered within {format_duration(options.timeout)}"
    for _ in range(5):
        try:
            rollout = read_rollout(session, name)
            handled = waiting.handled_request(rollout, request_id)
            if handled is not None:
                return answered(key, handled)
            raw = (metadata_of(rollout).get("annotations") or {}).get(REQUEST_ANNOTATION)
            if raw is None or parse_request(raw).id != request_id:
                return RequestOutcome(
                    2, f"{silent}, and another request has replaced it: it was not acted on"
                )
            version = resource_version(rollout)
            session.cluster.patch_rollout_metadata(
                session.namespace,
                name,
                {"resourceVersion": version, "annotations": {REQUEST_ANNOTATION: None}},
            )
        except ConflictError:
            continue  # the Rollout changed (perhaps the answer): look again
        except (UserError, KubeError, OSError) as error:
            until = expires.isoformat().replace("+00:00", "Z") if expires else "never"
            return RequestOutcome(
                2,
                f"{silent}, and the request could not be withdrawn ({first_line(error)}): it "
                f"expires at {until} and is not acted on after that; {NO_CONTROLLER_HINT}",
            )
        return RequestOutcome(
            2, f"{silent}: the request was withdrawn and will not be acted on; {NO_CONTROLLER_HINT}"
        )
    return RequestOutcome(2, f"{silent}, and {key} kept changing while the CLI withdrew it")


def await_answer(
    session: Session,
    name: str,
    request_id: str,
    options: RequestOptions,
    *,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> Obj | None:
    """status.handledRequest once its id is ours, or None when the timeout runs out."""
    deadline = clock() + options.timeout.total_seconds()
    while True:
        rollout = read_rollout(session, name)
        handled = waiting.handled_request(rollout, request_id)
        if handled is not None:
            return handled
        remaining = deadline - clock()
        if remaining <= 0:
            return None
        sleep(min(options.poll_seconds, remaining))
