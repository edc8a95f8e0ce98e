"""`canary get -o wide` with a sharded controller (--shards), on the sandbox and the real
control plane: the table gains SHARD (the Rollout's shard of S) and HOLDER (the replica whose
shard Lease is held in time, `-` when none is), read from the shard Leases in
--lease-namespace; without shard Leases -o wide is the plain table.
"""

from __future__ import annotations

import itertools

from test_online_sandbox import Sandbox, ensure_namespace, sandbox_fixture  # noqa: F401

from canary.core.shards import shard_lease_name, shard_of

_numbers = itertools.count(1)


PLAIN_HEADER = ["NAME", "PHASE", "STAGE", "WEIGHT", "STABLE", "CANARY", "AGE"]


def lines(output: str) -> list[list[str]]:
    return [line.split() for line in output.strip().splitlines()]


def fresh_namespace(sandbox: Sandbox, stem: str) -> str:
    name = f"{stem}-{next(_numbers)}"
    if sandbox.plane is not None:
        ensure_namespace(sandbox.plane, name)
    else:
        sandbox.sandbox.create_namespace(name)
    return name


def test_wide_shows_each_rollouts_shard_and_holder(sandbox: Sandbox) -> None:
    namespace, leases = fresh_namespace(sandbox, "wide"), fresh_namespace(sandbox, "leases")
    for name in ("ui", "cart", "search"):
        sandbox.create_rollout(name, namespace=namespace)
    sandbox.cluster.try_acquire_lease(leases, shard_lease_name(0, 2), "replica-a", 600)
    sandbox.cluster.try_acquire_lease(leases, shard_lease_name(1, 2), "replica-b", 600)
    sandbox.cluster.release_lease(leases, shard_lease_name(1, 2), "replica-b")  # none holds 1

    result = sandbox.cli("get", "-n", namespace, "-o", "wide", "--lease-namespace", leases)
    assert result.exit_code == 0, result.output
    header, *rows = lines(result.output)
    assert header == [*PLAIN_HEADER, "SHARD", "HOLDER"]
    holders = {0: "replica-a", 1: "-"}
    for row in rows:
        shard = shard_of(f"{namespace}/{row[0]}", 2)
        assert row[-2:] == [f"{shard}/2", holders[shard]]
    assert sorted(row[0] for row in rows) == ["cart", "search", "ui"]


def test_wide_without_shard_leases_is_the_plain_table(sandbox: Sandbox) -> None:
    namespace, leases = fresh_namespace(sandbox, "plain"), fresh_namespace(sandbox, "none")
    sandbox.create_rollout("ui", namespace=namespace)

    result = sandbox.cli("get", "-n", namespace, "-o", "wide", "--lease-namespace", leases)
    assert result.exit_code == 0, result.output
    assert lines(result.output)[0] == PLAIN_HEADER
