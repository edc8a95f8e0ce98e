"""--shards: controller replicas sharing the Rollouts on shard Leases (ON_BOTH: the sandbox, and
the real control plane with real coordination.k8s.io Leases).

Two controllers in this process (identities `a` and `b`), wired as `canary controller --shards 4`
wires them, with 3 s leases. Eight Rollouts (two per shard), each on its own VirtualService and
DestinationRule, hold a mirror stage of an hour and store every check: each writes its status
every second, so writes are under way through every handover. Each controller's client records
every write it sends (who, which Rollout, when it began and ended on this process's one
monotonic clock, and the resourceVersion the API answered: the API's own order), and when it
acquired a shard Lease. Proven from those records, never from timings:

- a joining replica: `a` alone takes the 4 shards; `b` joins; they end with 2 each, `b`'s handed
  back by `a`; each Rollout is then written only by the holder its shard's Lease names; then `a`
  stops, hands its shards back, and `b` takes and writes them all;
- a replica whose Lease requests hang (its other requests still go through) stops writing for
  its shards before the other takes them: its last write for a shard ended before the other's
  acquisition of that shard's Lease began; the other then writes them all;
- in both, no Rollout was ever written by two replicas at once: in the API's order, a Rollout's
  writer changes at most once per handover, and the previous writer's last write had ended
  before the next one's first began.

And the options: `--shards` 0 or 1 is no sharding (the WriteGuard answers as before);
`--leader-elect` with `--shards` is refused in one sentence; a release cap counts only the
releases of the shards held.
"""

from __future__ import annotations

import copy
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from controller_helpers import Env
from support.controlplane import ON_BOTH
from support.polling import wait_until
from typer.testing import CliRunner

from canary.cli.app import app
from canary.controller.main import ControllerOptions, release_slots, shard_manager
from canary.controller.reconcile import Reconciler
from canary.controller.runtime import Controller, ShardManager, WriteGuard
from canary.controller.telemetry import Telemetry
from canary.controller.workqueue import WorkQueue
from canary.core.shards import shard_lease_name, shard_of
from canary.kube.client import KubeCluster
from canary.kube.port import UnavailableError, Written
from canary.mesh.istio import IstioRouter
from canary.testing import FixedVerdicts
from canary_sandbox.stack import example_release

Obj = dict[str, Any]
SHARDS = 4
LEASE_SECONDS = 3
PER_SHARD = 2
WAIT = 60.0  # seconds: a guard against hanging, never an assertion on speed


@dataclass(frozen=True)
class Write:
    writer: str
    key: str
    began: float
    ended: float
    version: int  # the resourceVersion answered: the order of writes in the API


