"""Waiting for state another thread or process produces: the one polling loop of the tests,
the benchmarks and the demo."""

from __future__ import annotations

import time
import urllib.error
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(
    predicate: Callable[[], T],
    timeout: float,
    what: str = "the condition",
    describe: Callable[[], str] = lambda: "",
    every: float = 0.05,
) -> T:
    """The first truthy value of `predicate()`, asked every `every` seconds; AssertionError
    naming `what` (and the last transient error, and `describe()`) after `timeout` seconds.
    A predicate that fails on a connection or a missing key is asked again."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value: T | None = predicate()
        except (OSError, urllib.error.URLError, KeyError) as error:
            value, last_error = None, error
        if value:
            return value
        if time.monotonic() >= deadline:
            note = f"\nlast error: {last_error!r}" if last_error is not None else ""
            details = describe()
            raise AssertionError(
                f"timed out waiting for {what}{note}" + (f"\n{details}" if details else "")
            )
        time.sleep(every)
