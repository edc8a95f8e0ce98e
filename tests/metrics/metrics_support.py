"""Shared pieces of the metrics tests (the fixtures live in conftest.py)."""

from __future__ import annotations

from metrics_helpers import NAMESPACE

from canary_sandbox.traffic import Split, TrafficSimulator

INJECTION = 'ui"} or vector(1) #'


WEIRD_VERSION = 'v"2\\n}\n{x=~".*"} \' $1 ` é ☃ \ufffd'


SETTLE_SECONDS = 4.0  # let the 10s windows hold a few scrapes before the first test reads them


def add_scenarios(simulator: TrafficSimulator) -> None:
    """One service per scenario, canary v2 next to stable v1 unless the scenario says otherwise."""
    half = Split({"v1": 50, "v2": 50})
    scenarios = {
        "healthy": {},
        "errors": {"error_rate": 0.10},
        "slow": {"p50_ms": 20, "p99_ms": 800},
        INJECTION: {"error_rate": 0.5},
    }
    for name, behaviour in scenarios.items():
        simulator.add_service(name, NAMESPACE, versions=("v1", "v2"), rps=100)
        simulator.set_version(NAMESPACE, name, "v2", **behaviour)
        simulator.set_split(NAMESPACE, name, half)
    simulator.add_service("idle", NAMESPACE, versions=("v1", "v2"), rps=100)
    simulator.set_split(NAMESPACE, "idle", Split({"v1": 100}))
    simulator.add_service("trickle", NAMESPACE, versions=("v1", "v2"), rps=1)
    simulator.set_split(NAMESPACE, "trickle", half)
    simulator.add_service("mirrored", NAMESPACE, versions=("v1", "v2"), rps=50)
    simulator.set_split(NAMESPACE, "mirrored", Split({"v1": 100, "v2": 0}, "v2", 100.0))
    simulator.add_service("weird", NAMESPACE, versions=(WEIRD_VERSION,), rps=20)
