"""The controller process: a watch-fed cache of Rollouts, one work queue, leader election.

Everything that wants a Rollout reconciled adds its key to one `WorkQueue` (workqueue.py), and
a pool of workers reconciles what the queue hands out, one reconcile per Rollout at a time:
watch events that bring news (not the echo of our own status write), the Rollout's analysis
interval (an apscheduler interval job per Rollout, which only adds the key), a reconcile that
asks to run again sooner (`requeue_after`), and retries after a failure (the queue's back-off).
"""

from __future__ import annotations

import contextlib
import gc
import random
import re
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import structlog
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler

from canary.controller.reconcile import Outcome, Reconciler
from canary.controller.slots import ReleaseSlots
from canary.controller.telemetry import Telemetry
from canary.controller.workqueue import WorkQueue
from canary.core.durations import parse_duration
from canary.core.objects import Obj, key_of, resource_version
from canary.core.shards import member_lease_name, plan, shard_lease_name, shard_of
from canary.kube.informers import ObjectCache
from canary.kube.leases import view
from canary.kube.port import Cluster, ConflictError, KubeError, NotFoundError, WatchEvent

log = structlog.get_logger("canary.controller")

DEFAULT_INTERVAL = timedelta(seconds=30)
MAX_BACKOFF = 15.0  # seconds; an API that comes back is caught up with within this


def default_identity() -> str:
    """This replica's name in the Leases: its host name (a Pod's name in a cluster) and a
    random suffix, so two processes on one host are never taken for one."""
    host = re.sub(r"[^a-z0-9-]+", "-", socket.gethostname().lower()).strip("-")[:40] or "canary"
    return f"{host}-{random.getrandbits(32):08x}"


@dataclass
class LeaseHolder:
    """One Lease this replica takes and renews, and whether it may still write for it: its last
    successful renewal began less than `renew_deadline` ago (2/3 of the lease, as client-go's
    leader election). Both the leader election and each shard of `--shards` hold theirs so."""

    cluster: Cluster
    namespace: str
    name: str
    identity: str
    lease_seconds: int = 15
    # time.monotonic() when the last successful renewal began: the Lease's renewTime is no
    # earlier than that, so it holds until at least then + lease_seconds
    renewed_at: float | None = field(default=None, init=False)

    @property
    def renew_deadline(self) -> float:
        """Seconds after a renewal began during which this replica still writes."""
        return self.lease_seconds * 2 / 3

    def renew(self) -> bool:
        """Take or renew the Lease, bounded by what is left of the renew deadline (one budget,
        no retries), so that losing it is noticed and logged on time; whether it is held."""
        attempt = time.monotonic()
        try:
            held = self.cluster.try_acquire_lease(
                self.namespace,
                self.name,
                self.identity,
                self.lease_seconds,
                timeout=self._time_left(attempt) or self.renew_deadline,
            )
        except KubeError as error:
            log.warning("lease renewal failed", lease=self.name, error=str(error))
            return self.held()
        # not the answer's moment: the call may have hung
        self.renewed_at = attempt if held else None
        return held

    def held(self) -> bool:
        """Whether this replica may write for the Lease now. Checked at each write, so a renewal
        that hangs (a dead connection, an apiserver waiting for etcd) stops the writes in time,
        long before the Lease expires for the others, even while the call has not returned."""
        return self._time_left(time.monotonic()) > 0

    def drop(self) -> None:
        """Stop writing for the Lease at once (before handing it back)."""
        self.renewed_at = None

    def release(self) -> None:
        """Hand the Lease back (holderIdentity empty), so that another takes it at once; only
        after `drop` and the margin a lost lease gives (see `ShardManager`)."""
        try:
            self.cluster.release_lease(
                self.namespace, self.name, self.identity, timeout=min(self.renew_deadline, 2.0)
            )
        except KubeError as error:  # it expires by itself then
            log.warning("lease not handed back", lease=self.name, error=str(error))

    def until_next_renewal(self, retry_seconds: float) -> float:
        left = self._time_left(time.monotonic())
        return min(retry_seconds, left) if left > 0 else retry_seconds

    def _time_left(self, now: float) -> float:
        """Seconds from `now` to the renew deadline of the last renewal (0 if past or none)."""
        if self.renewed_at is None:
            return 0.0
        return max(0.0, self.renewed_at + self.renew_deadline - now)


