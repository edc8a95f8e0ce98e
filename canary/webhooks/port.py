"""The webhook port: what the controller asks of whatever calls the user's webhooks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from canary.core.model import Rollout
from canary.core.spec import WebhookCheck
from canary.core.status import GateResult, RolloutStatus


class WebhookCaller(Protocol):
    """Calls webhook checks; never raises for a receiver's problem.

    `call` blocks until every hook answered or timed out (hooks run in parallel, each within
    its own timeout) and returns one result per hook, by name: 2xx pass, another status fail,
    a timeout or a connection error `error`. `post_release` only queues the calls: a slow
    receiver never delays a reconcile.
    """

    def call(
        self, rollout: Rollout, hooks: tuple[WebhookCheck, ...]
    ) -> Mapping[str, GateResult]: ...

    def post_release(self, rollout: Rollout, status: RolloutStatus) -> None: ...


class NoWebhooks:
    """A caller for set-ups without webhooks: every answer is missing (so nothing promotes)."""

    def call(self, rollout: Rollout, hooks: tuple[WebhookCheck, ...]) -> Mapping[str, GateResult]:
        return {}

    def post_release(self, rollout: Rollout, status: RolloutStatus) -> None:
        return None
