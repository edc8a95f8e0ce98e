"""Properties of the Istio planner over random Traffic and random VirtualServices.

Aspects: weights of every planned route sum to 100 within 0..100; planning is idempotent;
every route, field and annotation we do not manage survives byte for byte (order included);
the input is never mutated; any sequence of plans followed by a release gives back the user's
VirtualService; DestinationRules change only the version label of our two subsets.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from mesh_helpers import CANARY, NAMESPACE, STABLE, rollout_spec

from canary.core.traffic import Traffic
from canary.mesh.istio import (
    plan_destination_rule,
    plan_virtual_service,
    release_destination_rule,
    release_virtual_service,
)

SPEC = rollout_spec()
MANAGED = "primary"
HEADER_ROUTE = "ui-canary"
MANAGED_KEYS = ("route", "mirror", "mirrorPercentage", "mirrorPercent")

Json = dict[str, Any]

names = st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=8)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=5))
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=2), st.dictionaries(names, inner, max_size=2)),
    max_leaves=4,
)
ui_hosts = st.sampled_from(["ui", "ui.shop", "ui.shop.svc", "ui.shop.svc.cluster.local"])
ports = st.fixed_dictionaries({"number": st.integers(1, 65535)})


@st.composite
def traffics(draw: st.DrawFn) -> Traffic:
    return Traffic(
        canary_weight=draw(st.integers(0, 100)),
        mirror_percent=draw(st.one_of(st.just(0.0), st.floats(0.01, 100))),
        header_route=draw(st.booleans()),
        stable_version=draw(st.sampled_from(["v1", "v2"])),
        canary_version=draw(st.sampled_from(["v2", "v3"])),
    )


@st.composite
def destinations(draw: st.DrawFn, subsets: st.SearchStrategy[str | None]) -> Json:
    destination: Json = {"host": draw(ui_hosts)}
    subset = draw(subsets)
    if subset is not None:
        destination["subset"] = subset
    if draw(st.booleans()):
        destination["port"] = draw(ports)
    entry: Json = {"destination": destination}
    if draw(st.booleans()):
        entry["weight"] = draw(st.integers(0, 100))
    if draw(st.booleans()):
        entry["headers"] = {"request": {"set": {"x-from": draw(names)}}}
    return entry


route_fields = st.dictionaries(
    st.sampled_from(["timeout", "retries", "fault", "corsPolicy", "headers", "rewrite", "future"]),
    json_values,
    max_size=3,
)
route_matches = st.lists(
    st.one_of(
        st.fixed_dictionaries({"uri": st.fixed_dictionaries({"prefix": names})}),
        st.fixed_dictionaries({"port": ports.map(lambda p: p["number"])}),
    ),
    min_size=1,
    max_size=2,
)


@st.composite
def managed_routes(draw: st.DrawFn, canonical: bool = False) -> Json:
    route: Json = {"name": MANAGED}
    if draw(st.booleans()):
        route["match"] = draw(route_matches)
    if canonical:
        entry = draw(destinations(st.just(STABLE)))
        entry.pop("weight", None)
        route["route"] = [entry]
    elif draw(st.booleans()):  # a lone destination may name no subset: it becomes stable
        route["route"] = [draw(destinations(st.sampled_from([STABLE, CANARY, None])))]
    else:  # several: only our subsets (any other would be dropped, so it is refused)
        subsets = st.sampled_from([STABLE, CANARY])
        route["route"] = draw(st.lists(destinations(subsets), min_size=2, max_size=3))
    route.update(draw(route_fields))
    return route


@st.composite
def unmanaged_routes(draw: st.DrawFn) -> Json:
    route: Json = draw(route_fields)
    name = draw(st.one_of(st.none(), names.filter(lambda n: n not in (MANAGED, HEADER_ROUTE))))
    if name is not None:
        route["name"] = name
    # other hosts: routes to ui itself are the business of test_istio_real_world_shapes.py
    other_hosts = names.filter(lambda n: n != "ui")
    route["route"] = [{"destination": {"host": draw(other_hosts)}, "weight": 100}]
    if draw(st.booleans()):
        route["mirror"] = {"host": draw(other_hosts)}
    return route


@st.composite
def virtual_services(draw: st.DrawFn, canonical: bool = False) -> Json:
    above = draw(st.lists(unmanaged_routes(), max_size=2))
    below = draw(st.lists(unmanaged_routes(), max_size=2))
    metadata: Json = {"name": "ui", "namespace": NAMESPACE}
    annotations = draw(
        st.dictionaries(names.map(lambda n: f"example.com/{n}"), names, min_size=1, max_size=3)
    )
    if draw(st.booleans()):
        metadata["annotations"] = annotations
    if draw(st.booleans()):
        metadata["labels"] = {"app": "ui"}
    spec: Json = {"hosts": ["ui"], "http": [*above, draw(managed_routes(canonical)), *below]}
    spec.update(draw(st.dictionaries(st.sampled_from(["gateways", "tcp", "future"]), json_values)))
    kind = {"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService"}
    return {**kind, "metadata": metadata, "spec": spec}


def weights(route: Json) -> list[int]:
    entries = route["route"]
    if len(entries) == 1:
        return [entries[0].get("weight", 100)]
    return [entry["weight"] for entry in entries]


def unmanaged_view(vs: Json) -> str:
    """The object minus what the planner manages, as order-sensitive JSON."""
    view = copy.deepcopy(vs)
    kept = []
    for route in view["spec"]["http"]:
        if route.get("name") == HEADER_ROUTE:
            continue
        managed = route.get("name") == MANAGED
        kept.append({k: v for k, v in route.items() if not managed or k not in MANAGED_KEYS})
    view["spec"]["http"] = kept
    metadata = view["metadata"]
    ours = [key for key in metadata.get("annotations", {}) if key.startswith("canary.dev/")]
    for key in ours:
        del metadata["annotations"][key]
    if ours and not metadata["annotations"]:
        del metadata["annotations"]
    return json.dumps(view)


def managed_route(vs: Json) -> Json:
    return next(route for route in vs["spec"]["http"] if route.get("name") == MANAGED)


@given(virtual_services(), traffics())
def test_weights_sum_to_100_within_0_to_100(vs: Json, t: Traffic) -> None:
    planned = plan_virtual_service(vs, "ui", SPEC, t).obj
    primary = weights(managed_route(planned))
    assert sum(primary) == 100
    assert all(0 <= weight <= 100 for weight in primary)
    assert primary[-1] == (t.canary_weight or primary[-1])
    header = [r for r in planned["spec"]["http"] if r.get("name") == HEADER_ROUTE]
    assert len(header) == int(t.header_route)
    assert all(weights(route) == [100] for route in header)
    names_in_order = [route.get("name") for route in planned["spec"]["http"]]
    if t.header_route:
        assert names_in_order.index(HEADER_ROUTE) + 1 == names_in_order.index(MANAGED)


def plans_in_turn(vs: Json, steps: list[Traffic]) -> list[Json]:
    """The VirtualService before the first step and after each, each plan fed the one before (as
    the controller feeds back what it wrote)."""
    history = [vs]
    for step in steps:
        history.append(plan_virtual_service(history[-1], "ui", SPEC, step).obj)
    return history


@given(virtual_services(), st.lists(traffics(), min_size=1, max_size=5))
def test_release_after_any_sequence_leaves_stable_alone_and_the_rest_intact(
    vs: Json, steps: list[Traffic]
) -> None:
    history = plans_in_turn(vs, steps)
    for current in history[1:]:
        assert unmanaged_view(current) == unmanaged_view(vs)
    released = release_virtual_service(history[-1], "ui", SPEC, "v1").obj
    assert unmanaged_view(released) == unmanaged_view(vs)
    assert [route.get("name") for route in released["spec"]["http"]].count(HEADER_ROUTE) == 0
    primary = managed_route(released)
    assert [entry["destination"]["subset"] for entry in primary["route"]] == [STABLE]
    assert "mirror" not in primary or primary["mirror"].get("subset") != CANARY
    assert not any(
        key.startswith("canary.dev/") for key in released["metadata"].get("annotations", {})
    )


@given(virtual_services(), traffics())
def test_planning_its_own_output_changes_nothing(vs: Json, t: Traffic) -> None:
    once = plan_virtual_service(vs, "ui", SPEC, t)
    twice = plan_virtual_service(once.obj, "ui", SPEC, t)
    assert twice.changed is False
    assert twice.obj == once.obj


@given(virtual_services(), traffics())
def test_unmanaged_parts_survive_byte_for_byte(vs: Json, t: Traffic) -> None:
    planned = plan_virtual_service(vs, "ui", SPEC, t).obj
    assert unmanaged_view(planned) == unmanaged_view(vs)


@given(virtual_services(), traffics())
def test_the_input_is_never_mutated(vs: Json, t: Traffic) -> None:
    before = json.dumps(vs)
    planned = plan_virtual_service(vs, "ui", SPEC, t)
    released = release_virtual_service(planned.obj, "ui", SPEC, t.stable_version)
    assert json.dumps(vs) == before
    assert planned.obj["spec"] is not vs["spec"]
    assert released.obj["spec"] is not planned.obj["spec"]


@given(virtual_services(canonical=True), st.lists(traffics(), max_size=6))
def test_any_release_then_delete_gives_back_the_users_virtual_service(
    vs: Json, steps: list[Traffic]
) -> None:
    released = release_virtual_service(plans_in_turn(vs, steps)[-1], "ui", SPEC, "v1")
    assert json.dumps(released.obj) == json.dumps(vs)
    assert release_virtual_service(released.obj, "ui", SPEC, "v1").changed is False


@given(virtual_services(canonical=True), st.booleans())
def test_stable_only_on_the_users_virtual_service_plans_no_write(
    vs: Json, explicit_weight: bool
) -> None:
    if explicit_weight:
        managed_route(vs)["route"][0]["weight"] = 100
    stable_only = Traffic(0, 0.0, False, "v1", "v2")
    assert plan_virtual_service(vs, "ui", SPEC, stable_only).changed is False


@st.composite
def destination_rules(draw: st.DrawFn) -> Json:
    def subset(name: str) -> Json:
        labels = draw(st.dictionaries(names, names, max_size=3))
        return {"name": name, "labels": labels, **draw(route_fields)}

    ours = [subset(STABLE), subset(CANARY)]
    others = [subset(f"x-{n}") for n in draw(st.lists(names, max_size=2, unique=True))]
    subsets = draw(st.permutations([*ours, *others]))
    spec: Json = {"host": draw(ui_hosts), "subsets": subsets}
    spec.update(draw(st.dictionaries(st.sampled_from(["trafficPolicy", "future"]), json_values)))
    return {"metadata": {"name": "ui", "namespace": NAMESPACE}, "spec": spec}


@given(destination_rules(), traffics())
def test_destination_rules_change_only_our_version_labels(dr: Json, t: Traffic) -> None:
    before = json.dumps(dr)
    planned = plan_destination_rule(dr, "ui", SPEC, t)
    assert json.dumps(dr) == before
    expected = copy.deepcopy(dr)
    for subset in expected["spec"]["subsets"]:
        if subset["name"] == STABLE:
            subset["labels"]["version"] = t.stable_version
        if subset["name"] == CANARY:
            subset["labels"]["version"] = t.canary_version
    if expected != dr or t.canary_weight or t.mirror_percent or t.header_route:
        subsets = json.dumps({"subsets": {STABLE: "ui", CANARY: "ui"}}, separators=(",", ":"))
        expected["metadata"]["annotations"] = {"canary.dev/claims": subsets}
    assert json.dumps(planned.obj) == json.dumps(expected)
    assert plan_destination_rule(planned.obj, "ui", SPEC, t).changed is False
    released = release_destination_rule(planned.obj, "ui", SPEC, t.stable_version).obj
    assert "annotations" not in released["metadata"]
