"""The one work queue every reconcile goes through (controller-runtime's model).

A key (a Rollout's namespace/name) is added by whatever wants it reconciled: a watch event, an
interval tick, a reconcile that asks to run again (`requeue_after`), a retry after a failure.
Workers take keys with `get` and hand them back with `done`. The queue promises:

- one reconcile per key in flight: a key added while it is being reconciled is marked dirty and
  handed out again once `done`, so the news is never lost and never handled twice at once;
- a key waits at most once: adding a key already waiting merges the two; a delayed add keeps the
  earliest time asked for;
- back-off: after `retry_later` (a failure, with a growing delay) or `retry_soon` (a conflict,
  with a short one), nothing reconciles the key before its retry time, so an API in trouble sees
  one request per back-off, not one per tick and event; `forget` (a success) ends it.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque
from collections.abc import Callable

from canary.common.pacing import backoff_delay


class WorkQueue:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._changed = threading.Condition()
        self._ready: deque[str] = deque()
        self._waiting: set[str] = set()  # in _ready
        self._processing: set[str] = set()
        self._dirty: set[str] = set()  # added while processing
        self._delayed: list[tuple[float, str]] = []  # heap of (due, key); stale entries skipped
        self._due: dict[str, float] = {}  # the earliest delayed time per key
        self._hold: dict[str, float] = {}  # back-off: no reconcile before this time
        self._failures: dict[str, int] = {}
        self._closed = False

    # ------------------------------------------------------------ adding

    def add(self, key: str, after: float = 0.0) -> None:
        """Reconcile `key` now, or after `after` seconds (sooner if it is due sooner)."""
        with self._changed:
            self._schedule(key, self._clock() + after)
            self._changed.notify()

    def retry_later(self, key: str, base: float, cap: float) -> float:
        """A failed reconcile: hold `key` for a back-off that grows with each failure in a row;
        the delay."""
        with self._changed:
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
        delay = backoff_delay(failures, base=base, cap=cap)
        self._hold_for(key, delay)
        return delay

    def retry_soon(self, key: str, delay: float) -> None:
        """A reconcile that met a conflict: again after `delay`, without growing the back-off."""
        self._hold_for(key, delay)

    def _hold_for(self, key: str, delay: float) -> None:
        with self._changed:
            self._hold[key] = self._clock() + delay
        self.add(key, delay)

    def forget(self, key: str) -> None:
        """A successful reconcile: the back-off of `key` ends."""
        with self._changed:
            self._failures.pop(key, None)
            self._hold.pop(key, None)

    def remove(self, key: str) -> None:
        """`key` is gone (its Rollout was deleted): nothing of it waits any more."""
        with self._changed:
            self._failures.pop(key, None)
            self._hold.pop(key, None)
            self._due.pop(key, None)
            self._dirty.discard(key)
            if key in self._waiting:
                self._waiting.discard(key)
                self._ready.remove(key)

    # ------------------------------------------------------------ working

    def get(self) -> str | None:
        """The next key to reconcile, waiting for one; None once the queue is shut down."""
        with self._changed:
            while not self._closed:
                self._promote_due()
                if self._ready:
                    key = self._ready.popleft()
                    self._waiting.discard(key)
                    self._processing.add(key)
                    return key
                timeout = self._delayed[0][0] - self._clock() if self._delayed else None
                self._changed.wait(timeout)
            return None

    def done(self, key: str) -> None:
        with self._changed:
            self._processing.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                self._schedule(key, self._clock())
                self._changed.notify()

    def shut_down(self) -> None:
        """Every `get` returns None from now on; reconciles under way finish."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def __len__(self) -> int:
        """Keys waiting to be handed out now (the queue's depth)."""
        with self._changed:
            self._promote_due()
            return len(self._ready)

    # ------------------------------------------------------------ inside, under the lock

    def _schedule(self, key: str, due: float) -> None:
        """Hand `key` out at `due`, or at the end of its back-off if that is later."""
        now = self._clock()
        due = max(due, self._hold.get(key, now))
        if due <= now:
            self._make_ready(key)
        elif due < self._due.get(key, float("inf")):
            self._due[key] = due
            heapq.heappush(self._delayed, (due, key))

    def _make_ready(self, key: str) -> None:
        self._due.pop(key, None)
        if key in self._processing:
            self._dirty.add(key)
        elif key not in self._waiting:
            self._waiting.add(key)
            self._ready.append(key)

    def _promote_due(self) -> None:
        now = self._clock()
        while self._delayed and self._delayed[0][0] <= now:
            due, key = heapq.heappop(self._delayed)
            if self._due.get(key) == due:
                del self._due[key]
                self._schedule(key, due)  # a back-off begun since may push it further
