"""The Istio planner: finding the managed route, claims, and traffic the canary must not get.

Aspects: an unnamed route steered when it is the only http route to the host (header routes of
any Rollout do not count), several routes or none refused with one sentence that lists them;
the route found again at every plan (a second route, a vanished one, or a changed match while
the canary has traffic is refused); claims in `canary.dev/claims` for any route or Rollout name,
legacy `canary.dev/route.*` claims read and migrated, stale claims released; DestinationRule
subsets claimed like routes (the second Rollout refused naming the first; deletion releases
only its own); routes, mirrors and subsets that would send the canary unchecked traffic.
"""

from __future__ import annotations

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
    traffic,
    ui_destination_rule,
    ui_virtual_service,
)

from canary.mesh.istio import (
    CLAIMS_ANNOTATION,
    check,
    plan_destination_rule,
    plan_virtual_service,
    release_destination_rule,
    release_virtual_service,
    route_index,
)

UNNAMED = rollout_spec(virtualService={"name": "ui"})
HOST = "ui.shop.svc.cluster.local"


def unnamed_vs(*routes: dict[str, Any]) -> dict[str, Any]:
    vs = ui_virtual_service()
    vs["spec"]["http"] = list(routes) or [{"route": [{"destination": {"host": "ui"}}]}]
    return vs


def to_ui(subset: str | None = STABLE, **fields: Any) -> dict[str, Any]:
    destination: dict[str, Any] = {"host": "ui"}
    if subset is not None:
        destination["subset"] = subset
    return {"route": [{"destination": destination}], **fields}


# ---------------------------------------------------------------- the unnamed route


def test_the_only_route_to_the_host_is_steered_without_a_name() -> None:
    vs = unnamed_vs()
    planned = plan_virtual_service(vs, "ui", UNNAMED, traffic(25)).obj
    assert http(planned) == [
        {
            "route": [
                {"destination": {"host": "ui", "subset": STABLE}, "weight": 75},
                {"destination": {"host": "ui", "subset": CANARY}, "weight": 25},
            ]
        }
    ]
    assert claims(planned) == {"unnamedRoutes": {HOST: {"rollout": "ui", "match": None}}}
    assert release_virtual_service(planned, "ui", UNNAMED, "v1").obj["spec"]["http"] == [
        to_ui(STABLE)
    ]


def test_routes_to_other_hosts_and_without_destinations_do_not_count() -> None:
    vs = unnamed_vs(
        {"match": [{"uri": {"prefix": "/old"}}], "redirect": {"uri": "/new"}},
        {"name": "api", "route": [{"destination": {"host": "api"}}]},
        to_ui(None, timeout="5s"),
    )
    planned = plan_virtual_service(vs, "ui", UNNAMED, traffic(10)).obj
    assert http(planned)[:2] == http(vs)[:2]
    assert [e["weight"] for e in http(planned)[2]["route"]] == [90, 10]
    assert http(planned)[2]["timeout"] == "5s"


def test_the_header_route_is_never_taken_for_the_users_route() -> None:
    vs = unnamed_vs(to_ui(None, match=[{"uri": {"prefix": "/"}}]))
    current = vs
    for step in (traffic(header=True), traffic(header=True), traffic(10), traffic()):
        current = plan_virtual_service(current, "ui", UNNAMED, step).obj
        check(current, ui_destination_rule(), "ui", UNNAMED)
    assert http(current) == [to_ui(STABLE, match=[{"uri": {"prefix": "/"}}])]


def test_another_rollouts_header_route_does_not_count_either() -> None:
    vs = unnamed_vs(to_ui(), {"name": "api", "route": [{"destination": {"host": "api"}}]})
    api = rollout_spec(host="api", virtualService={"name": "ui", "route": "api"})
    with_api_header = plan_virtual_service(vs, "api", api, traffic(header=True)).obj
    assert [r.get("name") for r in http(with_api_header)] == [None, "api-canary", "api"]
    planned = plan_virtual_service(with_api_header, "ui", UNNAMED, traffic(10)).obj
    assert len(http(planned)[0]["route"]) == 2
    assert http(planned)[1:] == http(with_api_header)[1:]


