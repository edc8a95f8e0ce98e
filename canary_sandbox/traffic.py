"""An Istio traffic simulator: Istio's standard metrics for made-up services, on `/metrics`.

Each simulated service gets a request rate and splits its requests the way its current routing
says (the managed route's weights, a mirror percentage, and a header route that a share of the
requests match); each version answers with its own 5xx rate and a lognormal latency with a given
median and p99. Routing comes from a `RoutingSource`: `StaticRouting` (set in code or through
`POST /control`) or `KubeRouting`, which polls the VirtualService and DestinationRule from a
Kubernetes API server given by a kubeconfig (the sandbox's or a real kube-apiserver's), so what
the controller writes changes what Prometheus sees.

Time is simulated: a background ticker advances it in fixed steps (100 ms by default) and a
seeded RNG draws every request, so a run is repeatable up to thread scheduling.

Run it with `python -m canary_sandbox.traffic --service shop/ui:v1,v2 [--kubeconfig FILE]`.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from canary.core.objects import Obj
from canary.kube.client import KubeCluster
from canary.kube.port import KubeError
from canary.mesh.istio import MeshError, route_index

ISTIO_DURATION_BUCKETS_MS: tuple[float, ...] = (
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
    30000, 60000, 300000, 600000, 1800000, 3600000,
)  # fmt: skip
Z_99 = 2.3263478740408408  # the standard normal's 99th percentile
DEFAULT_SOURCE_WORKLOAD = "istio-ingressgateway"
VERSION_KEYS = frozenset({"errorRate", "latencyMs"})
LABEL_NAMES = (
    "reporter",
    "source_workload",
    "destination_service_name",
    "destination_workload",
    "destination_workload_namespace",
    "destination_version",
    "response_code",
)


# ---------------------------------------------------------------- what each version does


@dataclass
class VersionProfile:
    """How one version of a service answers: its 5xx share and latency distribution."""

    error_rate: float = 0.0
    p50_ms: float = 20.0
    p99_ms: float = 50.0

    def draw_latency_ms(self, rng: random.Random) -> float:
        """A lognormal latency whose median is p50_ms and whose 99th percentile is p99_ms."""
        sigma = max(math.log(max(self.p99_ms, self.p50_ms) / self.p50_ms), 0.0) / Z_99
        return rng.lognormvariate(math.log(self.p50_ms), sigma)

    def as_json(self) -> dict[str, Any]:
        return {"errorRate": self.error_rate, "latencyMs": {"p50": self.p50_ms, "p99": self.p99_ms}}


# ---------------------------------------------------------------- routing


@dataclass(frozen=True)
class Split:
    """How a service's requests reach its versions.

    weights: version → relative weight of the managed route's destinations.
    mirror_version / mirror_percent: copies of that share of the managed route's requests go
        to this version (reported only with reporter="destination", as Istio does).
    header_version: where requests that match the header route go (None: no header route).
    """

    weights: Mapping[str, float]
    mirror_version: str | None = None
    mirror_percent: float = 0.0
    header_version: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "weights": dict(self.weights),
            "mirror": {"version": self.mirror_version, "percent": self.mirror_percent},
            "headerVersion": self.header_version,
        }


class RoutingSource(Protocol):
    """Where a simulated service learns its current routing; None while it is unknown."""

    def split(self) -> Split | None: ...


class StaticRouting:
    """Routing set in code, in tests, or through `POST /control`."""

    def __init__(self, split: Split | None = None) -> None:
        self._split = split

    def set(self, split: Split) -> None:
        self._split = split

    def split(self) -> Split | None:
        return self._split


class RoutingError(ValueError):
    """The VirtualService or DestinationRule cannot be read as routing."""


class RoutingReader(Protocol):
    """Where `KubeRouting` reads the two objects: the `Cluster` port's getters (KubeCluster)."""

    def get_virtual_service(self, namespace: str, name: str) -> Obj: ...

    def get_destination_rule(self, namespace: str, name: str) -> Obj: ...


