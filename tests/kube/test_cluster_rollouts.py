"""KubeCluster and Rollouts: reads, the status subresource, metadata patches, CRD and schema errors.

Covers: list/get; status merge-patched through /status (spec untouched, lists replaced, sent as
application/merge-patch+json); request annotations merged into metadata; a missing CRD →
CrdMissingError with the fix; a schema rejection → InvalidError with the field path. All but
the missing CRD run against both the sandbox and the real control plane.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cluster_helpers import Backend, create_rollout
from kubernetes import client
from support.controlplane import ON_BOTH
from support.rollouts import example_rollout

from canary.kube.client import KubeCluster
from canary.kube.port import CrdMissingError, InvalidError, NotFoundError
from canary_sandbox.apiserver import ApiServer


@ON_BOTH
def test_rollouts_are_listed_and_read(
    cluster: KubeCluster, custom: client.CustomObjectsApi, namespace: str
):
    create_rollout(custom, example_rollout("ui", namespace=namespace))
    create_rollout(custom, example_rollout("cart", namespace=namespace))

    names = sorted(obj["metadata"]["name"] for obj in cluster.list_rollouts(namespace))
    everywhere = cluster.list_rollouts(None)

    assert names == ["cart", "ui"]
    assert len([o for o in everywhere if o["metadata"]["namespace"] == namespace]) == 2
    assert cluster.get_rollout(namespace, "ui")["spec"]["canary"]["version"] == "v2"


@ON_BOTH
def test_status_is_merge_patched_through_the_subresource(
    cluster: KubeCluster, custom: client.CustomObjectsApi, namespace: str, backend: Backend
):
    created = create_rollout(custom, example_rollout(namespace=namespace))
    cluster.patch_rollout_status(namespace, "ui", {"phase": "Progressing", "canaryWeight": 10})

    patched = cluster.patch_rollout_status(namespace, "ui", {"canaryWeight": 25, "stage": "split"})

    assert patched["status"] == {"phase": "Progressing", "canaryWeight": 25, "stage": "split"}
    assert patched["spec"] == created["spec"]
    assert patched["metadata"]["generation"] == created["metadata"]["generation"]
    assert cluster.request_counts[("patch", "rollouts/status")] == 2
    if backend.sandbox is not None:
        log = backend.sandbox.request_log
        assert log.count(verb="patch", resource="rollouts", subresource="status") == 2


@ON_BOTH
def test_status_lists_are_replaced_not_appended(
    cluster: KubeCluster, custom: client.CustomObjectsApi, namespace: str
):
    create_rollout(custom, example_rollout(namespace=namespace))
    condition = {
        "type": "Ready",
        "status": "False",
        "reason": "Waiting",
        "message": "m",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    cluster.patch_rollout_status(namespace, "ui", {"conditions": [condition, condition]})

    patched = cluster.patch_rollout_status(namespace, "ui", {"conditions": [condition]})

    assert len(patched["status"]["conditions"]) == 1


@ON_BOTH
def test_a_spec_change_in_a_status_patch_is_ignored(
    cluster: KubeCluster, custom: client.CustomObjectsApi, namespace: str
):
    created = create_rollout(custom, example_rollout(namespace=namespace))

    cluster.patch_rollout_status(namespace, "ui", {"phase": "Paused"})
    stored = cluster.get_rollout(namespace, "ui")

    assert stored["spec"] == created["spec"]
    assert stored["status"]["phase"] == "Paused"


@ON_BOTH
def test_metadata_annotations_are_merged(
    cluster: KubeCluster, custom: client.CustomObjectsApi, namespace: str
):
    create_rollout(custom, example_rollout(namespace=namespace))
    request = json.dumps({"action": "promote", "id": "r1"})

    cluster.patch_rollout_metadata(
        namespace, "ui", {"annotations": {"canary.dev/request": request}}
    )
    patched = cluster.patch_rollout_metadata(namespace, "ui", {"annotations": {"team": "web"}})

    assert patched["metadata"]["annotations"] == {"canary.dev/request": request, "team": "web"}


@ON_BOTH
def test_a_missing_rollout_is_not_found(cluster: KubeCluster, namespace: str):
    with pytest.raises(NotFoundError, match=rf"^Rollout {namespace}/ui not found"):
        cluster.get_rollout(namespace, "ui")


def test_a_missing_crd_names_the_fix(api_server: ApiServer, kubeconfig: Path):
    cluster = KubeCluster.from_kubeconfig(str(kubeconfig), qps=0)
    message = "the Rollout CRD (rollouts.canary.dev) is not installed: run `kubectl apply -f crds/`"

    with pytest.raises(CrdMissingError) as listed:
        cluster.list_rollouts("default")
    with pytest.raises(CrdMissingError) as patched:
        cluster.patch_rollout_status("default", "ui", {"phase": "Progressing"})

    assert str(listed.value) == message
    assert str(patched.value) == message


@ON_BOTH
def test_a_schema_rejection_names_the_field(
    cluster: KubeCluster, custom: client.CustomObjectsApi, namespace: str
):
    create_rollout(custom, example_rollout(namespace=namespace))

    with pytest.raises(InvalidError) as raised:
        cluster.patch_rollout_status(namespace, "ui", {"canaryWeight": "lots"})

    message = str(raised.value)
    assert message.startswith(f"the API server rejected Rollout {namespace}/ui: ")
    assert "status.canaryWeight" in message
