"""KubeCluster.stream_rollouts: list → SYNC → watch, reconnect, relist, stop.

Covers: SYNC with the listed objects, then ADDED/MODIFIED/DELETED; a dropped stream resumes
from the last resourceVersion (no new SYNC, nothing missed); 410 (an expired watch, or a
resourceVersion older than the server's history) → relist and a new SYNC; an unreachable API
is waited out, never raised; setting `stop` ends the generator while a watch is open; a
missing CRD is not transient and is raised. The tests without injected faults run against both
the sandbox and the real control plane.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from cluster_helpers import (
    NAMESPACE,
    ROLLOUT_CRD,
    Backend,
    Collector,
    create_rollout,
    store_rollout,
)
from kubernetes import client
from support.controlplane import ON_BOTH
from support.polling import wait_until
from support.rollouts import example_rollout

from canary.core.model import GROUP, PLURAL, VERSION
from canary.kube.client import KubeCluster
from canary.kube.port import CrdMissingError
from canary_sandbox.apiserver import ApiServer


@pytest.fixture
def stop() -> threading.Event:
    return threading.Event()


def start(cluster: KubeCluster, stop: threading.Event) -> Collector:
    return Collector(cluster.stream_rollouts(NAMESPACE, stop))


def watches(server: ApiServer) -> int:
    return server.request_log.count(verb="watch", resource="rollouts")


def lists(server: ApiServer) -> int:
    return server.request_log.count(verb="list", resource="rollouts")


def attempts(cluster: KubeCluster) -> int:
    """Requests the adapter tried (the sandbox does not log the ones it refuses offline)."""
    return sum(cluster.request_counts[(verb, "rollouts")] for verb in ("list", "watch"))


def watching(server: ApiServer, count: int) -> None:
    wait_until(lambda: watches(server) >= count, f"watch request number {count}")


def watch_open(cluster: KubeCluster) -> None:
    """Until the adapter has its watch open (the server answered the watch request)."""
    wait_until(lambda: cluster.request_counts[("watch", "rollouts")] >= 1, "an open watch")


def finish(collector: Collector, stop: threading.Event) -> None:
    stop.set()
    collector.thread.join(10)
    assert not collector.thread.is_alive()
    assert collector.error is None


@ON_BOTH
def test_sync_then_added_modified_deleted(
    cluster: KubeCluster, custom: client.CustomObjectsApi, namespace: str, stop: threading.Event
):
    create_rollout(custom, example_rollout("ui", namespace=namespace))
    collector = Collector(cluster.stream_rollouts(namespace, stop))
    collector.wait_for(1)
    watch_open(cluster)

    create_rollout(custom, example_rollout("cart", namespace=namespace))
    cluster.patch_rollout_status(namespace, "cart", {"phase": "Progressing"})
    custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "cart")
    events = collector.wait_for(4)
    finish(collector, stop)

    assert [e.type for e in events] == ["SYNC", "ADDED", "MODIFIED", "DELETED"]
    assert collector.names(0) == ["ui"]
    assert [collector.names(i) for i in (1, 2, 3)] == [["cart"]] * 3
    assert events[2].object is not None
    assert events[2].object["status"] == {"phase": "Progressing"}


def test_a_dropped_watch_resumes_from_the_last_resource_version(
    cluster: KubeCluster, server: ApiServer, stop: threading.Event
):
    collector = start(cluster, stop)
    collector.wait_for(1)
    watching(server, 1)
    store_rollout(server, example_rollout("ui"))
    collector.wait_for(2)

    server.faults.offline = True  # the reconnect fails until the server is back
    server.faults.drop_watches()
    store_rollout(server, example_rollout("cart"))  # changed while the adapter was away
    wait_until(lambda: attempts(cluster) >= 4, "a failed reconnect")
    server.faults.offline = False
    events = collector.wait_for(3)
    finish(collector, stop)

    assert collector.types() == ["SYNC", "ADDED", "ADDED"]
    assert collector.names(2) == ["cart"]
    assert events[2].object is not None
    assert lists(server) == 1


def test_an_expired_watch_relists_and_syncs_again(
    cluster: KubeCluster, server: ApiServer, stop: threading.Event
):
    collector = start(cluster, stop)
    collector.wait_for(1)
    watching(server, 1)

    store_rollout(server, example_rollout("ui"))
    collector.wait_for(2)
    server.faults.expire_watches()
    collector.wait_for(3)
    finish(collector, stop)

    assert collector.types() == ["SYNC", "ADDED", "SYNC"]
    assert collector.names(2) == ["ui"]
    assert lists(server) == 2


def test_a_resource_version_older_than_the_history_relists(tmp_path: Path, stop: threading.Event):
    with ApiServer(history=2) as server:
        server.install_crd_files([ROLLOUT_CRD])
        server.create_namespace(NAMESPACE)
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
        cluster = KubeCluster.from_kubeconfig(str(kubeconfig), qps=0, retry_base_seconds=0.001)
        collector = start(cluster, stop)
        collector.wait_for(1)
        watching(server, 1)

        server.faults.offline = True
        server.faults.drop_watches()
        for name in ("a", "b", "c"):  # three writes roll a two-event history over
            store_rollout(server, example_rollout(name))
        wait_until(lambda: attempts(cluster) >= 4, "a failed reconnect")
        server.faults.offline = False
        collector.wait_for(2)
        finish(collector, stop)

    assert collector.types() == ["SYNC", "SYNC"]
    assert sorted(collector.names(1)) == ["a", "b", "c"]


@ON_BOTH
def test_stop_ends_the_stream_while_a_watch_is_open(
    cluster: KubeCluster, namespace: str, stop: threading.Event
):
    collector = Collector(cluster.stream_rollouts(namespace, stop))
    collector.wait_for(1)
    watch_open(cluster)

    finish(collector, stop)

    assert collector.types() == ["SYNC"]
    assert cluster.request_counts[("watch", "rollouts")] == 1  # no reconnect after stop


def test_an_unreachable_api_is_waited_out_not_raised(
    cluster: KubeCluster, server: ApiServer, stop: threading.Event
):
    server.faults.offline = True
    collector = start(cluster, stop)
    wait_until(lambda: cluster.request_counts[("list", "rollouts")] >= 3, "three failed lists")

    server.faults.offline = False
    collector.wait_for(1)
    finish(collector, stop)

    assert collector.types() == ["SYNC"]


def test_stop_while_the_api_is_unreachable_ends_the_stream(
    cluster: KubeCluster, server: ApiServer, stop: threading.Event
):
    server.faults.offline = True
    collector = start(cluster, stop)
    wait_until(lambda: cluster.request_counts[("list", "rollouts")] >= 1, "a failed list")

    finish(collector, stop)

    assert collector.types() == []


def test_a_missing_crd_is_raised(api_server: ApiServer, kubeconfig: Path, stop: threading.Event):
    cluster = KubeCluster.from_kubeconfig(str(kubeconfig), qps=0)

    with pytest.raises(CrdMissingError):
        next(iter(cluster.stream_rollouts("default", stop)))


@ON_BOTH
def test_all_namespaces_are_streamed(
    cluster: KubeCluster,
    backend: Backend,
    custom: client.CustomObjectsApi,
    namespace: str,
    stop: threading.Event,
):
    web = backend.create_namespace("web")
    create_rollout(custom, example_rollout("ui", namespace=namespace))
    collector = Collector(cluster.stream_rollouts(None, stop), namespaces={namespace, web})
    collector.wait_for(1)
    watch_open(cluster)

    create_rollout(custom, example_rollout("site", namespace=web))
    events = collector.wait_for(2)
    finish(collector, stop)

    assert collector.names(0) == ["ui"]
    assert events[1].type == "ADDED"
    assert events[1].object is not None
    assert events[1].object["metadata"]["namespace"] == web