class KubeRouting:
    """Routing read from a VirtualService and DestinationRule on a Kubernetes API server.

    Polls both objects every `poll_seconds` on a background thread through `reader`; keeps the
    last good split when a read fails and records why in `last_error`. `from_kubeconfig` reads
    them with canary's own client (`canary.kube.client.KubeCluster`) from any kubeconfig: the
    sandbox's plain-HTTP one, or a real kube-apiserver's with TLS and a client certificate or a
    token, as the controller itself connects.
    """

    def __init__(
        self,
        reader: RoutingReader,
        namespace: str,
        virtual_service: str,
        destination_rule: str,
        *,
        route: str | None = "primary",
        host: str | None = None,
        version_label: str = "version",
        poll_seconds: float = 0.2,
        close: Callable[[], None] | None = None,
    ) -> None:
        self.reader = reader
        self.namespace = namespace
        self.virtual_service = virtual_service
        self.destination_rule = destination_rule
        self.route = route
        self.host = host or virtual_service
        self.version_label = version_label
        self.poll_seconds = poll_seconds
        self.last_error: str | None = None
        self._split: Split | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._close = close

    @classmethod
    def from_kubeconfig(
        cls,
        kubeconfig: str | Path,
        namespace: str,
        virtual_service: str,
        destination_rule: str | None = None,
        *,
        timeout_seconds: float = 2.0,
        **options: Any,
    ) -> KubeRouting:
        """Reading with a `KubeCluster` built from `kubeconfig` (closed by `stop`).

        No client-side retries: a failed read is simply tried again at the next poll."""
        cluster = KubeCluster.from_kubeconfig(
            str(kubeconfig), timeout=timeout_seconds, retries=0, qps=50, burst=50
        )
        return cls(
            cluster,
            namespace,
            virtual_service,
            destination_rule or virtual_service,
            close=cluster.close,
            **options,
        )

    def split(self) -> Split | None:
        return self._split

    def refresh(self) -> Split | None:
        """Read both objects once; on failure keep the previous split."""
        try:
            virtual_service = self.reader.get_virtual_service(self.namespace, self.virtual_service)
            destination_rule = self.reader.get_destination_rule(
                self.namespace, self.destination_rule
            )
            self._split = split_from(
                virtual_service, destination_rule, self.route, self.version_label, self.host
            )
            self.last_error = None
        except (KubeError, OSError, ValueError) as error:
            self.last_error = str(error)
        return self._split

    def start(self) -> KubeRouting:
        self.refresh()
        self._thread = threading.Thread(target=self._poll, name="kube-routing", daemon=True)
        self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.refresh()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._close is not None:
            self._close()
            self._close = None


def split_from(
    virtual_service: Mapping[str, Any],
    destination_rule: Mapping[str, Any],
    route: str | None,
    version_label: str = "version",
    host: str | None = None,
) -> Split:
    """The split an Istio VirtualService's route `route` makes, subsets resolved via the DR.

    The route is found as the controller finds it: by name, or (`route` None) the only http
    route to `host` (the VirtualService's own name when None) that no Rollout created.
    """
    versions = subset_versions(destination_rule, version_label)
    routes = list(virtual_service.get("spec", {}).get("http", []))
    default_host = virtual_service.get("metadata", {}).get("name", "")
    try:
        index = route_index(virtual_service, host or default_host, route)
    except MeshError as error:
        raise RoutingError(str(error)) from None
    managed = routes[index]
    mirror = managed.get("mirror")
    return Split(
        weights=route_weights(managed, versions),
        mirror_version=versions.get(mirror.get("subset", "")) if mirror else None,
        mirror_percent=mirror_percent(managed) if mirror else 0.0,
        header_version=header_route_version(routes[:index], versions),
    )


def subset_versions(destination_rule: Mapping[str, Any], version_label: str) -> dict[str, str]:
    subsets = destination_rule.get("spec", {}).get("subsets", [])
    return {
        subset["name"]: subset.get("labels", {})[version_label]
        for subset in subsets
        if version_label in subset.get("labels", {})
    }


def route_weights(http_route: Mapping[str, Any], versions: Mapping[str, str]) -> dict[str, float]:
    destinations = http_route.get("route", [])
    weights: dict[str, float] = {}
    for destination in destinations:
        version = versions.get(destination.get("destination", {}).get("subset", ""))
        default = 100.0 if len(destinations) == 1 else 0.0
        if version is not None:
            weights[version] = weights.get(version, 0.0) + float(destination.get("weight", default))
    return weights


