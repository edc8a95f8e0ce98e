"""`canary controller`: wire the adapters together and run until SIGTERM."""

from __future__ import annotations

import faulthandler
import importlib.metadata
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from canary.controller import integrations
from canary.controller.logs import configure_logging
from canary.controller.reconcile import Reconciler
from canary.controller.runtime import (
    Controller,
    LeaderElection,
    ShardManager,
    WriteGuard,
    default_identity,
)
from canary.controller.slots import ReleaseSlots
from canary.controller.telemetry import Telemetry, serve_http
from canary.controller.workqueue import WorkQueue
from canary.kube.client import KubeCluster
from canary.kube.informers import CachedCluster
from canary.kube.port import Cluster
from canary.mesh.istio import IstioRouter
from canary.metrics.batched import BatchedPrometheusSource
from canary.metrics.port import MetricsSource
from canary.metrics.prometheus import PrometheusSource
from canary.metrics.scrape import ScrapeSource
from canary.notify.notifier import Notifier

FIELD_MANAGER = "canary-controller"
LEADER_ELECT_WITH_SHARDS = (
    "--leader-elect and --shards exclude each other: drop --leader-elect, the shard Leases "
    "fence every write"
)


@dataclass(frozen=True)
class ControllerOptions:
    kubeconfig: str | None = None
    context: str | None = None
    in_cluster: bool = False
    namespace: str | None = None
    leader_elect: bool = False
    lease_namespace: str = "canary-system"
    metrics_addr: str = ":8080"
    qps: float = 20.0
    burst: int = 40
    log_level: str = "info"
    log_json: bool = True
    metrics_source: str = "prometheus"  # or "scrape": read /metrics directly (demo without it)
    notifications: str | None = None  # the controller-wide notification configuration file
    informers: bool = True  # serve VirtualServices/DestinationRules from watch-fed caches
    batch_queries: bool = True  # one grouped PromQL query per gate kind and time bucket
    query_bucket_seconds: float = 1.0  # how long a grouped answer is shared
    store_every_check: bool = False  # also store checks that repeat the stored one
    workers: int = 8  # reconciles in parallel (of different Rollouts)
    max_concurrent_releases: int = 0  # releases under way at once, per replica; 0: no cap
    shards: int = 0  # > 1: the Rollouts are shared by the replicas, on that many Leases
    # this replica's name: the holder in its Leases, and in its user agent (the API's audit log)
    identity: str = field(default_factory=default_identity)


@dataclass(frozen=True)
class Composition:
    """The controller of `canary controller`, wired; the benchmarks build the same one."""

    controller: Controller
    kube: KubeCluster  # the API client under any caches
    notifier: Notifier


def compose(options: ControllerOptions, stop: threading.Event, telemetry: Telemetry) -> Composition:
    """Every adapter, the Reconciler and the runtime, each given its callbacks here, once."""
    kube = _cluster(options, telemetry)
    cluster = _cached(options, kube, stop)
    notifier = integrations.notifier(cluster, telemetry, options.notifications)
    leader = (
        LeaderElection(cluster, options.lease_namespace, identity=options.identity)
        if options.leader_elect
        else None
    )
    shards = shard_manager(options, cluster, telemetry)
    may_write = WriteGuard(telemetry, leader, stopping=stop, shards=shards)
    queue = WorkQueue()
    slots = release_slots(
        options.max_concurrent_releases, queue, shards.may_write if shards else None
    )
    if slots is not None:
        telemetry.track_release_slots(
            slots.limit, slots.running, waiting=lambda: len(slots.waiting())
        )
    reconciler = Reconciler(
        cluster=cluster,
        router=IstioRouter(),
        metrics=_metrics(options, telemetry),
        webhooks=integrations.webhooks(telemetry),
        notifier=notifier,
        store_every_check=options.store_every_check,
        may_write=may_write,
        on_decision=telemetry.observe_decision,
        slots=slots,
    )
    controller = Controller(
        cluster,
        reconciler,
        telemetry=telemetry,
        namespace=options.namespace,
        leader=leader,
        may_write=may_write,
        workers=options.workers,
        slots=slots,
        queue=queue,
        shards=shards,
    )
    return Composition(controller, kube, notifier)


