"""A metrics provider without Prometheus: reads Istio's standard metrics straight from one
`/metrics` endpoint (`spec.prometheus.url` + `/metrics`) and computes the built-in gates itself.

For `canary demo` on a machine without a `prometheus` binary, where the endpoint is the traffic
simulator. Each check scrapes once; rates come from the difference with the oldest scrape that
is at least one window old (until there is one, the check has no data). Custom PromQL and
comparison gates need Prometheus and read as errors. Verdicts use the same rules as the
Prometheus provider (`canary.metrics.verdicts.judge`).
"""

from __future__ import annotations

import math
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from canary.core.model import Rollout
from canary.core.spec import Gate
from canary.core.status import GateResult
from canary.metrics.promql import Target, target_of
from canary.metrics.verdicts import Series, error_result, judge_reading

REQUESTS = "istio_requests_total"
DURATION_BUCKETS = "istio_request_duration_milliseconds"
KEPT_SCRAPES = 600


@dataclass
class Counters:
    """The canary's cumulative counters in one scrape."""

    requests: float = 0.0
    server_errors: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)  # upper bound -> cumulative count

    def minus(self, earlier: Counters) -> Counters:
        return Counters(
            requests=self.requests - earlier.requests,
            server_errors=self.server_errors - earlier.server_errors,
            buckets={le: n - earlier.buckets.get(le, 0.0) for le, n in self.buckets.items()},
        )


def canary_counters(text: str, target: Target) -> Counters:
    """Sum the destination-reported series of the canary version of `target`'s service."""
    wanted = {
        "reporter": "destination",
        "destination_service_name": target.service,
        "destination_workload_namespace": target.namespace,
        "destination_version": target.canary_version,
    }
    counters = Counters()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if any(sample.labels.get(k) != v for k, v in wanted.items()):
                continue
            if sample.name == REQUESTS:
                counters.requests += sample.value
                if sample.labels.get("response_code", "").startswith("5"):
                    counters.server_errors += sample.value
            elif sample.name == f"{DURATION_BUCKETS}_bucket":
                bound = float(sample.labels["le"])
                counters.buckets[bound] = counters.buckets.get(bound, 0.0) + sample.value
    return counters


def histogram_quantile(quantile: float, buckets: dict[float, float]) -> float:
    """Prometheus's histogram_quantile over cumulative bucket counts (linear within a bucket)."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return math.nan
    rank = quantile * buckets[bounds[-1]]
    lower_bound, lower_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            share = (rank - lower_count) / (count - lower_count) if count > lower_count else 0
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return bounds[-1]


Fetch = Callable[[str, float], str]


def fetch_text(url: str, timeout: float) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: bytes = response.read()
    return body.decode("utf-8", errors="replace")


class ScrapeSource:
    """`MetricsSource` reading a /metrics endpoint directly; see the module docstring."""

    def __init__(
        self, fetch: Fetch = fetch_text, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._scrapes: dict[str, deque[tuple[float, str]]] = {}

    def evaluate(self, rollout: Rollout) -> tuple[GateResult, ...]:
        url = rollout.spec.prometheus.url.rstrip("/") + "/metrics"
        gates = rollout.spec.analysis.gates
        try:
            text = self._fetch(url, rollout.spec.prometheus.timeout.total_seconds())
        except (OSError, urllib.error.URLError) as error:
            message = f"cannot read {url} ({error}); check spec.prometheus.url"
            return tuple(error_result(gate, message) for gate in gates)
        now = self._clock()
        history = self._scrapes.setdefault(url, deque(maxlen=KEPT_SCRAPES))
        history.append((now, text))
        target = target_of(rollout)
        window = target.window.total_seconds()
        earlier = next((old for at, old in reversed(history) if at <= now - window), None)
        if earlier is None:
            delta = None
        else:
            delta = canary_counters(text, target).minus(canary_counters(earlier, target))
        return tuple(self._judge(gate, rollout, target, delta) for gate in gates)

    def _judge(
        self, gate: Gate, rollout: Rollout, target: Target, delta: Counters | None
    ) -> GateResult:
        if gate.success_rate is None and gate.latency is None:
            return error_result(gate, f"gate {gate.name!r} needs Prometheus to run its query")
        value = math.nan if delta is None else _value_of(gate, delta)
        reading = () if delta is None or math.isnan(value) else (Series({}, value),)
        query = f"{gate.kind} of {target.service} {target.canary_version} from /metrics"
        requests = None if delta is None else delta.requests
        min_requests = rollout.spec.analysis.min_requests
        return judge_reading(gate, query, reading, requests, min_requests, target.window)


def _value_of(gate: Gate, delta: Counters) -> float:
    if gate.latency is not None:
        return histogram_quantile(gate.latency.quantile, delta.buckets)
    if delta.requests <= 0:
        return math.nan
    return 100.0 * (delta.requests - delta.server_errors) / delta.requests
