"""Properties of the planner on VirtualServices and DestinationRules as people write them.

Aspects: for every generated shape (tests/mesh/real_world_shapes.py), `check` and `canary lint`
either refuse with the same one sentence naming namespace and object, or a whole release (every
stage, then a rollback from its middle, then the Rollout's deletion) plans objects that Istio's
own CRD schema accepts whole, with every unmanaged route, field and annotation byte for byte
(key order included), the canary reached only through the managed and header routes, weights
that add up, and the user's objects given back at the end. No other exception, ever.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from real_world_shapes import (
    CANARY,
    NAMESPACE,
    STABLE,
    destination_rules,
    rollout_specs,
    steerable,
    virtual_services,
)
from support.istio_crds import istio_violations

from canary.cli.documents import Document
from canary.cli.offline import lint_rollout, problems_only
from canary.core.spec import RolloutSpec
from canary.core.traffic import Traffic
from canary.mesh.istio import (
    MeshError,
    check,
    observe_traffic,
    plan_destination_rule,
    plan_virtual_service,
    release_destination_rule,
    release_virtual_service,
    route_index,
    stable_version,
)

Json = dict[str, Any]
HEADER_ROUTE = "ui-canary"
MIRROR_KEYS = ("mirror", "mirrorPercentage", "mirrorPercent", "mirror_percent")
UI = "ui.shop.svc.cluster.local"
PROPERTY = settings(max_examples=150)


def fqdn(host: str) -> str:
    parts = host.split(".")
    return {1: f"{host}.shop.svc.cluster.local", 2: f"{host}.svc.cluster.local"}.get(
        len(parts), host if len(parts) != 3 else f"{host}.cluster.local"
    )


def release_traffics(spec: RolloutSpec) -> list[Traffic]:
    """Every position of a healthy release of v2 over v1, in order, then back to idle."""
    steps: list[Traffic] = []
    if spec.stages.mirror is not None:
        steps.append(Traffic(0, spec.stages.mirror.percent, False, "v1", "v2"))
    if spec.stages.header_canary is not None:
        steps.append(Traffic(0, 0.0, True, "v1", "v2"))
    assert spec.stages.split is not None
    steps += [Traffic(w, 0.0, False, "v1", "v2") for w in spec.stages.split.weights()]
    steps += [Traffic(100, 0.0, False, "v2", "v2"), Traffic(0, 0.0, False, "v2", "v2")]
    return steps


def claims_of(obj: Json) -> Json:
    text = (obj.get("metadata", {}).get("annotations") or {}).get("canary.dev/claims")
    parsed: Json = json.loads(text) if text else {}
    return parsed


def without_our_annotations(obj: Json) -> Json:
    view = copy.deepcopy(obj)
    metadata = view["metadata"]
    annotations = {
        k: v
        for k, v in (metadata.get("annotations") or {}).items()
        if not k.startswith("canary.dev/")
    }
    if annotations:
        metadata["annotations"] = annotations
    else:
        metadata.pop("annotations", None)
    return view


def unmanaged_vs(vs: Json, managed_index: int, spec: RolloutSpec) -> str:
    """The VirtualService minus our header route, our claims, and the managed route's managed
    keys (its destinations, and its mirror when the Rollout mirrors), as order-sensitive JSON."""
    view = without_our_annotations(vs)
    routes = view["spec"]["http"]
    if claims_of(vs).get("routes", {}).get(HEADER_ROUTE) == "ui":
        routes[:] = [r for r in routes if r.get("name") != HEADER_ROUTE]
    managed_keys = ("route", *(MIRROR_KEYS if spec.stages.mirror is not None else ()))
    routes[managed_index] = {
        k: v for k, v in routes[managed_index].items() if k not in managed_keys
    }
    return json.dumps(view)


def unmanaged_dr(dr: Json, spec: RolloutSpec) -> str:
    view = without_our_annotations(dr)
    for subset in view["spec"]["subsets"]:
        if subset["name"] in (spec.stable.subset, spec.canary.subset):
            subset.get("labels", {}).pop(spec.version_label, None)
    return json.dumps(view)


def reaches_canary(target: Any, dr: Json) -> bool:
    """Whether a destination or mirror could send requests to the canary's (v2) pods."""
    if not isinstance(target, dict) or fqdn(target.get("host", "")) != UI:
        return False
    subset = target.get("subset")
    if subset in (None, CANARY):
        return True
    labels = {s["name"]: s.get("labels", {}) for s in dr["spec"]["subsets"]}
    if subset not in labels or subset == STABLE:
        return False
    live = labels[STABLE].get("version")
    version = labels[subset].get("version")
    return version is None or (version == "v2" and live != "v2")


def targets(route: Json) -> list[Any]:
    found = [e.get("destination") for e in route.get("route") or []]
    found += [route.get("mirror")] if "mirror" in route else []
    found += [m.get("destination") for m in route.get("mirrors") or []]
    return found


def canary_share(route: Json) -> int:
    entries = route["route"]
    if len(entries) == 1:
        return 100 if entries[0]["destination"]["subset"] == CANARY else 0
    return sum(e["weight"] for e in entries if e["destination"]["subset"] == CANARY)


def assert_one_clear_line(message: str) -> None:
    assert "\n" not in message and message.endswith("."), message
    assert f"{NAMESPACE}/" in message, message  # names namespace and object
    assert ": " in message, message  # ... and the fix after the colon


