"""promote / pause / resume / retry / abort: one annotation, then the controller's answer.

Aspects: the request annotation (action, a fresh uuid4 id, spec and status untouched), the wait
for status.handledRequest with that id (a stand-in controller answers through the status
subresource), "rejected: ..." answers, no controller at all, --no-wait, not found.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from test_online_sandbox import Sandbox, sandbox_fixture, status  # noqa: F401

from canary.core.model import REQUEST_ANNOTATION

SHORT = "0.3s"  # how long "no controller" tests wait; behaviour, not timing, is asserted


def request_of(sandbox: Sandbox) -> dict[str, str]:
    raw = sandbox.rollout()["metadata"]["annotations"][REQUEST_ANNOTATION]
    body: dict[str, str] = json.loads(raw)
    return body


@pytest.mark.parametrize(
    ("args", "action"),
    [
        (["promote"], "promote"),
        (["promote", "--full"], "promote-full"),
        (["pause"], "pause"),
        (["resume"], "resume"),
        (["retry"], "retry"),
        (["abort"], "abort"),
    ],
)
def test_writes_the_annotation_and_nothing_else(
    sandbox: Sandbox, args: list[str], action: str
) -> None:
    before = sandbox.create_rollout(with_status=status("Progressing", stage="split"))
    result = sandbox.cli(*args, "ui", "--no-wait")
    assert result.exit_code == 0, result.output
    after = sandbox.rollout()
    request = request_of(sandbox)
    assert request["action"] == action
    assert uuid.UUID(request["id"]).version == 4
    assert after["spec"] == before["spec"]
    assert after["status"] == before["status"]
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert f"{action} requested for Rollout shop/ui (request {request['id']})" in result.output


def test_every_request_has_its_own_id(sandbox: Sandbox) -> None:
    sandbox.create_rollout()
    ids = set()
    for _ in range(3):
        assert sandbox.cli("pause", "ui", "--no-wait").exit_code == 0
        ids.add(request_of(sandbox)["id"])
    assert len(ids) == 3


def test_other_annotations_survive(sandbox: Sandbox) -> None:
    body = sandbox.create_rollout()
    sandbox.cluster.patch_rollout_metadata("shop", "ui", {"annotations": {"team": "web"}})
    assert sandbox.cli("abort", "ui", "--no-wait").exit_code == 0
    annotations = sandbox.rollout()["metadata"]["annotations"]
    assert annotations["team"] == "web"
    assert set(annotations) == {"team", REQUEST_ANNOTATION}
    assert body["spec"] == sandbox.rollout()["spec"]


def test_no_controller_exits_2_and_says_what_to_check(sandbox: Sandbox) -> None:
    sandbox.create_rollout()
    result = sandbox.cli("promote", "ui")  # the default 10s: nothing answers
    assert result.exit_code == 2
    assert result.output == (
        "error: no controller answered within 10s: the request was withdrawn and will not be "
        "acted on; is the canary controller running (kubectl -n canary-system get pods)?\n"
    )


def test_a_request_the_cli_gave_up_on_is_withdrawn(sandbox: Sandbox) -> None:
    """Issue 14, defect 7: a timed-out promote once ran when the controller came back."""
    sandbox.create_rollout()
    result = sandbox.cli("promote", "ui", "--timeout", SHORT)
    assert result.exit_code == 2
    assert REQUEST_ANNOTATION not in (sandbox.rollout()["metadata"].get("annotations") or {})


def test_a_request_carries_its_expiry(sandbox: Sandbox) -> None:
    sandbox.create_rollout()
    before = datetime.now(UTC)
    sandbox.fake_controller(lambda action: "paused; weights hold until resume")
    assert sandbox.cli("pause", "ui", "--timeout", "1m").exit_code == 0
    expires = datetime.fromisoformat(request_of(sandbox)["expires"])
    assert before + timedelta(seconds=59) <= expires <= datetime.now(UTC) + timedelta(minutes=1)


def test_a_no_wait_request_does_not_expire(sandbox: Sandbox) -> None:
    sandbox.create_rollout()
    assert sandbox.cli("pause", "ui", "--no-wait").exit_code == 0
    assert "expires" not in request_of(sandbox)


def test_no_controller_message_names_the_timeout(sandbox: Sandbox) -> None:
    sandbox.create_rollout()
    result = sandbox.cli("pause", "ui", "--timeout", SHORT)
    assert result.exit_code == 2
    assert "within 300ms" in result.output


def test_the_controllers_result_is_printed(sandbox: Sandbox) -> None:
    sandbox.create_rollout(with_status=status("Paused", stage="split", pausedReason="manualGate"))
    sandbox.fake_controller(lambda action: f"{action}d to split step 3 (50% canary)")
    result = sandbox.cli("promote", "ui")
    assert result.exit_code == 0, result.output
    assert result.output == "Rollout shop/ui: promoted to split step 3 (50% canary)\n"
    handled = sandbox.rollout()["status"]["handledRequest"]
    assert handled["id"] == request_of(sandbox)["id"]


def test_a_rejected_request_exits_1_with_the_reason(sandbox: Sandbox) -> None:
    sandbox.create_rollout(with_status=status("Succeeded", stable="v2"))
    sandbox.fake_controller(lambda action: f"rejected: {action} does nothing while Succeeded")
    result = sandbox.cli("resume", "ui", "-n", "shop")
    assert result.exit_code == 1
    assert result.output == (
        "error: Rollout shop/ui: rejected: resume does nothing while Succeeded\n"
    )


def test_an_answer_to_an_older_request_is_not_ours(sandbox: Sandbox) -> None:
    old = {"id": "older", "action": "pause"}
    sandbox.create_rollout(with_status=status("Paused", handledRequest=None))
    sandbox.set_status({"handledRequest": {**old, "time": "2024-05-01T12:00:00Z", "result": "ok"}})
    result = sandbox.cli("resume", "ui", "--timeout", SHORT)
    assert result.exit_code == 2  # the handled id is someone else's: still unanswered


def test_request_for_a_missing_rollout(sandbox: Sandbox) -> None:
    result = sandbox.cli("abort", "nope")
    assert result.exit_code == 1
    assert result.output == (
        "error: Rollout shop/nope not found: check the name and namespace (-n)\n"
    )


def test_bad_timeout_is_one_sentence(sandbox: Sandbox) -> None:
    result = sandbox.cli("abort", "ui", "--timeout", "soon")
    assert result.exit_code == 1
    assert result.output.startswith("error: --timeout: 'soon' is not a duration")
