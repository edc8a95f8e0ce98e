"""Patch formats the API server accepts.

* JSON merge patch (RFC 7386).
* JSON patch (RFC 6902), including the `test` operation.
* Strategic merge patch, simplified: a merge patch in which lists of objects that all carry a
  `name` are merged by name, `{"name": ..., "$patch": "delete"}` removes an item, and the other
  `$`-directives kubectl sends (`$setElementOrder/...`, `$retainKeys`) are ignored. Good enough
  for what kubectl sends for Deployments, Services and ConfigMaps.
"""

from __future__ import annotations

import copy
from typing import Any

from canary_sandbox.errors import ApiError

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (MERGE_PATCH, JSON_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH)


class PatchError(ApiError):
    def __init__(self, message: str, code: int = 422) -> None:
        super().__init__(code, "Invalid" if code == 422 else "BadRequest", message)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, `null` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Merge patch where lists of named objects merge by name (see module docstring)."""
    if isinstance(patch, list):
        return _merge_named_lists(target, patch)
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    return result


def _is_named_object_list(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(item, dict) and "name" in item for item in items)


def _merge_named_lists(target: Any, patch: list[Any]) -> list[Any]:
    if not isinstance(target, list) or not _is_named_object_list(patch):
        return [_without_directives(item) for item in patch]
    if target and not _is_named_object_list(target):
        return [_without_directives(item) for item in patch]
    merged: list[Any] = list(target)
    for item in patch:
        index = next((i for i, old in enumerate(merged) if old["name"] == item["name"]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                del merged[index]
        elif index is None:
            merged.append(_without_directives(item))
        else:
            merged[index] = strategic_merge_patch(merged[index], item)
    return merged


def _without_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_without_directives(item) for item in value]
    return value


def json_patch(document: Any, operations: Any) -> Any:
    """RFC 6902 on a deep copy of `document`; raises PatchError and changes nothing on failure."""
    if not isinstance(operations, list):
        raise PatchError("json patch must be a list of operations", code=400)
    result = copy.deepcopy(document)
    for operation in operations:
        result = _apply_operation(result, operation)
    return result


def _apply_operation(document: Any, operation: Any) -> Any:
    if not isinstance(operation, dict) or "op" not in operation or "path" not in operation:
        raise PatchError(f"invalid json patch operation: {operation!r}", code=400)
    op = operation["op"]
    path = _parse_pointer(operation["path"])
    if op == "add":
        return _add(document, path, copy.deepcopy(_required_value(operation)))
    if op == "remove":
        return _remove(document, path)[0]
    if op == "replace":
        document = _remove(document, path)[0]
        return _add(document, path, copy.deepcopy(_required_value(operation)))
    if op == "move":
        source = _parse_pointer(operation.get("from", ""))
        document, value = _remove(document, source)
        return _add(document, path, value)
    if op == "copy":
        value = copy.deepcopy(_resolve(document, _parse_pointer(operation.get("from", ""))))
        return _add(document, path, value)
    if op == "test":
        if _resolve(document, path) != _required_value(operation):
            raise PatchError(f"testing value {operation['path']} failed")
        return document
    raise PatchError(f"unknown json patch operation {op!r}", code=400)


def _required_value(operation: dict[str, Any]) -> Any:
    if "value" not in operation:
        raise PatchError(f"json patch operation {operation['op']!r} needs a value", code=400)
    return operation["value"]


def _parse_pointer(pointer: Any) -> list[str]:
    if not isinstance(pointer, str) or (pointer and not pointer.startswith("/")):
        raise PatchError(f"invalid json pointer {pointer!r}", code=400)
    if pointer == "":
        return []
    return [part.replace("~1", "/").replace("~0", "~") for part in pointer[1:].split("/")]


def _resolve(document: Any, path: list[str]) -> Any:
    current = document
    for part in path:
        current = _child(current, part, pointer=path)
    return current


def _child(container: Any, part: str, pointer: list[str]) -> Any:
    if isinstance(container, dict):
        if part not in container:
            raise PatchError(f"path /{'/'.join(pointer)} does not exist")
        return container[part]
    if isinstance(container, list):
        return container[_list_index(container, part, pointer, allow_end=False)]
    raise PatchError(f"path /{'/'.join(pointer)} does not exist")


def _list_index(items: list[Any], part: str, pointer: list[str], allow_end: bool) -> int:
    if allow_end and part == "-":
        return len(items)
    if not part.isdigit():
        raise PatchError(f"invalid array index {part!r} in /{'/'.join(pointer)}")
    index = int(part)
    limit = len(items) if allow_end else len(items) - 1
    if index > limit:
        raise PatchError(f"array index {index} out of bounds in /{'/'.join(pointer)}")
    return index


def _add(document: Any, path: list[str], value: Any) -> Any:
    if not path:
        return value
    parent = _resolve(document, path[:-1])
    last = path[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_list_index(parent, last, path, allow_end=True), value)
    else:
        raise PatchError(f"path /{'/'.join(path)} does not exist")
    return document


def _remove(document: Any, path: list[str]) -> tuple[Any, Any]:
    if not path:
        return None, document
    parent = _resolve(document, path[:-1])
    last = path[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"path /{'/'.join(path)} does not exist")
        return document, parent.pop(last)
    if isinstance(parent, list):
        return document, parent.pop(_list_index(parent, last, path, allow_end=False))
    raise PatchError(f"path /{'/'.join(path)} does not exist")
