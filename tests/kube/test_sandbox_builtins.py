"""Sandbox API server, built-in resources, discovery, faults and request counting.

Covers: Deployments and their status subresource (how tests set readiness), Leases with
optimistic concurrency (what leader election needs), core Events, events.k8s.io Events,
ConfigMaps, namespaces, discovery documents, the fault hooks and `request_log`.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import urllib3
from kubernetes import client
from kubernetes.client.rest import ApiException

from canary_sandbox.apiserver import ApiServer

NS = "default"


def deployment(name: str = "ui-v2") -> dict[str, Any]:
    labels = {"app": "ui", "version": "v2"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "ui", "image": "ui:2"}]},
            },
        },
    }


def test_deployment_status_is_set_through_the_status_subresource(
    api_client: client.ApiClient,
) -> None:
    apps = client.AppsV1Api(api_client)
    created = apps.create_namespaced_deployment(NS, deployment())
    assert created.spec.replicas == 1
    assert created.status is None or created.status.ready_replicas is None
    status = {
        "status": {
            "observedGeneration": 1,
            "replicas": 1,
            "readyReplicas": 1,
            "availableReplicas": 1,
            "updatedReplicas": 1,
        }
    }
    apps.patch_namespaced_deployment_status("ui-v2", NS, status)
    ready = apps.read_namespaced_deployment("ui-v2", NS)
    assert (ready.status.ready_replicas, ready.status.available_replicas) == (1, 1)
    assert ready.status.observed_generation == ready.metadata.generation == 1
    scaled = apps.patch_namespaced_deployment("ui-v2", NS, {"spec": {"replicas": 3}})
    assert scaled.metadata.generation == 2
    assert scaled.status.ready_replicas == 1


def test_deployment_strategic_merge_patch_merges_containers_by_name(
    api_client: client.ApiClient,
) -> None:
    apps = client.AppsV1Api(api_client)
    apps.create_namespaced_deployment(NS, deployment())
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "ui", "image": "ui:3"}]}}}}
    patched = apps.patch_namespaced_deployment(
        "ui-v2", NS, patch, _content_type="application/strategic-merge-patch+json"
    )
    (container,) = patched.spec.template.spec.containers
    assert (container.name, container.image) == ("ui", "ui:3")


def test_lease_update_with_stale_version_conflicts(api_client: client.ApiClient) -> None:
    leases = client.CoordinationV1Api(api_client)
    body = client.V1Lease(
        metadata=client.V1ObjectMeta(name="canary-controller"),
        spec=client.V1LeaseSpec(holder_identity="a", lease_duration_seconds=15),
    )
    created = leases.create_namespaced_lease(NS, body)
    created.spec.holder_identity = "b"
    renewed = leases.replace_namespaced_lease("canary-controller", NS, created)
    assert renewed.spec.holder_identity == "b"
    created.spec.holder_identity = "c"
    with pytest.raises(ApiException) as caught:
        leases.replace_namespaced_lease("canary-controller", NS, created)
    assert caught.value.status == 409
    assert leases.read_namespaced_lease("canary-controller", NS).spec.holder_identity == "b"


def test_core_and_events_v1_events_are_stored(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_event(
        NS,
        client.CoreV1Event(
            metadata=client.V1ObjectMeta(name="ui.1"),
            involved_object=client.V1ObjectReference(kind="Rollout", name="ui", namespace=NS),
            reason="Promoted",
            message="canary promoted",
            type="Normal",
        ),
    )
    events = client.EventsV1Api(api_client)
    events.create_namespaced_event(
        NS,
        client.EventsV1Event(
            metadata=client.V1ObjectMeta(name="ui.2"),
            event_time="2025-01-01T00:00:00.000000Z",
            reason="RolledBack",
            note="success rate 80 < 99",
            action="Rollback",
            reporting_controller="canary.dev/controller",
            reporting_instance="canary-0",
            type="Warning",
        ),
    )
    assert [e.reason for e in core.list_namespaced_event(NS).items] == ["Promoted"]
    assert [e.reason for e in events.list_namespaced_event(NS).items] == ["RolledBack"]


def test_configmaps_namespaces_and_label_selection(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="shop")))
    assert "shop" in [ns.metadata.name for ns in core.list_namespace().items]
    for name, labels in {"a": {"k": "1"}, "b": {"k": "2"}}.items():
        core.create_namespaced_config_map(
            "shop", client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, labels=labels))
        )
    selected = core.list_config_map_for_all_namespaces(label_selector="k=2")
    assert [cm.metadata.name for cm in selected.items] == ["b"]
    core.delete_namespace("shop")
    assert core.list_config_map_for_all_namespaces().items == []


def test_discovery_documents(api_server: ApiServer) -> None:
    http = urllib3.PoolManager()

    def get(path: str) -> Any:
        response = http.request("GET", api_server.url + path)
        assert response.status == 200, path
        return json.loads(response.data)

    assert get("/version")["gitVersion"].startswith("v1.")
    assert get("/api")["versions"] == ["v1"]
    groups = {g["name"]: g for g in get("/apis")["groups"]}
    assert groups["networking.istio.io"]["preferredVersion"]["version"] == "v1"
    assert {v["version"] for v in groups["networking.istio.io"]["versions"]} == {
        "v1",
        "v1beta1",
        "v1alpha3",
    }
    resources = {r["name"]: r for r in get("/apis/networking.istio.io/v1alpha3")["resources"]}
    assert resources["virtualservices"]["shortNames"] == ["vs"]
    assert resources["destinationrules"]["shortNames"] == ["dr"]
    assert "virtualservices/status" in resources
    widgets = {r["name"]: r for r in get("/apis/test.canary.dev/v1")["resources"]}
    assert widgets["widgets"]["categories"] == ["canary"]
    assert widgets["widgets/status"]["verbs"] == ["get", "patch", "update"]
    index = get("/openapi/v3")["paths"]
    document = get(index["apis/test.canary.dev/v1"]["serverRelativeURL"])
    schema = document["components"]["schemas"]["dev.canary.test.v1.Widget"]
    assert schema["properties"]["spec"]["required"] == ["host"]
    for health in ("/healthz", "/readyz", "/livez"):
        assert http.request("GET", api_server.url + health).status == 200


def test_request_log_counts_verbs_per_resource(
    api_server: ApiServer, api_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(api_client)
    api_server.request_log.clear()
    core.create_namespaced_config_map(
        NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="a"))
    )
    core.patch_namespaced_config_map("a", NS, {"data": {"x": "1"}})
    core.read_namespaced_config_map("a", NS)
    log = api_server.request_log
    assert log.writes("configmaps") == 2
    assert log.count(verb="get", resource="configmaps") == 1
    assert log.counters()[("patch", "configmaps")] == 1


def test_fault_hooks(api_server: ApiServer, api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="a"))
    api_server.faults.conflict_next(1)
    with pytest.raises(ApiException) as conflict:
        core.create_namespaced_config_map(NS, body)
    assert conflict.value.status == 409
    core.create_namespaced_config_map(NS, body)

    api_server.request_log.clear()
    api_server.faults.throttle_next(1, retry_after=0)
    assert core.read_namespaced_config_map("a", NS).metadata.name == "a"  # urllib3 retried
    assert [r.code for r in api_server.request_log.records] == [429, 200]

    api_server.faults.fail_next(1, code=500, resource="configmaps")
    with pytest.raises(ApiException) as failed:
        core.read_namespaced_config_map("a", NS)
    assert failed.value.status == 500

    api_server.faults.offline = True
    with pytest.raises(ApiException) as offline:
        core.read_namespaced_config_map("a", NS)
    assert offline.value.status == 503
    api_server.faults.reset()
    assert core.read_namespaced_config_map("a", NS).metadata.name == "a"