def test_several_routes_to_the_host_are_listed_with_their_matches() -> None:
    vs = unnamed_vs(
        to_ui(match=[{"headers": {"end-user": {"exact": "jason"}}}]),
        {"name": "api", **to_ui(match=[{"uri": {"prefix": "/api"}}])},
        to_ui(),
    )
    assert refusal(plan_virtual_service, vs, "ui", UNNAMED, traffic(10)) == (
        "VirtualService shop/ui has 3 http routes to host ui (http[0] with no name matching "
        '[{"headers":{"end-user":{"exact":"jason"}}}], http[1] \'api\' matching '
        '[{"uri":{"prefix":"/api"}}], http[2] with no name matching every request): give the '
        "one to steer a `name` and set spec.virtualService.route of Rollout shop/ui to it."
    )


def test_no_route_to_the_host_points_at_a_delegate_when_there_is_one() -> None:
    vs = unnamed_vs({"match": [{"uri": {"prefix": "/"}}], "delegate": {"name": "ui-routes"}})
    assert refusal(check, vs, ui_destination_rule(), "ui", UNNAMED) == (
        "VirtualService shop/ui has no http route to host ui (http[0] delegates to "
        "VirtualService shop/ui-routes: point spec.virtualService.name there): add a route "
        "with `route: [{destination: {host: ui}}]` or fix spec.host or spec.virtualService "
        "of Rollout shop/ui."
    )


def test_a_named_route_that_delegates_says_where_to_point() -> None:
    vs = unnamed_vs({"name": "primary", "delegate": {"name": "ui-routes", "namespace": "web"}})
    assert refusal(check, vs, ui_destination_rule(), "ui", rollout_spec()) == (
        "VirtualService shop/ui route 'primary' delegates to VirtualService web/ui-routes: "
        "point spec.virtualService of Rollout shop/ui at that VirtualService and the route "
        "there that sends traffic to ui."
    )


def test_a_second_route_appearing_mid_release_is_refused_and_nothing_planned() -> None:
    split = plan_virtual_service(unnamed_vs(), "ui", UNNAMED, traffic(25)).obj
    http(split).insert(0, to_ui(match=[{"uri": {"prefix": "/beta"}}]))
    message = refusal(plan_virtual_service, split, "ui", UNNAMED, traffic(50))
    assert message.startswith("VirtualService shop/ui has 2 http routes to host ui (")


def test_the_route_vanishing_mid_release_is_refused() -> None:
    split = plan_virtual_service(unnamed_vs(), "ui", UNNAMED, traffic(25)).obj
    split["spec"]["http"] = [{"route": [{"destination": {"host": "legacy"}}]}]
    message = refusal(check, split, ui_destination_rule(), "ui", UNNAMED)
    assert message.startswith("VirtualService shop/ui has no http route to host ui:")


def test_a_changed_match_while_the_canary_has_traffic_is_refused() -> None:
    split = plan_virtual_service(unnamed_vs(), "ui", UNNAMED, traffic(25)).obj
    http(split)[0]["match"] = [{"uri": {"prefix": "/v2"}}]
    assert refusal(plan_virtual_service, split, "ui", UNNAMED, traffic(50)) == (
        "VirtualService shop/ui http[0], the unnamed route to host ui that Rollout shop/ui "
        'steers, changed its match from null to [{"uri":{"prefix":"/v2"}}] while the canary '
        "has traffic: restore that match, or abort the release (`canary abort ui`) before "
        "changing the route."
    )


def test_a_changed_match_without_canary_traffic_is_claimed_afresh() -> None:
    split = plan_virtual_service(unnamed_vs(), "ui", UNNAMED, traffic(25)).obj
    http(split)[0]["match"] = [{"uri": {"prefix": "/v2"}}]
    back = plan_virtual_service(split, "ui", UNNAMED, traffic()).obj
    assert claims(back)["unnamedRoutes"][HOST]["match"] == [{"uri": {"prefix": "/v2"}}]
    assert len(http(back)[0]["route"]) == 1
    assert plan_virtual_service(back, "ui", UNNAMED, traffic(10)).changed


def test_naming_the_route_later_moves_the_claim_to_its_name() -> None:
    split = plan_virtual_service(unnamed_vs(), "ui", UNNAMED, traffic(25)).obj
    http(split)[0]["name"] = "main"
    planned = plan_virtual_service(split, "ui", UNNAMED, traffic(25)).obj
    assert claims(planned) == {"routes": {"main": "ui"}}


def test_a_second_rollout_on_the_same_unnamed_route_is_refused() -> None:
    split = plan_virtual_service(unnamed_vs(), "ui", UNNAMED, traffic(25)).obj
    other = rollout_spec(virtualService={"name": "ui"}, stable={"subset": "b"})
    assert refusal(plan_virtual_service, split, "ui-b", other, traffic(10)) == (
        "VirtualService shop/ui http[0], its only route to host ui (it has no name), is "
        "already managed by Rollout shop/ui: delete Rollout shop/ui or give the route a name "
        "so that each of the Rollouts steers its own route by spec.virtualService.route."
    )


