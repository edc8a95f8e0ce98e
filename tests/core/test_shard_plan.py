"""Shards of Rollouts (canary.core.shards), pure: a Rollout's shard is stable (the same digest in
every process, for every replica count), shard Lease names are parsed back only for the same S,
and the fair-share decisions from the Leases a replica sees: replicas starting together split
the shards; a joining replica gets its share from the one that held them all; a dead replica's
expired shards are taken; uneven holdings (2, 2, 0 of 4) are evened out by exactly one giver;
a replica never takes a shard another holds in time; expired member Leases are forgotten;
`kubectl canary get -o wide` reads the S and the holders from the Leases (the S with most live
Leases during a change of --shards).
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from canary.core.shards import (
    LeaseView,
    fair_share,
    member_lease_name,
    plan,
    shard_in,
    shard_lease_name,
    shard_of,
    sharding_seen,
)

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
LEASE = 15.0


def shard(index: int, holder: str | None, age: float = 1.0, shards: int = 4) -> LeaseView:
    return LeaseView(shard_lease_name(index, shards), holder, NOW - timedelta(seconds=age), LEASE)


def member(identity: str, age: float = 1.0) -> LeaseView:
    return LeaseView(member_lease_name(identity), identity, NOW - timedelta(seconds=age), LEASE)


# ---------------------------------------------------------------- a Rollout's shard


def test_a_rollouts_shard_is_the_same_in_another_process() -> None:
    keys = [f"ns-{n}/rollout-{n}" for n in range(50)]
    script = f"from canary.core.shards import shard_of; print([shard_of(k, 7) for k in {keys!r}])"
    other = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert other.stdout.strip() == str([shard_of(key, 7) for key in keys])


def test_known_shards_never_change() -> None:
    # a change of the digest would move every Rollout to another replica at an upgrade
    keys = ("shop/ui", "shop/cart", "default/api")
    assert [shard_of(key, 4) for key in keys] == [0, 2, 0]
    assert [shard_of(key, 16) for key in keys] == [8, 2, 4]
    assert shard_of("shop/ui", 1) == 0


@given(st.text(min_size=1), st.integers(min_value=1, max_value=64))
def test_a_shard_is_in_range(key: str, shards: int) -> None:
    assert 0 <= shard_of(key, shards) < shards


def test_rollouts_spread_over_the_shards() -> None:
    counts = Counter(shard_of(f"ns/r{n}", 8) for n in range(8000))
    assert set(counts) == set(range(8))
    assert max(counts.values()) < 1.2 * min(counts.values())


def test_shard_lease_names_are_read_back_only_for_the_same_count() -> None:
    assert shard_in(shard_lease_name(3, 4), 4) == 3
    assert shard_in(shard_lease_name(3, 4), 8) is None  # a replica of another --shards
    assert shard_in("canary-shard-9-of-4", 4) is None
    assert shard_in("canary-controller", 4) is None
    assert shard_in(member_lease_name("a"), 4) is None


def test_fair_share_is_the_ceiling() -> None:
    assert [fair_share(4, n) for n in (1, 2, 3, 4, 5)] == [4, 2, 2, 1, 1]


# ---------------------------------------------------------------- who takes and gives what


def test_replicas_starting_together_aim_at_different_shards() -> None:
    leases = [member("a"), member("b")]
    first = plan("a", 4, leases, [], NOW)
    second = plan("b", 4, leases, [], NOW)
    assert first.replicas == second.replicas == ("a", "b")
    assert first.share == 2
    assert len(first.take) == len(second.take) == 2
    assert not set(first.take) & set(second.take)


def test_a_lone_replica_takes_every_shard() -> None:
    decided = plan("a", 4, [member("a")], [], NOW)
    assert sorted(decided.take) == [0, 1, 2, 3]
    assert decided.give_up == ()


def test_a_joining_replica_gets_its_share_from_the_one_holding_all() -> None:
    leases = [member("a"), member("b"), *(shard(n, "a") for n in range(4))]
    holder = plan("a", 4, leases, [0, 1, 2, 3], NOW)
    joining = plan("b", 4, leases, [], NOW)
    assert len(holder.give_up) == 2 and holder.take == ()
    assert joining.take == () and joining.give_up == ()  # nothing free yet
    handed = [shard(n, None if n in holder.give_up else "a") for n in range(4)]
    after = plan("b", 4, [member("a"), member("b"), *handed], [], NOW)
    assert sorted(after.take) == sorted(holder.give_up)


def test_the_shards_of_a_dead_replica_are_taken_once_expired() -> None:
    alive = [shard(0, "a"), shard(1, "a"), shard(2, "b"), shard(3, "b")]
    before = plan("a", 4, [member("a"), member("b"), *alive], [0, 1], NOW)
    assert before.take == () and before.give_up == ()
    dead = [shard(0, "a"), shard(1, "a"), shard(2, "b", age=20), shard(3, "b", age=20)]
    after = plan("a", 4, [member("a"), member("b", age=20), *dead], [0, 1], NOW)
    assert after.replicas == ("a",)
    assert sorted(after.take) == [2, 3]
    assert [lease.name for lease in after.forget] == [member_lease_name("b")]


def test_shard_leases_of_another_count_are_deleted_once_nobody_holds_them() -> None:
    old_count = [shard(0, "old", shards=2), shard(1, None, shards=2), shard(0, "x", 20, shards=3)]
    decided = plan("a", 4, [member("a"), *old_count], [], NOW)
    assert sorted(lease.name for lease in decided.forget) == sorted(
        [shard_lease_name(1, 2), shard_lease_name(0, 3)]
    )
    assert decided.replicas == ("a",) and sorted(decided.take) == [0, 1, 2, 3]


def test_a_shard_held_in_time_is_never_taken() -> None:
    leases = [member("a"), member("b"), shard(0, "b", age=14)]
    assert 0 not in plan("a", 4, leases, [], NOW).take


def test_uneven_holdings_are_evened_out_by_one_giver() -> None:
    leases = [
        member("a"),
        member("b"),
        member("c"),
        shard(0, "a"),
        shard(1, "a"),
        shard(2, "b"),
        shard(3, "b"),
    ]
    a = plan("a", 4, leases, [0, 1], NOW)
    b = plan("b", 4, leases, [2, 3], NOW)
    c = plan("c", 4, leases, [], NOW)
    assert len(a.give_up) == 1 and b.give_up == ()  # only the first of those holding most
    assert c.take == ()
    freed = [
        lease if lease.name != shard_lease_name(a.give_up[0], 4) else shard(1, None)
        for lease in leases
    ]
    assert plan("c", 4, freed, [], NOW).take == a.give_up
    assert plan("a", 4, freed, [0], NOW).take == ()  # c is below its share: a waits


def test_more_than_the_share_is_handed_back() -> None:
    leases = [member(name) for name in "abcd"] + [shard(n, "a") for n in range(4)]
    decided = plan("a", 4, leases, [0, 1, 2, 3], NOW)
    assert len(decided.give_up) == 3


def test_its_own_hold_wins_over_an_older_list() -> None:
    # the list still shows b on shard 1, which this replica has taken since
    leases = [member("a"), member("b"), shard(1, "b")]
    decided = plan("a", 4, leases, [1], NOW)
    assert 1 not in decided.take
    # and a shard the list shows as ours, that we no longer hold, is free again
    again = plan("a", 4, [member("a"), shard(2, "a")], [], NOW)
    assert 2 in again.take


@given(
    st.integers(min_value=2, max_value=12),
    st.integers(min_value=1, max_value=5),
    st.randoms(use_true_random=False),
)
def test_replicas_following_the_plan_end_spread_evenly(shards: int, count: int, rng) -> None:
    """Replicas taking turns (each once a round, in any order), each acting on a fresh list,
    end with every shard held and holdings that differ by at most one, none above the share."""
    names = [f"r{n}" for n in range(count)]
    holders: dict[int, str] = {}
    turns = [name for _ in range(3 * shards + 3) for name in rng.sample(names, count)]
    for identity in turns:  # rounds in which each replica acts once, in any order
        leases = [member(name) for name in names]
        leases += [shard(n, holder, shards=shards) for n, holder in holders.items()]
        mine = [n for n, holder in holders.items() if holder == identity]
        decided = plan(identity, shards, leases, mine, NOW)
        for n in decided.give_up:
            del holders[n]
        for n in decided.take:
            holders.setdefault(n, identity)
    counts = Counter(holders.values())
    assert len(holders) == shards
    held = [counts.get(name, 0) for name in names]
    assert max(held) - min(held) <= 1
    assert max(held) <= fair_share(shards, count)


# ---------------------------------------------------------------- what -o wide reads


def test_the_sharding_seen_names_live_holders_of_the_s_in_use() -> None:
    leases = [
        shard(0, "a"),
        shard(1, "b", age=20),  # expired
        shard(0, "old", age=20, shards=2),  # a former --shards 2
        shard(1, "old", age=20, shards=2),
        member("a"),
    ]
    seen = sharding_seen(leases, NOW)
    assert seen is not None
    assert (seen.shards, dict(seen.holders)) == (4, {0: "a"})
    key = next(f"ns/r{n}" for n in range(100) if shard_of(f"ns/r{n}", 4) == 1)
    assert seen.of(key) == (1, None)
    assert sharding_seen([member("a")], NOW) is None
