"""OpenAPI v3 structural schemas as the real API server applies them to custom resources.

`prune_and_default` drops fields the schema does not declare (unless
`x-kubernetes-preserve-unknown-fields`) and fills in `default`s; `validate` returns one
`StatusCause`-shaped dict per violation, with field paths like `spec.http[0].route[1].weight`.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from canary.core.objects import Obj

Path = tuple[str | int, ...]

ROOT_FIELDS_ALWAYS_KEPT = ("apiVersion", "kind", "metadata")
PRESERVE = "x-kubernetes-preserve-unknown-fields"
INT_OR_STRING = "x-kubernetes-int-or-string"


def render_path(path: Path) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def prune_and_default(obj: Obj, schema: Obj) -> tuple[Obj, list[str]]:
    """Copy of `obj` without unknown fields, with defaults filled in; plus the pruned paths."""
    pruned: list[str] = []
    kept = {key: obj[key] for key in ROOT_FIELDS_ALWAYS_KEPT if key in obj}
    rest = {key: value for key, value in obj.items() if key not in ROOT_FIELDS_ALWAYS_KEPT}
    root_schema = dict(schema)
    root_schema["properties"] = {
        k: v for k, v in schema.get("properties", {}).items() if k not in ROOT_FIELDS_ALWAYS_KEPT
    }
    result = _prune(copy.deepcopy(rest), root_schema, (), pruned)
    return {**kept, **result}, pruned


def _prune(value: Any, schema: Obj, path: Path, pruned: list[str]) -> Any:
    if isinstance(value, dict):
        return _prune_object(value, schema, path, pruned)
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_prune(item, schema["items"], (*path, i), pruned) for i, item in enumerate(value)]
    return value


def _prune_object(value: Obj, schema: Obj, path: Path, pruned: list[str]) -> Obj:
    properties: Obj = schema.get("properties", {})
    additional = schema.get("additionalProperties")
    result: Obj = {}
    for key, item in value.items():
        if key in properties:
            if item is None and "default" in properties[key]:
                continue
            result[key] = _prune(item, properties[key], (*path, key), pruned)
        elif isinstance(additional, dict):
            result[key] = _prune(item, additional, (*path, key), pruned)
        elif additional is True or schema.get(PRESERVE) is True:
            result[key] = item
        else:
            pruned.append(render_path((*path, key)))
    for key, property_schema in properties.items():
        if key not in result and "default" in property_schema:
            default = copy.deepcopy(property_schema["default"])
            result[key] = _prune(default, property_schema, (*path, key), [])
    return result


CEL_RULES = "x-kubernetes-validations"
# What kube-apiserver adds when schema errors kept it from running the CRD's CEL rules. The
# sandbox never runs them (docs/sandbox-vs-real.md): the real apiserver is the judge of those.
CEL_NOT_CHECKED = {
    "reason": "FieldValueInvalid",
    "field": "<nil>",
    "message": "Invalid value: null: some validation rules were not checked because the "
    "object was invalid; correct the existing errors to complete validation",
}


def has_cel_rules(schema: Any) -> bool:
    """Whether a schema (or any part of it) carries CEL validation rules."""
    if isinstance(schema, dict):
        return CEL_RULES in schema or any(has_cel_rules(value) for value in schema.values())
    if isinstance(schema, list):
        return any(has_cel_rules(item) for item in schema)
    return False


def validate(value: Any, schema: Obj, path: Path = ()) -> list[Obj]:
    """All violations of `schema` by `value`, as StatusCause dicts."""
    if value is None:
        return _validate_null(schema, path)
    causes = _validate_type(value, schema, path)
    if causes:
        return causes
    for check in (_validate_enum, _validate_number, _validate_string, _validate_combinators):
        causes.extend(check(value, schema, path))
    if isinstance(value, list):
        causes.extend(_validate_array(value, schema, path))
    if isinstance(value, dict):
        causes.extend(_validate_object(value, schema, path))
    return causes


def _cause(reason: str, path: Path, message: str) -> Obj:
    return {"reason": reason, "message": message, "field": render_path(path)}


def _show(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_matches(value: Any, expected: str) -> bool:
    actual = _json_type(value)
    if expected == "number":
        return actual in ("integer", "number")
    if expected == "integer" and actual == "number":
        return bool(float(value).is_integer())
    return actual == expected


def _type_error(value: Any, expected: str, path: Path) -> Obj:
    shown = _json_type(value)
    field = render_path(path)
    return _cause(
        "FieldValueTypeInvalid",
        path,
        f'Invalid value: "{shown}": {field} in body must be of type {expected}: "{shown}"',
    )


def _validate_null(schema: Obj, path: Path) -> list[Obj]:
    if schema.get("nullable") or schema.get(PRESERVE) or "type" not in schema:
        return []
    return [_type_error(None, str(schema["type"]), path)]


def _validate_type(value: Any, schema: Obj, path: Path) -> list[Obj]:
    if schema.get(INT_OR_STRING):
        if _json_type(value) in ("integer", "string"):
            return []
        return [_type_error(value, "integer-or-string", path)]
    expected = schema.get("type")
    if not expected or _type_matches(value, expected):
        return []
    return [_type_error(value, expected, path)]


def _validate_enum(value: Any, schema: Obj, path: Path) -> list[Obj]:
    allowed = schema.get("enum")
    if allowed is None or value in allowed:
        return []
    supported = ", ".join(_show(item) for item in allowed)
    return [
        _cause(
            "FieldValueNotSupported",
            path,
            f"Unsupported value: {_show(value)}: supported values: {supported}",
        )
    ]


def _validate_number(value: Any, schema: Obj, path: Path) -> list[Obj]:
    if _json_type(value) not in ("integer", "number"):
        return []
    field = render_path(path)
    problems: list[str] = []
    if "minimum" in schema:
        bound = schema["minimum"]
        if schema.get("exclusiveMinimum") is True and value <= bound:
            problems.append(f"should be greater than {_show(bound)}")
        elif value < bound:
            problems.append(f"should be greater than or equal to {_show(bound)}")
    if "maximum" in schema:
        bound = schema["maximum"]
        if schema.get("exclusiveMaximum") is True and value >= bound:
            problems.append(f"should be less than {_show(bound)}")
        elif value > bound:
            problems.append(f"should be less than or equal to {_show(bound)}")
    if "multipleOf" in schema and schema["multipleOf"] and value % schema["multipleOf"] != 0:
        problems.append(f"should be a multiple of {_show(schema['multipleOf'])}")
    return [
        _cause("FieldValueInvalid", path, f"Invalid value: {_show(value)}: {field} in body {text}")
        for text in problems
    ]


def _validate_string(value: Any, schema: Obj, path: Path) -> list[Obj]:
    if not isinstance(value, str):
        return []
    field = render_path(path)
    causes: list[Obj] = []
    if "minLength" in schema and len(value) < schema["minLength"]:
        text = f"should be at least {schema['minLength']} chars long"
        causes.append(
            _cause(
                "FieldValueInvalid", path, f"Invalid value: {_show(value)}: {field} in body {text}"
            )
        )
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        causes.append(
            _cause(
                "FieldValueTooLong", path, f"Too long: may not be longer than {schema['maxLength']}"
            )
        )
    pattern = schema.get("pattern")
    if pattern is not None and re.search(pattern, value) is None:
        text = f"should match '{pattern}'"
        causes.append(
            _cause(
                "FieldValueInvalid", path, f"Invalid value: {_show(value)}: {field} in body {text}"
            )
        )
    return causes


def _validate_array(value: list[Any], schema: Obj, path: Path) -> list[Obj]:
    field = render_path(path)
    causes: list[Obj] = []
    if "minItems" in schema and len(value) < schema["minItems"]:
        text = f"should have at least {schema['minItems']} items"
        causes.append(
            _cause(
                "FieldValueInvalid", path, f"Invalid value: {len(value)}: {field} in body {text}"
            )
        )
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        causes.append(
            _cause(
                "FieldValueTooMany",
                path,
                f"Too many: {len(value)}: must have at most {schema['maxItems']} items",
            )
        )
    if schema.get("uniqueItems") and len({_show(item) for item in value}) != len(value):
        causes.append(_cause("FieldValueDuplicate", path, f"Duplicate value: {field}"))
    items = schema.get("items")
    if isinstance(items, dict):
        for index, item in enumerate(value):
            causes.extend(validate(item, items, (*path, index)))
    return causes


def _validate_object(value: Obj, schema: Obj, path: Path) -> list[Obj]:
    causes: list[Obj] = []
    properties: Obj = schema.get("properties", {})
    additional = schema.get("additionalProperties")
    for key, item in value.items():
        if key in properties:
            causes.extend(validate(item, properties[key], (*path, key)))
        elif isinstance(additional, dict):
            causes.extend(validate(item, additional, (*path, key)))
    # kube-apiserver lists an object's missing required fields after its properties' errors
    causes.extend(
        _cause("FieldValueRequired", (*path, key), "Required value")
        for key in schema.get("required", [])
        if key not in value
    )
    field = render_path(path)
    if "minProperties" in schema and len(value) < schema["minProperties"]:
        text = f"should have at least {schema['minProperties']} properties"
        causes.append(_cause("FieldValueInvalid", path, f"Invalid value: {field} in body {text}"))
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        text = f"should have at most {schema['maxProperties']} properties"
        causes.append(_cause("FieldValueTooMany", path, f"Too many: {field} in body {text}"))
    return causes


def _validate_combinators(value: Any, schema: Obj, path: Path) -> list[Obj]:
    causes: list[Obj] = []
    for sub in schema.get("allOf", []):
        causes.extend(validate(value, sub, path))
    field = render_path(path) or "<root>"
    any_of = schema.get("anyOf")
    if any_of and all(validate(value, sub, path) for sub in any_of):
        causes.append(
            _cause("FieldValueInvalid", path, f"Invalid value: {field} in body must match anyOf")
        )
    one_of = schema.get("oneOf")
    if one_of and sum(1 for sub in one_of if not validate(value, sub, path)) != 1:
        causes.append(
            _cause(
                "FieldValueInvalid",
                path,
                f"Invalid value: {field} in body must match exactly one schema in oneOf",
            )
        )
    negated = schema.get("not")
    if isinstance(negated, dict) and not validate(value, negated, path):
        causes.append(
            _cause(
                "FieldValueInvalid", path, f"Invalid value: {field} in body must not match schema"
            )
        )
    return causes
