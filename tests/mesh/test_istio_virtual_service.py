"""The Istio planner on VirtualServices, case by case.

Aspects: weights per canary weight, the stable destination, hosts, mirror ownership, the header
route and its match, claims and the saved original spec, release, and every MeshError message.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from mesh_helpers import (
    CANARY,
    STABLE,
    annotations,
    claims,
    http,
    refusal,
    rollout_spec,
    route_named,
    traffic,
    ui_destination_rule,
    ui_virtual_service,
)

from canary.core.traffic import Traffic
from canary.mesh.istio import (
    CLAIMS_ANNOTATION,
    ORIGINAL_SPEC_ANNOTATION,
    IstioRouter,
    MeshError,
    check,
    plan_virtual_service,
    release_virtual_service,
)
from canary.mesh.router import MeshRouter

SPEC = rollout_spec()


def plan(vs: dict[str, Any], t: Traffic, spec: Any = SPEC, rollout: str = "ui") -> Any:
    return plan_virtual_service(vs, rollout, spec, t)


def destination(subset: str, weight: int | None = None, **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"destination": {"host": "ui", "subset": subset, **extra}}
    if weight is not None:
        entry["weight"] = weight
    return entry


def with_primary(**fields: Any) -> dict[str, Any]:
    vs = ui_virtual_service()
    http(vs)[0].update(fields)
    return vs


# ---------------------------------------------------------------- weights


def test_weight_zero_on_the_users_vs_plans_no_write() -> None:
    vs = ui_virtual_service()
    planned = plan(vs, traffic(0))
    assert planned.changed is False
    assert planned.obj == vs
    assert planned.obj is not vs


def test_weight_zero_keeps_an_explicit_weight_100() -> None:
    vs = with_primary(route=[destination(STABLE, 100)])
    assert plan(vs, traffic(0)).changed is False


@pytest.mark.parametrize("weight", [1, 10, 25, 50, 75, 99])
def test_split_sends_w_to_canary_and_the_rest_to_stable(weight: int) -> None:
    primary = route_named(plan(ui_virtual_service(), traffic(weight)).obj, "primary")
    assert primary["route"] == [destination(STABLE, 100 - weight), destination(CANARY, weight)]


def test_full_canary_keeps_stable_listed_at_weight_zero() -> None:
    primary = route_named(plan(ui_virtual_service(), traffic(100)).obj, "primary")
    assert primary["route"] == [destination(STABLE, 0), destination(CANARY, 100)]


def test_back_to_weight_zero_leaves_stable_alone_without_weight() -> None:
    split = plan(ui_virtual_service(), traffic(50)).obj
    primary = route_named(plan(split, traffic(0)).obj, "primary")
    assert primary["route"] == [destination(STABLE)]


def test_canary_copies_the_stable_destination_port_and_header_manipulation() -> None:
    stable = {"destination": {"host": "ui", "subset": STABLE, "port": {"number": 8080}}}
    stable["headers"] = {"request": {"set": {"x-env": "prod"}}}
    primary = route_named(plan(with_primary(route=[stable]), traffic(10)).obj, "primary")
    assert primary["route"][1] == {
        "destination": {"host": "ui", "subset": CANARY, "port": {"number": 8080}},
        "headers": {"request": {"set": {"x-env": "prod"}}},
        "weight": 10,
    }


def test_first_destination_becomes_stable_when_none_names_the_stable_subset() -> None:
    vs = with_primary(route=[{"destination": {"host": "ui.shop.svc.cluster.local"}}])
    primary = route_named(plan(vs, traffic(10)).obj, "primary")
    assert primary["route"][0] == {
        "destination": {"host": "ui.shop.svc.cluster.local", "subset": STABLE},
        "weight": 90,
    }


def test_stable_is_found_by_subset_whatever_its_position() -> None:
    vs = with_primary(route=[destination(CANARY, 30), destination(STABLE, 70)])
    primary = route_named(plan(vs, traffic(0)).obj, "primary")
    assert primary["route"] == [destination(STABLE)]


@pytest.mark.parametrize("host", ["ui", "ui.shop", "ui.shop.svc", "ui.shop.svc.cluster.local"])
def test_every_short_form_of_the_host_is_accepted(host: str) -> None:
    vs = with_primary(route=[{"destination": {"host": host, "subset": STABLE}}])
    assert plan(vs, traffic(10)).changed


def test_weights_outside_0_to_100_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match=r"0\.\.100"):
        plan(ui_virtual_service(), traffic(101))


# ---------------------------------------------------------------- mirror


def test_mirror_copies_to_the_canary_subset_and_keeps_stable_at_100() -> None:
    primary = route_named(plan(ui_virtual_service(), traffic(mirror=40.5)).obj, "primary")
    assert primary == {
        "name": "primary",
        "route": [destination(STABLE)],
        "mirror": {"host": "ui", "subset": CANARY},
        "mirrorPercentage": {"value": 40.5},
    }


def test_mirror_carries_the_stable_port() -> None:
    vs = with_primary(route=[destination(STABLE, port={"number": 80})])
    primary = route_named(plan(vs, traffic(mirror=100)).obj, "primary")
    assert primary["mirror"] == {"host": "ui", "subset": CANARY, "port": {"number": 80}}


def test_mirror_zero_removes_our_mirror() -> None:
    mirrored = plan(ui_virtual_service(), traffic(mirror=100)).obj
    primary = route_named(plan(mirrored, traffic()).obj, "primary")
    assert "mirror" not in primary
    assert "mirrorPercentage" not in primary


def test_mirror_zero_leaves_the_users_own_mirror_alone() -> None:
    vs = with_primary(mirror={"host": "shadow", "subset": "v9"}, mirrorPercentage={"value": 5})
    assert plan(vs, traffic(10)).obj["spec"]["http"][0]["mirror"] == {
        "host": "shadow",
        "subset": "v9",
    }


def test_mirroring_over_the_users_own_mirror_is_refused() -> None:
    vs = with_primary(mirror={"host": "shadow", "subset": "v9"})
    assert refusal(plan, vs, traffic(mirror=100)) == (
        'VirtualService shop/ui route \'primary\' already mirrors to {"host":"shadow",'
        '"subset":"v9"}, which the mirror stage of Rollout shop/ui would replace with its own '
        "mirror to subset 'version-2-beta': remove that mirror from the route or drop "
        "spec.stages.mirror from the Rollout."
    )


def test_a_mirror_at_our_canary_subset_counts_as_ours() -> None:
    vs = with_primary(mirror={"host": "ui.shop", "subset": CANARY}, mirrorPercent=50)
    primary = route_named(plan(vs, traffic(mirror=20)).obj, "primary")
    assert primary["mirror"] == {"host": "ui", "subset": CANARY}
    assert primary["mirrorPercentage"] == {"value": 20}
    assert "mirrorPercent" not in primary


# ---------------------------------------------------------------- header route


def test_header_route_sits_directly_above_the_managed_route() -> None:
    vs = ui_virtual_service()
    http(vs).insert(0, {"name": "admin", "route": [{"destination": {"host": "admin"}}]})
    http(vs).append({"name": "fallback", "route": [{"destination": {"host": "legacy"}}]})
    routes = http(plan(vs, traffic(header=True)).obj)
    assert [route["name"] for route in routes] == ["admin", "ui-canary", "primary", "fallback"]
    assert routes[1] == {
        "name": "ui-canary",
        "match": [{"headers": {"version": {"exact": "beta"}}}],
        "route": [destination(CANARY)],
    }


def test_header_route_goes_away_with_its_claim() -> None:
    with_header = plan(ui_virtual_service(), traffic(header=True)).obj
    assert claims(with_header)["routes"]["ui-canary"] == "ui"
    without = plan(with_header, traffic()).obj
    assert [route["name"] for route in http(without)] == ["primary"]
    assert claims(without) == {"routes": {"primary": "ui"}}


def test_header_route_follows_the_managed_route_when_it_moves() -> None:
    with_header = plan(ui_virtual_service(), traffic(header=True)).obj
    http(with_header).insert(0, {"name": "new", "route": [{"destination": {"host": "x"}}]})
    http(with_header).insert(0, http(with_header).pop(2))  # primary moved to the top
    routes = http(plan(with_header, traffic(header=True)).obj)
    assert [route["name"] for route in routes] == ["ui-canary", "primary", "new"]


def test_client_ip_becomes_a_match_on_the_first_forwarded_address() -> None:
    spec = rollout_spec(
        stages={
            "headerCanary": {"match": [{"clientIP": "141.0.205.122"}, {"uri": {"prefix": "/b"}}]}
        }
    )
    header_route = route_named(
        plan(ui_virtual_service(), traffic(header=True), spec).obj, "ui-canary"
    )
    assert header_route["match"] == [
        {"headers": {"x-forwarded-for": {"regex": r"^141\.0\.205\.122(\s*,.*)?$"}}},
        {"uri": {"prefix": "/b"}},
    ]


def test_client_ip_merges_into_the_headers_of_its_match() -> None:
    spec = rollout_spec(
        stages={
            "headerCanary": {
                "match": [{"clientIP": "1.2.3.4", "headers": {"version": {"exact": "beta"}}}]
            }
        }
    )
    header_route = route_named(
        plan(ui_virtual_service(), traffic(header=True), spec).obj, "ui-canary"
    )
    assert header_route["match"] == [
        {
            "headers": {
                "version": {"exact": "beta"},
                "x-forwarded-for": {"regex": r"^1\.2\.3\.4(\s*,.*)?$"},
            }
        }
    ]


def test_client_ip_and_a_forwarded_for_header_together_are_refused() -> None:
    spec = rollout_spec(
        stages={
            "headerCanary": {
                "match": [{"clientIP": "1.2.3.4", "headers": {"X-Forwarded-For": {"exact": "x"}}}]
            }
        }
    )
    assert refusal(plan, ui_virtual_service(), traffic(header=True), spec) == (
        "Rollout shop/ui gives both clientIP and an x-forwarded-for header in one "
        "spec.stages.headerCanary.match entry: keep only one of them."
    )


def test_header_route_inherits_the_managed_routes_match_and_handling() -> None:
    vs = with_primary(
        match=[{"uri": {"prefix": "/ui"}}, {"port": 8080}],
        rewrite={"uri": "/"},
        timeout="3s",
        retries={"attempts": 2},
    )
    header_route = route_named(plan(vs, traffic(header=True)).obj, "ui-canary")
    assert header_route == {
        "name": "ui-canary",
        "match": [
            {"uri": {"prefix": "/ui"}, "headers": {"version": {"exact": "beta"}}},
            {"port": 8080, "headers": {"version": {"exact": "beta"}}},
        ],
        "route": [destination(CANARY)],
        "rewrite": {"uri": "/"},
        "timeout": "3s",
        "retries": {"attempts": 2},
    }


def test_header_route_does_not_inherit_the_mirror() -> None:
    vs = plan(ui_virtual_service(), traffic(mirror=100)).obj
    header_route = route_named(plan(vs, traffic(mirror=100, header=True)).obj, "ui-canary")
    assert "mirror" not in header_route
    assert "mirrorPercentage" not in header_route


def test_headers_of_both_matches_are_combined() -> None:
    vs = with_primary(match=[{"headers": {"tenant": {"exact": "a"}}}])
    header_route = route_named(plan(vs, traffic(header=True)).obj, "ui-canary")
    assert header_route["match"] == [
        {"headers": {"tenant": {"exact": "a"}, "version": {"exact": "beta"}}}
    ]


def test_a_match_that_contradicts_the_managed_route_is_refused() -> None:
    vs = with_primary(match=[{"uri": {"prefix": "/ui"}}])
    spec = rollout_spec(stages={"headerCanary": {"match": [{"uri": {"prefix": "/beta"}}]}})
    assert refusal(plan, vs, traffic(header=True), spec) == (
        "spec.stages.headerCanary.match of Rollout shop/ui and route 'primary' of "
        "VirtualService shop/ui both match on uri with different values: drop uri from the "
        "headerCanary match, the header route already inherits the route's own match."
    )


def test_a_header_route_name_taken_by_the_user_is_refused() -> None:
    vs = ui_virtual_service()
    http(vs).append({"name": "ui-canary", "route": [{"destination": {"host": "other"}}]})
    assert refusal(plan, vs, traffic(header=True)) == (
        "VirtualService shop/ui already has an http route named 'ui-canary' that Rollout "
        "shop/ui did not create: rename or remove that route so the header canary can use "
        "the name."
    )


def test_a_users_route_with_the_header_route_name_is_left_alone_otherwise() -> None:
    vs = ui_virtual_service()
    users = {"name": "ui-canary", "route": [{"destination": {"host": "other"}}]}
    http(vs).append(users)
    assert http(plan(vs, traffic(10)).obj)[1] == users


def test_header_route_without_a_header_stage_is_refused() -> None:
    spec = rollout_spec(stages={"split": {"steps": [50, 100]}})
    assert refusal(plan, ui_virtual_service(), traffic(header=True), spec) == (
        "Rollout shop/ui asks for a header canary but has no spec.stages.headerCanary: "
        "add that stage with a match."
    )


# ---------------------------------------------------------------- claims and ownership


def test_first_write_claims_the_route_and_saves_the_original_spec() -> None:
    vs = ui_virtual_service()
    vs["metadata"]["annotations"] = {"team": "web"}
    planned = plan(vs, traffic(10)).obj
    assert annotations(planned) == {
        "team": "web",
        ORIGINAL_SPEC_ANNOTATION: json.dumps(vs["spec"], separators=(",", ":")),
        CLAIMS_ANNOTATION: '{"routes":{"primary":"ui"}}',
    }


def test_the_original_spec_is_saved_only_once() -> None:
    first = plan(ui_virtual_service(), traffic(10)).obj
    saved = annotations(first)[ORIGINAL_SPEC_ANNOTATION]
    second = plan(first, traffic(50)).obj
    assert annotations(second)[ORIGINAL_SPEC_ANNOTATION] == saved


@pytest.mark.parametrize(
    "claim",
    [
        {CLAIMS_ANNOTATION: '{"routes":{"primary":"other"}}'},
        {"canary.dev/route.primary": "other"},  # as releases before canary.dev/claims wrote it
    ],
)
def test_a_route_claimed_by_another_rollout_is_refused(claim: dict[str, str]) -> None:
    vs = ui_virtual_service()
    vs["metadata"]["annotations"] = claim
    expected = (
        "VirtualService shop/ui route 'primary' is already managed by Rollout shop/other: "
        "point spec.virtualService.route of Rollout shop/ui at another route or delete "
        "Rollout shop/other."
    )
    with pytest.raises(MeshError) as planning:
        plan(vs, traffic(10))
    with pytest.raises(MeshError) as checking:
        check(vs, ui_destination_rule(), "ui", SPEC)
    assert str(planning.value) == str(checking.value) == expected


def test_our_own_claim_passes_the_ownership_check() -> None:
    check(plan(ui_virtual_service(), traffic(10)).obj, ui_destination_rule(), "ui", SPEC)
    check(ui_virtual_service(), ui_destination_rule(), "ui", SPEC)


def test_two_rollouts_steer_two_routes_of_one_virtual_service() -> None:
    vs = ui_virtual_service()
    http(vs).append({"name": "api", "route": [{"destination": {"host": "api"}}]})
    api = rollout_spec(host="api", virtualService={"name": "ui", "route": "api"})
    both = plan(plan(vs, traffic(10)).obj, traffic(20), api, rollout="api").obj
    assert claims(both) == {"routes": {"primary": "ui", "api": "api"}}
    assert [len(route["route"]) for route in http(both)] == [2, 2]


# ---------------------------------------------------------------- MeshError for the VirtualService


def test_a_missing_route_names_the_route_and_the_fix() -> None:
    vs = ui_virtual_service()
    del http(vs)[0]["name"]
    assert refusal(plan, vs, traffic(10)) == (
        "VirtualService shop/ui has no http route named 'primary': add `name: primary` to the "
        "route to steer, or fix spec.virtualService.route of Rollout shop/ui (leave it out when "
        "the VirtualService has one http route to ui)."
    )


@pytest.mark.parametrize("body", [{"hosts": ["ui"]}, {"hosts": ["ui"], "http": []}, None])
def test_a_virtual_service_without_http_routes_is_refused(body: Any) -> None:
    vs = ui_virtual_service()
    vs["spec"] = body
    assert refusal(plan, vs, traffic(10)) == (
        "VirtualService shop/ui has no http routes: add an http route to host ui or fix "
        "spec.virtualService of Rollout shop/ui."
    )


def test_two_routes_with_the_managed_name_are_refused() -> None:
    vs = ui_virtual_service()
    http(vs).append(copy.deepcopy(http(vs)[0]))
    with pytest.raises(MeshError, match="has 2 http routes named 'primary': give each route"):
        plan(vs, traffic(10))


def test_a_route_to_another_host_is_refused() -> None:
    vs = with_primary(route=[destination(STABLE, 90), {"destination": {"host": "payments"}}])
    assert refusal(plan, vs, traffic(10)) == (
        "VirtualService shop/ui route 'primary' sends traffic to host 'payments', not 'ui': "
        "point every destination of that route at ui or fix spec.host in Rollout shop/ui."
    )


def test_a_host_in_another_namespace_is_refused() -> None:
    vs = with_primary(route=[{"destination": {"host": "ui.other", "subset": STABLE}}])
    with pytest.raises(MeshError, match=r"sends traffic to host 'ui\.other'"):
        plan(vs, traffic(10))


def test_a_route_without_destinations_is_refused() -> None:
    vs = ui_virtual_service()
    http(vs)[0] = {"name": "primary", "redirect": {"uri": "/v1"}}
    assert refusal(plan, vs, traffic(10)) == (
        "VirtualService shop/ui route 'primary' has no destinations to steer: "
        "give it `route: [{destination: {host: ui}}]` or steer another route with Rollout "
        "shop/ui."
    )


@pytest.mark.parametrize("name", ["api v2/main", "primary route", "ü/ñ:*", "r" * 1000])
def test_any_route_name_is_steered_and_claimed(name: str) -> None:
    vs = ui_virtual_service()
    http(vs)[0]["name"] = name
    spec = rollout_spec(virtualService={"name": "ui", "route": name})
    planned = plan(vs, traffic(10, header=True), spec).obj
    assert claims(planned) == {"routes": {name: "ui", "ui-canary": "ui"}}
    assert [route["name"] for route in http(planned)] == ["ui-canary", name]
    released = release_virtual_service(planned, "ui", spec, "v1").obj
    assert released == vs


def test_steering_the_header_route_name_itself_is_refused() -> None:
    vs = ui_virtual_service()
    http(vs)[0]["name"] = "ui-canary"
    spec = rollout_spec(virtualService={"name": "ui", "route": "ui-canary"})
    assert refusal(plan, vs, traffic(10), spec) == (
        "Rollout shop/ui steers route 'ui-canary', the name its header canary route takes: "
        "rename that route in VirtualService shop/ui (and in spec.virtualService.route)."
    )


def test_a_namespace_less_virtual_service_is_named_in_default() -> None:
    vs = ui_virtual_service()
    del vs["metadata"]["namespace"]
    del http(vs)[0]["name"]
    with pytest.raises(MeshError, match="VirtualService default/ui has no http route"):
        plan(vs, traffic(10))


# ---------------------------------------------------------------- release


def test_release_gives_back_the_users_virtual_service() -> None:
    vs = ui_virtual_service()
    vs["metadata"]["annotations"] = {"team": "web"}
    steered = plan(plan(vs, traffic(mirror=100)).obj, traffic(header=True, mirror=50)).obj
    released = release_virtual_service(steered, "ui", SPEC, "v1")
    assert released.changed
    assert released.obj == vs


def test_an_explicit_weight_100_becomes_implicit_once_a_split_ran() -> None:
    vs = with_primary(route=[destination(STABLE, 100)])
    released = release_virtual_service(plan(vs, traffic(10)).obj, "ui", SPEC, "v1").obj
    assert route_named(released, "primary")["route"] == [destination(STABLE)]
    assert plan(with_primary(route=[destination(STABLE, 100)]), traffic(0)).changed is False


def test_release_mid_split_returns_all_traffic_to_stable() -> None:
    split = plan(ui_virtual_service(), traffic(75)).obj
    released = release_virtual_service(split, "ui", SPEC, "v2").obj
    assert released == ui_virtual_service()


def test_release_keeps_the_original_spec_while_another_rollout_claims_a_route() -> None:
    vs = ui_virtual_service()
    http(vs).append({"name": "api", "route": [{"destination": {"host": "api"}}]})
    api = rollout_spec(host="api", virtualService={"name": "ui", "route": "api"})
    both = plan(plan(vs, traffic(10)).obj, traffic(20), api, rollout="api").obj
    released = release_virtual_service(both, "ui", SPEC, "v1").obj
    assert set(annotations(released)) == {ORIGINAL_SPEC_ANNOTATION, CLAIMS_ANNOTATION}
    assert claims(released) == {"routes": {"api": "api"}}
    assert route_named(released, "primary")["route"] == [destination(STABLE)]
    assert len(route_named(released, "api")["route"]) == 2


def test_release_leaves_a_route_claimed_by_another_rollout_alone() -> None:
    split = plan(ui_virtual_service(), traffic(50), rollout="other").obj
    assert release_virtual_service(split, "ui", SPEC, "v1").changed is False


def test_release_of_an_untouched_virtual_service_changes_nothing() -> None:
    assert release_virtual_service(ui_virtual_service(), "ui", SPEC, "v1").changed is False


def test_release_survives_a_route_the_user_removed() -> None:
    split = plan(ui_virtual_service(), traffic(50)).obj
    http(split)[0]["name"] = "renamed"
    released = release_virtual_service(split, "ui", SPEC, "v1")
    assert "annotations" not in released.obj["metadata"]
    assert http(released.obj)[0]["route"] == http(split)[0]["route"]


# ---------------------------------------------------------------- the port


def test_istio_router_implements_the_port() -> None:
    router: MeshRouter = IstioRouter()
    vs = ui_virtual_service()
    assert router.plan_virtual_service(vs, "ui", SPEC, traffic(10)) == plan(vs, traffic(10))
    assert router.release_virtual_service(vs, "ui", SPEC, "v1").changed is False
    router.check(vs, ui_destination_rule(), "ui", SPEC)
