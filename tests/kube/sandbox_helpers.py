"""Shared test data for the sandbox API server tests: a small `widgets` CRD and objects."""

from __future__ import annotations

from typing import Any

WIDGET_GROUP = "test.canary.dev"
WIDGET_VERSION = "v1"
WIDGET_PLURAL = "widgets"

WIDGET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["host"],
            "properties": {
                "host": {"type": "string", "minLength": 1, "maxLength": 20},
                "mode": {"type": "string", "enum": ["hold", "fail", "pass"], "default": "hold"},
                "weight": {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": 100,
                    "exclusiveMaximum": False,
                },
                "ratio": {"type": "number", "minimum": 0, "exclusiveMinimum": True},
                "version": {"type": "string", "pattern": "^v[0-9]+$"},
                "tags": {
                    "type": "array",
                    "items": {"type": "string"},
                    "minItems": 1,
                    "maxItems": 2,
                },
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "port": {"x-kubernetes-int-or-string": True},
                "note": {"type": "string", "nullable": True},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "analysis": {
                    "type": "object",
                    "properties": {"failureLimit": {"type": "integer", "minimum": 0}},
                },
            },
        },
        "status": {
            "type": "object",
            "properties": {"phase": {"type": "string"}, "weight": {"type": "integer"}},
        },
    },
}

WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{WIDGET_PLURAL}.{WIDGET_GROUP}"},
    "spec": {
        "group": WIDGET_GROUP,
        "names": {
            "kind": "Widget",
            "listKind": "WidgetList",
            "plural": WIDGET_PLURAL,
            "singular": "widget",
            "shortNames": ["wd"],
            "categories": ["canary"],
        },
        "scope": "Namespaced",
        "versions": [
            {
                "name": WIDGET_VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": WIDGET_SCHEMA},
                "additionalPrinterColumns": [
                    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
            }
        ],
    },
}


def widget(name: str = "ui", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{WIDGET_GROUP}/{WIDGET_VERSION}",
        "kind": "Widget",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"host": "ui", **spec},
    }
