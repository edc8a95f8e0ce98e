"""The one work queue (canary/controller/workqueue.py), on a clock the test moves.

Covers: one reconcile per key in flight (an add while processing comes back after `done`, once);
adds of a waiting key merge; a delayed add keeps the earliest time; back-off holds a key against
every add until its retry time, grows with failures and ends with `forget`; a removed key never
comes out; shut down ends `get`.
"""

from __future__ import annotations

import threading

import pytest

from canary.controller.workqueue import WorkQueue


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def queue(clock: Clock) -> WorkQueue:
    return WorkQueue(clock=clock)


def ready(queue: WorkQueue) -> list[str]:
    """Every key handed out now, each marked done."""
    keys = []
    while len(queue):
        key = queue.get()
        assert key is not None
        keys.append(key)
        queue.done(key)
    return keys


def test_adds_of_a_waiting_key_merge(queue: WorkQueue) -> None:
    queue.add("shop/ui")
    queue.add("shop/ui")
    queue.add("shop/cart")
    assert ready(queue) == ["shop/ui", "shop/cart"]


def test_a_key_added_while_it_is_reconciled_comes_back_once_after_done(queue: WorkQueue) -> None:
    queue.add("shop/ui")
    assert queue.get() == "shop/ui"
    queue.add("shop/ui")
    queue.add("shop/ui")
    assert len(queue) == 0  # never two reconciles of one key at once
    queue.done("shop/ui")
    assert ready(queue) == ["shop/ui"]
    assert ready(queue) == []


def test_a_delayed_add_keeps_the_earliest_time(queue: WorkQueue, clock: Clock) -> None:
    queue.add("shop/ui", after=10)
    queue.add("shop/ui", after=30)
    queue.add("shop/ui", after=5)
    clock.now += 4.9
    assert ready(queue) == []
    clock.now += 0.1
    assert ready(queue) == ["shop/ui"]
    clock.now += 30
    assert ready(queue) == []  # the later asks were merged into the earliest


def test_back_off_holds_the_key_against_every_add_until_its_retry(
    queue: WorkQueue, clock: Clock
) -> None:
    queue.add("shop/ui")
    assert queue.get() == "shop/ui"
    delay = queue.retry_later("shop/ui", base=1.0, cap=15.0)
    queue.add("shop/ui")  # a watch event while the reconcile is still failing
    queue.done("shop/ui")
    queue.add("shop/ui")  # an interval tick during the back-off
    assert ready(queue) == []
    clock.now += delay
    assert ready(queue) == ["shop/ui"]


def test_back_off_grows_with_failures_and_ends_with_forget(queue: WorkQueue) -> None:
    delays = [queue.retry_later("shop/ui", base=1.0, cap=15.0) for _ in range(6)]
    assert delays[-1] > delays[0]
    assert max(delays) <= 15.0  # the cap
    queue.forget("shop/ui")
    queue.add("shop/ui")
    assert ready(queue) == ["shop/ui"]
    assert queue.retry_later("shop/ui", base=1.0, cap=15.0) <= 2.0  # the first failure again


def test_a_conflict_retries_soon_and_holds_earlier_adds(queue: WorkQueue, clock: Clock) -> None:
    queue.add("shop/ui", after=0.05)  # due before the retry: it must wait for the retry too
    queue.retry_soon("shop/ui", 0.3)
    clock.now += 0.1
    assert ready(queue) == []
    clock.now += 0.2
    assert ready(queue) == ["shop/ui"]


def test_a_removed_key_never_comes_out(queue: WorkQueue, clock: Clock) -> None:
    queue.add("shop/ui")
    queue.add("shop/cart", after=5)
    queue.remove("shop/ui")
    queue.remove("shop/cart")
    clock.now += 10
    assert ready(queue) == []


def test_get_waits_for_a_key_and_returns_none_once_shut_down() -> None:
    queue = WorkQueue()
    got: list[str | None] = []
    worker = threading.Thread(target=lambda: got.append(queue.get()))
    worker.start()
    queue.add("shop/ui")
    worker.join(timeout=10)
    assert got == ["shop/ui"]
    waiting = threading.Thread(target=lambda: got.append(queue.get()))
    waiting.start()
    queue.shut_down()
    waiting.join(timeout=10)
    assert got == ["shop/ui", None]
