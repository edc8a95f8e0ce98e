"""Stand-ins a test drives by hand: gates whose verdict it sets, and a clock it moves. They
implement the same ports as the real thing (`MetricsSource`, a `now()`), so a Reconciler built
with them is the production one. Public, for our tests and for anyone testing an integration
with canary (as `kopf.testing` is for kopf)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from canary.core.model import Rollout
from canary.core.status import GateResult, Verdict


@dataclass
class FixedVerdicts:
    """A MetricsSource whose every gate answers `verdict`, with the value the test chose."""

    verdict: Verdict = Verdict.PASS
    passing_value: float = 100.0
    failing_value: float = 50.0

    def evaluate(self, rollout: Rollout) -> tuple[GateResult, ...]:
        value = self.passing_value if self.verdict is Verdict.PASS else self.failing_value
        return tuple(
            GateResult(name=g.name, verdict=self.verdict, value=value, threshold=">= 99.0%")
            for g in rollout.spec.analysis.gates
        )


@dataclass
class ManualClock:
    """A clock that only moves when told to; call it for the time."""

    now: datetime = field(default_factory=lambda: datetime(2030, 1, 1, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
