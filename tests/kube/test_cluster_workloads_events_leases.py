"""KubeCluster workloads, Events and Leases.

Covers: Deployment readiness through its status (set via /status on the sandbox, which has no
Deployment controller; tests/kube/test_real_workloads.py has the real one) with a message per
step; a missing Deployment; Events created with the involved object, source and timestamps, a
repeat folded into `count`, listed newest last and truncated to 1 KiB; Leases: create, renew,
another identity refused until expiry, takeover after expiry, a lost race (409) → False. Events
and Leases without injected faults run against both the sandbox and the real control plane.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cluster_helpers import NAMESPACE, cluster_at
from kubernetes import client
from support.controlplane import ON_BOTH

from canary.kube.client import KubeCluster
from canary.kube.port import InvalidError, KubeError
from canary.kube.workloads import deployment_state
from canary.testing import ManualClock
from canary_sandbox.apiserver import ApiServer
from canary_sandbox.stack import example

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def rollout_ref(namespace: str, name: str = "ui") -> dict[str, Any]:
    return {
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": namespace, "uid": "u-1", "resourceVersion": "42"},
    }


# ------------------------------------------------------------------ Deployments


@pytest.fixture
def apps(api_client: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api_client)


def set_status(apps: client.AppsV1Api, **status: int) -> None:
    apps.patch_namespaced_deployment_status(
        "ui-v2", NAMESPACE, {"status": status}, _content_type="application/merge-patch+json"
    )


def test_deployment_readiness_follows_its_status(cluster: KubeCluster, apps: client.AppsV1Api):
    missing = cluster.workload_state(NAMESPACE, "Deployment", "ui-v2")
    apps.create_namespaced_deployment(NAMESPACE, example("deployment-v2"))
    created = cluster.workload_state(NAMESPACE, "Deployment", "ui-v2")
    set_status(apps, observedGeneration=1, replicas=2, updatedReplicas=1, availableReplicas=1)
    updating = cluster.workload_state(NAMESPACE, "Deployment", "ui-v2")
    set_status(apps, updatedReplicas=2, availableReplicas=1)
    starting = cluster.workload_state(NAMESPACE, "Deployment", "ui-v2")
    set_status(apps, availableReplicas=2)
    ready = cluster.workload_state(NAMESPACE, "Deployment", "ui-v2")

    assert (missing.exists, missing.ready) == (False, False)
    assert missing.message == (
        "Deployment shop/ui-v2 does not exist: create it or fix spec.canary.workloadRef.name"
    )
    assert not created.ready
    assert "generation 1 not yet observed" in created.message
    assert updating.message == "Deployment shop/ui-v2 has 1 of 2 replicas updated"
    assert starting.message == "Deployment shop/ui-v2 has 1 of 2 replicas ready"
    assert (ready.exists, ready.ready) == (True, True)
    assert ready.message == "Deployment shop/ui-v2 has 2 of 2 replicas ready"


def test_a_new_spec_is_not_ready_until_observed(cluster: KubeCluster, apps: client.AppsV1Api):
    apps.create_namespaced_deployment(NAMESPACE, example("deployment-v2"))
    set_status(apps, observedGeneration=1, replicas=2, updatedReplicas=2, availableReplicas=2)

    apps.patch_namespaced_deployment(
        "ui-v2", NAMESPACE, {"spec": {"replicas": 3}}, _content_type="application/merge-patch+json"
    )
    state = cluster.workload_state(NAMESPACE, "Deployment", "ui-v2")

    assert not state.ready
    assert "not yet observed" in state.message


def test_only_deployments_are_supported(cluster: KubeCluster):
    with pytest.raises(InvalidError, match=r"kind StatefulSet .* use Deployment"):
        cluster.workload_state(NAMESPACE, "StatefulSet", "ui")


@pytest.mark.parametrize(
    ("deployment", "ready"),
    [
        ({"metadata": {"generation": 1}, "spec": {}, "status": {"observedGeneration": 1}}, False),
        (
            {
                "metadata": {"generation": 1},
                "spec": {},
                "status": {"observedGeneration": 1, "updatedReplicas": 1, "availableReplicas": 1},
            },
            True,
        ),
        ({"metadata": {"generation": 2}, "spec": {"replicas": 0}, "status": {}}, False),
    ],
)
def test_replicas_default_to_one(deployment: dict[str, Any], ready: bool):
    assert deployment_state("shop", "ui", deployment).ready is ready


def test_a_deployment_scaled_to_zero_is_never_ready() -> None:
    """Issue 14, defect 1: a canary with 0 pods once counted as ready (0 of 0) and, with
    `noData: pass`, was released."""
    deployment = {
        "metadata": {"generation": 2},
        "spec": {"replicas": 0},
        "status": {"observedGeneration": 2},
    }
    state = deployment_state("shop", "ui", deployment)
    assert not state.ready
    assert state.message == "Deployment shop/ui is scaled to 0 replicas: scale it up to release it"


# ------------------------------------------------------------------ Events


@ON_BOTH
def test_an_event_names_its_object_and_source(kubeconfig: Path, namespace: str):
    cluster = cluster_at(kubeconfig, ManualClock(T0))

    cluster.record_event(rollout_ref(namespace), "Warning", "GateFailed", "success-rate 97.1 < 99")
    [event] = cluster.list_events(namespace, "ui")

    assert event["involvedObject"] == {
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "Rollout",
        "name": "ui",
        "namespace": namespace,
        "uid": "u-1",
        "resourceVersion": "42",
    }
    assert (event["type"], event["reason"]) == ("Warning", "GateFailed")
    assert event["message"] == "success-rate 97.1 < 99"
    assert event["source"] == {"component": "canary-controller"}
    assert event["count"] == 1
    assert event["metadata"]["name"].startswith("ui.")
    assert datetime.fromisoformat(event["firstTimestamp"]) == T0


@ON_BOTH
def test_a_repeated_event_bumps_its_count(kubeconfig: Path, namespace: str):
    clock = ManualClock(T0)
    cluster = cluster_at(kubeconfig, clock)
    ref = rollout_ref(namespace)

    cluster.record_event(ref, "Normal", "Waiting", "canary not ready")
    clock.now = T0 + timedelta(seconds=30)
    cluster.record_event(ref, "Normal", "Waiting", "canary not ready")
    cluster.record_event(ref, "Normal", "Waiting", "canary not ready")
    [event] = cluster.list_events(namespace, "ui")

    assert event["count"] == 3
    assert datetime.fromisoformat(event["lastTimestamp"]) == T0 + timedelta(seconds=30)
    assert cluster.request_counts[("create", "events")] == 1
    assert cluster.request_counts[("patch", "events")] == 2


@ON_BOTH
def test_events_are_listed_for_one_object_newest_last(kubeconfig: Path, namespace: str):
    clock = ManualClock(T0)
    cluster = cluster_at(kubeconfig, clock)
    ref, other = rollout_ref(namespace), rollout_ref(namespace, "cart")

    cluster.record_event(ref, "Normal", "Started", "release v2 started")
    clock.now = T0 + timedelta(minutes=1)
    cluster.record_event(other, "Normal", "Started", "release v3 started")
    clock.now = T0 + timedelta(minutes=2)
    cluster.record_event(ref, "Normal", "Promoted", "weight 10")
    clock.now = T0 + timedelta(minutes=30)  # past the correlation window: a new Event
    cluster.record_event(ref, "Normal", "Started", "release v2 started")

    reasons = [event["reason"] for event in cluster.list_events(namespace, "ui")]

    assert reasons == ["Started", "Promoted", "Started"]


@ON_BOTH
def test_a_long_message_is_truncated_to_one_kib(kubeconfig: Path, namespace: str):
    cluster = cluster_at(kubeconfig, ManualClock(T0))

    cluster.record_event(rollout_ref(namespace), "Warning", "Invalid", "é" * 2000)
    [event] = cluster.list_events(namespace, "ui")

    assert len(event["message"].encode()) <= 1024
    assert event["message"].endswith("...")


@ON_BOTH
def test_an_event_deleted_meanwhile_is_created_again(
    kubeconfig: Path, namespace: str, api_client: client.ApiClient
):
    cluster = cluster_at(kubeconfig, ManualClock(T0))
    core = client.CoreV1Api(api_client)
    ref = rollout_ref(namespace)

    cluster.record_event(ref, "Normal", "Waiting", "canary not ready")
    [first] = cluster.list_events(namespace, "ui")
    core.delete_namespaced_event(first["metadata"]["name"], namespace)
    cluster.record_event(ref, "Normal", "Waiting", "canary not ready")
    [second] = cluster.list_events(namespace, "ui")

    assert second["count"] == 1
    assert second["metadata"]["name"] != first["metadata"]["name"]


# ------------------------------------------------------------------ Leases


@ON_BOTH
def test_only_one_identity_holds_the_lease(kubeconfig: Path, namespace: str):
    clock = ManualClock(T0)
    a, b = cluster_at(kubeconfig, clock), cluster_at(kubeconfig, clock)

    assert a.try_acquire_lease(namespace, "canary-leader", "a", 15) is True
    assert b.try_acquire_lease(namespace, "canary-leader", "b", 15) is False
    clock.now = T0 + timedelta(seconds=10)
    assert a.try_acquire_lease(namespace, "canary-leader", "a", 15) is True  # renew
    clock.now = T0 + timedelta(seconds=20)  # 10 s after the renewal: still held
    assert b.try_acquire_lease(namespace, "canary-leader", "b", 15) is False


@ON_BOTH
def test_an_expired_lease_is_taken_over(
    kubeconfig: Path, namespace: str, api_client: client.ApiClient
):
    clock = ManualClock(T0)
    a, b = cluster_at(kubeconfig, clock), cluster_at(kubeconfig, clock)
    coordination = client.CoordinationV1Api(api_client)
    a.try_acquire_lease(namespace, "canary-leader", "a", 15)

    clock.now = T0 + timedelta(seconds=16)
    taken = b.try_acquire_lease(namespace, "canary-leader", "b", 15)
    lost = a.try_acquire_lease(namespace, "canary-leader", "a", 15)
    lease = coordination.read_namespaced_lease("canary-leader", namespace)

    assert (taken, lost) == (True, False)
    assert lease.spec.holder_identity == "b"
    assert lease.spec.lease_transitions == 1
    assert lease.spec.renew_time == T0 + timedelta(seconds=16, microseconds=1)


def test_a_lost_race_for_the_lease_is_false(kubeconfig: Path, server: ApiServer):
    clock = ManualClock(T0)
    a = cluster_at(kubeconfig, clock)
    a.try_acquire_lease(NAMESPACE, "canary-leader", "a", 15)
    clock.now = T0 + timedelta(seconds=5)
    server.faults.conflict_next(1, resource="leases")

    assert a.try_acquire_lease(NAMESPACE, "canary-leader", "a", 15) is False
    assert a.try_acquire_lease(NAMESPACE, "canary-leader", "a", 15) is True


def test_a_renewal_that_would_outlast_its_timeout_fails(kubeconfig: Path, server: ApiServer):
    a = cluster_at(kubeconfig, ManualClock(T0))
    a.try_acquire_lease(NAMESPACE, "canary-leader", "a", 15)
    server.faults.delay(1.0)

    with pytest.raises(KubeError):
        a.try_acquire_lease(NAMESPACE, "canary-leader", "a", 15, timeout=0.5)


def test_a_renewal_with_a_timeout_is_not_retried(kubeconfig: Path, server: ApiServer):
    a = cluster_at(kubeconfig, ManualClock(T0))
    server.faults.fail_next(1, code=503, resource="leases")

    with pytest.raises(KubeError):
        a.try_acquire_lease(NAMESPACE, "canary-leader", "a", 15, timeout=5)
    server.faults.fail_next(1, code=503, resource="leases")
    assert a.try_acquire_lease(NAMESPACE, "canary-leader", "a", 15) is True  # retried


def test_two_creators_race_and_one_wins(kubeconfig: Path, server: ApiServer):
    clock = ManualClock(T0)
    a, b = cluster_at(kubeconfig, clock), cluster_at(kubeconfig, clock)
    server.faults.conflict_next(1, resource="leases")  # b's create: a created it first

    assert b.try_acquire_lease(NAMESPACE, "canary-leader", "b", 15) is False
    assert a.try_acquire_lease(NAMESPACE, "canary-leader", "a", 15) is True
