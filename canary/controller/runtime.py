"""The controller process: a watch-fed cache, one scheduled job per Rollout, leader election.

Watch events trigger an immediate reconcile; an apscheduler interval job per Rollout ticks at
its analysis interval (coalesced, one instance at a time); a reconcile may ask to run again
sooner (`requeue_after`). A per-Rollout lock makes sure two reconciles of one Rollout never
overlap: a trigger that finds it busy marks it dirty and the running one goes round again.
"""

from __future__ import annotations

import contextlib
import gc
import queue
import random
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler

from canary.common.pacing import backoff_delay
from canary.controller.reconcile import Outcome, Reconciler
from canary.controller.telemetry import Telemetry
from canary.core.durations import parse_duration
from canary.core.objects import Obj, is_newer, key_of, resource_version
from canary.kube.port import Cluster, ConflictError, KubeError, WatchEvent

log = structlog.get_logger("canary.controller")

DEFAULT_INTERVAL = timedelta(seconds=30)
MAX_BACKOFF = 15.0  # seconds; an API that comes back is caught up with within this


@dataclass
class LeaderElection:
    cluster: Cluster
    namespace: str
    name: str = "canary-controller"
    identity: str = field(default_factory=lambda: f"canary-{random.getrandbits(32):08x}")
    lease_seconds: int = 15
    retry_seconds: float = 2.0
    leading: threading.Event = field(default_factory=threading.Event)
    on_elected: Callable[[], None] = lambda: None
    # time.monotonic() when the last successful renewal began: the Lease's renewTime is no
    # earlier than that, so it holds until at least then + lease_seconds
    renewed_at: float | None = field(default=None, init=False)

    @property
    def renew_deadline(self) -> float:
        """Seconds after a renewal began during which this replica still writes."""
        return self.lease_seconds * 2 / 3

    def is_leading(self) -> bool:
        """Whether this replica may write now: it won the Lease, and its last renewal began
        less than `renew_deadline` ago. Checked at each write, so a renewal that hangs (a dead
        connection, an apiserver waiting for etcd) stops the writes in time, long before the
        Lease expires for the other candidates, even while the call has not returned."""
        renewed = self.renewed_at
        return (
            self.leading.is_set()
            and renewed is not None
            and time.monotonic() - renewed < self.renew_deadline
        )

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            attempt = time.monotonic()
            try:
                held = self.cluster.try_acquire_lease(
                    self.namespace, self.name, self.identity, self.lease_seconds
                )
            except KubeError as error:
                log.warning("lease renewal failed", error=str(error))
                held = self.is_leading()
            else:
                if held:
                    self.renewed_at = attempt  # not the answer's moment: the call may have hung
            if held:
                if not self.leading.is_set():
                    log.info("became leader", identity=self.identity)
                    self.leading.set()
                    self.on_elected()
            elif self.leading.is_set():
                log.warning("lost the leader lease; writing stops", identity=self.identity)
                self.leading.clear()
            stop.wait(self.retry_seconds)
        self.leading.clear()


