"""Release slots: at most `limit` releases under way at once, per controller
(`--max-concurrent-releases`).

A Rollout holds a slot while its stored status shows a release under way
(`holds_release_slot`: it has begun and not ended); the registry learns that from every status
the controller writes and every object its watch brings, newest resourceVersion first, and from
the first list after a start, before any reconcile can ask (so a restarted controller counts the
releases under way before it lets a waiting one begin). A reconcile of a release that would
begin `claim`s a slot first: under the lock, so two workers reconciling two waiting Rollouts at
once cannot both take the last one. The claim lasts until the reconcile ends (`unclaim`); by
then the status write that began the release has made it a holder, so the slot is never seen
free in between. A claim that began nothing (the canary was not ready) is given back.

With `--shards`, the cap is per replica: only the releases of Rollouts whose shard this replica
holds count (`mine`), so a shard handed over takes its releases along; the registry still learns
from every Rollout, so a shard gained counts its releases under way before any reconcile.

Rollouts refused a slot wait; when one frees, the longest waiting are reconciled again first
(`on_free`), oldest by `status.waitingForSlotSince`, so the order survives a restart. Nothing
here interrupts a release: a holder keeps its slot until its own status says it has ended, or
the Rollout is deleted.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from canary.core.objects import Obj, key_of, resource_version, version_not_older
from canary.core.status import wire_holds_release_slot


@dataclass(frozen=True)
class SlotAnswer:
    granted: bool
    running: int  # releases holding or claiming a slot, this one included when granted
    limit: int
    claimed: bool = False  # answered by `claim`: its reconcile ends with `unclaim`


NOT_NEEDED = SlotAnswer(granted=True, running=0, limit=0)  # no cap, or nothing to begin


class ReleaseSlots:
    def __init__(
        self,
        limit: int,
        on_free: Callable[[str], None] = lambda key: None,
        mine: Callable[[str], bool] = lambda key: True,
    ):
        """`on_free(key)` is called for each waiting Rollout that a freed slot may now take,
        the longest waiting first: the controller's `WorkQueue.add`. `mine(key)`: whether the
        release of `key` counts here (its shard is held; always without `--shards`)."""
        self.mine = mine
        if limit < 1:
            raise ValueError("a release cap is at least 1 (no cap: no ReleaseSlots)")
        self.limit = limit
        self.on_free = on_free
        self._lock = threading.Lock()
        self._held: set[str] = set()  # their newest stored status shows a release under way
        self._versions: dict[str, str] = {}  # the resourceVersion that status was read from
        self._claims: set[str] = set()  # reconciles under way that may begin a release
        self._waiting: dict[str, tuple[datetime | None, int]] = {}  # key -> (since, arrival)
        self._arrivals = itertools.count()

    # ------------------------------------------------------------ what the statuses say

    def observe(self, obj: Obj) -> None:
        """A Rollout as stored (a status write's answer, a watch event, a list): it holds a slot
        if its status shows a release under way. An older version than one seen is ignored."""
        key, version = key_of(obj), resource_version(obj)
        status = obj.get("status")
        holds = wire_holds_release_slot(status if isinstance(status, dict) else {})
        with self._lock:
            if not version_not_older(version, self._versions.get(key)):
                return
            self._versions[key] = version
            if holds:
                self._held.add(key)
                return
            if key not in self._held:
                return
            self._held.discard(key)
            woken = self._to_wake() if key not in self._claims else []
        self._wake(woken)

    def forget(self, key: str) -> None:
        """The Rollout is gone: its slot frees and it waits no more."""
        with self._lock:
            freed = key in self._held or key in self._claims
            self._held.discard(key)
            self._claims.discard(key)
            self._versions.pop(key, None)
            self._waiting.pop(key, None)
            woken = self._to_wake() if freed else []
        self._wake(woken)

    # ------------------------------------------------------------ what a reconcile asks

    def claim(self, key: str, waiting_since: datetime | None = None) -> SlotAnswer:
        """A slot for the release of `key` to begin, held until `unclaim`; refused when every
        slot is taken (the Rollout then waits, from `waiting_since` if it already did)."""
        with self._lock:
            running = self._running()
            if key in self._held or key in self._claims:
                return SlotAnswer(True, running, self.limit, claimed=True)
            if running < self.limit:
                self._claims.add(key)
                self._waiting.pop(key, None)
                return SlotAnswer(True, running + 1, self.limit, claimed=True)
            if key not in self._waiting:
                self._waiting[key] = (waiting_since, next(self._arrivals))
            return SlotAnswer(False, running, self.limit)

    def unclaim(self, key: str) -> None:
        """The reconcile that claimed a slot has ended: the slot stays taken if the release
        began (its status write made `key` a holder), else it frees."""
        with self._lock:
            if key not in self._claims:
                return
            self._claims.discard(key)
            woken = self._to_wake() if key not in self._held else []
        self._wake(woken)

    def not_waiting(self, key: str) -> None:
        """A reconcile of `key` asked for no slot: it does not wait (any more)."""
        with self._lock:
            self._waiting.pop(key, None)

    # ------------------------------------------------------------ for tests and /metrics

    def recount(self) -> None:
        """What counts here changed (a shard was handed over): wake the waiting if slots freed."""
        with self._lock:
            woken = self._to_wake()
        self._wake(woken)

    def running(self) -> int:
        with self._lock:
            return self._running()

    def waiting(self) -> list[str]:
        """The Rollouts waiting for a slot, the longest waiting first."""
        with self._lock:
            return self._by_age()

    # ------------------------------------------------------------ inside the lock

    def _to_wake(self) -> list[str]:
        free = self.limit - self._running()
        return self._by_age()[: max(free, 0)]

    def _running(self) -> int:
        return sum(1 for key in self._held | self._claims if self.mine(key))

    def _by_age(self) -> list[str]:
        def age(item: tuple[str, tuple[datetime | None, int]]) -> tuple[bool, float, int]:
            since, arrival = item[1]
            return (since is None, since.timestamp() if since else 0.0, arrival)

        return [key for key, _ in sorted(self._waiting.items(), key=age)]

    def _wake(self, keys: list[str]) -> None:
        for key in keys:
            self.on_free(key)
