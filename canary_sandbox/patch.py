"""Patch formats the API server accepts.

* JSON merge patch (RFC 7386).
* JSON patch (RFC 6902), including the `test` operation, by the `jsonpatch` library.
* Strategic merge patch, simplified: a merge patch in which lists of objects that all carry a
  `name` are merged by name, `{"name": ..., "$patch": "delete"}` removes an item, and the other
  `$`-directives kubectl sends (`$setElementOrder/...`, `$retainKeys`) are ignored. Good enough
  for what kubectl sends for Deployments, Services and ConfigMaps.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import jsonpointer

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
    """RFC 6902 on a deep copy of `document`; raises PatchError and changes nothing on failure:
    400 for a malformed patch, 422 for one that does not fit the object (as the apiserver)."""
    if not isinstance(operations, list):
        raise PatchError("json patch must be a list of operations", code=400)
    try:
        return jsonpatch.JsonPatch(operations).apply(document)
    except jsonpatch.InvalidJsonPatch as error:
        raise PatchError(f"invalid json patch: {error}", code=400) from None
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as error:
        raise PatchError(f"the json patch does not apply: {error}") from None
