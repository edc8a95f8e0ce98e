"""The dispatcher on its own, against local receivers.

Aspects: submit returns before a hanging receiver answers, and other receivers are served
meanwhile; a 503 is retried until it succeeds, a 400 is not retried; messages to one receiver
arrive in the order submitted; a full queue drops (counted); an unreadable URL is an error
(counted), with a sentence naming the Secret and no URL in the logs.
"""

from __future__ import annotations

import structlog
from notify_helpers import FAST_RETRY, PATIENT, fast_rate
from support.polling import wait_until

from canary.notify.dispatcher import Delivery, Dispatcher, UrlUnavailableError
from canary_sandbox.receiver import Receiver


def counting() -> tuple[Dispatcher, list[tuple[str, str]]]:
    outcomes: list[tuple[str, str]] = []
    dispatcher = Dispatcher(
        on_delivery=lambda p, o: outcomes.append((p, o)), retry=FAST_RETRY, rate=fast_rate
    )
    return dispatcher, outcomes


def to(receiver: Receiver, body: object, name: str = "r") -> Delivery:
    url = receiver.url
    return Delivery(receiver=name, provider="webhook", resolve_url=lambda: url, body=body)


def test_a_hanging_receiver_blocks_neither_submit_nor_other_receivers() -> None:
    with Receiver() as hanging, Receiver() as healthy:
        hanging.hang()
        dispatcher = Dispatcher(retry=PATIENT, rate=fast_rate)
        dispatcher.submit(to(hanging, {"n": 1}, "hanging"))
        dispatcher.submit(to(healthy, {"n": 1}, "healthy"))
        wait_until(lambda: healthy.count() == 1, "one delivery", timeout=30.0, every=0.05)
        assert hanging.count() <= 1
        hanging.release()
        dispatcher.close(timeout=0)


def test_server_errors_are_retried_and_refusals_are_not() -> None:
    with Receiver(status=503) as flaky, Receiver(status=400) as refusing:
        dispatcher, outcomes = counting()
        dispatcher.submit(to(flaky, {"n": 1}, "flaky"))
        wait_until(lambda: flaky.count() >= 2, "a retry", timeout=30.0, every=0.05)
        flaky.answer(200)
        wait_until(lambda: ("webhook", "sent") in outcomes, "sent", timeout=30.0, every=0.05)
        dispatcher.submit(to(refusing, {"n": 1}, "refusing"))
        wait_until(lambda: ("webhook", "failed") in outcomes, "failed", timeout=30.0, every=0.05)
        assert refusing.count() == 1
        dispatcher.close(timeout=0)


def test_one_receiver_gets_messages_in_order() -> None:
    with Receiver() as receiver:
        dispatcher, _ = counting()
        for n in range(20):
            dispatcher.submit(to(receiver, {"n": n}))
        wait_until(lambda: receiver.count() == 20, "20 deliveries", timeout=30.0, every=0.05)
        assert [b["n"] for b in receiver.bodies()] == list(range(20))
        dispatcher.close(timeout=0)


def test_a_full_queue_drops_and_counts() -> None:
    with Receiver() as receiver:
        receiver.hang()
        outcomes: list[tuple[str, str]] = []
        dispatcher = Dispatcher(
            on_delivery=lambda p, o: outcomes.append((p, o)),
            retry=PATIENT,
            rate=fast_rate,
            queue_size=2,
        )
        for n in range(6):
            dispatcher.submit(to(receiver, {"n": n}))
        assert ("webhook", "dropped") in outcomes
        receiver.release()
        dispatcher.close(timeout=0)


def test_an_unreadable_url_is_counted_and_logged_without_secrets() -> None:
    def unreadable() -> str:
        raise UrlUnavailableError("Secret shop/slack has no key 'address'; put the URL there")

    dispatcher, outcomes = counting()
    with structlog.testing.capture_logs() as logs:
        dispatcher.submit(Delivery("shop/ui to-slack", "slack", unreadable, {"text": "x"}))
        wait_until(lambda: ("slack", "error") in outcomes, "an error", timeout=30.0, every=0.05)
    assert any("Secret shop/slack has no key" in str(entry) for entry in logs)
    dispatcher.close(timeout=0)