def subset_weight(virtual_service: Mapping[str, Any], route_name: str, subset: str) -> float:
    """The weight the HTTP route `route_name` gives `subset` (0 when it has no such route)."""
    for http_route in virtual_service.get("spec", {}).get("http") or []:
        if http_route.get("name") == route_name:
            return route_weights(http_route, {subset: subset}).get(subset, 0.0)
    return 0.0


def mirror_percent(http_route: Mapping[str, Any]) -> float:
    """Istio mirrors 100 % when a mirror has no mirrorPercentage."""
    percentage = http_route.get("mirrorPercentage")
    if isinstance(percentage, dict) and "value" in percentage:
        return float(percentage["value"])
    return 100.0


def header_route_version(
    routes_above: Sequence[Mapping[str, Any]], versions: Mapping[str, str]
) -> str | None:
    """The version the first route above the managed one that matches on headers sends to.

    The header share stands for requests that carry an opt-in header (or X-Forwarded-For, as
    a header canary's clientIP becomes); a route matching only a path or a port, such as a
    `/healthz` route kept above the managed one, takes none of them.
    """
    for http_route in routes_above:
        if not any(
            isinstance(m, Mapping) and m.get("headers") for m in http_route.get("match") or []
        ):
            continue
        weights = route_weights(http_route, versions)
        if weights:
            return max(weights, key=lambda version: weights[version])
    return None


# ---------------------------------------------------------------- the metrics, as Istio writes them


Labels = tuple[str, ...]  # values in LABEL_NAMES order


@dataclass
class Histogram:
    bucket_counts: list[int] = field(default_factory=lambda: [0] * len(ISTIO_DURATION_BUCKETS_MS))
    total: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        for index, bound in enumerate(ISTIO_DURATION_BUCKETS_MS):
            if value <= bound:
                self.bucket_counts[index] += 1
        self.total += value
        self.count += 1


class IstioMetrics(Collector):
    """istio_requests_total and istio_request_duration_milliseconds, in Prometheus's text
    format (written by prometheus_client, from counts kept here)."""

    def __init__(self) -> None:
        self.requests: dict[Labels, int] = {}
        self.durations: dict[Labels, Histogram] = {}
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(self)

    def record(self, labels: Labels, latency_ms: float) -> None:
        self.requests[labels] = self.requests.get(labels, 0) + 1
        self.durations.setdefault(labels, Histogram()).observe(latency_ms)

    def render(self) -> str:
        return generate_latest(self._registry).decode()

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "istio_requests", "Requests, as Istio's sidecars count them.", labels=LABEL_NAMES
        )
        for labels in sorted(self.requests):
            requests.add_metric(labels, self.requests[labels])
        yield requests
        durations = HistogramMetricFamily(
            "istio_request_duration_milliseconds",
            "Request durations, as Istio's sidecars measure them.",
            labels=LABEL_NAMES,
        )
        for labels in sorted(self.durations):
            histogram = self.durations[labels]
            buckets = [
                (f"{bound:g}", float(count))
                for bound, count in zip(
                    ISTIO_DURATION_BUCKETS_MS, histogram.bucket_counts, strict=True
                )
            ]
            buckets.append(("+Inf", float(histogram.count)))
            durations.add_metric(labels, buckets, histogram.total)
        yield durations


# ---------------------------------------------------------------- services


@dataclass
class ServiceTraffic:
    """One simulated service: its request rate, header share, routing and versions."""

    name: str
    namespace: str
    rps: float = 50.0
    header_share: float = 0.05
    routing: RoutingSource | None = None
    versions: dict[str, VersionProfile] = field(default_factory=dict)
    source_workload: str = DEFAULT_SOURCE_WORKLOAD
    pending: float = 0.0

    def current_split(self) -> Split | None:
        """The routing in force; without a routing source the first version takes it all."""
        if self.routing is not None:
            return self.routing.split()
        first = next(iter(self.versions), None)
        return Split({first: 100.0}) if first is not None else None

    def profile(self, version: str) -> VersionProfile:
        return self.versions.setdefault(version, VersionProfile())

    def as_json(self) -> dict[str, Any]:
        split = self.current_split()
        return {
            "service": self.name,
            "namespace": self.namespace,
            "rps": self.rps,
            "headerShare": self.header_share,
            "routing": split.as_json() if split is not None else None,
            "versions": {name: profile.as_json() for name, profile in self.versions.items()},
        }


