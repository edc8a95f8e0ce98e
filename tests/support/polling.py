"""`wait_until`: the one wait of the tests for state another thread or process produces.

It asks `condition()` every `every` seconds until it returns something truthy (which it
returns), for at most `timeout` seconds: a guard against hanging, never an assertion on speed.
Then it fails with `AssertionError: timed out waiting for <what>`, the last transient error
(a refused connection, a missing key: those are asked again) and `describe()`, so the failure
names what was awaited and what was seen instead. It is `canary_sandbox.polling.poll`, the
polling loop the benchmarks and the demo use too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from canary_sandbox.polling import poll

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T],
    what: str,
    timeout: float = 10.0,
    *,
    every: float = 0.025,
    describe: Callable[[], str] = lambda: "",
) -> T:
    """The first truthy value of `condition()`; AssertionError naming `what` after `timeout`."""
    return poll(condition, timeout, what, describe, every)
