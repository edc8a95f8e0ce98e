"""Requests from people and pipelines: the `canary.dev/request` annotation.

The CLI never edits `spec` (GitOps would revert it); it writes one annotation
`{"action": "promote", "id": "...", "expires": "2026-12-02T07:38:43Z"}`. The controller acts
once per id, and never on a request past its `expires` (the CLI waited that long for an answer
and said the request failed): such a request is answered "expired" and changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from canary.core.model import REQUEST_ANNOTATION, Rollout
from canary.core.status import RolloutStatus


class Action(StrEnum):
    PROMOTE = "promote"
    PROMOTE_FULL = "promote-full"
    PAUSE = "pause"
    RESUME = "resume"
    RETRY = "retry"
    ABORT = "abort"


@dataclass(frozen=True)
class Request:
    id: str
    action: Action | None
    problem: str | None = None  # why the annotation could not be understood
    expires: datetime | None = None  # acted on only before this moment


def encode_request(action: Action, request_id: str, expires: datetime | None = None) -> str:
    body = {"action": action.value, "id": request_id}
    if expires is not None:
        body["expires"] = expires.isoformat().replace("+00:00", "Z")
    return json.dumps(body, separators=(",", ":"))


def pending_request(rollout: Rollout) -> Request | None:
    """The request in the annotation, unless its id was already handled."""
    return pending_request_in(rollout.metadata.annotations, rollout.status)


def pending_request_in(annotations: Mapping[str, str], status: RolloutStatus) -> Request | None:
    """`pending_request` for a Rollout known only by its annotations and status."""
    raw = annotations.get(REQUEST_ANNOTATION)
    if raw is None:
        return None
    request = parse_request(raw)
    handled = status.handled_request
    if handled is not None and handled.id == request.id:
        return None
    return request


def parse_request(raw: str) -> Request:
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("id"), str) or not body["id"]:
        return Request(
            id=raw[:63],
            action=None,
            problem=f'{REQUEST_ANNOTATION} must be JSON like {{"action": "promote", "id": "..."}}',
        )
    try:
        expires = _expiry(body.get("expires"))
    except ValueError as error:
        return Request(id=body["id"], action=None, problem=str(error))
    try:
        return Request(id=body["id"], action=Action(str(body.get("action"))), expires=expires)
    except ValueError:
        known = ", ".join(a.value for a in Action)
        return Request(
            id=body["id"],
            action=None,
            problem=f"unknown action {body.get('action')!r}: use {known}",
        )


def _expiry(raw: object) -> datetime | None:
    """The request's deadline, None without one; ValueError when it is not a zoned time."""
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(str(raw))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ValueError(f"expires {raw!r} is not a time such as 2026-12-02T07:38:43Z")
    return moment