def test_the_simulator_finds_the_route_by_the_same_rule() -> None:
    vs = unnamed_vs({"name": "x", "route": [{"destination": {"host": "x"}}]}, to_ui())
    with_header = plan_virtual_service(vs, "ui", UNNAMED, traffic(header=True)).obj
    assert route_index(with_header, "ui") == 2
    assert route_index(with_header, "ui", "x") == 0


# ---------------------------------------------------------------- claims


def test_legacy_claims_are_moved_into_canary_dev_claims_at_the_next_write() -> None:
    vs = ui_virtual_service()
    vs["metadata"]["annotations"] = {
        "canary.dev/route.primary": "ui",
        "canary.dev/route.ui-canary": "ui",
        "canary.dev/route.api": "api",
        "team": "web",
    }
    planned = plan_virtual_service(vs, "ui", rollout_spec(), traffic(10)).obj
    assert set(annotations(planned)) == {"team", CLAIMS_ANNOTATION, "canary.dev/original-spec"}
    assert claims(planned) == {"routes": {"api": "api", "primary": "ui"}}


def test_a_legacy_header_route_claim_is_still_ours_to_remove() -> None:
    vs = plan_virtual_service(ui_virtual_service(), "ui", rollout_spec(), traffic(header=True)).obj
    vs["metadata"]["annotations"] = {
        "canary.dev/route.primary": "ui",
        "canary.dev/route.ui-canary": "ui",
    }
    planned = plan_virtual_service(vs, "ui", rollout_spec(), traffic(10)).obj
    assert [r["name"] for r in http(planned)] == ["primary"]


@pytest.mark.parametrize("text", ["not json", "[]", '{"routes": {"primary": 7}}', '{"x": {}}'])
def test_an_unreadable_claims_annotation_is_one_sentence(text: str) -> None:
    vs = ui_virtual_service()
    vs["metadata"]["annotations"] = {CLAIMS_ANNOTATION: text}
    assert refusal(plan_virtual_service, vs, "ui", rollout_spec(), traffic(10)) == (
        "VirtualService shop/ui has an annotation canary.dev/claims that is not the JSON "
        "object of claims canary writes: restore it from an earlier version of the object, or "
        "delete it and let each Rollout claim again."
    )
    assert release_virtual_service(vs, "ui", rollout_spec(), "v1").changed is False


def test_rollout_names_up_to_the_kubernetes_limit_claim_routes_and_subsets() -> None:
    name = ("a" * 63 + ".") * 3 + "b" * 61  # 253 characters, a valid DNS subdomain
    assert len(name) == 253
    vs = plan_virtual_service(ui_virtual_service(), name, rollout_spec(), traffic(header=True))
    dr = plan_destination_rule(ui_destination_rule(), name, rollout_spec(), traffic(10))
    assert claims(vs.obj)["routes"] == {"primary": name, f"{name}-canary": name}
    assert claims(dr.obj)["subsets"] == {STABLE: name, CANARY: name}
    total = sum(len(k) + len(v) for k, v in annotations(vs.obj).items())
    assert total < 256 * 1024


def test_a_changed_route_in_the_spec_returns_the_old_route_to_stable() -> None:
    vs = ui_virtual_service()
    http(vs).append({"name": "main", "match": [{"uri": {"prefix": "/m"}}], **to_ui()})
    split = plan_virtual_service(vs, "ui", rollout_spec(), traffic(25)).obj
    main = rollout_spec(virtualService={"name": "ui", "route": "main"})
    moved = plan_virtual_service(split, "ui", main, traffic(25)).obj
    assert http(moved)[0] == http(vs)[0]
    assert len(http(moved)[1]["route"]) == 2
    assert claims(moved) == {"routes": {"main": "ui"}}


# ---------------------------------------------------------------- DestinationRule subsets


def test_a_second_rollout_on_claimed_subsets_is_refused_naming_the_first() -> None:
    vs = ui_virtual_service()
    http(vs).append({"name": "api", **to_ui(match=[{"uri": {"prefix": "/api"}}])})
    dr = plan_destination_rule(ui_destination_rule(), "ui", rollout_spec(), traffic(25)).obj
    api = rollout_spec(virtualService={"name": "ui", "route": "api"})
    expected = (
        f"DestinationRule shop/ui subset '{STABLE}' is already steered by Rollout shop/ui, and "
        "two Rollouts never steer one subset: give Rollout shop/ui-api subsets of its own "
        "(spec.stable.subset, spec.canary.subset) or delete Rollout shop/ui."
    )
    assert refusal(check, vs, dr, "ui-api", api) == expected
    assert refusal(plan_destination_rule, dr, "ui-api", api, traffic(10)) == expected


