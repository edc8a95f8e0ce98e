"""OpenAPI v3 structural schemas as the real API server applies them to custom resources.

`prune_and_default` drops fields the schema does not declare (unless
`x-kubernetes-preserve-unknown-fields`) and fills in `default`s; `validate` returns one
`StatusCause`-shaped dict per violation, with field paths like `spec.http[0].route[1].weight`.
Validation is openapi-schema-validator's OAS 3.0 keywords (on jsonschema), with Kubernetes'
own type rules (nullable, `x-kubernetes-int-or-string`, integral floats) and report order.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

from jsonschema import ValidationError
from jsonschema.validators import create
from openapi_schema_validator import OAS30Validator

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
    for key, item in value.items() if isinstance(value, dict) else ():
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


def validate(value: Any, schema: Obj) -> list[Obj]:
    """All violations of `schema` by `value`, as StatusCause dicts."""
    return [_to_cause(error) for error in _Validator(schema).iter_errors(value)]


# The keywords the sandbox checks, in the order kube-apiserver reports their violations: a
# node's type first (when it fails, only its enum is checked too, value against value), then
# its own bounds and combinators, then its items, properties (in the object's key order) and
# missing required fields.
KEYWORDS = (
    *("type", "enum", "minimum", "maximum", "multipleOf", "minLength", "maxLength", "pattern"),
    *("allOf", "anyOf", "oneOf", "not", "minItems", "maxItems", "uniqueItems", "items"),
    *("properties", "required", "minProperties", "maxProperties"),
)


def _expected_type(schema: Obj) -> str | None:
    return "integer-or-string" if schema.get(INT_OR_STRING) else schema.get("type")


def _keywords(schema: Obj) -> list[tuple[str, Any]]:
    found = {
        **schema,
        "type": _expected_type(schema),
        "properties": schema.get("properties", {}),
        "multipleOf": schema.get("multipleOf") or None,  # 0 would divide by zero
    }
    return [(key, found[key]) for key in KEYWORDS if found.get(key) is not None]


def _type(validator: Any, expected: str, value: Any, schema: Obj) -> Iterator[ValidationError]:
    if value is None:
        if "type" in schema and not schema.get("nullable") and not schema.get(PRESERVE):
            yield ValidationError("null", validator_value=str(schema["type"]))
    elif not _type_matches(value, expected):
        yield ValidationError("wrong type")


def _properties(validator: Any, properties: Obj, value: Any, schema: Obj) -> Iterator[Any]:
    additional = schema.get("additionalProperties")
    for key, item in value.items() if isinstance(value, dict) else ():
        if key in properties or isinstance(additional, dict):
            yield from validator.descend(item, properties.get(key, additional), path=key)


def _required(validator: Any, required: list[str], value: Any, schema: Obj) -> Iterator[Any]:
    for key in required if isinstance(value, dict) else ():
        if key not in value:
            yield ValidationError("required", path=(key,))


def _once_typed(check: Any) -> Any:
    """`check` where the value is of the node's type (the node's own type check aside)."""

    def checked(validator: Any, bound: Any, value: Any, schema: Obj) -> Any:
        expected = _expected_type(schema)
        if value is not None and (expected is None or _type_matches(value, expected)):
            yield from check(validator, bound, value, schema) or ()

    return checked


def _present(check: Any) -> Any:
    """`check` of any value but null (an enum compares values, whatever their type)."""

    def checked(validator: Any, bound: Any, value: Any, schema: Obj) -> Any:
        if value is not None:
            yield from check(validator, bound, value, schema) or ()

    return checked


_CHECKS = {**OAS30Validator.VALIDATORS, "properties": _properties, "required": _required}
_Validator: Any = create(
    meta_schema=OAS30Validator.META_SCHEMA,
    validators={
        "type": _type,
        **{key: _once_typed(_CHECKS[key]) for key in KEYWORDS if key not in ("type", "enum")},
        "enum": _present(_CHECKS["enum"]),
    },
    type_checker=OAS30Validator.TYPE_CHECKER,
    id_of=OAS30Validator.ID_OF,
    applicable_validators=_keywords,
)


INVALID = "FieldValueInvalid"
IN_BODY = "Invalid value: {value}: {field} in body"
# kube-apiserver's reason and message for each keyword's violation
CAUSES = {
    "type": (
        "FieldValueTypeInvalid",
        'Invalid value: "{type}": {field} in body must be of type {raw}: "{type}"',
    ),
    "enum": ("FieldValueNotSupported", "Unsupported value: {value}: supported values: {enum}"),
    "minimum": (INVALID, IN_BODY + " should be greater than{or_equal} {bound}"),
    "maximum": (INVALID, IN_BODY + " should be less than{or_equal} {bound}"),
    "multipleOf": (INVALID, IN_BODY + " should be a multiple of {bound}"),
    "minLength": (INVALID, IN_BODY + " should be at least {raw} chars long"),
    "maxLength": ("FieldValueTooLong", "Too long: may not be longer than {raw}"),
    "pattern": (INVALID, IN_BODY + " should match '{raw}'"),
    "minItems": (
        INVALID,
        "Invalid value: {count}: {field} in body should have at least {raw} items",
    ),
    "maxItems": ("FieldValueTooMany", "Too many: {count}: must have at most {raw} items"),
    "uniqueItems": ("FieldValueDuplicate", "Duplicate value: {field}"),
    "required": ("FieldValueRequired", "Required value"),
    "minProperties": (
        INVALID,
        "Invalid value: {field} in body should have at least {raw} properties",
    ),
    "maxProperties": (
        "FieldValueTooMany",
        "Too many: {field} in body should have at most {raw} properties",
    ),
    "anyOf": (INVALID, "Invalid value: {root} in body must match anyOf"),
    "oneOf": (INVALID, "Invalid value: {root} in body must match exactly one schema in oneOf"),
    "not": (INVALID, "Invalid value: {root} in body must not match schema"),
}


def _to_cause(error: ValidationError) -> Obj:
    path: Path = tuple(error.absolute_path)
    keyword, bound, value = str(error.validator), error.validator_value, error.instance
    reason, template = CAUSES[keyword]
    field = render_path(path)
    exclusive = error.schema.get(f"exclusive{keyword.capitalize()}") is True
    message = template.format(
        field=field,
        root=field or "<root>",
        value=_show(value),
        type=_json_type(value),
        count=len(value) if isinstance(value, list | dict) else 0,
        raw=bound,
        bound=_show(bound),
        or_equal="" if exclusive else " or equal to",
        enum=", ".join(_show(item) for item in bound) if keyword == "enum" else "",
    )
    return _cause(reason, path, message)


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
    if expected == "integer-or-string":
        return actual in ("integer", "string")
    if expected == "number":
        return actual in ("integer", "number")
    if expected == "integer" and actual == "number":
        return bool(float(value).is_integer())
    return actual == expected