class TrafficSimulator:
    """Simulated Istio traffic for any number of services; thread-safe.

    Use `advance(seconds)` to simulate without threads, or `start()` (or `with`) to serve
    `/metrics` and `/control` over HTTP with a ticker advancing time every `tick_seconds`.
    """

    def __init__(self, seed: int = 1, tick_seconds: float = 0.1) -> None:
        self.tick_seconds = tick_seconds
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._services: dict[tuple[str, str], ServiceTraffic] = {}
        self._metrics = IstioMetrics()
        self._server: ThreadingHTTPServer | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------ configuration

    def add_service(
        self,
        name: str,
        namespace: str,
        *,
        versions: Sequence[str] = ("v1",),
        rps: float = 50.0,
        header_share: float = 0.05,
        routing: RoutingSource | None = None,
    ) -> ServiceTraffic:
        with self._lock:
            service = ServiceTraffic(name, namespace, rps, header_share, routing)
            for version in versions:
                service.profile(version)
            self._services[(namespace, name)] = service
            return service

    def service(self, namespace: str, name: str) -> ServiceTraffic:
        with self._lock:
            if (namespace, name) not in self._services:
                raise KeyError(f"no simulated service {namespace}/{name}")
            return self._services[(namespace, name)]

    def set_version(
        self,
        namespace: str,
        service: str,
        version: str,
        *,
        error_rate: float | None = None,
        p50_ms: float | None = None,
        p99_ms: float | None = None,
    ) -> VersionProfile:
        """Change how one version answers from now on (None keeps a value)."""
        with self._lock:
            profile = self.service(namespace, service).profile(version)
            profile.error_rate = profile.error_rate if error_rate is None else error_rate
            profile.p50_ms = profile.p50_ms if p50_ms is None else p50_ms
            profile.p99_ms = profile.p99_ms if p99_ms is None else p99_ms
            return profile

    def set_split(self, namespace: str, service: str, split: Split) -> None:
        """Route a service statically from now on (replaces any other routing source)."""
        with self._lock:
            simulated = self.service(namespace, service)
            if isinstance(simulated.routing, StaticRouting):
                simulated.routing.set(split)
            else:
                simulated.routing = StaticRouting(split)

    def set_rate(self, namespace: str, service: str, rps: float) -> None:
        with self._lock:
            self.service(namespace, service).rps = rps

    # ------------------------------------------------------------ simulation

    def advance(self, seconds: float) -> None:
        """Simulate `seconds` of traffic in ticks of `tick_seconds`."""
        ticks = max(1, round(seconds / self.tick_seconds))
        for _ in range(ticks):
            self._tick(self.tick_seconds)

    def _tick(self, seconds: float) -> None:
        with self._lock:
            for service in self._services.values():
                self._simulate(service, seconds)

    def _simulate(self, service: ServiceTraffic, seconds: float) -> None:
        service.pending += service.rps * seconds
        count = int(service.pending)
        service.pending -= count
        split = service.current_split()
        if split is None:
            return
        for _ in range(count):
            self._one_request(service, split)

    def _one_request(self, service: ServiceTraffic, split: Split) -> None:
        rng = self._rng
        if split.header_version is not None and rng.random() < service.header_share:
            self._serve(service, split.header_version, mirrored=False)
            return
        version = weighted_choice(split.weights, rng)
        if version is not None:
            self._serve(service, version, mirrored=False)
        if split.mirror_version is not None and rng.random() * 100 < split.mirror_percent:
            self._serve(service, split.mirror_version, mirrored=True)

    def _serve(self, service: ServiceTraffic, version: str, mirrored: bool) -> None:
        profile = service.profile(version)
        code = "503" if self._rng.random() < profile.error_rate else "200"
        latency = profile.draw_latency_ms(self._rng)
        reporters = ("destination",) if mirrored else ("source", "destination")
        for reporter in reporters:
            labels = (
                reporter,
                service.source_workload,
                service.name,
                f"{service.name}-{version}",
                service.namespace,
                version,
                code,
            )
            self._metrics.record(labels, latency)

    def metrics_text(self) -> str:
        with self._lock:
            return self._metrics.render()

    # ------------------------------------------------------------ control

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {"services": [service.as_json() for service in self._services.values()]}

    def apply_control(self, change: Mapping[str, Any]) -> dict[str, Any]:
        """Apply one `POST /control` body; raises ValueError with a clear message if invalid."""
        with self._lock:
            if "version" not in change and VERSION_KEYS & change.keys():
                raise ValueError('errorRate and latencyMs belong to a version: give "version"')
            service = self._service_for_control(change)
            apply_service_change(service, change)
            if "version" in change:
                apply_version_change(service.profile(str(change["version"])), change)
            return service.as_json()

    def _service_for_control(self, change: Mapping[str, Any]) -> ServiceTraffic:
        if not isinstance(change.get("service"), str):
            raise ValueError('give "service": the name of a simulated service')
        name, namespace = change["service"], str(change.get("namespace", "default"))
        if (namespace, name) not in self._services:
            return self.add_service(name, namespace, versions=())
        return self._services[(namespace, name)]

    # ------------------------------------------------------------ serving

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the simulator is not serving: call start() first")
        return int(self._server.server_address[1])

    @property
    def address(self) -> str:
        """host:port of the HTTP endpoint, as a Prometheus scrape target."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def start(self, host: str = "127.0.0.1", port: int = 0) -> TrafficSimulator:
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._stop.clear()
        self._spawn(self._server.serve_forever, "traffic-http")
        self._spawn(self._run_ticker, "traffic-ticker")
        return self

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _run_ticker(self) -> None:
        started, ticks_done = time.monotonic(), 0
        while not self._stop.wait(self.tick_seconds / 2):
            due = int((time.monotonic() - started) / self.tick_seconds)
            for _ in range(min(due - ticks_done, 50)):
                self._tick(self.tick_seconds)
            ticks_done = due

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()

    def __enter__(self) -> TrafficSimulator:
        return self if self._server is not None else self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def weighted_choice(weights: Mapping[str, float], rng: random.Random) -> str | None:
    total = sum(weight for weight in weights.values() if weight > 0)
    if total <= 0:
        return None
    point = rng.random() * total
    for version, weight in weights.items():
        if weight <= 0:
            continue
        point -= weight
        if point < 0:
            return version
    return [version for version, weight in weights.items() if weight > 0][-1]


def apply_service_change(service: ServiceTraffic, change: Mapping[str, Any]) -> None:
    if "rps" in change:
        service.rps = non_negative(change["rps"], "rps")
    if "headerShare" in change:
        service.header_share = fraction(change["headerShare"], "headerShare")
    if "weights" in change:
        service.routing = StaticRouting(split_of_control(change))


def split_of_control(change: Mapping[str, Any]) -> Split:
    weights = change["weights"]
    if not isinstance(weights, dict):
        raise ValueError('"weights" maps versions to weights, e.g. {"v1": 90, "v2": 10}')
    mirror = change.get("mirror") or {}
    return Split(
        weights={str(k): non_negative(v, f"weights.{k}") for k, v in weights.items()},
        mirror_version=mirror.get("version"),
        mirror_percent=non_negative(mirror.get("percent", 0), "mirror.percent"),
        header_version=change.get("headerVersion"),
    )


def apply_version_change(profile: VersionProfile, change: Mapping[str, Any]) -> None:
    if "errorRate" in change:
        profile.error_rate = fraction(change["errorRate"], "errorRate")
    latency = change.get("latencyMs", {})
    if not isinstance(latency, dict):
        raise ValueError('"latencyMs" looks like {"p50": 20, "p99": 800}')
    p50 = positive(latency.get("p50", profile.p50_ms), "latencyMs.p50")
    p99 = positive(latency.get("p99", max(profile.p99_ms, p50)), "latencyMs.p99")
    if p99 < p50:
        raise ValueError("latencyMs.p99 must be at least latencyMs.p50")
    profile.p50_ms, profile.p99_ms = p50, p99


def non_negative(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)


def positive(value: Any, name: str) -> float:
    if non_negative(value, name) == 0:
        raise ValueError(f"{name} must be greater than 0")
    return float(value)


def fraction(value: Any, name: str) -> float:
    if non_negative(value, name) > 1:
        raise ValueError(f"{name} is a fraction from 0 to 1, got {value!r}")
    return float(value)


def _handler_for(simulator: TrafficSimulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._reply(200, simulator.metrics_text(), "text/plain; version=0.0.4")
            elif self.path == "/control":
                self._reply_json(200, simulator.state())
            else:
                self._reply_json(404, {"error": "try /metrics or /control"})

        def do_POST(self) -> None:
            if self.path != "/control":
                self._reply_json(404, {"error": "POST to /control"})
                return
            try:
                length = int(self.headers.get("Content-Length", "0"))
                change = json.loads(self.rfile.read(length) or b"{}")
                if not isinstance(change, dict):
                    raise ValueError("the body must be a JSON object")
                self._reply_json(200, simulator.apply_control(change))
            except ValueError as error:
                self._reply_json(400, {"error": str(error)})

        def _reply_json(self, status: int, body: object) -> None:
            self._reply(status, json.dumps(body, indent=2) + "\n", "application/json")

        def _reply(self, status: int, text: str, content_type: str) -> None:
            payload = text.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: one line per scrape would drown everything else."""

    return Handler


