"""Notifications and webhook checks, end to end: the controller process, the sandbox API,
the traffic simulator and a real Prometheus, with local receivers on 127.0.0.1.

Aspects: Slack, Teams and a generic webhook receive a healthy release and a rollback (content,
count, order; URLs read from Secrets); a failing and a hanging receiver leave a release's
outcome and path unchanged. Each webhook type: gate (pass lets the release through, a
failure rolls back, a hanging receiver holds with an error verdict until it answers),
pre-stage (called once with the header canary in place; a failure rolls back; a hang holds),
confirm-promotion (holds through a hang and a 403, goes on after a 200), post-release (called
once when the release ends; a failing or hanging receiver changes nothing).
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from env_helpers import Env

from canary_sandbox.client import SandboxError
from canary_sandbox.receiver import Receiver
from canary_sandbox.stack import SERVICE

pytestmark = pytest.mark.slow

ENDED = ("Succeeded", "RolledBack", "Aborted")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def put_secret(env: Env, name: str, url: str) -> None:
    collection = f"/api/v1/namespaces/{env.namespace}/secrets"
    with contextlib.suppress(SandboxError):
        env.client.request("DELETE", f"{collection}/{name}")
    data = {"address": base64.b64encode(url.encode()).decode()}
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": data}
    env.client.request("POST", collection, secret)


def short_release(*hooks: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    """Mirror, header canary, then split 50/100, with these webhooks."""

    def change(spec: dict[str, Any]) -> None:
        spec["stages"]["split"]["steps"] = [50, 100]
        spec["analysis"]["webhooks"] = list(hooks)

    return change


def hook(name: str, type_: str, url: str, stage: str | None = None) -> dict[str, Any]:
    body = {"name": name, "type": type_, "url": url, "timeout": "1s", "metadata": {"team": "web"}}
    if stage is not None:
        body["stage"] = stage
    return body


def positions(status: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(h["phase"], h.get("stage"), h.get("canaryWeight")) for h in status["history"]]


# ---------------------------------------------------------------- notifications


def test_every_provider_hears_a_healthy_release_and_a_rollback_in_order(env: Env) -> None:
    with Receiver() as slack, Receiver() as teams, Receiver() as generic:
        receivers = {"slack": slack, "teams": teams, "webhook": generic}
        for provider, r in receivers.items():
            put_secret(env, f"{provider}-url", r.url)
        notifications = [
            {"name": f"to-{p}", "provider": p, "secretRef": {"name": f"{p}-url"}} for p in receivers
        ]
        env.start_controller()

        good = env.new_version()
        env.release(good, lambda spec: spec.update(notifications=notifications))
        assert env.wait_for_phase(good, *ENDED)["phase"] == "Succeeded"
        expected = ["releaseStarted"] + ["stageChanged"] * 4 + ["succeeded"]
        env.wait_for(lambda: len(generic.bodies()) == len(expected), what="6 notices")

        bad = env.new_version()
        env.stack.simulator.set_version(env.namespace, SERVICE, bad, error_rate=0.5)
        env.release(bad, lambda spec: spec.update(notifications=notifications))
        assert env.wait_for_phase(bad, *ENDED)["phase"] == "RolledBack"
        expected += ["releaseStarted", "stageChanged", "rolledBack"]
        env.wait_for(lambda: len(generic.bodies()) == len(expected), what="9 notices")
        env.wait_for(lambda: len(teams.bodies()) == len(slack.bodies()) == len(expected))

        bodies = generic.bodies()
        assert [b["event"] for b in bodies] == expected
        assert [b["stage"] for b in bodies[1:5]] == ["mirror", "headerCanary", "split", "release"]
        assert (bodies[0]["canaryVersion"], bodies[6]["canaryVersion"]) == (good, bad)
        gate = bodies[-1]["failedGates"][0]
        assert gate["name"] == "success-rate" and gate["value"] < 99.0
        assert gate["threshold"].startswith(">= 99")
        assert [s["attachments"][0]["title"] for s in slack.bodies()] == [
            f"{env.namespace}/ui: {e}" for e in expected
        ]
        assert slack.bodies()[-1]["attachments"][0]["color"] == "danger"
        assert [t["title"] for t in teams.bodies()] == [
            f"{env.namespace}/ui: {e}" for e in expected
        ]


def test_failing_and_hanging_receivers_leave_the_release_unchanged(env: Env) -> None:
    with Receiver(status=500) as failing, Receiver() as hanging:
        hanging.hang()
        put_secret(env, "failing-url", failing.url)
        put_secret(env, "hanging-url", hanging.url)
        notifications = [
            {"name": "failing", "provider": "webhook", "secretRef": {"name": "failing-url"}},
            {"name": "hanging", "provider": "slack", "secretRef": {"name": "hanging-url"}},
        ]
        controller = env.start_controller()
        quiet = env.new_version()
        env.release(quiet)
        quiet_status = env.wait_for_phase(quiet, *ENDED)
        noisy = env.new_version()
        env.release(noisy, lambda spec: spec.update(notifications=notifications))
        noisy_status = env.wait_for_phase(noisy, *ENDED)
        assert noisy_status["phase"] == quiet_status["phase"] == "Succeeded"
        quiet_path = positions(quiet_status)[-8:]
        assert positions(noisy_status)[-8:] == quiet_path
        assert hanging.count() >= 1  # its first request is still held (or timed out)
        assert failing.count() >= 2  # retried
        hanging.release()
        logs = controller.logs()
        assert "notification failed" in logs
        assert failing.url not in logs and hanging.url not in logs


# ---------------------------------------------------------------- webhook checks


def test_gate_webhook_pass_fail_and_hold(env: Env, receiver: Receiver) -> None:
    env.start_controller()
    gate = hook("smoke", "gate", receiver.url)

    passing = env.new_version()
    env.release(passing, short_release(gate))
    assert env.wait_for_phase(passing, *ENDED)["phase"] == "Succeeded"
    calls = [b for b in receiver.bodies() if b["canaryVersion"] == passing]
    assert len(calls) >= 4  # mirror, header canary, 50 %, 100 %
    assert {c["stage"] for c in calls} >= {"mirror", "headerCanary", "split"}
    assert all(c["name"] == "ui" and c["metadata"] == {"team": "web"} for c in calls)

    receiver.hang()
    held = env.new_version()
    env.release(held, short_release(gate))
    status = env.wait_for_status(
        lambda s: s.get("canaryVersion") == held
        and any(g["name"] == "smoke" and g["verdict"] == "error"
                for g in (s.get("lastAnalysis") or {}).get("gates", [])),
        what="an error verdict from the hanging gate webhook",
    )  # fmt: skip
    assert (status["phase"], status["stage"]) == ("Progressing", "mirror")
    receiver.answer(500)
    receiver.release()
    status = env.wait_for_phase(held, *ENDED)
    assert status["phase"] == "RolledBack"
    assert "gate smoke fail, 500 (threshold 2xx)" in status["message"]
    assert [h["stage"] for h in status["history"][-3:] if h.get("stage")] == ["mirror"]


def test_pre_stage_webhook_pass_fail_and_hold(env: Env, receiver: Receiver) -> None:
    env.start_controller()
    pre = hook("acceptance", "pre-stage", receiver.url, stage="split")

    passing = env.new_version()
    env.release(passing, short_release(pre))
    assert env.wait_for_phase(passing, *ENDED)["phase"] == "Succeeded"
    calls = [b for b in receiver.bodies() if b["canaryVersion"] == passing]
    assert [(c["stage"], c["beforeStage"]) for c in calls] == [("headerCanary", "split")]

    receiver.hang()
    held = env.new_version()
    env.release(held, short_release(pre))
    status = env.wait_for_status(
        lambda s: s.get("canaryVersion") == held
        and any(g["name"] == "acceptance" and g["verdict"] == "error"
                for g in (s.get("lastAnalysis") or {}).get("gates", [])),
        what="the hanging pre-stage webhook to hold the release",
    )  # fmt: skip
    assert (status["stage"], status["canaryWeight"]) == ("headerCanary", 0)
    receiver.answer(412)
    receiver.release()
    status = env.wait_for_phase(held, *ENDED)
    assert status["phase"] == "RolledBack"
    assert "gate acceptance fail, 412" in status["message"]
    assert all(h.get("canaryWeight", 0) == 0 for h in status["history"][-3:])


def test_confirm_promotion_holds_until_it_answers_2xx(env: Env, receiver: Receiver) -> None:
    env.start_controller()
    version = env.new_version()
    receiver.hang()
    env.release(version, short_release(hook("approve", "confirm-promotion", receiver.url, "split")))
    status = env.wait_for_status(
        lambda s: (
            s.get("canaryVersion") == version
            and "waiting for webhook approve before stage split" in s.get("message", "")
        ),
        what="the hold before split",
    )
    assert (status["phase"], status["stage"]) == ("Progressing", "headerCanary")
    receiver.answer(403, b"change freeze")
    receiver.release()
    env.wait_for(lambda: receiver.count() >= 3, what="two more asks")
    status = env.status()
    assert (status["phase"], status["stage"]) == ("Progressing", "headerCanary")
    assert "403" in status["message"] or "did not answer" in status["message"]
    receiver.answer(200)
    assert env.wait_for_phase(version, *ENDED)["phase"] == "Succeeded"
    assert {b["beforeStage"] for b in receiver.bodies()} == {"split"}


@pytest.mark.parametrize("behaviour", ["pass", "fail", "hang"])
def test_post_release_is_called_once_and_never_changes_the_outcome(
    env: Env, receiver: Receiver, behaviour: str
) -> None:
    if behaviour == "fail":
        receiver.answer(500)
    elif behaviour == "hang":
        receiver.hang()
    env.start_controller()
    version = env.new_version()
    env.release(version, short_release(hook("done", "post-release", receiver.url)))
    status = env.wait_for_phase(version, *ENDED)
    assert status["phase"] == "Succeeded"
    env.wait_for(lambda: receiver.count() >= 1, what="the post-release call")
    (call,) = receiver.bodies()
    assert (call["type"], call["phase"], call["canaryVersion"]) == (
        "post-release",
        "Succeeded",
        version,
    )
    assert env.status()["phase"] == "Succeeded"
    receiver.release()
