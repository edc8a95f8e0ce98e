"""Fault injection and request accounting for reliability tests.

server.faults.conflict_next(2)                 # the next 2 writes answer 409 Conflict
server.faults.fail_next(1, code=500)           # the next request answers 500
server.faults.throttle_next(3, retry_after=1)  # 429 Too Many Requests with Retry-After
server.faults.delay(0.2)                       # every request waits 0.2 s first
server.faults.drop_watches()                   # open watch streams end now
server.faults.expire_watches()                 # open watches get a 410 Expired ERROR event
server.faults.offline = True                   # every request answers 503
server.request_log.count(verb="patch", resource="virtualservices")
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from canary_sandbox.errors import ApiError

WRITE_VERBS = frozenset({"create", "update", "patch", "delete"})


@dataclass
class _Injection:
    remaining: int
    error: ApiError
    writes_only: bool
    resource: str | None

    def applies_to(self, verb: str, resource: str) -> bool:
        if self.writes_only and verb not in WRITE_VERBS:
            return False
        return self.resource is None or self.resource == resource


class Faults:
    def __init__(
        self, drop_watches: Callable[[], None], expire_watches: Callable[[], None]
    ) -> None:
        self._lock = threading.Lock()
        self._injections: list[_Injection] = []
        self._drop_watches = drop_watches
        self._expire_watches = expire_watches
        self.offline = False
        self.delay_seconds = 0.0

    def conflict_next(self, n: int = 1, resource: str | None = None) -> None:
        """The next `n` writes (to `resource`, a plural, if given) answer 409 Conflict."""
        error = ApiError(
            409,
            "Conflict",
            "Operation cannot be fulfilled: the object has been modified; please apply your "
            "changes to the latest version and try again",
        )
        self._inject(_Injection(n, error, writes_only=True, resource=resource))

    def fail_next(
        self, n: int = 1, code: int = 500, resource: str | None = None, writes_only: bool = False
    ) -> None:
        """The next `n` resource requests answer `code` with an InternalError-like Status."""
        reason = {500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout"}.get(
            code, "InternalError"
        )
        error = ApiError(code, reason, f"injected failure ({code})")
        self._inject(_Injection(n, error, writes_only=writes_only, resource=resource))

    def throttle_next(self, n: int = 1, retry_after: int = 1, resource: str | None = None) -> None:
        """The next `n` resource requests answer 429 TooManyRequests with Retry-After."""
        error = ApiError(
            429,
            "TooManyRequests",
            "the server has received too many requests and has asked us to try again later",
            {"retryAfterSeconds": retry_after},
            headers={"Retry-After": str(retry_after)},
        )
        self._inject(_Injection(n, error, writes_only=False, resource=resource))

    def delay(self, seconds: float) -> None:
        """Every request waits `seconds` before it is handled (0 turns it off)."""
        self.delay_seconds = seconds

    def drop_watches(self) -> None:
        self._drop_watches()

    def expire_watches(self) -> None:
        self._expire_watches()

    def reset(self) -> None:
        with self._lock:
            self._injections.clear()
        self.offline = False
        self.delay_seconds = 0.0

    def _inject(self, injection: _Injection) -> None:
        if injection.remaining > 0:
            with self._lock:
                self._injections.append(injection)

    def take(self, verb: str, resource: str) -> ApiError | None:
        """The error to answer this request with, consuming one injection; None if none."""
        with self._lock:
            for injection in self._injections:
                if injection.applies_to(verb, resource):
                    injection.remaining -= 1
                    if injection.remaining <= 0:
                        self._injections.remove(injection)
                    return injection.error
        return None


@dataclass(frozen=True)
class RequestRecord:
    verb: str  # get, list, watch, create, update, patch, delete
    group: str
    resource: str  # plural
    namespace: str
    name: str
    subresource: str
    code: int
    user_agent: str = ""


class RequestLog:
    """Every resource request the server answered, in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []

    def add(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)

    @property
    def records(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def count(
        self,
        verb: str | None = None,
        resource: str | None = None,
        subresource: str | None = None,
        name: str | None = None,
    ) -> int:
        return sum(
            1
            for record in self.records
            if (verb is None or record.verb == verb)
            and (resource is None or record.resource == resource)
            and (subresource is None or record.subresource == subresource)
            and (name is None or record.name == name)
        )

    def writes(self, resource: str | None = None) -> int:
        """How many create/update/patch/delete requests reached `resource` (all if None)."""
        return sum(
            1
            for record in self.records
            if record.verb in WRITE_VERBS and (resource is None or record.resource == resource)
        )

    def counters(self) -> Counter[tuple[str, str]]:
        return Counter((record.verb, record.resource) for record in self.records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