# ---------------------------------------------------------------- entry points


@dataclass(frozen=True)
class ServiceSpec:
    """A service given on the command line as NAMESPACE/NAME:VERSION[,VERSION...]."""

    namespace: str
    name: str
    versions: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> ServiceSpec:
        where, _, versions = text.partition(":")
        namespace, _, name = where.rpartition("/")
        if not name or not versions:
            raise ValueError(
                f"{text!r}: write NAMESPACE/NAME:VERSION[,VERSION...], e.g. shop/ui:v1,v2"
            )
        return cls(namespace or "default", name, tuple(versions.split(",")))


def build_simulator(
    services: Sequence[ServiceSpec],
    *,
    seed: int = 1,
    rps: float = 50.0,
    header_share: float = 0.05,
    kubeconfig: str | Path | None = None,
    route: str | None = "primary",
) -> tuple[TrafficSimulator, list[KubeRouting]]:
    """A simulator for `services`; with `kubeconfig`, each follows its VS/DR named like it on
    the API server that kubeconfig names."""
    simulator = TrafficSimulator(seed=seed)
    pollers: list[KubeRouting] = []
    for spec in services:
        routing = None
        if kubeconfig is not None:
            routing = KubeRouting.from_kubeconfig(
                kubeconfig, spec.namespace, spec.name, route=route
            )
            routing.start()
            pollers.append(routing)
        simulator.add_service(
            spec.name,
            spec.namespace,
            versions=spec.versions,
            rps=rps,
            header_share=header_share,
            routing=routing,
        )
    return simulator, pollers


