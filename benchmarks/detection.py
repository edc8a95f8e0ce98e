"""End-to-end detection: from "the canary starts failing 10 % of requests" to the rollback written.

Issue #8: real Prometheus (scrape 1 s), analysis window 10 s, interval 5 s; p50 and p99 over
10 runs. Everything runs as in `canary demo` and the e2e tests, from the same pieces:

- the sandbox Kubernetes API in this process, with examples/ui (`sandbox_with_example`);
- the traffic simulator, 60 req/s to `ui`, split the way the sandbox's VirtualService and
  DestinationRule say (`simulated_traffic`, which polls them every 0.2 s);
- a real Prometheus scraping the simulator every second (`PrometheusProcess`);
- `canary controller` as a child process (`ControllerProcess`), reading that Prometheus.

The Rollout is examples/ui's (`fast_rollout(5)`: interval 5s, window 10s, minRequests 20,
failureLimit 2 as in examples/ui) with one change of stages and gates: only a split stage,
steps [50] with a one-hour step, so the canary sits at 50 % while healthy, and only the
success-rate gate (successRate min 99 %). Each run releases a new healthy version (v2, v3, ...,
deployed with `deploy_version`), waits until the controller stored a passing check at 50 %,
waits a random 0-5 s (so errors start at a random point of the 5 s check cycle, as they would
in life), then makes that version answer 10 % of its requests with 503 (`simulator.set_version`)
and notes the time. The figure ends when the sandbox store holds the rollback: the first write
of the VirtualService after the injection with no canary weight on the managed route, timed by
`canary_sandbox.recorder.StoreRecorder`, on the store's own watch (woken by the write itself, so no
polling error). The run then checks the Rollout says RolledBack for that version.

What the figure contains, and its floor: Prometheus must first scrape enough 5xx answers for
the success rate over the 10 s window to drop below 99 % (at 10 % errors, about one second of
them, plus up to a second until the scrape and the rate extrapolation show it); the next
check after that (checks are 5 s apart, so up to 5 s later) is the first failing one; then
`failureLimit` - 1 more failing checks, 5 s apart each; then the controller's VirtualService
write. With failureLimit 2 that is (the first check at least ~1.5-3 s after the errors start:
so 1.5-8 s) + 5 s, roughly 6.5-13 s, the spread coming from where the errors start in the
check cycle (a check 2.7 s after them can still pass, and then the next one is 5 s later).
Also printed per run: when the first failing check was stored, and how long after the last
passing check the errors started.

    .venv/bin/python benchmarks/detection.py [--runs 10] [--small] [--seed 8]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import random
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from canary_sandbox.client import SandboxClient
from canary_sandbox.prometheus import PrometheusProcess
from canary_sandbox.recorder import Recorded, StoreRecorder
from canary_sandbox.stack import (
    NAMESPACE,
    SERVICE,
    ControllerProcess,
    deploy_version,
    fast_rollout,
    sandbox_with_example,
    simulated_traffic,
)
from canary_sandbox.store import StoredEvent
from canary_sandbox.traffic import TrafficSimulator, subset_weight

INTERVAL = 5.0  # analysis interval, seconds; fast_rollout makes the window max(10 s, interval)
WEIGHT = 50  # the canary's weight while it waits to fail
ERROR_RATE = 0.10
SCRAPE = "1s"
GIVE_UP_SECONDS = 90.0
ROLLOUT = ("canary.dev/v1alpha1", "Rollout")
VIRTUAL_SERVICES = ("networking.istio.io", "virtualservices")
ROLLOUTS = ("canary.dev", "rollouts")
MANAGED_ROUTE = "primary"

Obj = dict[str, Any]


def canary_weight(virtual_service: Obj) -> float:
    return subset_weight(virtual_service, MANAGED_ROUTE, "canary")


def wanted(event: StoredEvent) -> bool:
    """Writes to the VirtualService and the Rollout `ui`."""
    return (
        event.storage_key in (VIRTUAL_SERVICES, ROLLOUTS)
        and event.namespace == NAMESPACE
        and event.obj.get("metadata", {}).get("name") == SERVICE
    )


def first_after(
    recorder: StoreRecorder, since: float, kind: tuple[str, str], test: Callable[[Obj], bool]
) -> Recorded | None:
    """The first write of `kind` the store delivered at or after `since` that passes `test`."""
    return next(
        (w for w in recorder.recorded() if w.at >= since and w.kind == kind and test(w.obj)),
        None,
    )


@dataclass(frozen=True)
class Run:
    version: str
    seconds: float  # injection -> rollback VirtualService stored
    first_fail: float  # injection -> first failing check stored
    offset: float  # last passing check stored -> injection


def wait(what: str, check: Callable[[], Any], describe: Callable[[], str]) -> Any:
    deadline = time.monotonic() + GIVE_UP_SECONDS
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.01)
    raise RuntimeError(f"no {what} within {GIVE_UP_SECONDS:g}s\n{describe()}")


class Bench:
    def __init__(
        self,
        client: SandboxClient,
        watch: StoreRecorder,
        controller: ControllerProcess,
        prometheus_url: str,
    ) -> None:
        self.client, self.watch, self.controller = client, watch, controller
        self.body = fast_rollout(INTERVAL, prometheus_url)
        spec = self.body["spec"]
        spec["stages"] = {"split": {"steps": [WEIGHT], "interval": "1h"}}
        spec["analysis"]["gates"] = [{"name": "success-rate", "successRate": {"min": 99.0}}]

    def parameters(self) -> str:
        analysis = self.body["spec"]["analysis"]
        return (
            f"scrape={SCRAPE} window={analysis['window']} interval={analysis['interval']} "
            f"failureLimit={analysis['failureLimit']} minRequests={analysis['minRequests']} "
            f"weight={WEIGHT}% successRate>=99% errors={ERROR_RATE:.0%} 5xx"
        )

    def status(self) -> Obj:
        status: Obj = self.client.get(*ROLLOUT, NAMESPACE, SERVICE).get("status") or {}
        return status

    def describe(self) -> str:
        status = {k: v for k, v in self.status().items() if k not in ("history", "conditions")}
        tail = "\n".join(self.controller.logs().splitlines()[-20:])
        return f"Rollout status: {status}\ncontroller log tail:\n{tail}"

    def release_healthy(self, version: str) -> float:
        """Release `version` and wait for a passing check at WEIGHT; returns when it was stored."""
        deploy_version(self.client, version)
        self.body["spec"]["canary"]["version"] = version
        self.body["spec"]["canary"]["workloadRef"]["name"] = f"{SERVICE}-{version}"
        since = time.monotonic()
        self.client.apply(self.body)

        def passing_at_weight(rollout: Obj) -> bool:
            s = rollout.get("status") or {}
            return (
                s.get("canaryVersion") == version
                and s.get("phase") == "Progressing"
                and s.get("canaryWeight") == WEIGHT
                and int(s.get("passedChecks", 0)) >= 1
                and (s.get("lastAnalysis") or {}).get("outcome") == "pass"
            )

        passed: Recorded = wait(
            f"passing check of {version} at {WEIGHT} %",
            lambda: first_after(self.watch, since, ROLLOUTS, passing_at_weight),
            self.describe,
        )
        vs = self.client.get("networking.istio.io/v1beta1", "VirtualService", NAMESPACE, SERVICE)
        if canary_weight(vs) != WEIGHT:
            raise RuntimeError(f"{version} passed at {WEIGHT} % but the VirtualService says {vs}")
        return passed.at

    def detect(self, version: str, simulator: TrafficSimulator, rng: random.Random) -> Run:
        last_pass = self.release_healthy(version)
        time.sleep(max(0.0, last_pass + rng.uniform(0.0, INTERVAL) - time.monotonic()))
        injected = time.monotonic()
        simulator.set_version(NAMESPACE, SERVICE, version, error_rate=ERROR_RATE)
        rollback: Recorded = wait(
            f"rollback of {version}",
            lambda: first_after(
                self.watch, injected, VIRTUAL_SERVICES, lambda o: not canary_weight(o)
            ),
            self.describe,
        )
        first_fail: Recorded | None = first_after(
            self.watch,
            injected,
            ROLLOUTS,
            lambda o: ((o.get("status") or {}).get("lastAnalysis") or {}).get("outcome") == "fail",
        )
        status = wait(
            f"RolledBack phase for {version}",
            lambda: (
                (s := self.status()).get("canaryVersion") == version
                and s.get("phase") in ("RolledBack", "Succeeded", "Aborted")
                and s
            ),
            self.describe,
        )
        if status["phase"] != "RolledBack":
            raise RuntimeError(f"{version} ended {status['phase']}: {status.get('message')}")
        return Run(
            version=version,
            seconds=rollback.at - injected,
            first_fail=(first_fail.at - injected) if first_fail else math.nan,
            offset=injected - last_pass,
        )


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile: the smallest value with at least `share` of them at or below."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(share * len(ordered))) - 1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--small", action="store_true", help="3 runs, for a quick look")
    parser.add_argument("--seed", type=int, default=8, help="seeds where in the cycle errors start")
    args = parser.parse_args(argv)
    runs = 3 if args.small else args.runs
    versions = [f"v{n}" for n in range(2, runs + 2)]
    rng = random.Random(args.seed)
    results: list[Run] = []
    with contextlib.ExitStack() as exits:
        workdir = Path(exits.enter_context(tempfile.TemporaryDirectory(prefix="canary-detect-")))
        api, client = exits.enter_context(sandbox_with_example(workdir))
        simulator = exits.enter_context(
            simulated_traffic(workdir / "kubeconfig", versions=("v1", *versions))
        )
        prometheus = exits.enter_context(
            PrometheusProcess(targets=[simulator.address], scrape_interval=SCRAPE)
        )
        watch = StoreRecorder(api.store, wanted).start()
        exits.callback(watch.stop)
        controller = exits.enter_context(
            ControllerProcess(workdir / "kubeconfig", workdir / "controller.log")
        )
        bench = Bench(client, watch, controller, prometheus.url)
        for version in versions:
            run = bench.detect(version, simulator, rng)
            results.append(run)
            print(
                f"  {run.version}: rollback written {run.seconds:6.2f}s after the errors began "
                f"(first failing check {run.first_fail:5.2f}s; errors began {run.offset:4.2f}s "
                "after a passing check)",
                flush=True,
            )
    seconds = [r.seconds for r in results]
    print(f"runs={runs} {bench.parameters()}; controller process, real Prometheus")
    print(
        "error injection -> rollback VirtualService stored, seconds: "
        + " ".join(f"{s:.2f}" for s in seconds)
    )
    print(
        f"p50={percentile(seconds, 0.50):.2f}s p99={percentile(seconds, 0.99):.2f}s (nearest rank)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
