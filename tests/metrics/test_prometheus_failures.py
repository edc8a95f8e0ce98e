"""Prometheus problems become error verdicts with one clear sentence, never exceptions.

Aspects: a stopped Prometheus; one slower than the timeout; 401 without the right bearer
token (the token never appears); bearer and basic credentials from env and file work through
an auth proxy in front of the real Prometheus; an unreadable credential.
"""

from __future__ import annotations

import base64
from pathlib import Path

from metrics_helpers import auth_proxy, rollout, sleeping, tiny_server
from support.scraped import Sandbox

from canary.core.status import Verdict
from canary.metrics.prometheus import PrometheusSource
from canary_sandbox.prometheus import PrometheusProcess

TOKEN = "s3cr3t-token-value"


def test_a_stopped_prometheus_is_an_error_naming_its_url() -> None:
    prometheus = PrometheusProcess(targets=[]).start()
    url = prometheus.url
    prometheus.stop()
    results = PrometheusSource().evaluate(rollout("healthy", url))
    assert [r.verdict for r in results] == [Verdict.ERROR, Verdict.ERROR]
    message = results[0].message or ""
    assert f"Prometheus at {url} is unreachable" in message
    assert "check spec.prometheus.url" in message


def test_a_prometheus_slower_than_the_timeout_is_an_error() -> None:
    with tiny_server(sleeping(1.5)) as url:
        slow = rollout("healthy", url, prometheus={"timeout": "200ms"})
        results = PrometheusSource().evaluate(slow)
    assert [r.verdict for r in results] == [Verdict.ERROR, Verdict.ERROR]
    message = results[0].message or ""
    assert f"Prometheus at {url} did not answer within 200ms" in message
    assert "spec.prometheus.timeout" in message


def test_401_is_a_clear_error_and_the_token_never_appears(sandbox: Sandbox) -> None:
    accepted = {f"Bearer {TOKEN}"}
    bearer = {"auth": {"bearerToken": {"env": "PROM_TOKEN"}}}
    with tiny_server(auth_proxy(sandbox.url, accepted)) as url:
        wrong = PrometheusSource(environ={"PROM_TOKEN": "wrong-" + TOKEN})
        results = wrong.evaluate(rollout("healthy", url, prometheus=bearer))
        right = PrometheusSource(environ={"PROM_TOKEN": TOKEN})
        passing = right.evaluate(rollout("healthy", url, prometheus=bearer))
    assert [r.verdict for r in results] == [Verdict.ERROR, Verdict.ERROR]
    for result in results:
        text = result.model_dump_json()
        assert TOKEN not in text
        assert f"Prometheus at {url} refused the request with HTTP 401" in (result.message or "")
    assert [r.verdict for r in passing] == [Verdict.PASS, Verdict.PASS]


def test_basic_auth_from_files_reaches_prometheus(sandbox: Sandbox, tmp_path: Path) -> None:
    (tmp_path / "user").write_text("canary\n")
    (tmp_path / "password").write_text("hunter2\n")
    basic = base64.b64encode(b"canary:hunter2").decode()
    auth = {
        "basic": {
            "username": {"file": str(tmp_path / "user")},
            "password": {"file": str(tmp_path / "password")},
        }
    }
    with tiny_server(auth_proxy(sandbox.url, {f"Basic {basic}"})) as url:
        results = PrometheusSource().evaluate(rollout("healthy", url, prometheus={"auth": auth}))
    assert [r.verdict for r in results] == [Verdict.PASS, Verdict.PASS]


def test_credentials_in_the_url_never_reach_a_message() -> None:
    with tiny_server(sleeping(1.0)) as url:
        with_userinfo = url.replace("http://", "http://admin:pa55word@")
        slow = rollout("healthy", with_userinfo, prometheus={"timeout": "100ms"})
        (result, _) = PrometheusSource().evaluate(slow)
    assert result.verdict is Verdict.ERROR
    assert "pa55word" not in result.model_dump_json()
    assert f"Prometheus at {url} " in (result.message or "")


def test_an_unset_token_variable_is_an_error_naming_the_variable(sandbox: Sandbox) -> None:
    bearer = {"auth": {"bearerToken": {"env": "PROM_TOKEN"}}}
    results = PrometheusSource(environ={}).evaluate(
        rollout("healthy", sandbox.url, prometheus=bearer)
    )
    assert [r.verdict for r in results] == [Verdict.ERROR, Verdict.ERROR]
    assert "environment variable PROM_TOKEN, which is not set" in (results[0].message or "")


def test_a_missing_token_file_is_an_error_naming_the_file(sandbox: Sandbox, tmp_path: Path) -> None:
    missing = str(tmp_path / "absent")
    bearer = {"auth": {"bearerToken": {"file": missing}}}
    results = PrometheusSource().evaluate(rollout("healthy", sandbox.url, prometheus=bearer))
    assert results[0].verdict is Verdict.ERROR
    assert f"file {missing}, which cannot be read" in (results[0].message or "")
