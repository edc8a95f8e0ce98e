"""How fast the adapters go and how long they wait: one token bucket, one back-off, one reading
of Retry-After, for the Kubernetes client, the notification dispatcher and the controller's
retries alike.

The token bucket is client-go's QPS/Burst limiter: it holds at most `burst` tokens and refills
at `qps` tokens per second. A caller that finds it empty reserves the next token under the lock
and sleeps outside it, so concurrent callers queue up fairly and never sleep while holding it.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

Clock = Callable[[], float]
Sleep = Callable[[float], object]  # what it returns is ignored (Event.wait returns a bool)


class TokenBucket:
    def __init__(
        self,
        qps: float,
        burst: int,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        self.qps = qps
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._last = clock()

    @property
    def unlimited(self) -> bool:
        return self.qps <= 0

    def acquire(self) -> float:
        """Take one token, sleeping until it is available; returns the seconds waited."""
        if self.unlimited:
            return 0.0
        wait = self._reserve()
        if wait > 0:
            self._sleep(wait)
        return wait

    def _reserve(self) -> float:
        with self._lock:
            self._refill()
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._last)
        self._last = now
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.qps)


def backoff_delay(
    attempt: int, base: float, cap: float, jitter: Callable[[], float] = random.random
) -> float:
    """The delay before retry `attempt` (0 first): base * 2**attempt, capped, with equal
    jitter (between half of it and all of it)."""
    delay = min(cap, base * 2.0**attempt)
    return delay / 2 + jitter() * delay / 2


def retry_after(header: str | None) -> float | None:
    """The seconds a Retry-After header asks for (the delta-seconds form); None without one."""
    if header is None:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        return None


class Backoff:
    """Exponential delays with equal jitter: base, 2*base, 4*base ... capped; reset on success."""

    def __init__(
        self, base: float, cap: float, jitter: Callable[[], float] = random.random
    ) -> None:
        self.base = base
        self.cap = cap
        self._jitter = jitter
        self._attempt = 0

    def next_delay(self) -> float:
        delay = backoff_delay(self._attempt, self.base, self.cap, self._jitter)
        self._attempt += 1
        return delay

    def reset(self) -> None:
        self._attempt = 0