def serve(
    services: Sequence[ServiceSpec],
    *,
    host: str = "127.0.0.1",
    port: int = 9100,
    seed: int = 1,
    rps: float = 50.0,
    header_share: float = 0.05,
    kubeconfig: str | Path | None = None,
    route: str | None = "primary",
    stop: threading.Event | None = None,
) -> None:
    """Serve simulated traffic on host:port until `stop` is set (or KeyboardInterrupt)."""
    simulator, pollers = build_simulator(
        services, seed=seed, rps=rps, header_share=header_share, kubeconfig=kubeconfig, route=route
    )
    simulator.start(host, port)
    try:
        (stop or threading.Event()).wait()
    except KeyboardInterrupt:
        pass
    finally:
        simulator.stop()
        for poller in pollers:
            poller.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m canary_sandbox.traffic",
        description="Serve simulated Istio metrics on /metrics; steer them with /control.",
    )
    parser.add_argument(
        "--service",
        action="append",
        required=True,
        type=ServiceSpec.parse,
        help="NAMESPACE/NAME:VERSION[,VERSION...]; repeat for more services",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rps", type=float, default=50.0, help="requests per second per service")
    parser.add_argument("--header-share", type=float, default=0.05)
    parser.add_argument(
        "--kubeconfig",
        help="follow each service's VirtualService/DestinationRule on this kubeconfig's server",
    )
    parser.add_argument(
        "--route",
        default="primary",
        help="the managed http route's name ('' for the only http route to the service)",
    )
    args = parser.parse_args(argv)
    serve(
        args.service,
        host=args.host,
        port=args.port,
        seed=args.seed,
        rps=args.rps,
        header_share=args.header_share,
        kubeconfig=args.kubeconfig,
        route=args.route or None,
    )


if __name__ == "__main__":
    main()