def lint_line(vs: Json, dr: Json, spec: RolloutSpec) -> list[str]:
    rollout = {
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "ui", "namespace": NAMESPACE},
        "spec": spec.wire(),
    }
    documents = [Document("r.yaml", rollout), Document("vs.yaml", vs), Document("dr.yaml", dr)]
    return problems_only(lint_rollout(documents[0], documents))


def after_reads(vs: Json, dr: Json, spec: RolloutSpec) -> tuple[str, str]:
    """The objects as JSON after the router's reads of them."""
    observe_traffic(vs, dr, "ui", spec)
    stable_version(dr, "ui", spec)
    return json.dumps(vs), json.dumps(dr)


@PROPERTY
@given(st.data())
def test_a_release_on_any_real_world_shape_is_valid_intact_and_safe_or_refused_in_one_line(
    data: st.DataObject,
) -> None:
    if data.draw(st.booleans(), "as written (else made steerable)"):
        vs = data.draw(virtual_services(), "vs")
        spec = data.draw(rollout_specs(vs), "spec")
    else:
        vs, spec = data.draw(steerable(), "vs and spec")
    dr = data.draw(destination_rules("v2"), "dr")
    assert istio_violations(vs) == [] and istio_violations(dr) == []  # the shapes are real
    original_vs, original_dr = json.dumps(vs), json.dumps(dr)
    try:
        check(vs, dr, "ui", spec)
    except MeshError as error:
        assert_one_clear_line(str(error))
        assert lint_line(vs, dr, spec) == [f"r.yaml: Rollout shop/ui: {error}"]
        return
    assert lint_line(vs, dr, spec) == []

    index = route_index(vs, "ui", spec.virtual_service.route)
    others = [
        target
        for kind in ("http", "tcp", "tls")
        for i, route in enumerate(vs["spec"].get(kind) or [])
        if not (kind == "http" and i == index)
        for target in targets(route)
    ]
    assert not any(reaches_canary(t, dr) for t in others)  # nothing else reaches the canary

    steps = release_traffics(spec)
    rollback_at = data.draw(st.integers(0, len(steps) - 1), "rollback at")
    steps[rollback_at + 1 : rollback_at + 1] = [Traffic(0, 0.0, False, "v1", "v2")]
    current_vs, current_dr = vs, dr
    for traffic in steps:
        current_dr = plan_destination_rule(current_dr, "ui", spec, traffic).obj
        current_vs = plan_virtual_service(current_vs, "ui", spec, traffic).obj
        check(current_vs, current_dr, "ui", spec)
        assert istio_violations(current_vs) == []
        assert istio_violations(current_dr) == []
        assert unmanaged_vs(current_vs, index, spec) == unmanaged_vs(vs, index, spec)
        assert unmanaged_dr(current_dr, spec) == unmanaged_dr(dr, spec)
        routes = current_vs["spec"]["http"]
        managed = routes[index + int(traffic.header_route)]
        assert canary_share(managed) == traffic.canary_weight
        assert {e["destination"]["subset"] for e in managed["route"]} <= {STABLE, CANARY}
        if traffic.header_route:
            header = routes[index]
            assert header["name"] == HEADER_ROUTE
            assert {e["destination"]["subset"] for e in header["route"]} == {CANARY}
        mirror = managed.get("mirror") or {}
        if traffic.mirror_percent:
            assert mirror.get("subset") == CANARY
            assert managed["mirrorPercentage"] == {"value": traffic.mirror_percent}
        else:
            assert mirror.get("subset") != CANARY

    released_vs = release_virtual_service(current_vs, "ui", spec, "v2").obj
    released_dr = release_destination_rule(current_dr, "ui", spec, "v2").obj
    assert istio_violations(released_vs) == [] and istio_violations(released_dr) == []
    assert unmanaged_vs(released_vs, index, spec) == unmanaged_vs(vs, index, spec)
    assert "canary.dev/claims" not in (released_vs["metadata"].get("annotations") or {})
    assert "canary.dev/claims" not in (released_dr["metadata"].get("annotations") or {})
    assert [e["destination"]["subset"] for e in released_vs["spec"]["http"][index]["route"]] == [
        STABLE
    ]
    # inputs untouched: the informers hand the router their own objects
    assert after_reads(vs, dr, spec) == (original_vs, original_dr)


@PROPERTY
@given(st.data())
def test_a_second_rollout_on_the_same_objects_is_refused_naming_the_first(
    data: st.DataObject,
) -> None:
    vs = data.draw(virtual_services(), "vs")
    dr = data.draw(destination_rules("v2"), "dr")
    spec = data.draw(rollout_specs(vs), "spec")
    other = data.draw(rollout_specs(vs), "other spec")
    try:
        check(vs, dr, "ui", spec)
        check(vs, dr, "ui-2", other)  # each alone would be fine
    except MeshError:
        return
    split = Traffic(25, 0.0, False, "v1", "v2")
    steered_dr = plan_destination_rule(dr, "ui", spec, split).obj
    steered_vs = plan_virtual_service(vs, "ui", spec, split).obj
    try:
        check(steered_vs, steered_dr, "ui-2", other)
    except MeshError as error:
        assert_one_clear_line(str(error))
        assert re.search(r"Rollout shop/ui(?![-\w])", str(error)), str(error)
        return
    raise AssertionError("two Rollouts steering the same subsets were both accepted")
