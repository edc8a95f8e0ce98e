"""The compare gate against the fixed-threshold gate, on simulated request counts.

Each run simulates one stage of a release check by check: the canary serves `per_check`
requests per check and stable nine times as many (a 10 % canary); every request fails with its
version's error rate (seeded RNG). Both gates are judged by the controller's own verdict code
(`judge` for `successRate: {min: 99}` over each check's window, `judge_compare` for
`compare: {metric: errorRate, maxIncrease: 50, confidence: 0.99}` over the stage so far) and
counted the way the state machine counts them: `failureLimit: 2` consecutive fails roll back,
a hold neither passes nor resets the count.

Reports, side by side: false rollbacks of a healthy canary (canary = stable error rate) at low
traffic (60 requests per check, 10 checks) and high traffic (6,000 per check), and the canary
requests needed to roll back a canary at 1 % errors next to a stable at 0.1 % (median, and the
90th and 95th nearest-rank percentiles over runs; a run that never rolls back in 200 checks
counts as inf).

    .venv/bin/python benchmarks/analysis.py [--runs 2000] [--small] [--seed 1] [--effects]

`--effects` adds the same detection figures for canaries at 0.3, 0.5, 2 and 5 % errors: the
error-rate test's mixture is a design choice that trades speed across effect sizes, and these
rows show the trade.

`--split-hold` models how long a canary as good as stable holds in a split stage at the traffic
of tests/e2e/test_e2e_compare.py (40 requests a second, both versions at 3 % 5xx, steps 10, 25,
50, 75 and 100 % of at least 2 s, one check a second on the stage's counts, minRequests 20):
the share of releases whose split outlasts 75 s, 150 s and 300 s.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from canary.core.model import Rollout
from canary.core.spec import Gate
from canary.core.status import Verdict
from canary.metrics.compare import judge_compare
from canary.metrics.verdicts import Measurement, Series, judge
from canary_sandbox.sampling import binomial

STABLE_SHARE = 9  # stable serves 9 requests for every canary request (10 % canary)
FAILURE_LIMIT = 2
MIN_REQUESTS = 50
START = datetime(2024, 1, 1, tzinfo=UTC)
FIXED_GATE = Gate.model_validate({"name": "success-rate", "successRate": {"min": 99.0}})
COMPARE_GATE = Gate.model_validate(
    {
        "name": "errors-vs-stable",
        "compare": {"metric": "errorRate", "maxIncrease": 50, "confidence": 0.99},
    }
)


def subject(min_requests: int = MIN_REQUESTS) -> Rollout:
    return Rollout.model_validate(
        {
            "metadata": {"name": "bench"},
            "spec": {
                "host": "bench",
                "virtualService": {"name": "bench", "route": "primary"},
                "destinationRule": {"name": "bench"},
                "stable": {"subset": "stable"},
                "canary": {"subset": "canary", "version": "v2"},
                "stages": {"split": {"steps": [10]}},
                "analysis": {
                    "interval": "30s",
                    "failureLimit": FAILURE_LIMIT,
                    "minRequests": min_requests,
                    "gates": [COMPARE_GATE.wire(), FIXED_GATE.wire()],
                },
            },
            "status": {"stableVersion": "v1", "canaryVersion": "v2"},
        }
    )


ROLLOUT = subject()
SPLIT_ROLLOUT = subject(min_requests=20)  # test_e2e_compare's Rollout


@dataclass
class Stage:
    """Cumulative counts of one stage, and this check's counts."""

    canary_requests: int = 0
    canary_errors: int = 0
    stable_requests: int = 0
    stable_errors: int = 0
    check_requests: int = 0
    check_errors: int = 0

    def serve(self, rng: random.Random, per_check: int, canary_rate: float, stable_rate: float):
        self.check_requests = per_check
        self.check_errors = binomial(rng, per_check, canary_rate)
        self.canary_requests += per_check
        self.canary_errors += self.check_errors
        self.stable_requests += per_check * STABLE_SHARE
        self.stable_errors += binomial(rng, per_check * STABLE_SHARE, stable_rate)


def fixed_verdict(stage: Stage) -> Verdict:
    ok = stage.check_requests - stage.check_errors
    reading = (Series({}, 100.0 * ok / stage.check_requests),)
    measurement = Measurement("bench", reading, stage.check_requests, MIN_REQUESTS, "30s")
    return judge(FIXED_GATE, measurement).verdict


def compare_verdict(stage: Stage, rollout: Rollout = ROLLOUT) -> Verdict:
    readings = {
        "canary_requests": (Series({}, stage.canary_requests),),
        "canary_errors": (Series({}, stage.canary_errors),),
        "stable_requests": (Series({}, stage.stable_requests),),
        "stable_errors": (Series({}, stage.stable_errors),),
    }
    return judge_compare(COMPARE_GATE, readings, rollout, timedelta(minutes=5)).verdict


Judge = Callable[[Stage], Verdict]


@dataclass
class Outcome:
    rolled_back_at: int | None = None  # canary requests served when it rolled back
    passes: int = 0  # passing checks (a step advances only on those)


