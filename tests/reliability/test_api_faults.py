"""The controller under Kubernetes API faults: it backs off, never crashes, never half-applies
a VirtualService, and catches up when the API returns.

Covers: 409 storms on VirtualServices and on the status subresource, 500s, 429 with
Retry-After, slow responses, dropped and expired (410) watches, and the API answering 503 for a
while — all injected by the sandbox during one release driven by passing gates. The release
still walks every planned position in order, every stored VirtualService is a whole planned
state, and it ends Succeeded.
"""

from __future__ import annotations

import time
from pathlib import Path

from reliability_helpers import (
    store_recorder,
    stored_rollout,
)
from support.controller import in_process_controller
from support.polling import wait_until
from support.rollouts import quick_rollout
from support.traffic import collapse, routing

from canary.testing import FixedVerdicts
from canary_sandbox.apiserver import ApiServer
from canary_sandbox.stack import sandbox_with_example

PLANNED = [
    (0, 0.0, False),
    (0, 100.0, False),
    (0, 0.0, True),
    (10, 0.0, False),
    (25, 0.0, False),
    (50, 0.0, False),
    (75, 0.0, False),
    (100, 0.0, False),
    (0, 0.0, False),
]


def fast_rollout() -> dict:
    return quick_rollout(check="1s", stage="2s", settle="1s")


def phase(api: ApiServer) -> str:
    return str(stored_rollout(api).get("status", {}).get("phase", ""))


def test_a_release_survives_every_kind_of_api_fault(tmp_path: Path) -> None:
    injected: dict[str, int] = {}
    with (
        sandbox_with_example(tmp_path) as (api, client),
        store_recorder(api, "virtualservices") as recorder,
        in_process_controller(tmp_path / "kubeconfig", FixedVerdicts(), retries=2) as controller,
    ):
        faults = api.faults
        client.apply(fast_rollout())
        wait_until(lambda: recorder.versions, "the first VirtualService write", 20, every=0.05)

        def inject(name: str, count: int, action) -> None:  # type: ignore[no-untyped-def]
            injected[name] = injected.get(name, 0) + count
            action()
            time.sleep(1.0)

        inject("409 on virtualservices", 25, lambda: faults.conflict_next(25, "virtualservices"))
        inject("409 on rollouts", 10, lambda: faults.conflict_next(10, "rollouts"))
        inject("500", 10, lambda: faults.fail_next(10, code=500))
        inject("429 with Retry-After", 5, lambda: faults.throttle_next(5, retry_after=1))
        inject("dropped watches", 1, faults.drop_watches)
        inject("expired watches (410)", 1, faults.expire_watches)
        faults.delay(0.3)
        inject("slow responses (0.3 s)", 1, lambda: None)
        faults.delay(0.0)
        faults.offline = True
        inject("API unavailable (503) for 3 s", 1, lambda: time.sleep(2.0))
        faults.offline = False
        wait_until(lambda: phase(api) == "Succeeded", "the release to succeed", 120, every=0.05)
        # The status is written before the traffic: wait for the last VirtualService write too.
        wait_until(
            lambda: routing(recorder.versions[-1]) == PLANNED[-1],
            "stable 100",
            30,
            every=0.05,
        )
        assert controller.healthy()

    states = [routing(vs) for vs in recorder.versions]
    assert set(states) <= set(PLANNED), "a VirtualService was written that is no planned state"
    assert collapse(states) in (PLANNED, PLANNED[1:]), str(collapse(states))
    print("faults injected:", injected)