@dataclass
class LeaderElection:
    """One replica of several writes: the holder of the Lease `name` (`--leader-elect`)."""

    cluster: Cluster
    namespace: str
    name: str = "canary-controller"
    identity: str = field(default_factory=default_identity)
    lease_seconds: int = 15
    retry_seconds: float = 2.0
    leading: threading.Event = field(default_factory=threading.Event)
    lease: LeaseHolder = field(init=False)

    def __post_init__(self) -> None:
        self.lease = LeaseHolder(
            self.cluster, self.namespace, self.name, self.identity, self.lease_seconds
        )

    @property
    def renew_deadline(self) -> float:
        return self.lease.renew_deadline

    def is_leading(self) -> bool:
        """Whether this replica may write now: it won the Lease, and still holds it in time."""
        return self.leading.is_set() and self.lease.held()

    def run(self, stop: threading.Event, on_elected: Callable[[], None] = lambda: None) -> None:
        while not stop.is_set():
            self.lease.renew()
            self._follow_lease(on_elected)
            stop.wait(self.lease.until_next_renewal(self.retry_seconds))
            self._follow_lease(on_elected)  # the renew deadline may have passed meanwhile
        self.leading.clear()

    def _follow_lease(self, on_elected: Callable[[], None]) -> None:
        if self.lease.held() and not self.leading.is_set():
            log.info("became leader", identity=self.identity)
            self.leading.set()
            on_elected()
        elif not self.lease.held() and self.leading.is_set():
            log.warning("lost the leader lease; writing stops", identity=self.identity)
            self.leading.clear()


Handover = Literal["acquired", "released", "lost"]


@dataclass
class ShardManager:
    """`--shards S`: this replica's share of S shard Leases (canary.core.shards decides which).

    Each loop renews the member Lease and every held shard Lease (each renewal its own budget,
    as the leader election's), lists the Leases, and follows the plan: free or expired shards up
    to its share are taken, extras handed back. A shard is written for only while its Lease is
    held in time (`LeaseHolder.held`); one handed back stops being written for at once, and its
    Lease is released only `lease_seconds / 3` later (the margin a lost lease gives the others,
    for a write already under way), so that it never has two writers.
    """

    cluster: Cluster
    namespace: str
    shards: int
    identity: str = field(default_factory=default_identity)
    lease_seconds: int = 15
    retry_seconds: float = 2.0
    on_handover: Callable[[Handover], None] = lambda direction: None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    _holders: dict[int, LeaseHolder] = field(default_factory=dict, init=False)
    _giving: dict[int, tuple[LeaseHolder, float]] = field(default_factory=dict, init=False)
    _member: LeaseHolder = field(init=False)

    def __post_init__(self) -> None:
        if self.shards < 2:
            raise ValueError("a ShardManager shares 2 shards or more (1: no sharding)")
        self._member = self._lease(member_lease_name(self.identity))

    # ------------------------------------------------------------ asked by every write

    def shard_of(self, key: str) -> int:
        return shard_of(key, self.shards)

    def holds(self, shard: int) -> bool:
        holder = self._holders.get(shard)
        return holder is not None and holder.held()

    def may_write(self, key: str) -> bool:
        return self.holds(self.shard_of(key))

    def held(self) -> list[int]:
        return sorted(shard for shard in list(self._holders) if self.holds(shard))

    # ------------------------------------------------------------ the loop

    def run(
        self,
        stop: threading.Event,
        on_gained: Callable[[int], None] = lambda shard: None,
        on_lost: Callable[[int], None] = lambda shard: None,
    ) -> None:
        """Until `stop`; the writes stop with it (the WriteGuard), the Leases are handed back
        by `hand_back` once the last reconcile has ended."""
        while not stop.is_set():
            self.step(on_gained, on_lost)
            stop.wait(self._until_next_step())

    def hand_back(self) -> None:
        """Release every Lease held, for a replica that stopped and wrote its last (a rolling
        restart then moves its shards at once, not after the leases expire)."""
        for shard in list(self._holders):
            self._give_up(shard, lambda shard: None)
        for holder in [holder for holder, _ in self._giving.values()] + [self._member]:
            holder.drop()
            holder.release()
        self._giving.clear()

    def step(
        self,
        on_gained: Callable[[int], None] = lambda shard: None,
        on_lost: Callable[[int], None] = lambda shard: None,
    ) -> None:
        self._member.renew()
        for holder in list(self._holders.values()):
            holder.renew()
        self._follow(on_lost)
        self._release_due()
        try:
            listed = self.cluster.list_leases(
                self.namespace, "canary-", timeout=self._member.renew_deadline
            )
        except KubeError as error:
            log.warning("shard leases not listed; keeping the shards held", error=str(error))
            return
        decided = plan(
            self.identity,
            self.shards,
            [view(lease) for lease in listed],
            self.held(),
            self.clock(),
        )
        for shard in decided.give_up:
            self._give_up(shard, on_lost)
        for shard in decided.take:
            if shard not in self._giving:
                self._take(shard, on_gained)
        for gone in decided.forget:
            with contextlib.suppress(KubeError):
                self.cluster.delete_lease(self.namespace, gone.name, gone.version, 2.0)

    def _take(self, shard: int, on_gained: Callable[[int], None]) -> None:
        holder = self._lease(shard_lease_name(shard, self.shards))
        if not holder.renew():
            return
        self._holders[shard] = holder
        log.info("shard acquired", shard=shard, shards=self.shards, identity=self.identity)
        self.on_handover("acquired")
        on_gained(shard)

    def _give_up(self, shard: int, on_lost: Callable[[int], None]) -> None:
        holder = self._holders.pop(shard)
        holder.drop()  # no write for it from now on
        on_lost(shard)
        self._giving[shard] = (holder, time.monotonic() + self.lease_seconds / 3)
        log.info("shard handed back", shard=shard, shards=self.shards, identity=self.identity)
        self.on_handover("released")

    def _release_due(self) -> None:
        now = time.monotonic()
        for shard, (holder, due) in list(self._giving.items()):
            if due <= now:
                del self._giving[shard]
                holder.release()

    def _follow(self, on_lost: Callable[[int], None]) -> None:
        for shard, holder in list(self._holders.items()):
            if not holder.held():
                del self._holders[shard]
                log.warning(
                    "lost a shard lease; writing for it stops",
                    shard=shard,
                    shards=self.shards,
                    identity=self.identity,
                )
                self.on_handover("lost")
                on_lost(shard)

    def _until_next_step(self) -> float:
        holders = [self._member, *self._holders.values()]
        return min(holder.until_next_renewal(self.retry_seconds) for holder in holders)

    def _lease(self, name: str) -> LeaseHolder:
        return LeaseHolder(self.cluster, self.namespace, name, self.identity, self.lease_seconds)


