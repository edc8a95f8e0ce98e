"""Validation of the Rollout models: every message, the field path (`loc`) it names, the fix.

Aspects: the ui example is valid; split steps (non-empty, 1..100, strictly increasing);
stepWeight/maxWeight (together, exclusive with steps, expansion); mirror percent in (0, 100];
latency quantile in (0, 1); gates (unique names, exactly one kind, query thresholds, min/max
only on query gates, finite thresholds); at least one stage; failureLimit >= 1; interval >= 1s;
durations (30s, 2m, 1h30m, 250ms, bare seconds; bad, negative, infinite, NaN); stable and canary
subsets distinct; empty matches rejected; clientIP; string matches; unknown fields; status limits.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from core_helpers import example
from pydantic import ValidationError

from canary.core.durations import format_duration, parse_duration
from canary.core.model import Rollout
from canary.core.spec import SplitStage
from canary.core.status import HISTORY_LIMIT, RolloutStatus

Mutation = Callable[[dict[str, Any]], None]


def _spec(data: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = data["spec"]
    return spec


def _errors(mutate: Mutation) -> list[dict[str, Any]]:
    data = example()
    mutate(data)
    with pytest.raises(ValidationError) as caught:
        Rollout.model_validate(data)
    return [dict(e) for e in caught.value.errors()]


def _valid(mutate: Mutation) -> Rollout:
    data = example()
    mutate(data)
    return Rollout.model_validate(data)


def test_the_ui_example_is_valid() -> None:
    rollout = Rollout.model_validate(example())
    assert rollout.spec.stages.split is not None
    assert rollout.spec.stages.split.weights() == [10, 25, 50, 75, 100]
    assert rollout.spec.stages.mirror is not None
    assert rollout.spec.stages.mirror.duration == timedelta(minutes=2)
    assert rollout.spec.analysis.interval == timedelta(seconds=30)
    assert rollout.spec.promotion.settle_delay == timedelta(seconds=10)
    header = rollout.spec.stages.header_canary
    assert header is not None
    assert header.match[1].client_ip == "141.0.205.122"


def _split(**split: Any) -> Mutation:
    return lambda d: _spec(d)["stages"].__setitem__("split", split)


def _set(path: str, value: Any) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        target = data
        *parents, leaf = path.split(".")
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        target[leaf] = value

    return mutate


def _drop(path: str) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        target = data
        *parents, leaf = path.split(".")
        for part in parents:
            target = target[part]
        del target[leaf]

    return mutate


def _add_match(match: dict[str, Any]) -> Mutation:
    return lambda d: _spec(d)["stages"]["headerCanary"]["match"].append(match)


def _gates(*gates: dict[str, Any]) -> Mutation:
    return _set("spec.analysis.gates", list(gates))


SPLIT = ("spec", "stages", "split")
MATCH2 = ("spec", "stages", "headerCanary", "match", 2)
GATE0 = ("spec", "analysis", "gates", 0)

# (id, mutation, the loc pydantic reports, words the message must contain)
INVALID: list[tuple[str, Mutation, tuple[Any, ...], tuple[str, ...]]] = [
    ("steps-empty", _split(steps=[]), (*SPLIT, "steps"), ("at least one weight",)),
    ("steps-zero", _split(steps=[0, 50]), (*SPLIT, "steps"), ("from 1 to 100",)),
    ("steps-over-100", _split(steps=[50, 101]), (*SPLIT, "steps"), ("from 1 to 100",)),
    ("steps-negative", _split(steps=[-10, 50]), (*SPLIT, "steps"), ("from 1 to 100",)),
    (
        "steps-decrease",
        _split(steps=[10, 50, 25]),
        (*SPLIT, "steps"),
        ("strictly increase", "[10, 50, 25]"),
    ),
    ("steps-repeat", _split(steps=[10, 10]), (*SPLIT, "steps"), ("strictly increase",)),
    (
        "steps-and-weight",
        _split(steps=[10, 100], stepWeight=10, maxWeight=50),
        SPLIT,
        ("exactly one of steps", "stepWeight with maxWeight"),
    ),
    ("no-steps-at-all", _split(interval="1m"), SPLIT, ("exactly one of steps",)),
    ("step-weight-alone", _split(stepWeight=10), SPLIT, ("go together", "give both")),
    ("max-weight-alone", _split(maxWeight=50), SPLIT, ("go together", "give both")),
    (
        "step-weight-over-max",
        _split(stepWeight=60, maxWeight=50),
        SPLIT,
        ("stepWeight must not exceed maxWeight",),
    ),
    ("step-weight-zero", _split(stepWeight=0, maxWeight=50), (*SPLIT, "stepWeight"), ("1",)),
    ("max-weight-over", _split(stepWeight=10, maxWeight=101), (*SPLIT, "maxWeight"), ("100",)),
    (
        "mirror-zero",
        _set("spec.stages.mirror.percent", 0),
        ("spec", "stages", "mirror", "percent"),
        ("greater than 0",),
    ),
    (
        "mirror-over",
        _set("spec.stages.mirror.percent", 100.5),
        ("spec", "stages", "mirror", "percent"),
        ("less than or equal to 100",),
    ),
    (
        "quantile-zero",
        _gates({"name": "lat", "latency": {"quantile": 0, "maxMs": 500}}),
        (*GATE0, "latency", "quantile"),
        ("greater than 0",),
    ),
    (
        "quantile-one",
        _gates({"name": "lat", "latency": {"quantile": 1, "maxMs": 500}}),
        (*GATE0, "latency", "quantile"),
        ("less than 1",),
    ),
    (
        "latency-max-zero",
        _gates({"name": "lat", "latency": {"quantile": 0.5, "maxMs": 0}}),
        (*GATE0, "latency", "maxMs"),
        ("greater than 0",),
    ),
    (
        "success-rate-over",
        _gates({"name": "sr", "successRate": {"min": 100.1}}),
        (*GATE0, "successRate", "min"),
        ("less than or equal to 100",),
    ),
    (
        "gate-names-repeat",
        _gates({"name": "sr", "successRate": {"min": 99}}, {"name": "sr", "query": "x", "max": 1}),
        ("spec", "analysis", "gates"),
        ("'sr' is used twice", "its own"),
    ),
    (
        "gate-without-kind",
        _gates({"name": "sr"}),
        GATE0,
        ("exactly one of successRate, latency, query or compare",),
    ),
    (
        "gate-two-kinds",
        _gates(
            {"name": "sr", "successRate": {"min": 99}, "latency": {"quantile": 0.9, "maxMs": 9}}
        ),
        GATE0,
        ("exactly one of successRate, latency, query or compare",),
    ),
    (
        "query-without-threshold",
        _gates({"name": "q", "query": "sum(x)"}),
        GATE0,
        ("needs a threshold", "min, max or both"),
    ),
    (
        "min-on-success-rate",
        _gates({"name": "sr", "successRate": {"min": 99}, "max": 3}),
        GATE0,
        ("query gates only",),
    ),
    (
        "query-infinite",
        _gates({"name": "q", "query": "sum(x)", "max": float("inf")}),
        GATE0,
        ("finite",),
    ),
    (
        "query-empty",
        _gates({"name": "q", "query": "", "max": 1}),
        (*GATE0, "query"),
        ("at least 1 character",),
    ),
    ("gate-name-dns", _gates({"name": "Bad_Name", "query": "x", "max": 1}), (*GATE0, "name"), ()),
    ("no-gates", _gates(), ("spec", "analysis", "gates"), ("at least 1 item",)),
    (
        "no-stages",
        _set("spec.stages", {}),
        ("spec", "stages"),
        ("at least one stage", "mirror, headerCanary or split"),
    ),
    (
        "failure-limit-zero",
        _set("spec.analysis.failureLimit", 0),
        ("spec", "analysis", "failureLimit"),
        ("greater than or equal to 1",),
    ),
    (
        "interval-sub-second",
        _set("spec.analysis.interval", "500ms"),
        ("spec", "analysis", "interval"),
        ("at least 1s",),
    ),
    (
        "interval-zero",
        _set("spec.analysis.interval", "0s"),
        ("spec", "analysis", "interval"),
        ("at least 1s",),
    ),
    (
        "min-requests-negative",
        _set("spec.analysis.minRequests", -1),
        ("spec", "analysis", "minRequests"),
        ("greater than or equal to 0",),
    ),
    (
        "no-data-unknown",
        _set("spec.analysis.noData", "skip"),
        ("spec", "analysis", "noData"),
        ("'hold', 'fail' or 'pass'",),
    ),
    (
        "duration-no-unit",
        _set("spec.stages.mirror.duration", "30"),
        ("spec", "stages", "mirror", "duration"),
        ("'30' is not a duration", "such as 30s, 2m or 1h"),
    ),
    (
        "duration-days",
        _set("spec.stages.mirror.duration", "1d"),
        ("spec", "stages", "mirror", "duration"),
        ("not a duration",),
    ),
    (
        "duration-negative-string",
        _set("spec.stages.mirror.duration", "-1s"),
        ("spec", "stages", "mirror", "duration"),
        ("not a duration",),
    ),
    (
        "duration-words",
        _set("spec.analysis.interval", "thirty seconds"),
        ("spec", "analysis", "interval"),
        ("not a duration",),
    ),
    (
        "duration-bool",
        _set("spec.canary.readyTimeout", True),
        ("spec", "canary", "readyTimeout"),
        ("such as 30s",),
    ),
    (
        "duration-negative-number",
        _set("spec.stages.mirror.duration", -5),
        ("spec", "stages", "mirror", "duration"),
        ("negative",),
    ),
    (
        "duration-infinite",
        _set("spec.stages.mirror.duration", float("inf")),
        ("spec", "stages", "mirror", "duration"),
        ("not a duration",),
    ),
    (
        "duration-nan",
        _set("spec.promotion.settleDelay", float("nan")),
        ("spec", "promotion", "settleDelay"),
        ("not a duration",),
    ),
    (
        "duration-too-long",
        _set("spec.canary.readyTimeout", "99999999999h"),
        ("spec", "canary", "readyTimeout"),
        ("too long",),
    ),
    (
        "same-subsets",
        _set("spec.canary.subset", "stable"),
        ("spec",),
        ("stable.subset and canary.subset", "two different"),
    ),
    (
        "empty-match-list",
        _set("spec.stages.headerCanary.match", []),
        ("spec", "stages", "headerCanary", "match"),
        ("at least 1 item",),
    ),
    ("empty-match", _add_match({}), MATCH2, ("empty match", "headers, uri, clientIP")),
    ("name-only-match", _add_match({"name": "beta"}), MATCH2, ("empty match",)),
    ("empty-headers-match", _add_match({"headers": {}}), MATCH2, ("empty match",)),
    ("ignore-case-only-match", _add_match({"ignoreUriCase": True}), MATCH2, ("empty match",)),
    (
        "string-match-two",
        _add_match({"uri": {"exact": "/a", "prefix": "/"}}),
        (*MATCH2, "uri"),
        ("exactly one of exact, prefix or regex",),
    ),
    (
        "string-match-none",
        _add_match({"headers": {"x": {}}}),
        (*MATCH2, "headers", "x"),
        ("exactly one of exact, prefix or regex",),
    ),
    ("client-ip-word", _add_match({"clientIP": "somewhere"}), (*MATCH2, "clientIP"), ("IPv4",)),
    ("client-ip-partial", _add_match({"clientIP": "10"}), (*MATCH2, "clientIP"), ("IPv4",)),
    ("client-ip-dots", _add_match({"clientIP": "..."}), (*MATCH2, "clientIP"), ("IPv4",)),
    ("client-ip-cidr", _add_match({"clientIP": "10.0.0.0/8"}), (*MATCH2, "clientIP"), ("IPv4",)),
    (
        "unknown-field",
        _set("spec.stages.split.weight", 10),
        ("spec", "stages", "split", "weight"),
        ("Extra inputs are not permitted",),
    ),
    (
        "snake-case-field",
        _set("spec.analysis.failure_limit", 3),
        ("spec", "analysis", "failure_limit"),
        ("Extra inputs",),
    ),
    (
        "version-not-a-label",
        _set("spec.canary.version", "v2/beta"),
        ("spec", "canary", "version"),
        ("pattern",),
    ),
    (
        "bad-prometheus-url",
        _set("spec.prometheus.url", "prometheus:9090"),
        ("spec", "prometheus", "url"),
        (),
    ),
    (
        "manual-before-unknown",
        _set("spec.promotion.manualBefore", ["canary"]),
        ("spec", "promotion", "manualBefore", 0),
        ("'mirror', 'headerCanary', 'split' or 'release'",),
    ),
    (
        "workload-kind",
        _set("spec.canary.workloadRef.kind", "StatefulSet"),
        ("spec", "canary", "workloadRef", "kind"),
        ("'Deployment'",),
    ),
]


@pytest.mark.parametrize(
    ("mutate", "loc", "words"),
    [pytest.param(m, loc, w, id=name) for name, m, loc, w in INVALID],
)
def test_invalid_spec_names_the_field_and_the_fix(
    mutate: Mutation, loc: tuple[Any, ...], words: tuple[str, ...]
) -> None:
    errors = _errors(mutate)
    assert [e["loc"] for e in errors] == [loc], errors
    message = errors[0]["msg"]
    for word in words:
        assert word in message, message
    assert "Traceback" not in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("2m", timedelta(minutes=2)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("250ms", timedelta(milliseconds=250)),
        ("1m1ms", timedelta(minutes=1, milliseconds=1)),
        ("1.5s", timedelta(seconds=1.5)),
        (" 45s ", timedelta(seconds=45)),
        ("0s", timedelta(0)),
        (12, timedelta(seconds=12)),
        (0.5, timedelta(milliseconds=500)),
        (timedelta(seconds=7), timedelta(seconds=7)),
    ],
)
def test_durations_parse(text: Any, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(seconds=30), "30s"),
        (timedelta(minutes=2), "2m"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(seconds=90), "1m30s"),
        (timedelta(milliseconds=250), "250ms"),
        (timedelta(seconds=1.5), "1500ms"),
        (timedelta(0), "0s"),
    ],
)
def test_durations_format_shortest_exact_form(value: timedelta, text: str) -> None:
    assert format_duration(value) == text
    assert parse_duration(text) == value


def test_durations_are_written_back_as_text() -> None:
    wire = Rollout.model_validate(example()).wire()
    assert wire["spec"]["stages"]["mirror"]["duration"] == "2m"
    assert wire["spec"]["analysis"]["interval"] == "30s"
    assert wire["spec"]["canary"]["readyTimeout"] == "10m"
    assert Rollout.model_validate(wire).spec == Rollout.model_validate(example()).spec


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(_drop("spec.stages.mirror"), id="no-mirror"),
        pytest.param(_drop("spec.stages.headerCanary"), id="no-header"),
        pytest.param(_drop("spec.stages.split"), id="no-split"),
        pytest.param(
            lambda d: _spec(d).__setitem__("stages", {"mirror": {}}), id="mirror-defaults"
        ),
        pytest.param(_set("spec.stages.mirror.percent", 100), id="mirror-100"),
        pytest.param(_set("spec.stages.mirror.percent", 0.5), id="mirror-half"),
        pytest.param(_split(steps=[100]), id="one-step-100"),
        pytest.param(_split(steps=[1, 2]), id="steps-need-not-reach-100"),
        pytest.param(_split(stepWeight=20, maxWeight=50), id="step-weight"),
        pytest.param(_add_match({"clientIP": "2001:db8::1"}), id="client-ipv6"),
        pytest.param(_add_match({"clientIP": "10.1.2.3"}), id="client-ipv4"),
        pytest.param(_add_match({"uri": {"prefix": "/beta"}}), id="uri-match"),
        pytest.param(_add_match({"ignoreUriCase": True, "uri": {"exact": "/b"}}), id="ignore-case"),
        pytest.param(_set("spec.analysis.interval", "1s"), id="interval-1s"),
        pytest.param(_set("spec.analysis.failureLimit", 1), id="failure-limit-1"),
        pytest.param(
            _gates({"name": "q", "query": "x", "min": 1}, {"name": "r", "query": "y", "max": 9}),
            id="query-gates",
        ),
        pytest.param(_set("spec.promotion.manualBefore", ["split", "release"]), id="manual"),
    ],
)
def test_valid_variations_are_accepted(mutate: Mutation) -> None:
    _valid(mutate)


@pytest.mark.parametrize(
    ("split", "weights"),
    [
        ({"stepWeight": 10, "maxWeight": 50}, [10, 20, 30, 40, 50]),
        ({"stepWeight": 30, "maxWeight": 100}, [30, 60, 90, 100]),
        ({"stepWeight": 25, "maxWeight": 100}, [25, 50, 75, 100]),
        ({"stepWeight": 50, "maxWeight": 50}, [50]),
        ({"stepWeight": 1, "maxWeight": 3}, [1, 2, 3]),
        ({"steps": [5, 100]}, [5, 100]),
    ],
)
def test_split_weights_expand(split: dict[str, Any], weights: list[int]) -> None:
    assert SplitStage.model_validate(split).weights() == weights


def test_status_history_is_bounded_on_read() -> None:
    entry = {"time": "2024-05-01T12:00:00Z", "phase": "Progressing"}
    RolloutStatus.model_validate({"history": [entry] * HISTORY_LIMIT})
    with pytest.raises(ValidationError) as caught:
        RolloutStatus.model_validate({"history": [entry] * (HISTORY_LIMIT + 1)})
    assert caught.value.errors()[0]["loc"] == ("history",)


def test_status_ignores_fields_it_does_not_know() -> None:
    status = RolloutStatus.model_validate({"phase": "Succeeded", "someFutureField": 1})
    assert status.phase == "Succeeded"


@pytest.mark.parametrize("weight", [-1, 101])
def test_status_weight_is_a_percentage(weight: int) -> None:
    with pytest.raises(ValidationError) as caught:
        RolloutStatus.model_validate({"canaryWeight": weight})
    assert caught.value.errors()[0]["loc"] == ("canaryWeight",)


@pytest.mark.parametrize(
    "path",
    [
        ("stages", "mirror", "duration"),
        ("stages", "headerCanary", "duration"),
        ("stages", "split", "interval"),
        ("canary", "readyTimeout"),
    ],
)
def test_durations_that_must_be_positive_refuse_zero(path: tuple[str, ...]) -> None:
    """Issue 14: the CRD refuses what the controller refuses, and both refuse a 0s stage."""
    data = example()
    target = data["spec"]
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = "0s"
    with pytest.raises(ValidationError, match="0s is too short: give longer than 0s"):
        Rollout.model_validate(data)


@pytest.mark.parametrize("subset", ["Canary", "canary_1", "kanarienvögel", "-canary", "a" * 64])
def test_subset_names_are_dns_labels_as_istio_requires(subset: str) -> None:
    data = example()
    data["spec"]["canary"]["subset"] = subset
    with pytest.raises(ValidationError, match=r"canary\.subset"):
        Rollout.model_validate(data)


@pytest.mark.parametrize(
    ("label", "ok"),
    [
        ("version", True),
        ("app.kubernetes.io/version", True),
        ("bad label", False),
        ("a/b/c", False),
        ("x" * 64, False),
        ("Example.com/v", False),
    ],
)
def test_the_version_label_is_a_label_key(label: str, ok: bool) -> None:
    data = example()
    data["spec"]["versionLabel"] = label
    if ok:
        assert Rollout.model_validate(data).spec.version_label == label
    else:
        with pytest.raises(ValidationError):
            Rollout.model_validate(data)


@pytest.mark.parametrize("name", ["ui.v2", "ui-" + "b" * 250])
def test_a_rollout_may_have_any_name_kube_apiserver_accepts(name: str) -> None:
    data = example()
    data["metadata"]["name"] = name
    assert Rollout.model_validate(data).metadata.name == name