def test_subsets_are_claimed_before_the_canary_gets_a_request_even_without_a_label_change() -> None:
    dr = ui_destination_rule()  # canary already selects v2: no label to move
    planned = plan_destination_rule(dr, "ui", rollout_spec(), traffic(mirror=100))
    assert planned.changed
    assert claims(planned.obj) == {"subsets": {STABLE: "ui", CANARY: "ui"}}


def test_an_idle_rollout_claims_nothing() -> None:
    planned = plan_destination_rule(ui_destination_rule(), "ui", rollout_spec(), traffic())
    assert planned.changed is False


def test_deleting_a_rollout_never_rewrites_a_subset_another_claims() -> None:
    dr = plan_destination_rule(ui_destination_rule(), "ui", rollout_spec(), traffic(25)).obj
    released = release_destination_rule(dr, "ui-api", rollout_spec(), "v0")
    assert released.changed is False
    mine = release_destination_rule(dr, "ui", rollout_spec(), "v1").obj
    assert "annotations" not in mine["metadata"]


def test_subsets_claimed_by_two_rollouts_of_one_rule_keep_each_others_claims() -> None:
    dr = ui_destination_rule()
    dr["spec"]["subsets"] += [{"name": "b-stable"}, {"name": "b-canary"}]
    b = rollout_spec(stable={"subset": "b-stable"}, canary={"subset": "b-canary", "version": "v2"})
    both = plan_destination_rule(dr, "ui", rollout_spec(), traffic(10)).obj
    both = plan_destination_rule(both, "b", b, traffic(10)).obj
    assert claims(both)["subsets"] == {STABLE: "ui", CANARY: "ui", "b-stable": "b", "b-canary": "b"}
    after = release_destination_rule(both, "b", b, "v1").obj
    assert claims(after)["subsets"] == {STABLE: "ui", CANARY: "ui"}


# ---------------------------------------------------------------- traffic the canary must not get


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        (
            {"name": "beta", **to_ui(CANARY)},
            "VirtualService shop/ui http route 'beta' sends traffic to subset 'version-2-beta', "
            "the canary subset that only Rollout shop/ui may steer, so those requests would "
            "reach the canary without any check: point it at subset 'version-1' or at a subset "
            "of one fixed version.",
        ),
        (
            to_ui(None),
            "VirtualService shop/ui http[1] sends traffic to host ui without a subset, so the "
            "canary's pods would get those requests without any check by Rollout shop/ui: point "
            "it at subset 'version-1' or at a subset of one fixed version.",
        ),
        (
            {"name": "shadow", "route": [{"destination": {"host": "x"}}], "mirror": {"host": "ui"}},
            "VirtualService shop/ui http route 'shadow' mirrors to host ui without a subset, so "
            "the canary's pods would get those requests without any check by Rollout shop/ui: "
            "point it at subset 'version-1' or at a subset of one fixed version.",
        ),
    ],
)
def test_other_routes_that_would_reach_the_canary_are_refused(
    route: dict[str, Any], expected: str
) -> None:
    vs = ui_virtual_service()
    http(vs).append(route)
    assert refusal(plan_virtual_service, vs, "ui", rollout_spec(), traffic(10)) == expected
    assert refusal(check, vs, ui_destination_rule(), "ui", rollout_spec()) == expected


def test_mirrors_and_tcp_routes_to_the_canary_are_refused_too() -> None:
    vs = ui_virtual_service()
    http(vs).append(
        {
            "name": "copy",
            "route": [{"destination": {"host": "x"}}],
            "mirrors": [{"destination": {"host": "ui.shop", "subset": CANARY}}],
        }
    )
    assert "http route 'copy' mirrors to subset" in refusal(
        check, vs, ui_destination_rule(), "ui", rollout_spec()
    )
    vs = ui_virtual_service()
    vs["spec"]["tcp"] = [{"route": [{"destination": {"host": "ui", "port": {"number": 9000}}}]}]
    assert refusal(check, vs, ui_destination_rule(), "ui", rollout_spec()).startswith(
        "VirtualService shop/ui tcp[0] sends traffic to host ui without a subset"
    )


