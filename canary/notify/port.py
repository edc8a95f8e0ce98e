"""The notification port: what the controller hands over after each decision."""

from __future__ import annotations

from typing import Protocol

from canary.core.model import Rollout
from canary.core.notices import Notice


class NotificationSink(Protocol):
    """Takes notices and returns at once; delivery happens elsewhere and never raises here."""

    def notify(self, rollout: Rollout, notices: tuple[Notice, ...]) -> None: ...


class NoNotifications:
    def notify(self, rollout: Rollout, notices: tuple[Notice, ...]) -> None:
        return None
