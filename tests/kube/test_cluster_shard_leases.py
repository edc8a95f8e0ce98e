"""KubeCluster's Lease calls for `--shards` (ON_BOTH: the sandbox and the real control plane).

Covers: `list_leases` returns the namespace's Leases whose name begins with the prefix, and no
other; `release_lease` empties holderIdentity only for its holder (another identity's call is
False and changes nothing), after which another identity takes the Lease at once, before it
would have expired; `delete_lease` deletes only at the resourceVersion given (a Lease renewed
since is kept: False), and a Lease already gone is False. `leases.view` reads them back.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from cluster_helpers import cluster_at
from support.controlplane import ON_BOTH

from canary.kube.leases import view
from canary.testing import ManualClock

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@ON_BOTH
def test_leases_are_listed_by_prefix(kubeconfig: Path, namespace: str) -> None:
    cluster = cluster_at(kubeconfig, ManualClock(T0))
    for name in ("canary-shard-0-of-2", "canary-shard-1-of-2", "canary-controller", "other"):
        assert cluster.try_acquire_lease(namespace, name, "a", 15)

    names = sorted(
        lease["metadata"]["name"] for lease in cluster.list_leases(namespace, "canary-shard-")
    )
    assert names == ["canary-shard-0-of-2", "canary-shard-1-of-2"]
    [seen] = [
        view(lease) for lease in cluster.list_leases(namespace, "canary-controller", timeout=5)
    ]
    assert (seen.holder, seen.duration_seconds) == ("a", 15)
    assert seen.alive(T0 + timedelta(seconds=15)) and not seen.alive(T0 + timedelta(seconds=16))


@ON_BOTH
def test_a_released_lease_is_taken_at_once(kubeconfig: Path, namespace: str) -> None:
    clock = ManualClock(T0)
    a, b = cluster_at(kubeconfig, clock), cluster_at(kubeconfig, clock)
    assert a.try_acquire_lease(namespace, "canary-shard-0-of-2", "a", 15)

    assert b.release_lease(namespace, "canary-shard-0-of-2", "b") is False  # not its holder
    assert b.try_acquire_lease(namespace, "canary-shard-0-of-2", "b", 15) is False
    clock.now = T0 + timedelta(seconds=1)
    assert a.release_lease(namespace, "canary-shard-0-of-2", "a", timeout=5) is True
    [released] = a.list_leases(namespace, "canary-shard-0-of-2")
    assert view(released).holder is None and not view(released).alive(clock.now)
    assert b.try_acquire_lease(namespace, "canary-shard-0-of-2", "b", 15) is True
    assert a.try_acquire_lease(namespace, "canary-shard-0-of-2", "a", 15) is False
    assert a.release_lease(namespace, "canary-missing", "a") is False


@ON_BOTH
def test_a_lease_is_deleted_only_at_the_version_seen(kubeconfig: Path, namespace: str) -> None:
    clock = ManualClock(T0)
    cluster = cluster_at(kubeconfig, clock)
    cluster.try_acquire_lease(namespace, "canary-replica-gone", "gone", 15)
    [seen] = cluster.list_leases(namespace, "canary-replica-")
    clock.now = T0 + timedelta(seconds=1)
    cluster.try_acquire_lease(namespace, "canary-replica-gone", "gone", 15)  # renewed since

    assert cluster.delete_lease(namespace, "canary-replica-gone", view(seen).version) is False
    [now] = cluster.list_leases(namespace, "canary-replica-")
    assert cluster.delete_lease(namespace, "canary-replica-gone", view(now).version, 5) is True
    assert cluster.list_leases(namespace, "canary-replica-") == []
    assert cluster.delete_lease(namespace, "canary-replica-gone", view(now).version) is False
