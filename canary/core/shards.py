"""Shards of Rollouts on Leases, as plain data: which shard a Rollout is in, and which shards a
replica should take or give up, from the Leases it saw (`--shards S`). No I/O, no clock.

- A Rollout's shard is the sha256 of "namespace/name" mod S: the same in every process, across
  restarts and whatever the number of replicas (Python's `hash()` is salted per process).
- Shard i is owned through the Lease `canary-shard-<i>-of-<S>`; the S in the name keeps
  replicas that run with different `--shards` (a rolling change of S) off each other's Leases;
  once nobody holds a Lease of another S (its replicas are gone), it is deleted.
- Every replica also renews a member Lease `canary-replica-<identity>`, so that a replica that
  holds no shard yet (it just started) is counted: the replicas alive are the holders of the
  member and shard Leases that have not expired.
- With n replicas alive each should hold floor(S/n) or ceil(S/n) shards. A replica takes free
  or expired shards up to floor while another replica alive is below floor (so that a joining
  replica gets its share), else up to ceil; it gives back what it holds above ceil, and one
  shard when another replica holds less than floor and no shard is free (only the first, by
  identity, of those holding the most gives, so two do not give at once).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

SHARD_PREFIX = "canary-shard-"
MEMBER_PREFIX = "canary-replica-"


def shard_of(key: str, shards: int) -> int:
    """The shard of the Rollout `key` ("namespace/name") among `shards`."""
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") % max(shards, 1)


def shard_lease_name(shard: int, shards: int) -> str:
    return f"{SHARD_PREFIX}{shard}-of-{shards}"


def member_lease_name(identity: str) -> str:
    return f"{MEMBER_PREFIX}{identity}"


def shard_in(lease_name: str, shards: int) -> int | None:
    """The shard a Lease of that name owns among `shards`; None for any other Lease."""
    stem, _, count = lease_name.removeprefix(SHARD_PREFIX).partition("-of-")
    if not lease_name.startswith(SHARD_PREFIX) or count != str(shards) or not stem.isdigit():
        return None
    shard = int(stem)
    return shard if shard < shards else None


@dataclass(frozen=True)
class LeaseView:
    """What a Lease says: who holds it, when it was last renewed, for how long."""

    name: str
    holder: str | None
    renewed: datetime | None
    duration_seconds: float
    version: str = ""  # resourceVersion, for a delete that must not race a renewal

    def alive(self, now: datetime) -> bool:
        """Held by someone, and not expired at `now`."""
        return (
            bool(self.holder)
            and self.renewed is not None
            and now <= self.renewed + timedelta(seconds=self.duration_seconds)
        )


@dataclass(frozen=True)
class ShardPlan:
    replicas: tuple[str, ...]  # alive, this one included, sorted
    share: int  # ceil(S / replicas): the most a replica holds once spread
    take: tuple[int, ...]  # free or expired shards to try to acquire, in this order
    give_up: tuple[int, ...]  # held shards to hand back (stop writing first, then release)
    # to delete: expired member Leases of replicas gone, and shard Leases of another S unheld
    forget: tuple[LeaseView, ...]


def fair_share(shards: int, replicas: int) -> int:
    return math.ceil(shards / max(replicas, 1))


def plan(
    identity: str,
    shards: int,
    leases: Iterable[LeaseView],
    held: Iterable[int],
    now: datetime,
) -> ShardPlan:
    """What replica `identity` should do with the shard and member Leases it listed
    (`leases`), holding `held` (the shards it is sure of: renewed within its renew deadline).
    Its own hold wins over what the list says of those (the list may be older)."""
    mine = set(held)
    holders: dict[int, str] = {}
    members: set[str] = {identity}
    forget: list[LeaseView] = []
    for lease in leases:
        shard = shard_in(lease.name, shards)
        if shard is not None:
            if lease.alive(now) and lease.holder:
                holders[shard] = lease.holder
                members.add(lease.holder)
        elif lease.name.startswith(MEMBER_PREFIX):
            if lease.alive(now) and lease.holder:
                members.add(lease.holder)
            elif lease.name != member_lease_name(identity):
                forget.append(lease)
        elif lease.name.startswith(SHARD_PREFIX) and not lease.alive(now):
            forget.append(lease)  # left by replicas that ran with another --shards
    for shard in range(shards):
        if shard in mine:
            holders[shard] = identity
        elif holders.get(shard) == identity:
            del holders[shard]  # the list is older than our own loss of it
    replicas = tuple(sorted(members))
    counts: dict[str, int] = dict.fromkeys(replicas, 0)
    for holder in holders.values():
        counts[holder] += 1
    low, high = shards // len(replicas), fair_share(shards, len(replicas))
    free = [shard for shard in range(shards) if shard not in holders]
    below = any(count < low for member, count in counts.items() if member != identity)
    quota = low if below else high
    have = counts[identity]
    take: tuple[int, ...] = ()
    give: tuple[int, ...] = ()
    if have < quota and free:
        take = tuple(_preferred(free, replicas.index(identity), shards, len(replicas)))
        take = take[: quota - have]
    elif have > high:
        give = tuple(sorted(mine, reverse=True)[: have - high])
    elif have > low and not free and any(count < low for count in counts.values()):
        most = max(counts.values())
        first_of_most = next(member for member in replicas if counts[member] == most)
        if first_of_most == identity:
            give = (max(mine),)
    return ShardPlan(replicas, high, take, give, tuple(forget))


def _preferred(free: list[int], rank: int, shards: int, replicas: int) -> list[int]:
    """The free shards in the order this replica tries them: from its own place on the ring
    (rank * S / n) onwards, so replicas that start together mostly try different shards."""
    start = rank * shards // replicas
    return sorted(free, key=lambda shard: (shard - start) % shards)


def shards_of(keys: Iterable[str], shards: int) -> Mapping[int, list[str]]:
    """The keys of each shard (only the shards that have some)."""
    found: dict[int, list[str]] = {}
    for key in keys:
        found.setdefault(shard_of(key, shards), []).append(key)
    return found


@dataclass(frozen=True)
class Sharding:
    """What the shard Leases say at one moment: the S the replicas run with, and the holder of
    each shard held in time (for `kubectl canary get -o wide`)."""

    shards: int
    holders: Mapping[int, str]

    def of(self, key: str) -> tuple[int, str | None]:
        shard = shard_of(key, self.shards)
        return shard, self.holders.get(shard)


def sharding_seen(leases: Iterable[LeaseView], now: datetime) -> Sharding | None:
    """The sharding the shard Leases show: the S with the most Leases held in time (two during
    a change of --shards), or with the most Leases when none is held; None without any."""
    alive: dict[int, dict[int, str]] = {}
    total: dict[int, int] = {}
    for lease in leases:
        stem, _, count = lease.name.removeprefix(SHARD_PREFIX).partition("-of-")
        if not lease.name.startswith(SHARD_PREFIX) or not count.isdigit() or not stem.isdigit():
            continue
        shards = int(count)
        total[shards] = total.get(shards, 0) + 1
        if lease.alive(now) and lease.holder:
            alive.setdefault(shards, {})[int(stem)] = lease.holder
    if not total:
        return None
    shards = max(total, key=lambda s: (len(alive.get(s, {})), total[s], s))
    return Sharding(shards, alive.get(shards, {}))