class Controller:
    def __init__(
        self,
        cluster: Cluster,
        reconciler: Reconciler,
        *,
        telemetry: Telemetry,
        namespace: str | None = None,
        leader: LeaderElection | None = None,
        workers: int = 8,
    ) -> None:
        self.cluster = cluster
        self.reconciler = reconciler
        self.telemetry = telemetry
        self.namespace = namespace
        self.leader = leader
        self.synced = threading.Event()
        self._cache: dict[str, Obj] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._dirty: set[str] = set()
        self._failures: dict[str, int] = {}
        self._retry_at: dict[str, float] = {}
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._requests: queue.SimpleQueue[tuple[str, float]] = queue.SimpleQueue()
        self._watcher: threading.Thread | None = None
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(max_workers=workers)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        reconciler.may_write = self.is_leader
        reconciler.on_decision = telemetry.observe_decision
        if leader is not None:
            leader.on_elected = self._trigger_all

    # ------------------------------------------------------------ lifecycle

    def run(self, stop: threading.Event) -> None:
        """Run until `stop` is set; then finish the reconciles under way and return."""
        self._stop = stop
        # Everything imported so far lives as long as the process: keep it out of the full
        # collections, which otherwise walk it every time (300 ms at 2,000 Rollouts, #8).
        gc.freeze()
        self.scheduler.start()
        if self.leader is not None:
            threading.Thread(
                target=self.leader.run, args=(stop,), name="leader", daemon=True
            ).start()
        threading.Thread(target=self._schedule_requests, name="requeue", daemon=True).start()
        self._watcher = threading.Thread(target=self._watch, name="watch", daemon=True)
        self._watcher.start()
        stop.wait()
        log.info("shutting down")
        self.scheduler.shutdown(wait=True)

    def healthy(self) -> bool:
        return self._watcher is not None and self._watcher.is_alive() and self.scheduler.running

    def is_leader(self) -> bool:
        leading = self.leader is None or self.leader.is_leading()
        self.telemetry.leader.set(1 if leading else 0)
        return leading and not self._stop.is_set()

    # ------------------------------------------------------------ the watch

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                for event in self.cluster.stream_rollouts(self.namespace, self._stop):
                    self._on_event(event)
            except KubeError as error:
                log.warning("watch failed; retrying", error=str(error))
                self._stop.wait(2.0)

    def _on_event(self, event: WatchEvent) -> None:
        if event.type == "SYNC":
            fresh = {key_of(obj): obj for obj in event.objects}
            for key in set(self._cache) - set(fresh):
                self._forget(key)
            for obj in fresh.values():
                self._upsert(obj)
            self.synced.set()
        elif event.type == "DELETED" and event.object is not None:
            self._forget(key_of(event.object))
        elif event.object is not None:
            self._upsert(event.object)

    def _upsert(self, obj: Obj) -> None:
        key = key_of(obj)
        with self._guard:
            cached = self._cache.get(key)
            if not is_newer(obj, cached) or _same_version(obj, cached):
                return  # nothing new: e.g. the echo of our own status write (#8)
            self._cache[key] = obj
        self._schedule_interval(key, obj)
        if not _only_status_changed(obj, cached):
            self.trigger(key)

    def _forget(self, key: str) -> None:
        with self._guard:
            self._cache.pop(key, None)
        for suffix in ("tick", "now", "later"):
            with contextlib.suppress(JobLookupError):
                self.scheduler.remove_job(f"{key}#{suffix}")
        namespace, _, name = key.partition("/")
        self.telemetry.forget(namespace, name)

    # ------------------------------------------------------------ scheduling

    def _schedule_interval(self, key: str, obj: Obj) -> None:
        interval = _interval_of(obj)
        job = self.scheduler.get_job(f"{key}#tick")
        if job is not None and job.trigger.interval == interval:
            return
        self.scheduler.add_job(
            self._tick,
            "interval",
            seconds=interval.total_seconds(),
            start_date=datetime.now(UTC) + _phase(key, interval),
            args=[key],
            id=f"{key}#tick",
            replace_existing=True,
        )

    def trigger(self, key: str, after: float = 0.0) -> None:
        """Reconcile `key` after `after` seconds (sooner if already due sooner).

        Only queued here: reconciles run inside scheduler jobs, and a job that called the
        scheduler while it shuts down would wait for a lock that shutdown holds until every
        job has ended.
        """
        self._requests.put((key, after))

    def _schedule_requests(self) -> None:
        while not self._stop.is_set():
            try:
                key, after = self._requests.get(timeout=0.2)
            except queue.Empty:
                continue
            self._add_one_off_job(key, after)

    def _add_one_off_job(self, key: str, after: float) -> None:
        suffix = "now" if after <= 0 else "later"
        run_at = datetime.now(UTC) + timedelta(seconds=max(after, 0.0))
        existing = self.scheduler.get_job(f"{key}#{suffix}")
        if existing is not None and existing.next_run_time is not None:
            run_at = min(run_at, existing.next_run_time)
        self.scheduler.add_job(
            self._tick,
            "date",
            run_date=run_at,
            args=[key],
            id=f"{key}#{suffix}",
            replace_existing=True,
            # Overlap is handled by the per-Rollout lock (a busy Rollout is marked dirty and
            # goes round again); a run apscheduler skipped would be a trigger lost.
            max_instances=8,
        )

    def _trigger_all(self) -> None:
        for key in list(self._cache):
            self.trigger(key)

    # ------------------------------------------------------------ a tick

    def _tick(self, key: str) -> None:
        if not self.is_leader() or self._backing_off(key):
            return
        lock = self._lock_of(key)
        if not lock.acquire(blocking=False):
            with self._guard:
                self._dirty.add(key)
            return
        try:
            self._run_until_clean(key)
        finally:
            lock.release()

    def _run_until_clean(self, key: str) -> None:
        while True:
            with self._guard:
                self._dirty.discard(key)
                obj = self._cache.get(key)
            if obj is None:
                return
            self._reconcile_once(key, obj)
            with self._guard:
                if key not in self._dirty:
                    return

    def _reconcile_once(self, key: str, obj: Obj) -> None:
        started = time.perf_counter()
        try:
            outcome = self.reconciler.reconcile(obj)
        except ConflictError as error:
            # Someone changed the Rollout (or the route) under us: decide again from the fresh
            # object soon. Not a sign of trouble, so no growing backoff.
            self._retry_soon(key, str(error))
            return
        except KubeError as error:
            self._retry_later(key, type(error).__name__, str(error))
            return
        except Exception as error:  # a bug must not stop the other Rollouts
            log.exception("reconcile failed unexpectedly", rollout=key)
            self._retry_later(key, "Unexpected", repr(error))
            return
        finally:
            self.telemetry.reconcile_seconds.observe(time.perf_counter() - started)
        self._failures.pop(key, None)
        self._retry_at.pop(key, None)
        self._remember(key, outcome)

    def _remember(self, key: str, outcome: Outcome) -> None:
        if outcome.rollout is not None:
            with self._guard:
                if is_newer(outcome.rollout, self._cache.get(key)):
                    self._cache[key] = outcome.rollout
        if outcome.requeue_after is not None:
            self.trigger(key, outcome.requeue_after.total_seconds())

    def _retry_later(self, key: str, reason: str, message: str) -> None:
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        delay = backoff_delay(failures, base=1.0, cap=MAX_BACKOFF)
        self._retry_at[key] = time.monotonic() + delay
        log.warning(
            "reconcile failed; retrying", rollout=key, error=message, retry_in=round(delay, 2)
        )
        self.telemetry.reconcile_errors.labels(reason).inc()
        self.trigger(key, delay)

    def _retry_soon(self, key: str, message: str) -> None:
        delay = random.uniform(0.1, 0.5)
        self._retry_at[key] = time.monotonic() + delay
        log.info("conflict; reconciling again from a fresh read", rollout=key, error=message)
        self.telemetry.reconcile_errors.labels("ConflictError").inc()
        self.trigger(key, delay)

    def _backing_off(self, key: str) -> bool:
        """After a failed reconcile, interval ticks and watch triggers wait for the retry,
        so an API in trouble sees one request per backoff, not one per tick and event."""
        retry_at = self._retry_at.get(key)
        return retry_at is not None and time.monotonic() < retry_at - 0.05

    def _lock_of(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())


