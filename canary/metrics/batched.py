"""Batched PromQL: one query per gate kind and window for every Rollout, per time bucket.

`BatchedPrometheusSource` is a `MetricsSource`. For the Istio gates (success rate, latency)
and the request count it runs one *grouped* query
`... by (destination_workload_namespace, destination_service_name, destination_version)`
per (Prometheus, kind, window[, quantile]) and time bucket (`floor(now / bucket_seconds)`),
keeps the grouped answer for the rest of the bucket, and answers each Rollout from the series
whose three labels equal its target. Prometheus queries per interval then grow with the number
of gate kinds, not with the number of Rollouts.

Verdicts are those of the unbatched source: each Rollout's reading is the one series of its
group (or none), judged by the same `judge` with the same minRequests and noData rules, and
the `query` recorded on each result is the per-Rollout query that reproduces it. A grouped
query carries no value from any Rollout, so there is nothing to escape: labels are matched as
plain strings in Python. Rollouts with custom `query` or `compare` gates are measured by the
unbatched source. The price: a reading can be up to one bucket older than an unbatched one.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta

from canary.core.model import Rollout
from canary.core.spec import Gate, PrometheusRef
from canary.core.status import GateResult
from canary.metrics.errors import MetricsError
from canary.metrics.port import MetricsSource
from canary.metrics.prometheus import (
    PrometheusClient,
    PrometheusSource,
    QueryHook,
)
from canary.metrics.promql import (
    DURATION_BUCKETS_METRIC,
    REQUESTS_METRIC,
    SERVER_ERROR_CODES,
    Target,
    gate_query,
    promql_duration,
    request_count_query,
    target_of,
)
from canary.metrics.verdicts import Reading, Series, error_result, judge_reading

GROUP_LABELS = (
    "destination_workload_namespace",
    "destination_service_name",
    "destination_version",
)
GroupKey = tuple[str, str, str]
Grouped = dict[GroupKey, float]
Clock = Callable[[], float]


@dataclass(frozen=True)
class GroupedQuery:
    """One grouped query: the request count, success rate or a latency quantile, per window."""

    kind: str  # "requests" | "successRate" | "latency"
    window: timedelta
    quantile: float | None = None

    def promql(self) -> str:
        window, by = promql_duration(self.window), ", ".join(GROUP_LABELS)
        every = f'{REQUESTS_METRIC}{{reporter="destination"}}[{window}]'
        if self.kind == "requests":
            return f"sum by ({by}) (increase({every}))"
        if self.kind == "successRate":
            good = (
                f'{REQUESTS_METRIC}{{reporter="destination", '
                f'response_code!~"{SERVER_ERROR_CODES}"}}[{window}]'
            )
            return f"sum by ({by}) (rate({good})) / sum by ({by}) (rate({every})) * 100"
        buckets = f'{DURATION_BUCKETS_METRIC}{{reporter="destination"}}[{window}]'
        return f"histogram_quantile({self.quantile!r}, sum by (le, {by}) (rate({buckets})))"


def grouped_query_of(gate: Gate, window: timedelta) -> GroupedQuery | None:
    """The grouped query that measures `gate`, or None when it is not batchable."""
    if gate.compare is not None:
        return None
    if gate.success_rate is not None:
        return GroupedQuery("successRate", window)
    if gate.latency is not None:
        return GroupedQuery("latency", window, gate.latency.quantile)
    return None


def batchable(rollout: Rollout) -> bool:
    window = rollout.spec.analysis.effective_window()
    return all(grouped_query_of(gate, window) is not None for gate in rollout.spec.analysis.gates)


def group_key(target: Target) -> GroupKey:
    return target.namespace, target.service, target.canary_version


def grouped(reading: Reading) -> Grouped:
    """Series by their three group labels (a group query never returns two for one key)."""
    return {_labels_key(series.labels): series.value for series in reading}


def _labels_key(labels: Mapping[str, str]) -> GroupKey:
    namespace, service, version = (labels.get(label, "") for label in GROUP_LABELS)
    return namespace, service, version


@dataclass
class _Answer:
    bucket: int
    values: Grouped | None
    error: MetricsError | None


class BatchedPrometheusSource:
    """`MetricsSource`: grouped Istio queries shared by every Rollout within a time bucket."""

    def __init__(
        self,
        bucket_seconds: float = 5.0,
        *,
        environ: Mapping[str, str] | None = None,
        on_query: QueryHook | None = None,
        clock: Clock = time.time,
        unbatched: MetricsSource | None = None,
        client_factory: Callable[[PrometheusRef], PrometheusClient] | None = None,
    ) -> None:
        self.bucket_seconds = bucket_seconds
        self._clock = clock
        self._client_factory = client_factory or (
            lambda ref: PrometheusClient(ref, environ, on_query)
        )
        self._unbatched = unbatched or PrometheusSource(environ, on_query=on_query)
        self._clients: dict[str, PrometheusClient] = {}
        self._answers: dict[tuple[str, GroupedQuery], _Answer] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def evaluate(self, rollout: Rollout) -> tuple[GateResult, ...]:
        if not batchable(rollout):
            return self._unbatched.evaluate(rollout)
        target, analysis = target_of(rollout), rollout.spec.analysis
        ref = rollout.spec.prometheus
        count_query = request_count_query(target)
        try:
            requests_seen = self._value(ref, GroupedQuery("requests", target.window), target)
        except MetricsError as error:
            message = f"counting the canary's requests failed: {error}"
            return tuple(error_result(gate, message, count_query) for gate in analysis.gates)
        seen = 0.0 if requests_seen is None else requests_seen
        return tuple(
            self._measure(ref, gate, target, seen, analysis.min_requests) for gate in analysis.gates
        )

    def close(self) -> None:
        with self._guard:
            for client in self._clients.values():
                client.close()
            self._clients.clear()

    # ------------------------------------------------------------ one gate

    def _measure(
        self, ref: PrometheusRef, gate: Gate, target: Target, seen: float, min_requests: int
    ) -> GateResult:
        planned = gate_query(gate, target)
        query = grouped_query_of(gate, target.window)
        assert query is not None and planned.query is not None  # batchable() checked both
        try:
            value = self._value(ref, query, target)
        except MetricsError as error:
            return error_result(gate, f"gate {gate.name!r}: {error}", planned.query)
        reading: Reading = () if value is None else (Series({}, value),)
        return judge_reading(gate, planned.query, reading, seen, min_requests, target.window)

    # ------------------------------------------------------------ the grouped answers

    def _value(self, ref: PrometheusRef, query: GroupedQuery, target: Target) -> float | None:
        """This target's value in the bucket's grouped answer; None when it has no series."""
        return self._grouped(ref, query).get(group_key(target))

    def _grouped(self, ref: PrometheusRef, query: GroupedQuery) -> Grouped:
        ref_key = ref.model_dump_json()
        bucket = math.floor(self._clock() / self.bucket_seconds)
        with self._lock_of(ref_key):
            answer = self._answers.get((ref_key, query))
            if answer is None or answer.bucket != bucket:
                answer = self._ask(ref_key, ref, query, bucket)
                self._answers[(ref_key, query)] = answer
        if answer.error is not None:
            raise answer.error
        assert answer.values is not None
        return answer.values

    def _ask(self, ref_key: str, ref: PrometheusRef, query: GroupedQuery, bucket: int) -> _Answer:
        try:
            client = self._client_of(ref_key, ref)
            return _Answer(bucket, grouped(client.query(query.promql())), None)
        except MetricsError as error:
            return _Answer(bucket, None, error)

    def _client_of(self, ref_key: str, ref: PrometheusRef) -> PrometheusClient:
        client = self._clients.get(ref_key)
        if client is None:
            client = self._client_factory(ref)
            self._clients[ref_key] = client
        return client

    def _lock_of(self, ref_key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(ref_key, threading.Lock())