@dataclass
class WriteGuard:
    """Whether this process may write for a Rollout now: it leads (or needs no election), holds
    the Rollout's shard (or runs unsharded), and is not stopping. The Reconciler asks it before
    every write; the composition root gives it to both."""

    telemetry: Telemetry
    leader: LeaderElection | None = None
    stopping: threading.Event = field(default_factory=threading.Event)
    shards: ShardManager | None = None

    def __call__(self, key: str) -> bool:
        leading = self.leader is None or self.leader.is_leading()
        self.telemetry.leader.set(1 if leading and self.shards is None else 0)
        if not leading or self.stopping.is_set():
            return False
        return self.shards is None or self.shards.may_write(key)


class Controller:
    def __init__(
        self,
        cluster: Cluster,
        reconciler: Reconciler,
        *,
        telemetry: Telemetry,
        namespace: str | None = None,
        leader: LeaderElection | None = None,
        may_write: Callable[[str], bool] | None = None,
        workers: int = 8,
        slots: ReleaseSlots | None = None,
        queue: WorkQueue | None = None,
        shards: ShardManager | None = None,
    ) -> None:
        self.cluster = cluster
        self.reconciler = reconciler
        self.telemetry = telemetry
        self.namespace = namespace
        self.leader = leader
        # --shards S: this replica reconciles the Rollouts of the shards it holds; the ticks of
        # the others are not even scheduled here (their holders schedule them)
        self.shards = shards
        self.synced = threading.Event()
        self.rollouts = ObjectCache()
        self.queue = queue or WorkQueue()
        self._stop = threading.Event()
        self.may_write = may_write or WriteGuard(telemetry, leader, shards=shards)
        # --max-concurrent-releases: the registry learns from every Rollout the watch brings
        # (so a standby and a restarted controller both count the releases under way); it
        # puts the longest-waiting Rollouts into `queue` when a slot frees (`on_free`)
        self.slots = slots
        # Rollouts this replica has just taken over (elected, or their shard gained): read from
        # the API before their first reconcile here, for the cache may not have caught up with
        # the last writes of the replica that held them
        self._taken_over: set[str] = set()
        self._workers = [
            threading.Thread(target=self._work, name=f"worker-{n}", daemon=True)
            for n in range(workers)
        ]
        self._watcher: threading.Thread | None = None
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(max_workers=1)},  # its jobs only add keys
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )

    # ------------------------------------------------------------ lifecycle

    def run(self, stop: threading.Event) -> None:
        """Run until `stop` is set; then finish the reconciles under way and return."""
        self._stop = stop
        # Everything imported so far lives as long as the process: keep it out of the full
        # collections, which otherwise walk it every time (300 ms at 2,000 Rollouts, #8).
        gc.freeze()
        self.scheduler.start()
        for worker in self._workers:
            worker.start()
        if self.leader is not None:
            threading.Thread(
                target=self.leader.run,
                args=(stop, lambda: self._take_over(self.rollouts.all_keys())),
                name="leader",
                daemon=True,
            ).start()
        sharing = None
        if self.shards is not None:
            sharing = threading.Thread(
                target=self.shards.run,
                args=(stop, self._gained, self._lost),
                name="shards",
                daemon=True,
            )
            sharing.start()
        self._watcher = threading.Thread(target=self._watch, name="watch", daemon=True)
        self._watcher.start()
        stop.wait()
        log.info("shutting down")
        self.queue.shut_down()
        for worker in self._workers:
            worker.join()
        self.scheduler.shutdown(wait=True)
        if self.shards is not None and sharing is not None:
            sharing.join()
            self.shards.hand_back()  # after the last write

    def healthy(self) -> bool:
        watching = self._watcher is not None and self._watcher.is_alive()
        working = all(worker.is_alive() for worker in self._workers)
        return watching and working and self.scheduler.running

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
            fresh = {key_of(obj) for obj in event.objects}
            for key in set(self.rollouts.all_keys()) - fresh:
                self._forget(key)
            if self.slots is not None:  # every release under way counted before any reconcile
                for obj in event.objects:
                    self.slots.observe(obj)
            for obj in event.objects:
                self._upsert(obj)
            self.synced.set()
        elif event.type == "DELETED" and event.object is not None:
            self._forget(key_of(event.object))
        elif event.object is not None:
            self._upsert(event.object)

    def _upsert(self, obj: Obj) -> None:
        key = key_of(obj)
        replaced = self.rollouts.put(obj)
        if not replaced.stored or _same_version(obj, replaced.previous):
            return  # nothing new: e.g. the echo of our own status write (#8)
        if self.slots is not None:
            self.slots.observe(obj)
        if not self.owns(key):
            return  # its shard's holder reconciles it
        self._schedule_interval(key, obj)
        if not _only_status_changed(obj, replaced.previous):
            self.trigger(key)

    def _forget(self, key: str) -> None:
        self.rollouts.remove(key)
        if self.slots is not None:
            self.slots.forget(key)
        self._unschedule(key)

    def _unschedule(self, key: str) -> None:
        """Nothing of `key` waits here any more (queue, tick), and its metrics and the
        reconciler's memory of it go."""
        self.queue.remove(key)
        self.reconciler.forget(key)
        with contextlib.suppress(JobLookupError):
            self.scheduler.remove_job(f"{key}#tick")
        namespace, _, name = key.partition("/")
        self.telemetry.forget(namespace, name)

    # ------------------------------------------------------------ what goes into the queue

    def _schedule_interval(self, key: str, obj: Obj) -> None:
        interval = _interval_of(obj)
        job = self.scheduler.get_job(f"{key}#tick")
        if job is not None and job.trigger.interval == interval:
            return
        self.scheduler.add_job(
            self._tick,
            "interval",
            seconds=interval.total_seconds(),
            start_date=datetime.now(UTC) + _tick_offset(key, interval),
            args=[key],
            id=f"{key}#tick",
            replace_existing=True,
        )

    def _tick(self, key: str) -> None:
        """The analysis interval of `key` has come round."""
        if self.owns(key):
            self.queue.add(key)

    def trigger(self, key: str, after: float = 0.0) -> None:
        """Reconcile `key` after `after` seconds (sooner if already due sooner)."""
        self.queue.add(key, after)

    def _take_over(self, keys: Iterable[str]) -> None:
        """Reconcile `keys` at once, each from the Rollout as stored, not as cached: the
        replica that wrote them last may have done so after this one's watch delivered them,
        and a stale Rollout would take its release back a step, or undo a rollback."""
        for key in keys:
            self._taken_over.add(key)
            self.trigger(key)

    # ------------------------------------------------------------ shards (--shards S)

    def owns(self, key: str) -> bool:
        """Whether this replica reconciles `key`: unsharded, or it holds the key's shard."""
        return self.shards is None or self.shards.may_write(key)

    def _gained(self, shard: int) -> None:
        """The shard's Lease is held: its Rollouts tick here from now on, reconciled at once
        (as on election); releases under way in it now count against this replica's cap."""
        assert self.shards is not None
        for key in self.rollouts.all_keys():
            obj = self.rollouts.get(*key.split("/", 1))
            if obj is not None and self.shards.shard_of(key) == shard:
                self._schedule_interval(key, obj)
                self._take_over([key])

    def _lost(self, shard: int) -> None:
        """The shard is no longer held (handed back, or its renewals failed): nothing of its
        Rollouts waits here, and this replica's metrics stop showing them."""
        assert self.shards is not None
        for key in self.rollouts.all_keys():
            if self.shards.shard_of(key) == shard:
                self._unschedule(key)
        if self.slots is not None:
            self.slots.recount()  # its releases no longer take this replica's slots

    # ------------------------------------------------------------ the workers

    def _work(self) -> None:
        while (key := self.queue.get()) is not None:
            try:
                obj = self.rollouts.get(*key.split("/", 1))
                if obj is not None and self.may_write(key):
                    stored = self._as_stored(key, obj)
                    if stored is not None:
                        self._reconcile_once(key, stored)
            finally:
                self.queue.done(key)

    def _as_stored(self, key: str, cached: Obj) -> Obj | None:
        """The Rollout to reconcile: the cached one, or for one just taken over the newer of it
        and the stored one (None when that read failed: retried later; or it is gone)."""
        if key not in self._taken_over:
            return cached
        namespace, name = key.split("/", 1)
        try:
            stored = self.cluster.get_rollout(namespace, name)
        except NotFoundError:
            self._taken_over.discard(key)  # deleted: its watch event is on the way
            return None
        except KubeError as error:
            self._retry_later(key, type(error).__name__, str(error))
            return None
        self._taken_over.discard(key)
        self.rollouts.put(stored)
        return self.rollouts.get(namespace, name)

    def _reconcile_once(self, key: str, obj: Obj) -> None:
        started = time.perf_counter()
        try:
            outcome = self.reconciler.reconcile(obj)
        except ConflictError as error:
            # Someone changed the Rollout (or the route) under us: decide again from the fresh
            # object soon. Not a sign of trouble, so no growing back-off.
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
        self.queue.forget(key)
        self._remember(key, outcome)

    def _remember(self, key: str, outcome: Outcome) -> None:
        if outcome.rollout is not None:
            self.rollouts.put(outcome.rollout)
        if outcome.requeue_after is not None:
            self.trigger(key, outcome.requeue_after.total_seconds())

    def _retry_later(self, key: str, reason: str, message: str) -> None:
        delay = self.queue.retry_later(key, base=1.0, cap=MAX_BACKOFF)
        log.warning(
            "reconcile failed; retrying", rollout=key, error=message, retry_in=round(delay, 2)
        )
        self.telemetry.reconcile_errors.labels(reason).inc()

    def _retry_soon(self, key: str, message: str) -> None:
        self.queue.retry_soon(key, random.uniform(0.1, 0.5))
        log.info("conflict; reconciling again from a fresh read", rollout=key, error=message)
        self.telemetry.reconcile_errors.labels("ConflictError").inc()


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


def _tick_offset(key: str, interval: timedelta) -> timedelta:
    """A stable offset in (0, interval] per Rollout, so thousands of Rollouts that appear at
    once (a relist, a restart) tick spread over the interval instead of all at one instant."""
    return interval * ((zlib.crc32(key.encode()) % 1000 + 1) / 1000)


def _interval_of(obj: Obj) -> timedelta:
    raw: Any = obj.get("spec", {}).get("analysis", {}).get("interval")
    try:
        return parse_duration(raw) if raw is not None else DEFAULT_INTERVAL
    except ValueError:
        return DEFAULT_INTERVAL
