"""The HTTP adapter of webhook checks against local receivers on 127.0.0.1.

Aspects: the POST carries the Rollout's name, namespace, stage, step, versions and metadata;
2xx passes, another status fails with the status and the start of the answer, a hanging
receiver is an error once the hook's timeout passes, a refused connection is an error; an
answer is read only up to its bound; URLs in messages carry no credentials or query; a model
without the stage a boundary webhook needs is rejected with one sentence.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from canary.common.urls import redacted_url
from canary.core.model import Rollout
from canary.core.spec import WebhookCheck
from canary.core.status import Verdict
from canary.webhooks.http import MAX_MESSAGE, HttpWebhooks
from canary_sandbox.receiver import Receiver
from canary_sandbox.stack import example_release


def rollout(*hooks: dict[str, Any]) -> Rollout:
    data = example_release()
    data["spec"]["analysis"]["webhooks"] = list(hooks)
    return Rollout.model_validate(data)


@pytest.fixture
def receiver() -> Any:
    with Receiver() as r:
        yield r


def test_the_post_carries_where_the_release_stands(receiver: Receiver) -> None:
    spec = {"name": "smoke", "type": "gate", "url": receiver.url, "metadata": {"team": "web"}}
    ro = rollout(spec)
    results = HttpWebhooks().call(ro, tuple(ro.spec.analysis.webhooks))
    assert results["smoke"].verdict is Verdict.PASS
    assert results["smoke"].value == 200
    (body,) = receiver.bodies()
    assert body["name"] == "ui" and body["namespace"] == "shop"
    assert body["type"] == "gate" and body["webhook"] == "smoke"
    assert body["canaryVersion"] == "v2" and body["metadata"] == {"team": "web"}
    assert {"stage", "step", "stableVersion", "phase", "canaryWeight"} <= set(body)


def test_another_status_fails_with_the_status_and_a_bounded_excerpt(receiver: Receiver) -> None:
    receiver.answer(503, b"down " * 50_000)
    ro = rollout({"name": "smoke", "type": "gate", "url": receiver.url})
    result = HttpWebhooks().call(ro, tuple(ro.spec.analysis.webhooks))["smoke"]
    assert result.verdict is Verdict.FAIL
    assert result.value == 503
    assert result.message is not None and "HTTP 503: down down" in result.message
    assert len(result.message) < MAX_MESSAGE + 100


def test_a_hanging_receiver_is_an_error_after_the_timeout(receiver: Receiver) -> None:
    receiver.hang()
    spec = {"name": "slow", "type": "gate", "url": receiver.url, "timeout": "1s"}
    ro = rollout(spec)
    result = HttpWebhooks().call(ro, tuple(ro.spec.analysis.webhooks))["slow"]
    receiver.release()
    assert result.verdict is Verdict.ERROR
    assert result.message is not None and "did not answer within" in result.message


def test_a_refused_connection_is_an_error() -> None:
    with Receiver() as gone:
        url = gone.url
    ro = rollout({"name": "gone", "type": "gate", "url": url, "timeout": "1s"})
    result = HttpWebhooks().call(ro, tuple(ro.spec.analysis.webhooks))["gone"]
    assert result.verdict is Verdict.ERROR
    assert "unreachable" in (result.message or "")


def test_outcomes_are_counted_by_type() -> None:
    counted: list[tuple[str, str]] = []
    with Receiver(status=500) as receiver:
        ro = rollout({"name": "a", "type": "gate", "url": receiver.url})
        HttpWebhooks(on_call=lambda t, o: counted.append((t, o))).call(
            ro, tuple(ro.spec.analysis.webhooks)
        )
    assert counted == [("gate", "fail")]


def test_an_ipv6_webhook_url_keeps_its_brackets() -> None:
    """Issue 20: the webhooks' own copy of URL redaction gave http://::1:8080/."""
    assert redacted_url("http://[::1]:8080/check?t=1") == "http://[::1]:8080/check"


def test_urls_in_messages_carry_no_credentials_or_query() -> None:
    assert redacted_url("https://user:pw@hooks.example:8443/x/y?token=abc#f") == (
        "https://hooks.example:8443/x/y"
    )


def test_boundary_webhooks_need_their_stage() -> None:
    with pytest.raises(ValidationError, match="needs the stage it runs before"):
        WebhookCheck.model_validate({"name": "a", "type": "confirm-promotion", "url": "http://x"})
    with pytest.raises(ValidationError, match="stage belongs to pre-stage"):
        WebhookCheck.model_validate(
            {"name": "a", "type": "gate", "url": "http://x", "stage": "split"}
        )
