"""How long from "the canary starts failing 10 % of requests" to a `fail` success-rate verdict.

A real Prometheus scrapes the traffic simulator every second; the gate reads a 10s window and
is checked every second. Each run injects 10 % 5xx into its own healthy canary and times the
first `fail`. Prints p50 and p99 over the runs.

    .venv/bin/python benchmarks/detection.py [--runs 10] [--small]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from canary.core.model import Rollout, Verdict
from canary.metrics.prometheus import PrometheusSource
from canary.sandbox.prometheus import PrometheusProcess
from canary.sandbox.traffic import Split, TrafficSimulator

NAMESPACE = "bench"
WINDOW = "10s"
CHECK_EVERY_SECONDS = 1.0
GIVE_UP_SECONDS = 60.0


def rollout(service: str, url: str) -> Rollout:
    return Rollout.model_validate(
        {
            "metadata": {"name": service, "namespace": NAMESPACE},
            "spec": {
                "host": service,
                "virtualService": {"name": service, "route": "primary"},
                "destinationRule": {"name": service},
                "stable": {"subset": "stable"},
                "canary": {"subset": "canary", "version": "v2"},
                "stages": {"split": {"steps": [50]}},
                "analysis": {
                    "interval": "1s",
                    "window": WINDOW,
                    "minRequests": 20,
                    "gates": [{"name": "success-rate", "successRate": {"min": 99.0}}],
                },
                "prometheus": {"url": url, "timeout": "2s"},
            },
        }
    )


def success_verdict(source: PrometheusSource, subject: Rollout) -> Verdict:
    (result,) = source.evaluate(subject)
    return result.verdict


def detection_seconds(simulator: TrafficSimulator, url: str, service: str) -> float:
    source, subject = PrometheusSource(), rollout(service, url)
    before = success_verdict(source, subject)
    if before is not Verdict.PASS:
        raise RuntimeError(f"{service} should pass before the errors start, got {before}")
    injected = time.monotonic()
    simulator.set_version(NAMESPACE, service, "v2", error_rate=0.10)
    while time.monotonic() - injected < GIVE_UP_SECONDS:
        if success_verdict(source, subject) is Verdict.FAIL:
            return time.monotonic() - injected
        time.sleep(CHECK_EVERY_SECONDS)
    raise RuntimeError(f"{service}: no fail verdict within {GIVE_UP_SECONDS:g}s")


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, round(share * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--small", action="store_true", help="3 runs, for a quick look")
    args = parser.parse_args(argv)
    runs = 3 if args.small else args.runs
    services = [f"svc{i}" for i in range(runs)]
    simulator = TrafficSimulator(seed=11)
    for service in services:
        simulator.add_service(service, NAMESPACE, versions=("v1", "v2"), rps=200)
        simulator.set_split(NAMESPACE, service, Split({"v1": 50, "v2": 50}))
    with simulator, PrometheusProcess(targets=[simulator.address], scrape_interval="1s") as prom:
        time.sleep(12)  # a full healthy window behind every canary
        seconds = [detection_seconds(simulator, prom.url, service) for service in services]
    print(f"runs={runs} scrape=1s window={WINDOW} check every {CHECK_EVERY_SECONDS:g}s, 10% 5xx")
    print("detection seconds: " + " ".join(f"{s:.2f}" for s in seconds))
    p50, p99 = statistics.median(seconds), percentile(seconds, 0.99)
    print(f"p50={p50:.2f}s p99={p99:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
