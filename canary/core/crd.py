"""The Rollout CustomResourceDefinition, generated from the pydantic models.

Kubernetes wants a *structural* OpenAPI v3.0 schema: every node typed, no `$ref`, no `anyOf`
of types, `nullable` instead of a null type, and exclusive bounds as booleans. pydantic emits
JSON Schema 2020-12; `structural` converts one into the other.
"""

from __future__ import annotations

from typing import Any

from canary.core.model import GROUP, KIND, PLURAL, VERSION
from canary.core.spec import RolloutSpec
from canary.core.status import RolloutStatus

_DROPPED_KEYS = {"title", "default", "examples"}


def rollout_crd() -> dict[str, Any]:
    schema = {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": structural(RolloutSpec.model_json_schema(by_alias=True)),
            "status": structural(RolloutStatus.model_json_schema(by_alias=True)),
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": KIND.lower(),
                "shortNames": ["cro"],
                "categories": ["canary"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": _printer_columns(),
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def _printer_columns() -> list[dict[str, Any]]:
    def column(name: str, path: str, kind: str = "string", **extra: Any) -> dict[str, Any]:
        return {"name": name, "type": kind, "jsonPath": path, **extra}

    return [
        column("Phase", ".status.phase"),
        column("Stage", ".status.stage"),
        column("Weight", ".status.canaryWeight", "integer", description="Canary weight, %"),
        column("Stable", ".status.stableVersion"),
        column("Canary", ".status.canaryVersion"),
        column("Age", ".metadata.creationTimestamp", "date"),
    ]


def structural(schema: dict[str, Any]) -> dict[str, Any]:
    """Inline `$ref`s and rewrite JSON Schema 2020-12 into a structural OpenAPI v3.0 schema."""
    definitions = schema.get("$defs", {})
    return _convert(schema, definitions)


def _convert(node: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        target = definitions[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _convert(merged, definitions)
    if "anyOf" in node:
        return _convert_any_of(node, definitions)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS or key == "$defs":
            continue
        out.update(_convert_keyword(key, value, definitions))
    if "const" in node:
        out.pop("const", None)
        out["enum"] = [node["const"]]
    if out.get("type") == "object" and "properties" in out:
        out.pop("additionalProperties", None)
    if out.get("format") == "date-time":
        out["type"] = "string"
    return out


def _convert_keyword(key: str, value: Any, definitions: dict[str, Any]) -> dict[str, Any]:
    if key == "properties":
        return {key: {name: _convert(sub, definitions) for name, sub in value.items()}}
    if key in ("items", "additionalProperties") and isinstance(value, dict):
        return {key: _convert(value, definitions)}
    if key == "additionalProperties" and value is False:
        return {}
    if key == "exclusiveMinimum":
        return {"minimum": value, "exclusiveMinimum": True}
    if key == "exclusiveMaximum":
        return {"maximum": value, "exclusiveMaximum": True}
    return {key: value}


def _convert_any_of(node: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    options = [o for o in node["anyOf"] if o.get("type") != "null"]
    nullable = len(options) < len(node["anyOf"])
    if len(options) != 1:
        raise ValueError(f"cannot express anyOf {node['anyOf']} in a structural schema")
    rest = {k: v for k, v in node.items() if k != "anyOf"}
    converted = _convert({**options[0], **rest}, definitions)
    if nullable:
        converted["nullable"] = True
    return converted
