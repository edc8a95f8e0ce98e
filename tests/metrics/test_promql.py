"""Gates → PromQL, pure (no Prometheus).

Aspects: Istio selectors and the three built-in queries; the window; the short service name;
versions from status; escaping (hypothesis: any string decodes back, nothing breaks out of the
quotes); custom templates (placeholders, whitespace, quoting contexts, unknown placeholders).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from metrics_helpers import rollout

from canary.metrics.promql import (
    Target,
    TemplateError,
    escape_label_value,
    gate_query,
    latency_query,
    promql_duration,
    render_template,
    request_count_query,
    short_service_name,
    success_rate_query,
    target_of,
)

TARGET = Target("shop", "ui.shop.svc.cluster.local", "ui", "v2", "v1", timedelta(minutes=1))
SELECTOR = (
    'reporter="destination", destination_service_name="ui", '
    'destination_workload_namespace="shop", destination_version="v2"'
)


def unescape(escaped: str) -> str:
    """Go's double-quoted string decoding, for the escapes escape_label_value emits."""
    simple = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "r": "\r", "t": "\t"}
    out, index = [], 0
    while index < len(escaped):
        char = escaped[index]
        if char != "\\":
            out.append(char)
            index += 1
        elif escaped[index + 1] == "u":
            out.append(chr(int(escaped[index + 2 : index + 6], 16)))
            index += 6
        else:
            out.append(simple[escaped[index + 1]])
            index += 2
    return "".join(out)


def test_success_rate_is_non_5xx_over_all_in_percent() -> None:
    assert success_rate_query(TARGET) == (
        f'sum(rate(istio_requests_total{{{SELECTOR}, response_code!~"5.."}}[1m])) '
        f"/ sum(rate(istio_requests_total{{{SELECTOR}}}[1m])) * 100"
    )


def test_latency_is_a_histogram_quantile_by_le() -> None:
    assert latency_query(TARGET, 0.99) == (
        "histogram_quantile(0.99, sum by (le) "
        f"(rate(istio_request_duration_milliseconds_bucket{{{SELECTOR}}}[1m])))"
    )


def test_request_count_is_the_increase_over_the_window() -> None:
    assert request_count_query(TARGET) == f"sum(increase(istio_requests_total{{{SELECTOR}}}[1m]))"


@pytest.mark.parametrize(
    ("window", "text"),
    [(timedelta(minutes=1), "1m"), (timedelta(seconds=10), "10s"),
     (timedelta(seconds=90), "1m30s"), (timedelta(milliseconds=1500), "1500ms")],
)  # fmt: skip
def test_windows_are_promql_durations(window: timedelta, text: str) -> None:
    assert promql_duration(window) == text


@pytest.mark.parametrize(
    ("host", "service"),
    [("ui.shop.svc.cluster.local", "ui"), ("ui", "ui"), ("ui.shop", "ui")],
)
def test_the_service_is_the_first_dns_label_of_the_host(host: str, service: str) -> None:
    assert short_service_name(host) == service


def test_the_target_comes_from_the_rollout() -> None:
    target = target_of(rollout("ui", "http://p:9090", status_canary_version="v3"))
    assert (target.namespace, target.service, target.canary_version) == ("shop", "ui", "v3")
    assert target.stable_version == "v1"
    assert target.window == timedelta(seconds=10)


def test_the_canary_version_falls_back_to_the_spec() -> None:
    target = target_of(rollout("ui", "http://p:9090", canary_version="v7"))
    assert target.canary_version == "v7"


@given(st.text())
def test_any_escaped_string_decodes_back(value: str) -> None:
    assert unescape(escape_label_value(value)) == value


@given(st.text())
def test_nothing_escaped_can_end_the_string_or_the_line(value: str) -> None:
    escaped = escape_label_value(value)
    assert "\n" not in escaped
    unescaped_quotes = escaped.replace("\\\\", "").replace('\\"', "")
    assert '"' not in unescaped_quotes


def test_an_injection_attempt_stays_inside_its_quotes() -> None:
    target = Target("shop", "h", 'ui"} or vector(1) #', "v2", None, timedelta(seconds=10))
    assert 'destination_service_name="ui\\"} or vector(1) #"' in success_rate_query(target)


def test_single_quotes_are_escaped_for_single_quoted_strings() -> None:
    assert escape_label_value('it\'s "x"', "'") == 'it\\\'s "x"'


def test_templates_fill_every_placeholder_with_or_without_spaces() -> None:
    template = (
        'x{ns="{{namespace}}", h="{{ host }}", s="{{ service }}", '
        'c="{{  canary.version  }}", st="{{stable.version}}"}[{{ window }}]'
    )
    assert render_template(template, TARGET) == (
        'x{ns="shop", h="ui.shop.svc.cluster.local", s="ui", c="v2", st="v1"}[1m]'
    )


def test_template_values_are_escaped_for_their_quotes() -> None:
    target = Target("shop", "h", "s", "a\"b'c", None, timedelta(seconds=10))
    rendered = render_template("x{a=\"{{ canary.version }}\", b='{{ canary.version }}'}", target)
    assert rendered == "x{a=\"a\\\"b'c\", b='a\"b\\'c'}"


def test_a_placeholder_after_an_escaped_quote_is_still_inside_the_string() -> None:
    rendered = render_template('x{a="pre\\"{{ namespace }}"}', TARGET)
    assert rendered == 'x{a="pre\\"shop"}'


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ('x{a="{{ canary.versoin }}"}', "unknown placeholder {{ canary.versoin }}"),
        ("x{a={{ namespace }}}", "must sit inside a quoted string"),
        ('x{a="{{ stable.version }}"}', "not known yet"),
    ],
)
def test_bad_templates_are_template_errors(template: str, problem: str) -> None:
    target = Target("shop", "h", "s", "v2", None, timedelta(seconds=10))
    with pytest.raises(TemplateError, match=problem.replace("{", r"\{").replace("}", r"\}")):
        render_template(template, target)


def test_a_backtick_value_cannot_end_a_raw_string() -> None:
    target = Target("sh`op", "h", "s", "v2", None, timedelta(seconds=10))
    with pytest.raises(TemplateError, match="backtick"):
        render_template("x{a=`{{ namespace }}`}", target)
    assert render_template("x{a=`{{ service }}`}", target) == "x{a=`s`}"


def test_a_gate_with_a_bad_template_has_a_problem_instead_of_a_query() -> None:
    gate = rollout("ui", "http://p", gates=[{"name": "g", "query": "{{ nope }}", "max": 1}])
    planned = gate_query(gate.spec.analysis.gates[0], TARGET)
    assert planned.query is None
    assert planned.problem is not None and "gate 'g'" in planned.problem
