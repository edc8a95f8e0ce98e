"""What each provider receives for a healthy release and a rollback, through the reconciler
against the sandbox API (URLs read from Secrets), and that a failing or hanging receiver
changes nothing about a release.

Aspects: content (Slack attachment, Teams MessageCard, generic JSON), count and order of the
notices; the rollback names the failing gate, its value and threshold; with a receiver that
answers 500 or never answers, the release takes exactly the same positions at the same
(fake-clock) times and ends the same way as with healthy receivers, and each reconcile returns
while the hanging receiver still holds its request; failures are counted, the URL never logged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog
from notify_helpers import (
    FAST_RETRY,
    PATIENT,
    Release,
    notified_rollout,
    put_secret,
    wired,
)
from support.polling import wait_until

from canary.core.status import Verdict
from canary.notify.dispatcher import RetryPolicy
from canary_sandbox.client import SandboxClient
from canary_sandbox.receiver import Receiver
from canary_sandbox.stack import sandbox_with_example

HEALTHY_EVENTS = [
    "releaseStarted",
    "stageChanged",  # mirror
    "stageChanged",  # headerCanary
    "stageChanged",  # split
    "stageChanged",  # release
    "succeeded",
]


def release_with(
    client: SandboxClient,
    kubeconfig: Path,
    receivers: dict[str, Receiver],
    fail: bool = False,
    wait: bool = True,
    retry: RetryPolicy = FAST_RETRY,
) -> tuple[list[tuple[Any, ...]], Release]:
    for provider, receiver in receivers.items():
        put_secret(client, f"{provider}-url", receiver.url)
    body = notified_rollout({p: f"{p}-url" for p in receivers})
    gen = wired(client, kubeconfig, retry)
    release = next(gen)
    release.metrics.verdict = Verdict.FAIL if fail else Verdict.PASS
    client.apply(body)
    positions = release.run()
    if wait:
        release.notifier.close(timeout=10.0)
    return positions, release


def test_a_healthy_release_tells_every_provider_the_same_story_in_order(
    sandbox: Any, receivers: dict[str, Receiver]
) -> None:
    _, client, kubeconfig = sandbox
    positions, release = release_with(client, kubeconfig, receivers)
    assert positions[-1][1] == "Succeeded"
    events = [b["event"] for b in receivers["webhook"].bodies()]
    assert events == HEALTHY_EVENTS
    generic = receivers["webhook"].bodies()
    assert generic[0]["rollout"] == "ui" and generic[0]["namespace"] == "shop"
    assert (generic[0]["stableVersion"], generic[0]["canaryVersion"]) == ("v1", "v2")
    assert [b["stage"] for b in generic[1:5]] == ["mirror", "headerCanary", "split", "release"]
    assert generic[-1]["phase"] == "Succeeded" and generic[-1]["failedGates"] == []

    slack = receivers["slack"].bodies()
    assert len(slack) == len(HEALTHY_EVENTS)
    assert [s["attachments"][0]["title"] for s in slack] == [
        f"shop/ui: {e}" for e in HEALTHY_EVENTS
    ]
    assert slack[-1]["attachments"][0]["color"] == "good"
    assert slack[-1]["text"].startswith("shop/ui: succeeded: v2 released")

    teams = receivers["teams"].bodies()
    assert [t["@type"] for t in teams] == ["MessageCard"] * len(HEALTHY_EVENTS)
    assert [t["title"] for t in teams] == [f"shop/ui: {e}" for e in HEALTHY_EVENTS]
    facts = {f["name"]: f["value"] for f in teams[-1]["sections"][0]["facts"]}
    assert facts["Versions"] == "v2 → v2" or facts["Versions"].endswith("v2")
    assert release.outcomes.count(("slack", "sent")) == len(HEALTHY_EVENTS)


def test_a_rollback_names_the_failing_gate_its_value_and_threshold(
    sandbox: Any, receivers: dict[str, Receiver]
) -> None:
    _, client, kubeconfig = sandbox
    positions, _ = release_with(client, kubeconfig, receivers, fail=True)
    assert positions[-1][1] == "RolledBack"
    events = [b["event"] for b in receivers["webhook"].bodies()]
    assert events == ["releaseStarted", "stageChanged", "rolledBack"]
    rolled_back = receivers["webhook"].bodies()[-1]
    assert rolled_back["phase"] == "RolledBack"
    assert {"name": "success-rate", "value": 80.0, "threshold": ">= 99.0%"}.items() <= (
        rolled_back["failedGates"][0].items()
    )
    assert "gate success-rate fail, 80" in rolled_back["message"]
    slack = receivers["slack"].bodies()[-1]["attachments"][0]
    assert slack["color"] == "danger"
    assert {"title": "Gate success-rate", "value": "80 (threshold >= 99.0%)", "short": True} in (
        slack["fields"]
    )
    teams = receivers["teams"].bodies()[-1]
    assert teams["themeColor"] == "D00000"


def test_failing_and_hanging_receivers_change_nothing_about_the_release(
    receivers: dict[str, Receiver], tmp_path: Path
) -> None:
    with sandbox_with_example(tmp_path / "healthy") as (_, client):
        healthy, _ = release_with(client, tmp_path / "healthy" / "kubeconfig", receivers)
    before = {name: r.count() for name, r in receivers.items()}
    receivers["slack"].answer(500)
    receivers["teams"].hang()
    receivers["webhook"].hang()
    with (
        sandbox_with_example(tmp_path / "troubled") as (_, client),
        structlog.testing.capture_logs() as logs,
    ):
        troubled, release = release_with(
            client, tmp_path / "troubled" / "kubeconfig", receivers, wait=False, retry=PATIENT
        )
        wait_until(
            lambda: ("slack", "failed") in release.outcomes,
            "slack failed",
            timeout=30.0,
            every=0.05,
        )
        # every reconcile returned while the hanging receivers still held their first request
        for name in ("teams", "webhook"):
            assert receivers[name].count() == before[name] + 1
    receivers["teams"].release()
    receivers["webhook"].release()
    assert [p[1:] for p in troubled] == [p[1:] for p in healthy]
    assert [p[0] - troubled[0][0] for p in troubled] == [p[0] - healthy[0][0] for p in healthy]
    assert troubled[-1][1] == "Succeeded"
    assert receivers["slack"].count() - before["slack"] > 1  # 500 is worth another try
    failures = [entry for entry in logs if entry.get("event") == "notification failed"]
    assert failures and all(entry["to"].startswith("shop/ui to-") for entry in failures)
    for entry in logs:
        for receiver in receivers.values():
            assert receiver.url not in str(entry)