def run_once(
    rng: random.Random, judge_check: Judge, per_check: int, checks: int, rates: tuple[float, float]
) -> Outcome:
    stage, failed, outcome = Stage(), 0, Outcome()
    for _ in range(checks):
        stage.serve(rng, per_check, *rates)
        verdict = judge_check(stage)
        outcome.passes += verdict is Verdict.PASS
        failed = 0 if verdict is Verdict.PASS else failed + (verdict is Verdict.FAIL)
        if failed >= FAILURE_LIMIT:
            outcome.rolled_back_at = stage.canary_requests
            return outcome
    return outcome


def healthy(judge_check: Judge, runs: int, seed: int, per_check: int, rate: float) -> str:
    """False rollback share, and the share of checks that passed."""
    rng = random.Random(seed)
    outcomes = [run_once(rng, judge_check, per_check, 10, (rate, rate)) for _ in range(runs)]
    rolled = sum(o.rolled_back_at is not None for o in outcomes) / runs
    passed = sum(o.passes for o in outcomes) / (10 * runs)
    return f"{rolled:.2%} ({passed:.0%} pass)"


@dataclass(frozen=True)
class Detection:
    median: float
    p90: float
    p95: float
    within_1500: float


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile of sorted `values` (inf for runs never rolled back)."""
    return values[min(len(values) - 1, math.ceil(share * len(values)) - 1)]


def detection(
    judge_check: Judge, runs: int, seed: int, per_check: int, canary_rate: float = 0.01
) -> Detection:
    rng = random.Random(seed)
    needed = [
        run_once(rng, judge_check, per_check, 200, (canary_rate, 0.001)).rolled_back_at
        for _ in range(runs)
    ]
    values = sorted(n if n is not None else math.inf for n in needed)
    return Detection(
        median=statistics.median(values),
        p90=percentile(values, 0.90),
        p95=percentile(values, 0.95),
        within_1500=sum(v <= 1500 for v in values) / len(values),
    )


def split_seconds(rng: random.Random, rps: int = 40, error_rate: float = 0.03) -> int:
    """Seconds an equal canary's split stage lasts (a failed check counts as forever)."""
    stage, seconds = Stage(), 0
    for weight in (0.10, 0.25, 0.50, 0.75, 1.00):
        in_step = 0
        while True:
            seconds, in_step = seconds + 1, in_step + 1
            to_canary = round(rps * weight)
            stage.canary_requests += to_canary
            stage.canary_errors += binomial(rng, to_canary, error_rate)
            stage.stable_requests += rps - to_canary
            stage.stable_errors += binomial(rng, rps - to_canary, error_rate)
            if weight == 1.00:
                break
            verdict = compare_verdict(stage, SPLIT_ROLLOUT)
            if verdict is Verdict.FAIL:
                return sys.maxsize
            if verdict is Verdict.PASS and in_step >= 2:
                break
    return seconds


def split_hold(runs: int, seed: int) -> str:
    rng = random.Random(seed)
    lasted = [split_seconds(rng) for _ in range(runs)]
    return ", ".join(f"> {s} s: {sum(t > s for t in lasted) / runs:.1%}" for s in (75, 150, 300))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--small", action="store_true", help="300 runs, for a quick look")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--effects",
        action="store_true",
        help="also other canary error rates against stable's 0.1 %% (60 requests a check)",
    )
    parser.add_argument(
        "--split-hold",
        action="store_true",
        help="only how long an equal canary holds in test_e2e_compare's split stage",
    )
    args = parser.parse_args(argv)
    runs = 300 if args.small else args.runs
    if args.split_hold:
        held = split_hold(runs, args.seed)
        print(f"runs={runs} seed={args.seed}, an equal canary's split stage lasted {held}")
        return 0
    gates = {"fixed successRate>=99": fixed_verdict, "compare errorRate +50%": compare_verdict}
    print(f"runs={runs} seed={args.seed}, 10% canary, failureLimit {FAILURE_LIMIT}, minRequests 50")
    print(
        f"{'false rollbacks (checks passed), healthy':44} " + "  ".join(f"{g:>26}" for g in gates)
    )
    for per_check in (60, 6000):
        for rate in (0.001, 0.005, 0.01):
            label = f"  {per_check:>5} req/check x 10, both at {rate:.1%} 5xx"
            shares = [healthy(j, runs, args.seed, per_check, rate) for j in gates.values()]
            print(f"{label:44} " + "  ".join(f"{s:>26}" for s in shares))
    print("canary requests to roll back 0.1% -> 1% 5xx (median / p90 / p95 / within 1,500)")
    for per_check in (60, 300):
        found = [detection(j, runs, args.seed, per_check) for j in gates.values()]
        label = f"  {per_check:>5} req/check"
        print(f"{label:44} " + "  ".join(f"{_detection_text(d):>26}" for d in found))
    if args.effects:
        print("canary requests to roll back 0.1% -> x, 60 req/check (same columns)")
        for canary_rate in (0.003, 0.005, 0.02, 0.05):
            found = [detection(j, runs, args.seed, 60, canary_rate) for j in gates.values()]
            label = f"  canary at {canary_rate:.1%} 5xx"
            print(f"{label:44} " + "  ".join(f"{_detection_text(d):>26}" for d in found))
    return 0


def _detection_text(found: Detection) -> str:
    return f"{found.median:g} / {found.p90:g} / {found.p95:g} / {found.within_1500:.0%}"


if __name__ == "__main__":
    sys.exit(main())
