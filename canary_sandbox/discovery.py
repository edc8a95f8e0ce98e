"""Discovery (`/version`, `/api`, `/apis`, ...) and `/openapi/v3` documents from the registry."""

from __future__ import annotations

import hashlib
import json

from canary.core.objects import Obj
from canary_sandbox.resources import PRESERVE_EVERYTHING, Registry, ResourceType

KUBERNETES_VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0"}
OBJECT_META_REF = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
PATCH_CONTENT_TYPES = ("application/merge-patch+json", "application/json-patch+json")


def version_info() -> Obj:
    return {
        **KUBERNETES_VERSION,
        "gitCommit": "sandbox",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.23.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def api_versions(server_address: str) -> Obj:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def api_group(registry: Registry, group: str) -> Obj | None:
    versions = registry.group_versions().get(group)
    if not versions:
        return None
    entries = [{"groupVersion": f"{group}/{version}", "version": version} for version in versions]
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": entries,
        "preferredVersion": entries[0],
    }


def api_group_list(registry: Registry) -> Obj:
    groups = [api_group(registry, name) for name in sorted(registry.group_versions()) if name]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [g for g in groups if g]}


def api_resource_list(registry: Registry, group: str, version: str) -> Obj | None:
    types = registry.types_in(group, version)
    if not types:
        return None
    resources = [
        entry for rt in sorted(types, key=lambda t: t.plural) for entry in rt.discovery_entries()
    ]
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


# --- OpenAPI v3 ----------------------------------------------------------------------------


def _path_key(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def openapi_index(registry: Registry) -> Obj:
    paths = {}
    for group, versions in registry.group_versions().items():
        for version in versions:
            key = _path_key(group, version)
            document = openapi_document(registry, group, version)
            digest = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()
            paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest[:32].upper()}"}
    return {"paths": paths}


def _schema_name(rt: ResourceType) -> str:
    if not rt.group:
        return f"io.k8s.api.core.{rt.version}.{rt.kind}"
    reversed_group = ".".join(reversed(rt.group.split(".")))
    return f"{reversed_group}.{rt.version}.{rt.kind}"


def _gvk(rt: ResourceType) -> Obj:
    return {"group": rt.group, "version": rt.version, "kind": rt.kind}


def _object_schema(rt: ResourceType) -> Obj:
    schema = dict(rt.schema or PRESERVE_EVERYTHING)
    properties = dict(schema.get("properties", {}))
    properties["apiVersion"] = {"type": "string"}
    properties["kind"] = {"type": "string"}
    properties["metadata"] = {"allOf": [{"$ref": f"#/components/schemas/{OBJECT_META_REF}"}]}
    schema["properties"] = properties
    schema.setdefault("type", "object")
    schema["x-kubernetes-group-version-kind"] = [_gvk(rt)]
    return schema


def _object_meta_schema() -> Obj:
    string_map = {"type": "object", "additionalProperties": {"type": "string"}}
    return {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "generateName": {"type": "string"},
            "namespace": {"type": "string"},
            "labels": string_map,
            "annotations": string_map,
            "finalizers": {"type": "array", "items": {"type": "string"}},
            "resourceVersion": {"type": "string"},
            "uid": {"type": "string"},
            "generation": {"type": "integer", "format": "int64"},
            "creationTimestamp": {"type": "string", "format": "date-time"},
            "deletionTimestamp": {"type": "string", "format": "date-time"},
        },
        "x-kubernetes-preserve-unknown-fields": True,
    }


def _operation(rt: ResourceType, action: str, schema_ref: str, with_body: bool) -> Obj:
    operation: Obj = {
        "operationId": f"{action}{rt.kind}",
        "parameters": [
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
        ],
        "responses": {
            "200": {
                "description": "OK",
                "content": {"application/json": {"schema": {"$ref": schema_ref}}},
            }
        },
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": _gvk(rt),
    }
    if with_body:
        content_types = PATCH_CONTENT_TYPES if action == "patch" else ("application/json",)
        operation["requestBody"] = {
            "content": {ct: {"schema": {"type": "object"}} for ct in content_types}
        }
    return operation


def _paths_for(rt: ResourceType) -> Obj:
    prefix = "/" + _path_key(rt.group, rt.version)
    scope = f"{prefix}/namespaces/{{namespace}}" if rt.namespaced else prefix
    ref = f"#/components/schemas/{_schema_name(rt)}"
    paths = {
        f"{scope}/{rt.plural}": {
            "get": _operation(rt, "list", ref, with_body=False),
            "post": _operation(rt, "post", ref, with_body=True),
        },
        f"{scope}/{rt.plural}/{{name}}": {
            "get": _operation(rt, "get", ref, with_body=False),
            "put": _operation(rt, "put", ref, with_body=True),
            "patch": _operation(rt, "patch", ref, with_body=True),
            "delete": _operation(rt, "delete", ref, with_body=False),
        },
    }
    if rt.has_status:
        paths[f"{scope}/{rt.plural}/{{name}}/status"] = {
            "get": _operation(rt, "get", ref, with_body=False),
            "put": _operation(rt, "put", ref, with_body=True),
            "patch": _operation(rt, "patch", ref, with_body=True),
        }
    return paths


def openapi_document(registry: Registry, group: str, version: str) -> Obj:
    types = registry.types_in(group, version)
    paths: Obj = {}
    schemas: Obj = {OBJECT_META_REF: _object_meta_schema()}
    for rt in sorted(types, key=lambda t: t.plural):
        paths.update(_paths_for(rt))
        schemas[_schema_name(rt)] = _object_schema(rt)
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": schemas},
    }
