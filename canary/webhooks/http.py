"""Webhook checks as HTTP POSTs with JSON bodies: timeouts enforced, answers bounded.

Each call has one deadline (`timeout` of the hook) covering connect, headers and body; at most
`MAX_BODY` bytes of an answer are read, and at most `MAX_MESSAGE` characters of it reach the
status. URLs are shown without credentials or query strings.
"""

from __future__ import annotations

import concurrent.futures
import json
import threading
import time
from collections.abc import Callable, Mapping

import requests
import structlog

from canary.common.urls import redacted_url
from canary.core.model import Rollout
from canary.core.spec import WebhookCheck, WebhookType
from canary.core.status import GateResult, RolloutStatus, Verdict
from canary.core.webhooks import THRESHOLD, payload, verdict_of_status

MAX_BODY = 64 * 1024
MAX_MESSAGE = 200
CallHook = Callable[[str, str], None]
"""on_call(webhook type, outcome) with outcome pass, fail or error."""

log = structlog.get_logger("canary.webhooks")


class HttpWebhooks:
    """`WebhookCaller` over HTTP with `requests`."""

    def __init__(self, on_call: CallHook | None = None, max_parallel: int = 8) -> None:
        self._on_call = on_call
        self._pool = concurrent.futures.ThreadPoolExecutor(max_parallel, "webhook")
        self._post_release = concurrent.futures.ThreadPoolExecutor(1, "post-release")
        self._local = threading.local()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._post_release.shutdown(wait=False, cancel_futures=True)

    def call(self, rollout: Rollout, hooks: tuple[WebhookCheck, ...]) -> Mapping[str, GateResult]:
        if not hooks:
            return {}
        futures = {h.name: self._pool.submit(self.call_one, h, payload(rollout, h)) for h in hooks}
        return {name: future.result() for name, future in futures.items()}

    def post_release(self, rollout: Rollout, status: RolloutStatus) -> None:
        for hook in rollout.spec.analysis.webhooks_of(WebhookType.POST_RELEASE):
            body = payload(rollout, hook, status)
            self._post_release.submit(self._post_release_call, rollout, hook, body)

    def _post_release_call(self, rollout: Rollout, hook: WebhookCheck, body: object) -> None:
        result = self.call_one(hook, body)
        if result.verdict is not Verdict.PASS:
            log.warning(
                "post-release webhook failed",
                rollout=rollout.metadata.name,
                namespace=rollout.metadata.namespace,
                webhook=hook.name,
                error=result.message,
            )

    def call_one(self, hook: WebhookCheck, body: object) -> GateResult:
        """POST `body` to the hook; its verdict, never an exception."""
        result = self._post(hook, body)
        if self._on_call is not None:
            self._on_call(hook.type.value, result.verdict.value)
        return result

    def _post(self, hook: WebhookCheck, body: object) -> GateResult:
        deadline = time.monotonic() + hook.timeout.total_seconds()
        url = redacted_url(hook.url)
        try:
            code, text = _post_within(self._session(), hook.url, body, deadline)
        except requests.Timeout:
            return _error(hook, f"{url} did not answer within {hook.timeout}")
        except requests.RequestException as error:
            return _error(hook, f"{url} is unreachable ({type(error).__name__})")
        verdict = verdict_of_status(code)
        message = None if verdict is Verdict.PASS else f"{url} answered HTTP {code}{text}"
        return GateResult(
            name=hook.name, verdict=verdict, value=float(code), threshold=THRESHOLD, message=message
        )

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False
            self._local.session = session
        return session


class _DeadlinePassedError(requests.Timeout):
    pass


def _post_within(
    session: requests.Session, url: str, body: object, deadline: float
) -> tuple[int, str]:
    """Status code and the start of the answer, read before `deadline`; at most MAX_BODY."""
    remaining = max(deadline - time.monotonic(), 0.001)
    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "canary-controller"}
    with session.post(
        url, data=data, headers=headers, timeout=remaining, stream=True, allow_redirects=False
    ) as response:
        received = bytearray()
        for chunk in response.iter_content(8192):
            received += chunk
            if time.monotonic() > deadline:
                raise _DeadlinePassedError()
            if len(received) >= MAX_BODY:
                break
        return response.status_code, _excerpt(bytes(received[:MAX_BODY]))


def _excerpt(body: bytes) -> str:
    text = " ".join(body.decode("utf-8", "replace").split())
    return f": {text[:MAX_MESSAGE]}" if text else ""


def _error(hook: WebhookCheck, why: str) -> GateResult:
    return GateResult(
        name=hook.name,
        verdict=Verdict.ERROR,
        threshold=THRESHOLD,
        message=f"webhook {hook.name}: {why}; check that it is running and answers in time",
    )