def test_a_subset_that_selects_every_version_is_refused() -> None:
    vs, dr = ui_virtual_service(), ui_destination_rule()
    http(vs).insert(0, {"name": "admin", **to_ui("all")})
    dr["spec"]["subsets"].append({"name": "all", "labels": {"app": "ui"}})
    assert refusal(check, vs, dr, "ui", rollout_spec()) == (
        "VirtualService shop/ui http route 'admin' sends traffic to subset 'all' of "
        "DestinationRule shop/ui, which selects pods of every version (it has no version "
        "label), so the canary's pods would get those requests without any check by Rollout "
        "shop/ui: point it at subset 'version-1' or at a subset of one fixed version."
    )


def test_a_subset_of_the_canary_version_is_refused_until_that_version_is_live() -> None:
    vs, dr = ui_virtual_service(), ui_destination_rule()
    http(vs).insert(0, {"name": "pinned", **to_ui("v2-only")})
    dr["spec"]["subsets"].append({"name": "v2-only", "labels": {"version": "v2"}})
    assert "which selects the canary version v2" in refusal(check, vs, dr, "ui", rollout_spec())
    live = plan_destination_rule(dr, "ui", rollout_spec(), traffic(stable_version="v2")).obj
    check(vs, live, "ui", rollout_spec())
    dr["spec"]["subsets"][-1]["labels"]["version"] = "v0"
    check(vs, dr, "ui", rollout_spec())


def test_routes_to_the_stable_subset_are_fine() -> None:
    vs = ui_virtual_service()
    http(vs).insert(0, {"name": "health", "match": [{"uri": {"exact": "/h"}}], **to_ui(STABLE)})
    check(vs, ui_destination_rule(), "ui", rollout_spec())


@pytest.mark.parametrize(
    ("destinations", "what"),
    [
        ([{"host": "ui", "subset": STABLE}, {"host": "ui", "subset": "legacy"}], "subset 'legacy'"),
        ([{"host": "ui", "subset": STABLE}, {"host": "ui"}], "no subset (every pod of the host)"),
        ([{"host": "ui", "subset": "legacy"}], "subset 'legacy'"),
    ],
)
def test_the_managed_route_may_only_send_to_our_subsets(
    destinations: list[dict[str, Any]], what: str
) -> None:
    vs = ui_virtual_service()
    http(vs)[0]["route"] = [{"destination": d, "weight": 50} for d in destinations]
    assert refusal(check, vs, ui_destination_rule(), "ui", rollout_spec()) == (
        f"VirtualService shop/ui route 'primary' also sends traffic to {what}, which Rollout "
        f"shop/ui would drop when it sets the route's destinations to its subsets "
        f"'{STABLE}' and '{CANARY}': send that route to subset '{STABLE}' alone or steer "
        f"another route."
    )


def test_a_foreign_mirror_is_refused_up_front_when_the_rollout_mirrors() -> None:
    vs = ui_virtual_service()
    http(vs)[0]["mirrors"] = [{"destination": {"host": "shadow"}, "percentage": {"value": 5}}]
    message = refusal(check, vs, ui_destination_rule(), "ui", rollout_spec())
    assert message.startswith("VirtualService shop/ui route 'primary' already mirrors to [")
    assert message.endswith(
        "remove that mirror from the route or drop spec.stages.mirror from the Rollout."
    )
    no_mirror = rollout_spec(stages={"split": {"steps": [50, 100]}})
    check(vs, ui_destination_rule(), "ui", no_mirror)
    planned = plan_virtual_service(vs, "ui", no_mirror, traffic(50)).obj
    assert http(planned)[0]["mirrors"] == http(vs)[0]["mirrors"]


def test_every_message_is_one_line() -> None:
    vs = unnamed_vs(to_ui(match=[{"uri": {"regex": "a\nb" * 40}}]), to_ui())
    message = refusal(check, vs, ui_destination_rule(), "ui", UNNAMED)
    assert "\n" not in message
    assert len(message) < 600  # matches are shortened


def test_an_only_route_named_like_the_header_route_is_refused_up_front() -> None:
    # found by test_istio_real_world_shapes: claimed as managed, the route would have been
    # taken for the header route at the next plan and "vanished" mid-release
    vs = unnamed_vs({"name": "ui-canary", **to_ui()})
    assert refusal(check, vs, ui_destination_rule(), "ui", UNNAMED) == (
        "Rollout shop/ui steers route 'ui-canary', the name its header canary route takes: "
        "rename that route in VirtualService shop/ui (and in spec.virtualService.route)."
    )
