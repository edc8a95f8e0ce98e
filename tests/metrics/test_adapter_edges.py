"""The adapter's edges that need no real Prometheus.

Aspects: TLS verification settings; URLs in messages lose their credentials; HTTP 5xx and
answers that are not the Prometheus API become error verdicts naming the URL.
"""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler

import pytest
from metrics_helpers import reply, rollout, tiny_server

from canary.common.urls import redacted_url
from canary.core.spec import PrometheusRef
from canary.core.status import Verdict
from canary.metrics.prometheus import PrometheusSource, tls_verify_setting


@pytest.mark.parametrize(
    ("ref", "verify"),
    [
        ({"url": "https://p"}, True),
        ({"url": "https://p", "caFile": "/etc/ca.pem"}, "/etc/ca.pem"),
        ({"url": "https://p", "caFile": "/etc/ca.pem", "insecureSkipVerify": True}, False),
    ],
)
def test_tls_is_verified_unless_told_otherwise(ref: dict[str, object], verify: object) -> None:
    assert tls_verify_setting(PrometheusRef.model_validate(ref)) == verify


def test_urls_in_messages_lose_user_info_and_query() -> None:
    assert redacted_url("https://u:p@prom.example:9090/sub/?token=x#f") == (
        "https://prom.example:9090/sub"
    )


def answering(status: int, body: bytes) -> object:
    def handle(handler: BaseHTTPRequestHandler) -> None:
        reply(handler, status, body, "text/plain")

    return handle


@pytest.mark.parametrize(
    ("status", "body", "sentence"),
    [
        (503, b"busy", "answered HTTP 503"),
        (200, b"<html>not prometheus</html>", "gave an unexpected answer"),
        (200, b'{"status":"success","data":{"result":[{"metric":{},"values":[]}]}}',
         "range vector"),
    ],
)  # fmt: skip
def test_answers_that_are_not_results_are_errors(status: int, body: bytes, sentence: str) -> None:
    with tiny_server(answering(status, body)) as url:  # type: ignore[arg-type]
        results = PrometheusSource().evaluate(rollout("healthy", url))
    assert [r.verdict for r in results] == [Verdict.ERROR, Verdict.ERROR]
    assert f"Prometheus at {url} " in (results[0].message or "")
    assert sentence in (results[0].message or "")
