"""Delivery off the reconcile path: one queue and worker thread per receiver.

`submit` never blocks: it appends to the receiver's bounded queue (a full queue drops the new
message, counted) and returns. The worker sends in order, waits for the receiver's rate limit,
and retries a failed POST (connection error, timeout, 429 or 5xx) with exponential backoff
and jitter, honouring Retry-After. The URL is resolved on the worker (it may read a Secret), so
a slow API server delays a notice, never a reconcile. URLs never reach logs or metrics.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests
import structlog

from canary.common.pacing import TokenBucket, backoff_delay, retry_after

DeliveryHook = Callable[[str, str], None]
"""on_delivery(provider, outcome): outcome sent, failed, dropped or error (URL unreadable)."""

log = structlog.get_logger("canary.notify")


class UrlUnavailableError(Exception):
    """The receiver's URL cannot be read (Secret or file missing); the message names the fix."""


@dataclass(frozen=True)
class Delivery:
    receiver: str  # a name for logs: "shop/ui slack-team" (never the URL)
    provider: str
    resolve_url: Callable[[], str]
    body: object


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    base_seconds: float = 0.5
    cap_seconds: float = 8.0
    timeout_seconds: float = 5.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.cap_seconds)
        return backoff_delay(attempt, self.base_seconds, self.cap_seconds)


@dataclass(frozen=True)
class RateLimit:
    """A receiver's limit: `per_second` sustained, `burst` at once (one token bucket each)."""

    per_second: float = 1.0
    burst: int = 5

    def bucket(self, stop: threading.Event) -> TokenBucket:
        """The receiver's bucket; its waits end early when `stop` is set."""
        return TokenBucket(self.per_second, self.burst, sleep=stop.wait)


class _RetryableError(Exception):
    def __init__(self, why: str, retry_after: float | None = None) -> None:
        super().__init__(why)
        self.retry_after = retry_after


class Dispatcher:
    def __init__(
        self,
        on_delivery: DeliveryHook | None = None,
        retry: RetryPolicy | None = None,
        rate: Callable[[], RateLimit] = RateLimit,
        queue_size: int = 200,
    ) -> None:
        self._on_delivery = on_delivery
        self._retry = retry or RetryPolicy()
        self._rate = rate
        self._queue_size = queue_size
        self._queues: dict[str, queue.Queue[Delivery]] = {}
        self._guard = threading.Lock()
        self._stop = threading.Event()

    def submit(self, delivery: Delivery) -> None:
        try:
            self._queue_of(delivery.receiver).put_nowait(delivery)
        except queue.Full:
            log.warning("notification dropped: the receiver's queue is full", to=delivery.receiver)
            self._count(delivery.provider, "dropped")

    def close(self, timeout: float = 5.0) -> None:
        """Give queued notices up to `timeout` seconds, then stop the workers."""
        deadline = time.monotonic() + timeout
        for q in list(self._queues.values()):
            while q.unfinished_tasks and time.monotonic() < deadline:
                time.sleep(0.05)
        self._stop.set()

    def _queue_of(self, receiver: str) -> queue.Queue[Delivery]:
        with self._guard:
            found = self._queues.get(receiver)
            if found is None:
                found = queue.Queue(self._queue_size)
                self._queues[receiver] = found
                worker = threading.Thread(
                    target=self._work, args=(found,), name=f"notify {receiver}", daemon=True
                )
                worker.start()
            return found

    def _work(self, deliveries: queue.Queue[Delivery]) -> None:
        limit = self._rate().bucket(self._stop)
        session = requests.Session()
        session.trust_env = False
        while not self._stop.is_set():
            try:
                delivery = deliveries.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                limit.acquire()
                self._count(delivery.provider, self._deliver(session, delivery))
            finally:
                deliveries.task_done()

    def _deliver(self, session: requests.Session, delivery: Delivery) -> str:
        try:
            url = delivery.resolve_url()
        except UrlUnavailableError as error:
            log.warning("notification not sent", to=delivery.receiver, error=str(error))
            return "error"
        for attempt in range(self._retry.attempts):
            try:
                self._post(session, url, delivery.body)
                return "sent"
            except _RetryableError as problem:
                if attempt + 1 >= self._retry.attempts or self._stop.is_set():
                    why = str(problem)
                    break
                self._stop.wait(self._retry.delay(attempt, problem.retry_after))
            except _RefusedError as refused:
                why = str(refused)
                break
        log.warning("notification failed", to=delivery.receiver, error=why)
        return "failed"

    def _post(self, session: requests.Session, url: str, body: object) -> None:
        try:
            response = session.post(url, json=body, timeout=self._retry.timeout_seconds)
        except requests.Timeout:
            raise _RetryableError(f"no answer within {self._retry.timeout_seconds:g}s") from None
        except requests.RequestException as error:
            raise _RetryableError(f"unreachable ({type(error).__name__})") from None
        with response:
            code = response.status_code
            if 200 <= code < 300:
                return
            if code == 429 or code >= 500:
                raise _RetryableError(f"HTTP {code}", _retry_after(response))
            raise _RefusedError(f"HTTP {code}: the receiver refused the message; check its URL")

    def _count(self, provider: str, outcome: str) -> None:
        if self._on_delivery is not None:
            self._on_delivery(provider, outcome)


class _RefusedError(Exception):
    pass


def _retry_after(response: requests.Response) -> float | None:
    return retry_after(response.headers.get("Retry-After"))