@dataclass
class Recording:
    """The Cluster port of one replica, recording its writes and Lease acquisitions; with
    `hang` set, its Lease requests hang for their whole budget and fail, as an apiserver that
    does not answer them would (the replica's other requests still go through)."""

    cluster: KubeCluster
    identity: str
    writes: list[Write]
    acquired: list[tuple[str, float]] = field(default_factory=list)  # (lease, began)
    hang: threading.Event = field(default_factory=threading.Event)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cluster, name)

    def _write(self, namespace: str, name: str, call: Callable[[], Obj]) -> Obj:
        began = time.monotonic()
        obj = call()
        version = int(obj["metadata"]["resourceVersion"])
        self.writes.append(
            Write(self.identity, f"{namespace}/{name}", began, time.monotonic(), version)
        )
        return obj

    def patch_rollout_status(
        self, namespace: str, name: str, status: Obj, version: Any = None
    ) -> Obj:
        return self._write(
            namespace,
            name,
            lambda: self.cluster.patch_rollout_status(namespace, name, status, version),
        )

    def patch_rollout_metadata(self, namespace: str, name: str, metadata: Obj) -> Obj:
        return self._write(
            namespace, name, lambda: self.cluster.patch_rollout_metadata(namespace, name, metadata)
        )

    def update_virtual_service(self, namespace: str, name: str, mutate: Any) -> Written:
        return self._mesh(
            namespace, name, lambda: self.cluster.update_virtual_service(namespace, name, mutate)
        )

    def update_destination_rule(self, namespace: str, name: str, mutate: Any) -> Written:
        return self._mesh(
            namespace, name, lambda: self.cluster.update_destination_rule(namespace, name, mutate)
        )

    def _mesh(self, namespace: str, name: str, call: Callable[[], Written]) -> Written:
        began = time.monotonic()
        written = call()
        if written.written:  # each Rollout here has its own, of its own name
            version = int(written.obj["metadata"]["resourceVersion"])
            self.writes.append(
                Write(self.identity, f"{namespace}/{name}", began, time.monotonic(), version)
            )
        return written

    def try_acquire_lease(
        self, namespace: str, name: str, identity: str, seconds: int, timeout: Any = None
    ) -> bool:
        self._lease_request(timeout)
        began = time.monotonic()
        held = self.cluster.try_acquire_lease(namespace, name, identity, seconds, timeout)
        if held:
            self.acquired.append((name, began))
        return held

    def list_leases(self, namespace: str, prefix: str, timeout: Any = None) -> list[Obj]:
        self._lease_request(timeout)
        return self.cluster.list_leases(namespace, prefix, timeout)

    def release_lease(self, namespace: str, name: str, identity: str, timeout: Any = None) -> bool:
        self._lease_request(timeout)
        return self.cluster.release_lease(namespace, name, identity, timeout)

    def _lease_request(self, timeout: float | None) -> None:
        if self.hang.is_set():
            time.sleep(timeout or 1.0)
            raise UnavailableError("the Lease request timed out (the test hangs it)")


@dataclass
class Replica:
    identity: str
    cluster: Recording
    manager: ShardManager
    telemetry: Telemetry
    stop: threading.Event
    thread: threading.Thread

    def held(self) -> list[int]:
        return self.manager.held()

    def handovers(self, direction: str) -> float:
        value = self.telemetry.registry.get_sample_value(
            "canary_shard_handovers_total", {"direction": direction}
        )
        return value or 0.0

    def shutdown(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), f"replica {self.identity} did not stop"


@contextmanager
def replicas(env: Env, writes: list[Write]) -> Iterator[Callable[[str], Replica]]:
    """Start replicas of `canary controller --shards 4 --lease-namespace <the test's>`."""
    started: list[Replica] = []

    def start(identity: str) -> Replica:
        kube = KubeCluster.from_kubeconfig(str(env.kubeconfig), qps=1000, burst=1000)
        cluster = Recording(kube, identity, writes)
        telemetry, stop = Telemetry(), threading.Event()
        options = ControllerOptions(shards=SHARDS, lease_namespace=env.namespace, identity=identity)
        manager = shard_manager(
            options,
            cluster,
            telemetry,
            lease_seconds=LEASE_SECONDS,
            retry_seconds=0.25,
        )
        assert manager is not None
        guard = WriteGuard(telemetry, stopping=stop, shards=manager)
        reconciler = Reconciler(
            cluster=cluster,
            router=IstioRouter(),
            metrics=FixedVerdicts(),
            store_every_check=True,
            may_write=guard,
        )
        controller = Controller(
            cluster,
            reconciler,
            telemetry=telemetry,
            namespace=env.namespace,
            may_write=guard,
            workers=4,
            shards=manager,
        )
        thread = threading.Thread(target=controller.run, args=(stop,), daemon=True)
        thread.start()
        replica = Replica(identity, cluster, manager, telemetry, stop, thread)
        started.append(replica)
        return replica

    try:
        yield start
    finally:
        for replica in started:
            if not replica.stop.is_set():
                replica.shutdown()
            replica.cluster.cluster.close()


# ---------------------------------------------------------------- the Rollouts