def release_slots(
    limit: int, queue: WorkQueue, mine: Callable[[str], bool] | None = None
) -> ReleaseSlots | None:
    """The registry of --max-concurrent-releases, which puts the Rollouts a freed slot may
    begin into the controller's queue; none without a cap (0, the default). With --shards,
    `mine` says which Rollouts count: those of the shards this replica holds."""
    if limit < 0:
        raise ValueError("--max-concurrent-releases is a number of releases, 0 for no cap")
    if not limit:
        return None
    return ReleaseSlots(limit, on_free=queue.add, mine=mine or (lambda key: True))


def shard_manager(
    options: ControllerOptions, cluster: Cluster, telemetry: Telemetry, **timing: Any
) -> ShardManager | None:
    """The shard Leases of --shards S (S > 1), their handovers counted in /metrics; `timing`
    (lease_seconds, retry_seconds) for the tests' short leases."""
    if options.shards < 0:
        raise ValueError("--shards is a number of shards: 0 or 1 for none, 2 or more to share")
    if options.shards < 2:
        return None
    if options.leader_elect:
        raise ValueError(LEADER_ELECT_WITH_SHARDS)
    manager = ShardManager(
        cluster,
        options.lease_namespace,
        options.shards,
        identity=options.identity,
        on_handover=lambda direction: telemetry.shard_handovers.labels(direction).inc(),
        **timing,
    )
    telemetry.track_shards(lambda: len(manager.held()))
    return manager


def run(options: ControllerOptions, stop: threading.Event | None = None) -> None:
    configure_logging(options.log_level, options.log_json)
    log = structlog.get_logger("canary.controller")
    stop = stop or threading.Event()
    telemetry = Telemetry()
    composition = compose(options, stop, telemetry)
    controller, notifier = composition.controller, composition.notifier
    server = serve_http(
        options.metrics_addr, telemetry, controller.healthy, controller.synced.is_set
    )
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1` prints every thread's stack
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    log.info(
        "controller starting",
        namespace=options.namespace or "<all>",
        leader_elect=options.leader_elect,
        shards=options.shards or "none",
        max_concurrent_releases=options.max_concurrent_releases or "no cap",
        metrics_addr="{}:{}".format(*server.server_address[:2]),
    )
    try:
        controller.run(stop)
    finally:
        notifier.close(timeout=5.0)
        server.shutdown()
        log.info("controller stopped")


def _metrics(options: ControllerOptions, telemetry: Telemetry) -> MetricsSource:
    if options.metrics_source == "scrape":
        return ScrapeSource()

    def on_query(outcome: str) -> None:
        telemetry.promql_requests.labels(outcome).inc()

    if options.batch_queries:
        return BatchedPrometheusSource(options.query_bucket_seconds, on_query=on_query)
    return PrometheusSource(on_query=on_query)


def _cached(options: ControllerOptions, cluster: KubeCluster, stop: threading.Event) -> Cluster:
    """The cluster with informer caches (started here, stopped with `stop`), unless disabled."""
    if not options.informers:
        return cluster
    cached = CachedCluster(cluster, options.namespace)
    cached.start(stop)
    return cached


def user_agent(identity: str) -> str:
    """`canary-controller/<version> (<identity>)`: the apiserver's audit log tells the replicas
    apart by it, and takes its first word as the field manager of every write (managedFields)."""
    try:
        version = importlib.metadata.version("canary")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return f"{FIELD_MANAGER}/{version} ({identity})"


def _cluster(options: ControllerOptions, telemetry: Telemetry) -> KubeCluster:
    agent = user_agent(options.identity)
    if options.in_cluster:
        cluster = KubeCluster.in_cluster(qps=options.qps, burst=options.burst, user_agent=agent)
    else:
        cluster = KubeCluster.from_kubeconfig(
            options.kubeconfig,
            options.context,
            qps=options.qps,
            burst=options.burst,
            user_agent=agent,
        )
    cluster.on_request = lambda verb, resource, code, seconds: telemetry.api_requests.labels(
        verb, resource, str(code)
    ).inc()
    return cluster