def _same_version(obj: Obj, cached: Obj | None) -> bool:
    version = resource_version(obj)
    return cached is not None and bool(version) and resource_version(cached) == version


def _only_status_changed(obj: Obj, cached: Obj | None) -> bool:
    """Whether `obj` differs from `cached` in its status alone. The controller is the status's
    only writer, so that is the echo of its own write, arriving before the write's answer: the
    cache takes it, and no reconcile is needed for it (#8)."""
    return cached is not None and _without_status(obj) == _without_status(cached)


def _without_status(obj: Obj) -> Obj:
    meta = {
        key: value
        for key, value in (obj.get("metadata") or {}).items()
        if key not in ("resourceVersion", "managedFields")
    }
    return {**{key: value for key, value in obj.items() if key != "status"}, "metadata": meta}


def _phase(key: str, interval: timedelta) -> timedelta:
    """A stable offset in (0, interval] per Rollout, so thousands of Rollouts that appear at
    once (a relist, a restart) tick spread over the interval instead of all at one instant."""
    return interval * ((zlib.crc32(key.encode()) % 1000 + 1) / 1000)


def _interval_of(obj: Obj) -> timedelta:
    raw: Any = obj.get("spec", {}).get("analysis", {}).get("interval")
    try:
        return parse_duration(raw) if raw is not None else DEFAULT_INTERVAL
    except ValueError:
        return DEFAULT_INTERVAL
