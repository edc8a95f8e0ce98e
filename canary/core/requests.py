"""Requests from people and pipelines: the `canary.dev/request` annotation.

The CLI never edits `spec` (GitOps would revert it); it writes one annotation
`{"action": "promote", "id": "..."}`. The controller acts once per id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum

from canary.core.model import REQUEST_ANNOTATION, Rollout


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


def encode_request(action: Action, request_id: str) -> str:
    return json.dumps({"action": action.value, "id": request_id}, separators=(",", ":"))


def pending_request(rollout: Rollout) -> Request | None:
    """The request in the annotation, unless its id was already handled."""
    raw = rollout.metadata.annotations.get(REQUEST_ANNOTATION)
    if raw is None:
        return None
    request = parse_request(raw)
    handled = rollout.status.handled_request
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
        return Request(id=body["id"], action=Action(str(body.get("action"))))
    except ValueError:
        known = ", ".join(a.value for a in Action)
        return Request(
            id=body["id"],
            action=None,
            problem=f"unknown action {body.get('action')!r}: use {known}",
        )
