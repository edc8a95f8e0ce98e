"""Gates as PromQL, from Istio's standard metrics. Pure: no I/O, no clock.

Every value that comes from a Rollout (namespace, host, versions) is escaped before it lands in
a PromQL string literal, so a name such as `ui"} or vector(1) #` can never change what a query
means. Custom gate templates are scanned for their quoting context: a value placeholder must sit
inside a quoted string, where it is escaped for that kind of quote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from canary.core.durations import format_duration
from canary.core.model import Rollout
from canary.core.spec import Gate

REQUESTS_METRIC = "istio_requests_total"
DURATION_BUCKETS_METRIC = "istio_request_duration_milliseconds_bucket"
SERVER_ERROR_CODES = "5.."

_CONTROL_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_QUOTES = "\"'`"


class TemplateError(ValueError):
    """A custom gate's query template cannot be rendered safely; the message says why."""


# ---------------------------------------------------------------- escaping


def escape_label_value(value: str, quote: str = '"') -> str:
    """`value` escaped to sit between two `quote` characters of a PromQL string literal.

    Backslash, the quote, and control characters are escaped; so is U+FFFD, which
    Prometheus's lexer would otherwise mistake for invalid UTF-8.
    """
    return "".join(_escape_char(char, quote) for char in value)


def _escape_char(char: str, quote: str) -> str:
    if char in ("\\", quote):
        return "\\" + char
    if char in _CONTROL_ESCAPES:
        return _CONTROL_ESCAPES[char]
    if ord(char) < 0x20 or ord(char) == 0x7F or char == "\ufffd":
        return f"\\u{ord(char):04x}"
    return char


def quoted(value: str) -> str:
    """`value` as a double-quoted PromQL string literal."""
    return f'"{escape_label_value(value)}"'


def promql_duration(value: timedelta) -> str:
    """A PromQL range duration such as `1m`, `10s`, `1m30s` or `500ms`."""
    return format_duration(value)


# ---------------------------------------------------------------- what a rollout is measured on


@dataclass(frozen=True)
class Target:
    """Whose traffic the gates measure: the canary version of one service."""

    namespace: str
    host: str
    service: str
    canary_version: str
    stable_version: str | None
    window: timedelta


def short_service_name(host: str) -> str:
    """The service name of a mesh host: its first DNS label (`ui.shop.svc.cluster.local` → `ui`)."""
    return host.split(".", 1)[0]


def target_of(rollout: Rollout) -> Target:
    status = rollout.status
    return Target(
        namespace=rollout.metadata.namespace,
        host=rollout.spec.host,
        service=short_service_name(rollout.spec.host),
        canary_version=status.canary_version or rollout.spec.canary.version,
        stable_version=status.stable_version,
        window=rollout.spec.analysis.effective_window(),
    )


def canary_selector(target: Target, *, server_errors: bool | None = None) -> str:
    """The label matchers of the canary's requests as the destination sidecar reports them.

    server_errors=False keeps only non-5xx responses; None keeps every response.
    """
    matchers = [
        'reporter="destination"',
        f"destination_service_name={quoted(target.service)}",
        f"destination_workload_namespace={quoted(target.namespace)}",
        f"destination_version={quoted(target.canary_version)}",
    ]
    if server_errors is False:
        matchers.append(f'response_code!~"{SERVER_ERROR_CODES}"')
    return "{" + ", ".join(matchers) + "}"


def success_rate_query(target: Target) -> str:
    window = promql_duration(target.window)
    good = f"sum(rate({REQUESTS_METRIC}{canary_selector(target, server_errors=False)}[{window}]))"
    every = f"sum(rate({REQUESTS_METRIC}{canary_selector(target)}[{window}]))"
    return f"{good} / {every} * 100"


def latency_query(target: Target, quantile: float) -> str:
    window = promql_duration(target.window)
    buckets = f"rate({DURATION_BUCKETS_METRIC}{canary_selector(target)}[{window}])"
    return f"histogram_quantile({quantile!r}, sum by (le) ({buckets}))"


def request_count_query(target: Target) -> str:
    window = promql_duration(target.window)
    return f"sum(increase({REQUESTS_METRIC}{canary_selector(target)}[{window}]))"


# ---------------------------------------------------------------- custom gate templates


def placeholder_values(target: Target) -> dict[str, str | None]:
    """What each placeholder of a custom query stands for (None: not known yet)."""
    return {
        "namespace": target.namespace,
        "host": target.host,
        "service": target.service,
        "canary.version": target.canary_version,
        "stable.version": target.stable_version,
    }


def render_template(template: str, target: Target) -> str:
    """A custom gate's query with its placeholders filled in, each value escaped for its quotes.

    Raises TemplateError for an unknown placeholder, a value placeholder outside a quoted
    string, a backtick value that would end its raw string, or a value not known yet.
    """
    values = placeholder_values(target)
    pieces: list[str] = []
    position = 0
    for match, quote in _placeholders_with_quotes(template):
        pieces.append(template[position : match.start()])
        pieces.append(_substitute(match.group(1), quote, values, target))
        position = match.end()
    pieces.append(template[position:])
    return "".join(pieces)


def _substitute(name: str, quote: str | None, values: dict[str, str | None], target: Target) -> str:
    if name == "window":
        return promql_duration(target.window)
    if name not in values:
        known = ", ".join(f"{{{{ {known} }}}}" for known in [*values, "window"])
        raise TemplateError(f"unknown placeholder {{{{ {name} }}}}: use one of {known}")
    value = values[name]
    if value is None:
        raise TemplateError(
            f"{{{{ {name} }}}} is not known yet: the Rollout has no {name} in status"
        )
    if quote is None:
        raise TemplateError(
            f'{{{{ {name} }}}} must sit inside a quoted string, e.g. label="{{{{ {name} }}}}"'
        )
    if quote == "`":
        if "`" in value:
            raise TemplateError(
                f"the value of {{{{ {name} }}}} contains a backtick: "
                'put the placeholder inside "double quotes" instead'
            )
        return value
    return escape_label_value(value, quote)


def _placeholders_with_quotes(template: str) -> list[tuple[re.Match[str], str | None]]:
    """Every placeholder of `template`, with the quote of the string literal it sits in."""
    found: list[tuple[re.Match[str], str | None]] = []
    quote: str | None = None
    index = 0
    while index < len(template):
        match = _PLACEHOLDER.match(template, index)
        if match:
            found.append((match, quote))
            index = match.end()
            continue
        char = template[index]
        if quote is None and char in _QUOTES:
            quote = char
        elif quote is not None and char == "\\" and quote != "`":
            index += 1
        elif char == quote:
            quote = None
        index += 1
    return found


# ---------------------------------------------------------------- the plan of one check


@dataclass(frozen=True)
class GateQuery:
    """The PromQL that measures one gate, or why there is none."""

    gate: Gate
    query: str | None
    problem: str | None = None


def gate_query(gate: Gate, target: Target) -> GateQuery:
    if gate.success_rate is not None:
        return GateQuery(gate, success_rate_query(target))
    if gate.latency is not None:
        return GateQuery(gate, latency_query(target, gate.latency.quantile))
    assert gate.query is not None
    try:
        return GateQuery(gate, render_template(gate.query, target))
    except TemplateError as error:
        return GateQuery(gate, None, f"gate {gate.name!r}: {error}; fix the gate's query")