def rollout_names(namespace: str) -> list[str]:
    """Names r<n> of Rollouts in `namespace`, PER_SHARD in every shard."""
    names: list[str] = []
    counts = dict.fromkeys(range(SHARDS), 0)
    for n in range(1000):
        shard = shard_of(f"{namespace}/r{n}", SHARDS)
        if counts[shard] < PER_SHARD:
            counts[shard] += 1
            names.append(f"r{n}")
        if len(names) == SHARDS * PER_SHARD:
            return names
    raise AssertionError("no names for every shard")


def create_rollouts(env: Env) -> list[str]:
    """The Rollouts, each on a copy of examples/ui's VirtualService and DestinationRule of its
    own name, holding an hour's mirror stage and checking every second; their keys."""
    names = rollout_names(env.namespace)
    vs, dr = env.vs(), env.dr()
    for name in names:
        for original in (vs, dr):
            body = copy.deepcopy(original)
            body["metadata"] = {"name": name, "namespace": env.namespace}
            env.client.request("POST", env.path_of(body).rsplit("/", 1)[0], body)
        rollout = example_release(namespace=env.namespace)
        rollout["metadata"]["name"] = name
        spec = rollout["spec"]
        spec["virtualService"]["name"] = name
        spec["destinationRule"]["name"] = name
        spec["stages"]["mirror"]["duration"] = "1h"
        spec["analysis"]["interval"] = "1s"
        env.apply(rollout)
    return [f"{env.namespace}/{name}" for name in names]


def written_by(writes: list[Write], identity: str, keys: list[str], since: float = 0.0) -> set[str]:
    return {
        w.key for w in list(writes) if w.writer == identity and w.key in keys and w.began > since
    }


def shard_keys(keys: list[str], shards: list[int]) -> list[str]:
    return [key for key in keys if shard_of(key, SHARDS) in shards]


def lease_holders(env: Env) -> dict[int, str]:
    holders = {}
    for shard in range(SHARDS):
        lease = env.client.get(
            "coordination.k8s.io/v1", "Lease", env.namespace, shard_lease_name(shard, SHARDS)
        )
        holders[shard] = (lease.get("spec") or {}).get("holderIdentity") or ""
    return holders


def assert_one_writer_at_a_time(writes: list[Write], most_changes: int = 1) -> None:
    """In the API's order, each Rollout's writer changes at most `most_changes` times, and at
    each change the previous writer's last write had ended before the next one's first began."""
    by_key: dict[str, list[Write]] = {}
    for write in writes:
        by_key.setdefault(write.key, []).append(write)
    for key, ordered in by_key.items():
        ordered.sort(key=lambda w: w.version)
        changes = [
            (old, new) for old, new in itertools.pairwise(ordered) if old.writer != new.writer
        ]
        assert len(changes) <= most_changes, (key, [(w.writer, w.version) for w in ordered])
        for old, new in changes:
            assert old.ended < new.began, (key, old, new)


# ---------------------------------------------------------------- the tests


@ON_BOTH
def test_replicas_share_the_shards_and_a_stopped_one_hands_them_over(env: Env) -> None:
    writes: list[Write] = []
    with replicas(env, writes) as start:
        a = start("a")
        wait_until(lambda: a.held() == [0, 1, 2, 3], "a alone holding every shard", WAIT)
        keys = create_rollouts(env)
        wait_until(
            lambda: written_by(writes, "a", keys) == set(keys), "a writing every Rollout", WAIT
        )

        b = start("b")
        wait_until(lambda: len(a.held()) == 2 and len(b.held()) == 2, "2 shards each", WAIT)
        spread = time.monotonic()
        assert a.handovers("released") == 2 and b.handovers("acquired") == 2
        assert b.telemetry.registry.get_sample_value("canary_shards_held") == 2
        assert b.telemetry.registry.get_sample_value("canary_leader") == 0  # no leader here
        holders = lease_holders(env)
        assert sorted(holders.values()) == ["a", "a", "b", "b"]
        b_keys = shard_keys(keys, b.held())
        wait_until(
            lambda: written_by(writes, "b", keys, spread) == set(b_keys),
            "b writing its Rollouts",
            WAIT,
        )
        settled = time.monotonic()
        wait_until(
            lambda: written_by(writes, "a", keys, settled) == set(keys) - set(b_keys),
            "a writing its Rollouts again",
            WAIT,
        )
        for write in [w for w in list(writes) if w.began > spread]:
            assert write.writer == holders[shard_of(write.key, SHARDS)], write

        a.shutdown()  # a rolling restart: a hands its shards back when stopped
        stopped = time.monotonic()
        assert a.handovers("released") == 4
        wait_until(lambda: b.held() == [0, 1, 2, 3], "b taking every shard", WAIT)
        wait_until(
            lambda: written_by(writes, "b", keys, stopped) == set(keys),
            "b writing every Rollout",
            WAIT,
        )
        assert not [w for w in list(writes) if w.writer == "a" and w.began > stopped]
        assert lease_holders(env) == dict.fromkeys(range(SHARDS), "b")
    assert_one_writer_at_a_time(writes, most_changes=2)  # a -> b for b's shards; a -> b at the stop


