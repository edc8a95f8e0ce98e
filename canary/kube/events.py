"""Kubernetes Events as plain data, and the correlator that folds repeats into one Event.

Like client-go's EventCorrelator: an Event with the same object, type, reason and message as
one recorded within `window` is not created again; its `count` and `lastTimestamp` go up.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from canary.core.objects import Obj

COMPONENT = "canary-controller"
MESSAGE_LIMIT = 1024  # bytes of UTF-8
DEDUPE_WINDOW = timedelta(minutes=10)
CACHE_SIZE = 4096

EventKey = tuple[str, ...]


@dataclass(frozen=True)
class SeenEvent:
    name: str
    count: int
    last: datetime


def rfc3339(moment: datetime) -> str:
    """Kubernetes `Time`: seconds precision, UTC, `Z` suffix."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def truncate(message: str, limit: int = MESSAGE_LIMIT) -> str:
    encoded = message.encode()
    if len(encoded) <= limit:
        return message
    return encoded[: limit - 3].decode(errors="ignore") + "..."


def involved_reference(obj: Obj) -> Obj:
    metadata = obj.get("metadata", {})
    reference = {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "name": metadata.get("name"),
        "namespace": metadata.get("namespace"),
        "uid": metadata.get("uid"),
        "resourceVersion": metadata.get("resourceVersion"),
    }
    return {key: value for key, value in reference.items() if value is not None}


def event_key(reference: Obj, type_: str, reason: str, message: str) -> EventKey:
    identity = ("apiVersion", "kind", "namespace", "name", "uid")
    return (*(str(reference.get(key, "")) for key in identity), type_, reason, message)


def new_event(
    reference: Obj,
    type_: Literal["Normal", "Warning"],
    reason: str,
    message: str,
    now: datetime,
) -> Obj:
    namespace = reference.get("namespace") or "default"
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{reference.get('name', 'object')}.{secrets.token_hex(8)}",
            "namespace": namespace,
        },
        "involvedObject": reference,
        "reason": reason,
        "message": message,
        "type": type_,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "firstTimestamp": rfc3339(now),
        "lastTimestamp": rfc3339(now),
        "count": 1,
    }


def repeat_patch(seen: SeenEvent, now: datetime) -> Obj:
    return {"count": seen.count + 1, "lastTimestamp": rfc3339(now)}


def sort_key(event: Obj) -> datetime:
    """When the event last happened, for newest-last ordering."""
    metadata: dict[str, Any] = event.get("metadata", {})
    for stamp in (
        event.get("lastTimestamp"),
        event.get("eventTime"),
        metadata.get("creationTimestamp"),
    ):
        parsed = parse_time(stamp)
        if parsed is not None:
            return parsed
    return datetime.min.replace(tzinfo=UTC)


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class EventCache:
    """Recently recorded events, least recently used dropped first; thread-safe."""

    def __init__(self, window: timedelta = DEDUPE_WINDOW, size: int = CACHE_SIZE) -> None:
        self._window = window
        self._size = size
        self._seen: OrderedDict[EventKey, SeenEvent] = OrderedDict()
        self._lock = threading.Lock()

    def recent(self, key: EventKey, now: datetime) -> SeenEvent | None:
        with self._lock:
            seen = self._seen.get(key)
            if seen is None or now - seen.last > self._window:
                return None
            self._seen.move_to_end(key)
            return seen

    def remember(self, key: EventKey, seen: SeenEvent) -> None:
        with self._lock:
            self._seen[key] = seen
            self._seen.move_to_end(key)
            while len(self._seen) > self._size:
                self._seen.popitem(last=False)

    def forget(self, key: EventKey) -> None:
        with self._lock:
            self._seen.pop(key, None)
