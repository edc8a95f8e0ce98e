"""Label selectors (`a=b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`) and field selectors."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from typing import Any

from canary.core.objects import Obj
from canary_sandbox.errors import bad_request

Matcher = Callable[[Obj], bool]

_SET_EXPRESSION = re.compile(r"^\s*(!?)([\w./-]+)\s+(in|notin)\s*\((.*)\)\s*$")
_EQUALITY = re.compile(r"^\s*([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)\s*$")
_EXISTS = re.compile(r"^\s*(!?)\s*([\w./-]+)\s*$")


def _split_terms(selector: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    terms: list[str] = []
    depth = 0
    current = ""
    for char in selector:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    return [term for term in terms if term.strip()]


def _label_term(term: str) -> Callable[[dict[str, str]], bool]:
    if match := _SET_EXPRESSION.match(term):
        _, key, operator, raw_values = match.groups()
        values = {value.strip() for value in raw_values.split(",") if value.strip()}
        if operator == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if match := _EQUALITY.match(term):
        key, operator, value = match.groups()
        if operator == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if match := _EXISTS.match(term):
        negated, key = match.groups()
        if negated:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    raise bad_request(f"unable to parse requirement: invalid label selector {term!r}")


def label_selector(selector: str | None) -> Matcher:
    if not selector:
        return lambda _obj: True
    terms = [_label_term(term) for term in _split_terms(selector)]

    def matches(obj: Obj) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(term(labels) for term in terms)

    return matches


def _field_value(obj: Obj, dotted: str) -> str:
    current: Any = obj
    for part in dotted.split("."):
        current = current.get(part) if isinstance(current, dict) else None
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)


# The only field labels kube-apiserver supports for custom resources (built-in kinds each have
# their own list; the sandbox accepts any field of theirs).
CUSTOM_RESOURCE_FIELDS = frozenset({"metadata.name", "metadata.namespace"})


def supported_fields(custom_resource: bool) -> Collection[str] | None:
    return CUSTOM_RESOURCE_FIELDS if custom_resource else None


def field_selector(selector: str | None, supported: Collection[str] | None = None) -> Matcher:
    """A matcher for `selector`; a field outside `supported` (when given) is a 400, as the
    real server answers `field label not supported: spec.host`."""
    if not selector:
        return lambda _obj: True
    requirements: list[tuple[str, bool, str]] = []
    for term in _split_terms(selector):
        match = _EQUALITY.match(term)
        if match is None:
            raise bad_request(f"invalid field selector {term!r}")
        field, operator, value = match.groups()
        if supported is not None and field not in supported:
            raise bad_request(f"field label not supported: {field}")
        requirements.append((field, operator != "!=", value))

    def matches(obj: Obj) -> bool:
        return all(
            (_field_value(obj, field) == value) == equal for field, equal, value in requirements
        )

    return matches