@ON_BOTH
def test_a_replica_whose_renewals_hang_stops_writing_before_its_shards_are_taken(env: Env) -> None:
    writes: list[Write] = []
    with replicas(env, writes) as start:
        a, b = start("a"), start("b")
        wait_until(lambda: len(a.held()) == 2 and len(b.held()) == 2, "2 shards each", WAIT)
        keys = create_rollouts(env)
        wait_until(
            lambda: {w.key for w in list(writes)} == set(keys), "every Rollout written", WAIT
        )
        lost = a.held()

        hung = time.monotonic()
        a.cluster.hang.set()
        wait_until(lambda: b.held() == [0, 1, 2, 3], "b taking a's shards", WAIT)
        wait_until(
            lambda: written_by(writes, "b", keys, hung) == set(keys),
            "b writing every Rollout",
            WAIT,
        )
        assert a.held() == []
        wait_until(lambda: a.handovers("lost") == 2, "a counting its shards lost", WAIT)
        for shard in lost:
            name = shard_lease_name(shard, SHARDS)
            taken = min(
                began for lease, began in b.cluster.acquired if lease == name and began > hung
            )
            last = max(
                w.ended
                for w in list(writes)
                if w.writer == "a" and shard_of(w.key, SHARDS) == shard
            )
            assert last < taken, f"a wrote for shard {shard} after b began to take it"
        assert lease_holders(env) == dict.fromkeys(range(SHARDS), "b")
    assert_one_writer_at_a_time(writes)


# ---------------------------------------------------------------- the options


def test_no_sharding_below_two_shards_and_writes_as_before() -> None:
    for shards in (0, 1):
        options = ControllerOptions(shards=shards)
        assert shard_manager(options, None, Telemetry()) is None  # type: ignore[arg-type]
    guard = WriteGuard(Telemetry())
    assert guard("shop/ui") is True
    guard.stopping.set()
    assert guard("shop/ui") is False


def test_leader_election_and_shards_exclude_each_other() -> None:
    with pytest.raises(ValueError, match="drop --leader-elect"):
        shard_manager(ControllerOptions(shards=4, leader_elect=True), None, Telemetry())  # type: ignore[arg-type]
    result = CliRunner().invoke(app, ["controller", "--leader-elect", "--shards", "4"])
    assert result.exit_code == 2
    assert "--leader-elect and --shards exclude each other: drop --leader-elect" in result.output


def test_a_release_cap_counts_only_the_shards_held() -> None:
    held = {"a/one"}
    slots = release_slots(1, WorkQueue(), mine=lambda key: key in held)
    assert slots is not None
    running = {"phase": "Progressing", "stage": "split"}
    for namespace in ("a", "b"):
        slots.observe({"metadata": {"namespace": namespace, "name": "one", "resourceVersion": "1"},
                       "status": running})  # fmt: skip
    assert slots.running() == 1  # b/one is another replica's
    assert not slots.claim("a/two").granted
    held.clear()  # a's shard went to another replica
    slots.recount()
    assert slots.running() == 0 and slots.claim("a/two").granted
