"""Sandbox API server, object semantics through the official `kubernetes` client over HTTP.

Covers: CRUD of custom objects, uid/creationTimestamp/resourceVersion/generation, 409 on a
stale resourceVersion and on duplicate names, 404s (object, namespace), 422 with field paths on
schema violations, pruning and defaults, the status subresource both ways, merge / JSON /
strategic / apply patches, label and field selectors, finalizers, CRD install and removal.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from sandbox_helpers import WIDGET_GROUP, WIDGET_PLURAL, WIDGET_VERSION, widget

from canary_sandbox.apiserver import ApiServer

G, V, P, NS = WIDGET_GROUP, WIDGET_VERSION, WIDGET_PLURAL, "default"


def create(custom: client.CustomObjectsApi, body: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = custom.create_namespaced_custom_object(G, V, NS, P, body)
    return result


def get(custom: client.CustomObjectsApi, name: str = "ui") -> dict[str, Any]:
    result: dict[str, Any] = custom.get_namespaced_custom_object(G, V, NS, P, name)
    return result


def status_of(error: ApiException) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(error.body)
    return result


def test_create_sets_server_fields(custom: client.CustomObjectsApi) -> None:
    created = create(custom, widget(weight=10))
    metadata = created["metadata"]
    assert metadata["uid"]
    assert metadata["creationTimestamp"].endswith("Z")
    assert metadata["generation"] == 1
    assert isinstance(metadata["resourceVersion"], str)
    assert get(custom) == created


def test_resource_versions_increase_globally(custom: client.CustomObjectsApi) -> None:
    first = create(custom, widget("a"))
    second = create(custom, widget("b"))
    assert int(second["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    listed = custom.list_namespaced_custom_object(G, V, NS, P)
    assert int(listed["metadata"]["resourceVersion"]) >= int(second["metadata"]["resourceVersion"])
    assert [item["metadata"]["name"] for item in listed["items"]] == ["a", "b"]


def test_duplicate_create_is_already_exists(custom: client.CustomObjectsApi) -> None:
    create(custom, widget())
    with pytest.raises(ApiException) as caught:
        create(custom, widget())
    assert caught.value.status == 409
    assert status_of(caught.value)["reason"] == "AlreadyExists"
    assert status_of(caught.value)["message"] == f'{P}.{G} "ui" already exists'


def test_missing_object_is_not_found_status(custom: client.CustomObjectsApi) -> None:
    with pytest.raises(ApiException) as caught:
        get(custom, "nope")
    status = status_of(caught.value)
    assert caught.value.status == 404
    assert status["kind"] == "Status"
    assert status["status"] == "Failure"
    assert status["reason"] == "NotFound"
    assert status["message"] == f'{P}.{G} "nope" not found'


def test_create_in_missing_namespace_is_not_found(custom: client.CustomObjectsApi) -> None:
    body = widget()
    body["metadata"]["namespace"] = "ghost"
    with pytest.raises(ApiException) as caught:
        custom.create_namespaced_custom_object(G, V, "ghost", P, body)
    assert caught.value.status == 404
    assert status_of(caught.value)["message"] == 'namespaces "ghost" not found'


def test_stale_resource_version_is_conflict(custom: client.CustomObjectsApi) -> None:
    stale = create(custom, widget())
    fresh = dict(stale, spec={**stale["spec"], "weight": 5})
    custom.replace_namespaced_custom_object(G, V, NS, P, "ui", fresh)
    stale["spec"]["weight"] = 7
    with pytest.raises(ApiException) as caught:
        custom.replace_namespaced_custom_object(G, V, NS, P, "ui", stale)
    status = status_of(caught.value)
    assert caught.value.status == 409
    assert status["reason"] == "Conflict"
    assert status["message"] == (
        f'Operation cannot be fulfilled on {P}.{G} "ui": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    assert get(custom)["spec"]["weight"] == 5


def test_merge_patch_carrying_stale_resource_version_is_conflict(
    custom: client.CustomObjectsApi,
) -> None:
    created = create(custom, widget())
    custom.patch_namespaced_custom_object(G, V, NS, P, "ui", {"spec": {"weight": 1}})
    patch = {"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]}}
    with pytest.raises(ApiException) as caught:
        custom.patch_namespaced_custom_object(G, V, NS, P, "ui", patch)
    assert caught.value.status == 409


@pytest.mark.parametrize(
    ("spec", "field", "fragment"),
    [
        (
            {"analysis": {"failureLimit": -1}},
            "spec.analysis.failureLimit",
            "greater than or equal to 0",
        ),
        (
            {"analysis": {"failureLimit": "two"}},
            "spec.analysis.failureLimit",
            "must be of type integer",
        ),
        ({"mode": "maybe"}, "spec.mode", 'supported values: "hold", "fail", "pass"'),
        ({"weight": 101}, "spec.weight", "less than or equal to 100"),
        ({"ratio": 0}, "spec.ratio", "should be greater than 0"),
        ({"version": "2"}, "spec.version", "should match '^v[0-9]+$'"),
        ({"tags": []}, "spec.tags", "should have at least 1 items"),
        ({"tags": ["a", "b", "c"]}, "spec.tags", "must have at most 2 items"),
        ({"labels": {"a": 1}}, "spec.labels.a", "must be of type string"),
        ({"port": 1.5}, "spec.port", "integer-or-string"),
        ({"host": ""}, "spec.host", "at least 1 chars long"),
        ({"host": "x" * 21}, "spec.host", "may not be longer than 20"),
    ],
)
def test_schema_violation_is_invalid_with_field_path(
    custom: client.CustomObjectsApi, spec: dict[str, Any], field: str, fragment: str
) -> None:
    with pytest.raises(ApiException) as caught:
        create(custom, widget(**spec))
    status = status_of(caught.value)
    assert caught.value.status == 422
    assert status["reason"] == "Invalid"
    causes = status["details"]["causes"]
    assert [cause["field"] for cause in causes] == [field]
    assert fragment in causes[0]["message"]
    assert status["message"].startswith(f'Widget.{G} "ui" is invalid: {field}: ')


def test_missing_required_field_is_reported(custom: client.CustomObjectsApi) -> None:
    body = widget()
    del body["spec"]["host"]
    with pytest.raises(ApiException) as caught:
        create(custom, body)
    cause = status_of(caught.value)["details"]["causes"][0]
    assert (cause["field"], cause["reason"], cause["message"]) == (
        "spec.host",
        "FieldValueRequired",
        "Required value",
    )


def test_several_violations_are_all_listed(custom: client.CustomObjectsApi) -> None:
    with pytest.raises(ApiException) as caught:
        create(custom, widget(weight=-1, mode="x"))
    status = status_of(caught.value)
    assert {c["field"] for c in status["details"]["causes"]} == {"spec.weight", "spec.mode"}
    assert status["message"].count("spec.") >= 2


def test_schema_is_enforced_on_update_and_patch(custom: client.CustomObjectsApi) -> None:
    created = create(custom, widget())
    created["spec"]["weight"] = 500
    with pytest.raises(ApiException) as on_update:
        custom.replace_namespaced_custom_object(G, V, NS, P, "ui", created)
    with pytest.raises(ApiException) as on_patch:
        custom.patch_namespaced_custom_object(G, V, NS, P, "ui", {"spec": {"weight": 500}})
    assert on_update.value.status == on_patch.value.status == 422
    assert "weight" not in get(custom)["spec"]


def test_nullable_and_preserved_fields(custom: client.CustomObjectsApi) -> None:
    created = create(custom, widget(note=None, extra={"anything": {"goes": [1, 2]}}, port="http"))
    assert created["spec"]["note"] is None
    assert created["spec"]["extra"] == {"anything": {"goes": [1, 2]}}
    assert created["spec"]["port"] == "http"


def test_unknown_fields_are_pruned_and_defaults_applied(custom: client.CustomObjectsApi) -> None:
    body = widget(unknown=1, analysis={"failureLimit": 2, "typo": True})
    body["topLevelJunk"] = "x"
    created = create(custom, body)
    assert "unknown" not in created["spec"]
    assert created["spec"]["analysis"] == {"failureLimit": 2}
    assert "topLevelJunk" not in created
    assert created["spec"]["mode"] == "hold"


def test_status_is_ignored_on_main_resource(custom: client.CustomObjectsApi) -> None:
    body = widget()
    body["status"] = {"phase": "Sneaky"}
    created = create(custom, body)
    assert "status" not in created
    created["status"] = {"phase": "Sneaky"}
    updated = custom.replace_namespaced_custom_object(G, V, NS, P, "ui", created)
    assert "status" not in updated
    patched = custom.patch_namespaced_custom_object(
        G, V, NS, P, "ui", {"status": {"phase": "Sneaky"}}
    )
    assert "status" not in patched


def test_status_subresource_changes_only_status(custom: client.CustomObjectsApi) -> None:
    created = create(custom, widget(weight=1))
    body = dict(created, spec={**created["spec"], "weight": 99}, status={"phase": "Progressing"})
    updated = custom.replace_namespaced_custom_object_status(G, V, NS, P, "ui", body)
    assert updated["status"] == {"phase": "Progressing"}
    assert updated["spec"]["weight"] == 1
    assert updated["metadata"]["generation"] == 1
    patched = custom.patch_namespaced_custom_object_status(
        G, V, NS, P, "ui", {"status": {"weight": 10}, "spec": {"weight": 50}}
    )
    assert patched["status"] == {"phase": "Progressing", "weight": 10}
    assert patched["spec"]["weight"] == 1
    assert int(patched["metadata"]["resourceVersion"]) > int(updated["metadata"]["resourceVersion"])


def test_status_write_with_stale_resource_version_is_conflict(
    custom: client.CustomObjectsApi,
) -> None:
    created = create(custom, widget())
    custom.patch_namespaced_custom_object(G, V, NS, P, "ui", {"spec": {"weight": 3}})
    created["status"] = {"phase": "Late"}
    with pytest.raises(ApiException) as caught:
        custom.replace_namespaced_custom_object_status(G, V, NS, P, "ui", created)
    assert caught.value.status == 409


def test_generation_bumps_only_on_spec_changes(custom: client.CustomObjectsApi) -> None:
    create(custom, widget())
    labelled = custom.patch_namespaced_custom_object(
        G, V, NS, P, "ui", {"metadata": {"labels": {"a": "b"}, "annotations": {"x": "y"}}}
    )
    assert labelled["metadata"]["generation"] == 1
    changed = custom.patch_namespaced_custom_object(G, V, NS, P, "ui", {"spec": {"weight": 4}})
    assert changed["metadata"]["generation"] == 2
    again = custom.patch_namespaced_custom_object(G, V, NS, P, "ui", {"spec": {"weight": 4}})
    assert again["metadata"]["generation"] == 2
    assert again["metadata"]["resourceVersion"] == changed["metadata"]["resourceVersion"]


def test_json_patch_with_test_operation(custom: client.CustomObjectsApi) -> None:
    create(custom, widget(weight=10, tags=["a"]))
    operations = [
        {"op": "test", "path": "/spec/weight", "value": 10},
        {"op": "replace", "path": "/spec/weight", "value": 20},
        {"op": "add", "path": "/spec/tags/-", "value": "b"},
        {"op": "remove", "path": "/spec/mode"},
    ]
    patched = json_patch(custom, operations)
    assert patched["spec"]["weight"] == 20
    assert patched["spec"]["tags"] == ["a", "b"]
    assert patched["spec"]["mode"] == "hold"  # removed, then defaulted again like the real server
    with pytest.raises(ApiException) as caught:
        json_patch(custom, [{"op": "test", "path": "/spec/weight", "value": 10}])
    assert caught.value.status == 422
    assert get(custom)["spec"]["weight"] == 20


def json_patch(custom: client.CustomObjectsApi, operations: list[Any]) -> dict[str, Any]:
    result: dict[str, Any] = custom.patch_namespaced_custom_object(
        G, V, NS, P, "ui", operations, _content_type="application/json-patch+json"
    )
    return result


def apply(custom: client.CustomObjectsApi, body: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = custom.patch_namespaced_custom_object(
        G,
        V,
        NS,
        P,
        body["metadata"]["name"],
        body,
        field_manager="test",
        _content_type="application/apply-patch+yaml",
    )
    return result


def test_merge_patch_null_deletes_and_lists_replace(custom: client.CustomObjectsApi) -> None:
    create(custom, widget(tags=["a", "b"], labels={"x": "1", "y": "2"}))
    patched = custom.patch_namespaced_custom_object(
        G, V, NS, P, "ui", {"spec": {"tags": ["c"], "labels": {"x": None}}}
    )
    assert patched["spec"]["tags"] == ["c"]
    assert patched["spec"]["labels"] == {"y": "2"}


def test_server_side_apply_creates_then_merges(custom: client.CustomObjectsApi) -> None:
    body = widget(weight=1)
    apply(custom, body)  # 201 Created, as the real server answers (the client returns None)
    assert get(custom)["spec"]["weight"] == 1
    body["spec"]["weight"] = 2
    applied = apply(custom, body)
    assert applied["spec"]["weight"] == 2
    assert applied["metadata"]["generation"] == 2


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=ui", ["a", "b"]),
        ("app=ui,track!=canary", ["a"]),
        ("track in (canary, beta)", ["b", "c"]),
        ("track notin (canary)", ["a", "c", "d"]),
        ("track", ["a", "b", "c"]),
        ("!track", ["d"]),
    ],
)
def test_label_selectors(
    custom: client.CustomObjectsApi, selector: str, expected: list[str]
) -> None:
    for name, labels in {
        "a": {"app": "ui", "track": "stable"},
        "b": {"app": "ui", "track": "canary"},
        "c": {"app": "api", "track": "beta"},
        "d": {"app": "api"},
    }.items():
        body = widget(name)
        body["metadata"]["labels"] = labels
        create(custom, body)
    listed = custom.list_namespaced_custom_object(G, V, NS, P, label_selector=selector)
    assert [item["metadata"]["name"] for item in listed["items"]] == expected


def test_field_selector_and_cross_namespace_list(
    api_server: ApiServer, custom: client.CustomObjectsApi
) -> None:
    api_server.create_namespace("shop")
    create(custom, widget("a"))
    body = widget("a")
    body["metadata"]["namespace"] = "shop"
    custom.create_namespaced_custom_object(G, V, "shop", P, body)
    everywhere = custom.list_cluster_custom_object(G, V, P)
    assert sorted(i["metadata"]["namespace"] for i in everywhere["items"]) == ["default", "shop"]
    only_shop = custom.list_cluster_custom_object(
        G, V, P, field_selector="metadata.namespace=shop,metadata.name=a"
    )
    assert [i["metadata"]["namespace"] for i in only_shop["items"]] == ["shop"]


def test_finalizers_hold_deletion_until_removed(custom: client.CustomObjectsApi) -> None:
    body = widget()
    body["metadata"]["finalizers"] = ["canary.dev/restore"]
    create(custom, body)
    custom.delete_namespaced_custom_object(G, V, NS, P, "ui")
    marked = get(custom)
    assert marked["metadata"]["deletionTimestamp"]
    custom.patch_namespaced_custom_object(G, V, NS, P, "ui", {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as caught:
        get(custom)
    assert caught.value.status == 404


def test_delete_removes_object(custom: client.CustomObjectsApi) -> None:
    create(custom, widget())
    custom.delete_namespaced_custom_object(G, V, NS, P, "ui")
    with pytest.raises(ApiException) as caught:
        get(custom)
    assert caught.value.status == 404


def test_crd_deletion_stops_serving(api_client: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(api_client)
    create(custom, widget())
    extensions = client.ApiextensionsV1Api(api_client)
    names = [crd.metadata.name for crd in extensions.list_custom_resource_definition().items]
    assert f"{P}.{G}" in names
    extensions.delete_custom_resource_definition(f"{P}.{G}")
    with pytest.raises(ApiException) as caught:
        custom.list_namespaced_custom_object(G, V, NS, P)
    assert caught.value.status == 404


def test_crd_installed_over_http_is_served_with_short_names(api_client: client.ApiClient) -> None:
    extensions = client.ApiextensionsV1Api(api_client)
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {
                "kind": "Gadget",
                "plural": "gadgets",
                "singular": "gadget",
                "shortNames": ["gd"],
            },
            "scope": "Cluster",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }
    created = extensions.create_custom_resource_definition(crd)
    conditions = {c.type: c.status for c in created.status.conditions}
    assert conditions["Established"] == "True"
    resources = client.CustomObjectsApi(api_client).get_api_resources("example.com", "v1")
    (gadgets,) = resources.resources
    assert (gadgets.name, gadgets.kind, gadgets.namespaced, gadgets.short_names) == (
        "gadgets",
        "Gadget",
        False,
        ["gd"],
    )
    custom = client.CustomObjectsApi(api_client)
    made = custom.create_cluster_custom_object(
        "example.com",
        "v1",
        "gadgets",
        {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}, "x": 1},
    )
    assert made["x"] == 1


def test_invalid_crd_is_rejected(api_client: client.ApiClient) -> None:
    extensions = client.ApiextensionsV1Api(api_client)
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "wrong.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"kind": "Gadget", "plural": "gadgets"},
            "scope": "Namespaced",
            "versions": [{"name": "v1", "served": True, "storage": True}],
        },
    }
    with pytest.raises(ApiException) as caught:
        extensions.create_custom_resource_definition(crd)
    assert caught.value.status == 422
    assert status_of(caught.value)["details"]["causes"][0]["field"] == "metadata.name"
