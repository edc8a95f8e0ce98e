"""The controller's own Prometheus metrics and its /metrics, /healthz and /readyz endpoints."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from canary.core.machine import Decision
from canary.core.model import Rollout
from canary.core.spec import Stage
from canary.core.status import Phase, RolloutStatus

RUNNING = (Phase.PENDING, Phase.PROGRESSING, Phase.PAUSED)


class Telemetry:
    """Every metric the controller exports, in one registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["namespace", "rollout"]
        self.phase = Gauge(
            "canary_rollout_phase",
            "1 for the Rollout's current phase",
            [*labels, "phase"],
            registry=self.registry,
        )
        self.weight = Gauge(
            "canary_rollout_canary_weight",
            "Canary weight, percent",
            labels,
            registry=self.registry,
        )
        self.mirror = Gauge(
            "canary_rollout_mirror_percent",
            "Mirrored share, percent",
            labels,
            registry=self.registry,
        )
        self.gate_value = Gauge(
            "canary_gate_value",
            "Last measured value of a gate",
            [*labels, "gate"],
            registry=self.registry,
        )
        self.checks = Counter(
            "canary_analysis_checks_total",
            "Analysis checks by how they counted (pass, fail, noData), stored or not",
            [*labels, "counted_as"],
            registry=self.registry,
        )
        self.rollbacks = Counter(
            "canary_rollbacks_total", "Automatic rollbacks", labels, registry=self.registry
        )
        self.reconcile_seconds = Histogram(
            "canary_reconcile_duration_seconds",
            "Time spent in one reconcile",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.reconcile_errors = Counter(
            "canary_reconcile_errors_total",
            "Reconciles that failed and will be retried",
            ["reason"],
            registry=self.registry,
        )
        self.api_requests = Counter(
            "canary_kube_api_requests_total",
            "Kubernetes API requests",
            ["verb", "resource", "code"],
            registry=self.registry,
        )
        self.promql_requests = Counter(
            "canary_promql_requests_total",
            "PromQL queries by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.stage_started = Gauge(
            "canary_rollout_stage_started_seconds",
            "Unix time the current stage started (0 when no release runs)",
            [*labels, "stage"],
            registry=self.registry,
        )
        self.gate_threshold = Gauge(
            "canary_gate_threshold",
            "A gate's threshold from the spec (bound: min or max)",
            [*labels, "gate", "bound"],
            registry=self.registry,
        )
        self.notifications = Counter(
            "canary_notifications_total",
            "Notifications by provider and outcome (sent, failed, dropped, error)",
            ["provider", "outcome"],
            registry=self.registry,
        )
        self.webhook_calls = Counter(
            "canary_webhook_calls_total",
            "Webhook check calls by type and verdict (pass, fail, error)",
            ["type", "outcome"],
            registry=self.registry,
        )
        self.leader = Gauge(
            "canary_leader",
            "1 while this replica writes as the only one (holds the leader lease of "
            "--leader-elect, or runs without it); 0 with --shards: see canary_shards_held",
            registry=self.registry,
        )
        self.shard_handovers = Counter(
            "canary_shard_handovers",
            "Shard Leases this replica acquired, released (handed back) or lost (--shards)",
            ["direction"],
            registry=self.registry,
        )

    def track_release_slots(
        self, limit: int, running: Callable[[], int], waiting: Callable[[], int]
    ) -> None:
        """--max-concurrent-releases: the cap, and the releases under way and waiting for a
        slot, read at every scrape."""
        Gauge("canary_release_slots", "The cap on concurrent releases", registry=self.registry).set(
            limit
        )
        Gauge(
            "canary_release_slots_in_use",
            "Releases under way (or beginning) that hold a slot",
            registry=self.registry,
        ).set_function(running)
        Gauge(
            "canary_release_slots_waiting",
            "Rollouts whose release waits in Pending for a slot",
            registry=self.registry,
        ).set_function(waiting)

    def track_shards(self, held: Callable[[], int]) -> None:
        """--shards: the shard Leases this replica holds now, read at every scrape."""
        Gauge(
            "canary_shards_held",
            "Shard Leases this replica holds, in time to write (--shards)",
            registry=self.registry,
        ).set_function(held)

    def observe_decision(self, rollout: Rollout, decision: Decision) -> None:
        key = (rollout.metadata.namespace, rollout.metadata.name)
        status = decision.status
        for phase in Phase:
            self.phase.labels(*key, phase.value).set(1 if status.phase is phase else 0)
        self.weight.labels(*key).set(status.canary_weight)
        self.mirror.labels(*key).set(status.mirror_percent)
        check = status.last_analysis
        if check is not None and check != rollout.status.last_analysis:
            self.checks.labels(*key, check.counted_as.value).inc()
            for gate in check.gates:
                if gate.value is not None:
                    self.gate_value.labels(*key, gate.name).set(gate.value)
        if status.phase is Phase.ROLLED_BACK and rollout.status.phase is not Phase.ROLLED_BACK:
            self.rollbacks.labels(*key).inc()
        self._observe_stage(key, status)
        for gate_name, bound, value in gate_thresholds(rollout):
            self.gate_threshold.labels(*key, gate_name, bound).set(value)

    def _observe_stage(self, key: tuple[str, str], status: RolloutStatus) -> None:
        started = status.stage_started_at
        current = status.stage.value if status.stage and status.phase in RUNNING else None
        for stage in Stage:
            at = started.timestamp() if stage.value == current and started else 0
            self.stage_started.labels(*key, stage.value).set(at)

    def forget(self, namespace: str, name: str) -> None:
        with contextlib.suppress(KeyError):
            for phase in Phase:
                self.phase.remove(namespace, name, phase.value)
            self.weight.remove(namespace, name)
            self.mirror.remove(namespace, name)
            for stage in Stage:
                self.stage_started.remove(namespace, name, stage.value)


def gate_thresholds(rollout: Rollout) -> list[tuple[str, str, float]]:
    """(gate, min|max, value) for every numeric threshold of the spec's gates."""
    found: list[tuple[str, str, float]] = []
    for gate in rollout.spec.analysis.gates:
        if gate.success_rate is not None:
            found.append((gate.name, "min", gate.success_rate.min))
        if gate.latency is not None:
            found.append((gate.name, "max", gate.latency.max_ms))
        for bound, value in (("min", gate.min), ("max", gate.max)):
            if value is not None:
                found.append((gate.name, bound, value))
    return found


def serve_http(
    address: str, telemetry: Telemetry, healthy: Callable[[], bool], ready: Callable[[], bool]
) -> ThreadingHTTPServer:
    """Start /metrics, /healthz and /readyz on `host:port` (":8080" means all interfaces)."""
    host, _, port = address.rpartition(":")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/metrics"):
                self._send(200, generate_latest(telemetry.registry), CONTENT_TYPE_LATEST)
            elif self.path.startswith("/healthz"):
                self._probe(healthy())
            elif self.path.startswith("/readyz"):
                self._probe(ready())
            else:
                self._send(404, b"not found\n", "text/plain")

        def _probe(self, ok: bool) -> None:
            self._send(200 if ok else 503, b"ok\n" if ok else b"not ok\n", "text/plain")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer((host or "0.0.0.0", int(port)), Handler)
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server
