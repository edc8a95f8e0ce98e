"""Server-side `Table` rendering for `kubectl get` (Name, CRD printer columns, Age)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from canary.core.durations import human_age
from canary.core.objects import Obj
from canary_sandbox.resources import ResourceType

AGE_COLUMN: Obj = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
_STEP = re.compile(r"\.([\w-]+)|\[(\d+)\]|\[\?\(@\.([\w-]+)\s*==\s*[\"']([^\"']*)[\"']\)\]")


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def json_path(obj: Any, path: str) -> Any:
    """A small JSONPath: `.a.b`, `[0]`, `[?(@.type=="Ready")]`; None when absent."""
    current = obj
    for name, index, filter_key, filter_value in _STEP.findall(path.strip("{}")):
        if name:
            current = current.get(name) if isinstance(current, dict) else None
        elif index:
            position = int(index)
            ok = isinstance(current, list) and position < len(current)
            current = current[position] if ok else None
        else:
            items = current if isinstance(current, list) else []
            current = next(
                (
                    i
                    for i in items
                    if isinstance(i, dict) and str(i.get(filter_key)) == filter_value
                ),
                None,
            )
        if current is None:
            return None
    return current


def _cell(value: Any, column_type: str) -> Any:
    if value is None:
        return "<none>" if column_type != "date" else "<unknown>"
    if column_type == "date" and isinstance(value, str):
        try:
            moment = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            return value
        return human_age((datetime.now(UTC) - moment).total_seconds())
    return value


def _columns(rt: ResourceType) -> list[Obj]:
    return list(rt.printer_columns) if rt.printer_columns else [AGE_COLUMN]


def _row(obj: Obj, columns: list[Obj]) -> Obj:
    metadata = obj.get("metadata", {})
    cells = [metadata.get("name", "")]
    cells.extend(
        _cell(json_path(obj, c.get("jsonPath", "")), c.get("type", "string")) for c in columns
    )
    partial = {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
    }
    return {"cells": cells, "object": partial}


def as_table(rt: ResourceType, answer: Obj) -> Obj:
    """A list or a single object as a meta.k8s.io/v1 Table."""
    columns = _columns(rt)
    definitions = [
        {"name": "Name", "type": "string", "format": "name", "description": "", "priority": 0}
    ]
    definitions.extend(
        {
            "name": column["name"],
            "type": column.get("type", "string"),
            "format": column.get("format", ""),
            "description": column.get("description", ""),
            "priority": column.get("priority", 0),
        }
        for column in columns
    )
    items = answer.get("items") if "items" in answer else [answer]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": answer.get("metadata", {}).get("resourceVersion", "")},
        "columnDefinitions": definitions,
        "rows": [_row(item, columns) for item in items or []],
    }
