"""Hypothesis strategies for VirtualServices and DestinationRules as people write them.

Shapes gathered from Istio's documentation and samples (bookinfo's reviews, httpbin,
helloworld), Flagger's and Argo Rollouts' examples, written here with our own values: many http
routes, named or not, matches of every kind, delegates, retries, fault injection, CORS, header
manipulation, rewrites, redirects and direct responses, mirrors, TCP and TLS routes beside http,
several hosts, gateways, `exportTo`; DestinationRules with a traffic policy per subset, several
label keys, and subsets that select no fixed version. Every drawn object is valid against
Istio's CRD schema (the tests check that first), so a planned object that is not says something.

The Rollout steering them is `ui` in namespace `shop`, host `ui`, subsets `stable`/`canary`.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from canary.core.spec import RolloutSpec

Json = dict[str, Any]

NAMESPACE = "shop"
STABLE, CANARY = "stable", "canary"
ROUTE_NAMES = [
    "primary",
    "api v2/main",
    "default",
    "jason",
    "ünïcode/route",
    "r" * 300,
    "ui-canary",
]

ui_hosts = st.sampled_from(["ui", "ui.shop", "ui.shop.svc.cluster.local"])
other_hosts = st.sampled_from(["api", "payments.shop.svc.cluster.local", "httpbin", "legacy"])
words = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=10)
durations = st.sampled_from(["1s", "250ms", "2.5s", "1m", "10s", "1h30m"])
string_matches = st.one_of(
    st.fixed_dictionaries({"exact": words}),
    st.fixed_dictionaries({"prefix": words.map(lambda w: f"/{w}")}),
    st.fixed_dictionaries({"regex": words.map(lambda w: f"^/{w}(/.*)?$")}),
)
ports = st.integers(1, 65535)


@st.composite
def http_matches(draw: st.DrawFn) -> Json:
    """One HTTPMatchRequest using some of every kind of condition Istio has."""
    keys = draw(
        st.sets(
            st.sampled_from(
                [
                    "uri",
                    "scheme",
                    "method",
                    "authority",
                    "headers",
                    "withoutHeaders",
                    "queryParams",
                    "port",
                    "sourceLabels",
                    "gateways",
                    "sourceNamespace",
                    "ignoreUriCase",
                    "name",
                    "statPrefix",
                ]
            ),
            min_size=1,
            max_size=4,
        )
    )
    match: Json = {}
    for key in sorted(keys):
        if key in ("uri", "scheme", "method", "authority"):
            match[key] = draw(string_matches)
        elif key in ("headers", "withoutHeaders", "queryParams"):
            match[key] = draw(st.dictionaries(words, string_matches, min_size=1, max_size=2))
        elif key == "port":
            match[key] = draw(ports)
        elif key == "sourceLabels":
            match[key] = {"app": draw(words)}
        elif key == "gateways":
            match[key] = ["mesh"]
        elif key == "sourceNamespace":
            match[key] = draw(words)
        elif key == "ignoreUriCase":
            match[key] = draw(st.booleans())
        else:
            match[key] = draw(words)
    return match


@st.composite
def destinations(draw: st.DrawFn, to_ui: bool, weight: int | None) -> Json:
    destination: Json = {"host": draw(ui_hosts if to_ui else other_hosts)}
    if to_ui:
        subset = draw(st.sampled_from([STABLE, STABLE, CANARY, "v0", "all", None]))
        if subset is not None:
            destination["subset"] = subset
    if draw(st.booleans()):
        destination["port"] = {"number": draw(st.sampled_from([80, 8080, 9080]))}
    entry: Json = {"destination": destination}
    if weight is not None:
        entry["weight"] = weight
    if draw(st.integers(0, 4)) == 0:
        entry["headers"] = {"response": {"remove": ["x-internal"]}}
    return entry


@st.composite
def route_destinations(draw: st.DrawFn, to_ui: bool) -> list[Json]:
    count = draw(st.integers(1, 3))
    if count == 1:
        weight = draw(st.sampled_from([None, 100]))
        return [draw(destinations(to_ui, weight))]
    cuts = sorted(draw(st.lists(st.integers(0, 100), min_size=count - 1, max_size=count - 1)))
    weights = [b - a for a, b in zip([0, *cuts], [*cuts, 100], strict=True)]
    return [draw(destinations(to_ui, weight)) for weight in weights]


route_extras: dict[str, st.SearchStrategy[Any]] = {
    "timeout": durations,
    "retries": st.fixed_dictionaries(
        {"attempts": st.integers(0, 5), "perTryTimeout": durations},
        optional={"retryOn": st.just("5xx,reset,connect-failure")},
    ),
    "fault": st.one_of(
        st.just({"abort": {"httpStatus": 503, "percentage": {"value": 0.5}}}),
        st.just({"delay": {"fixedDelay": "5s", "percentage": {"value": 10.0}}}),
    ),
    "corsPolicy": st.just(
        {
            "allowOrigins": [{"exact": "https://example.com"}, {"regex": ".*\\.example\\.com"}],
            "allowMethods": ["GET", "POST"],
            "allowHeaders": ["authorization", "content-type"],
            "maxAge": "24h",
            "allowCredentials": False,
        }
    ),
    "headers": st.just(
        {
            "request": {"set": {"x-env": "prod"}, "remove": ["x-debug"]},
            "response": {"add": {"x-served-by": "ui"}},
        }
    ),
    "rewrite": st.one_of(st.just({"uri": "/"}), st.just({"authority": "ui.internal"})),
}


@st.composite
def http_routes(draw: st.DrawFn) -> Json:
    route: Json = {}
    if draw(st.booleans()):
        route["name"] = draw(st.sampled_from(ROUTE_NAMES))
    if draw(st.integers(0, 2)):
        route["match"] = draw(st.lists(http_matches(), min_size=1, max_size=2))
    action = draw(st.sampled_from(["ui", "ui", "ui", "other", "redirect", "direct", "delegate"]))
    if action in ("ui", "other"):
        route["route"] = draw(route_destinations(action == "ui"))
        for key in draw(st.sets(st.sampled_from(sorted(route_extras)), max_size=3)):
            route[key] = draw(route_extras[key])
        mirror = draw(st.integers(0, 6))
        if mirror == 0:
            route["mirror"] = {"host": draw(st.one_of(ui_hosts, other_hosts))}
            route["mirrorPercentage"] = {"value": 5.0}
        elif mirror == 1:
            target = {"host": draw(other_hosts), "subset": "shadow"}
            route["mirrors"] = [{"destination": target, "percentage": {"value": 1.0}}]
    elif action == "redirect":
        route["redirect"] = {"uri": "/new", "redirectCode": 301}
    elif action == "direct":
        route["directResponse"] = {"status": 503, "body": {"string": "down for maintenance"}}
    else:
        route["delegate"] = {"name": "ui-routes", "namespace": NAMESPACE}
    return route


@st.composite
def tcp_or_tls_routes(draw: st.DrawFn, kind: str) -> Json:
    to_ui = draw(st.booleans())
    destination: Json = {"host": draw(ui_hosts if to_ui else other_hosts), "port": {"number": 9000}}
    if to_ui and draw(st.booleans()):
        destination["subset"] = draw(st.sampled_from([STABLE, CANARY, "v0"]))
    if kind == "tcp":
        match: Json = {"port": draw(ports)}
    else:
        match = {
            "port": 443,
            "sniHosts": [draw(st.sampled_from(["ui.example.com", "*.example.com"]))],
        }
    return {"match": [match], "route": [{"destination": destination}]}


@st.composite
def virtual_services(draw: st.DrawFn) -> Json:
    spec: Json = {}
    hosts = draw(
        st.one_of(
            st.just([]),  # a VirtualService used as a delegate has no hosts
            st.lists(
                st.sampled_from(["ui", "ui.shop.svc.cluster.local", "shop.example.com", "api"]),
                min_size=1,
                max_size=3,
                unique=True,
            ),
        )
    )
    if hosts:
        spec["hosts"] = hosts
        if draw(st.booleans()):
            spec["gateways"] = draw(
                st.sampled_from([["mesh"], ["istio-system/public-gateway", "mesh"]])
            )
        if draw(st.booleans()):
            spec["exportTo"] = draw(st.sampled_from([["."], ["*"], [".", "istio-system"]]))
    spec["http"] = draw(st.lists(http_routes(), min_size=1, max_size=6))
    for kind in ("tcp", "tls"):
        if hosts and draw(st.integers(0, 3)) == 0:
            spec[kind] = draw(st.lists(tcp_or_tls_routes(kind), min_size=1, max_size=2))
    metadata: Json = {"name": "ui", "namespace": NAMESPACE}
    if draw(st.booleans()):
        metadata["annotations"] = {"argocd.argoproj.io/tracking-id": "shop:networking/ui"}
    if draw(st.booleans()):
        metadata["labels"] = {"app.kubernetes.io/part-of": "shop"}
    version = draw(st.sampled_from(["v1", "v1beta1", "v1alpha3"]))
    return {
        "apiVersion": f"networking.istio.io/{version}",
        "kind": "VirtualService",
        "metadata": metadata,
        "spec": spec,
    }


traffic_policies = st.sampled_from(
    [
        {"loadBalancer": {"simple": "LEAST_REQUEST"}},
        {"connectionPool": {"http": {"http1MaxPendingRequests": 100, "maxRetries": 3}}},
        {
            "outlierDetection": {
                "consecutive5xxErrors": 5,
                "interval": "10s",
                "baseEjectionTime": "30s",
            }
        },
        {"tls": {"mode": "ISTIO_MUTUAL"}},
    ]
)


@st.composite
def destination_rules(draw: st.DrawFn, canary_version: str) -> Json:
    def subset(name: str, labels: Json) -> Json:
        entry: Json = {"name": name, "labels": labels}
        if draw(st.integers(0, 3)) == 0:
            entry["trafficPolicy"] = draw(traffic_policies)
        return entry

    extra = draw(st.sampled_from([{}, {"app.kubernetes.io/name": "ui"}, {"track": "main"}]))
    subsets = [
        subset(STABLE, {"app": "ui", "version": "v1", **extra}),
        subset(CANARY, {"app": "ui", "version": canary_version, **extra}),
    ]
    extras = draw(st.sets(st.sampled_from(["v0", "all", "shadow", "pinned"]), max_size=3))
    labels_of = {
        "v0": {"version": "v0"},
        "all": {"app": "ui"},  # no version label: selects every version's pods
        "shadow": {"version": "v9"},
        "pinned": {"version": canary_version},
    }
    subsets += [subset(name, labels_of[name]) for name in sorted(extras)]
    spec: Json = {"host": draw(ui_hosts), "subsets": draw(st.permutations(subsets))}
    if draw(st.booleans()):
        spec["trafficPolicy"] = draw(traffic_policies)
    if draw(st.booleans()):
        spec["exportTo"] = ["."]
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "ui", "namespace": NAMESPACE},
        "spec": spec,
    }


@st.composite
def rollout_specs(draw: st.DrawFn, vs: Json) -> RolloutSpec:
    """A Rollout of host `ui` naming a route of `vs` (or none, or a missing one)."""
    names = [r["name"] for r in vs["spec"]["http"] if isinstance(r.get("name"), str)]
    route = draw(st.one_of(st.none(), st.sampled_from([*names, "missing"])))
    stages: Json = {"split": {"steps": draw(st.sampled_from([[50, 100], [10, 25, 50, 100]]))}}
    if draw(st.booleans()):
        stages["mirror"] = {"percent": draw(st.sampled_from([10, 100]))}
    if draw(st.booleans()):
        match = draw(
            st.sampled_from(
                [
                    {"headers": {"x-canary": {"exact": "yes"}}},
                    {"clientIP": "10.1.2.3"},
                    {"queryParams": {"beta": {"exact": "1"}}},
                ]
            )
        )
        stages["headerCanary"] = {"match": [match]}
    reference: Json = {"name": "ui"} if route is None else {"name": "ui", "route": route}
    return RolloutSpec.model_validate(
        {
            "host": "ui",
            "virtualService": reference,
            "destinationRule": {"name": "ui"},
            "stable": {"subset": STABLE},
            "canary": {"subset": CANARY, "version": "v2"},
            "stages": stages,
            "analysis": {"gates": [{"name": "success-rate", "successRate": {"min": 99}}]},
        }
    )


def _to_ui(target: Any) -> bool:
    host = target.get("host") if isinstance(target, dict) else None
    return isinstance(host, str) and host.split(".")[0] == "ui"


@st.composite
def steerable(draw: st.DrawFn) -> tuple[Json, RolloutSpec]:
    """A VirtualService the Rollout can steer, and that Rollout: the shapes above with one
    route chosen as the managed one and every other route to `ui` pointed at the stable subset
    (what a user does after reading our refusals)."""
    vs = draw(virtual_services())
    routes: list[Json] = vs["spec"]["http"]
    index = draw(st.integers(0, len(routes) - 1))
    managed = routes[index]
    for key in ("redirect", "directResponse", "delegate", "mirror", "mirrors", "mirrorPercentage"):
        managed.pop(key, None)
    lone = {"destination": {"host": draw(ui_hosts), "subset": STABLE}}
    if draw(st.booleans()):
        del lone["destination"]["subset"]
    managed["route"] = [lone]
    for other in [r for r in routes if r is not managed]:
        if "name" in other and other["name"] in (managed.get("name"), "ui-canary"):
            del other["name"]
        for entry in other.get("route") or []:
            if _to_ui(entry["destination"]):
                entry["destination"]["subset"] = STABLE
        if _to_ui(other.get("mirror")):
            other["mirror"]["subset"] = STABLE
    for kind in ("tcp", "tls"):
        for route in vs["spec"].get(kind) or []:
            for entry in route["route"]:
                if _to_ui(entry["destination"]):
                    entry["destination"]["subset"] = STABLE
    alone = not any(
        _to_ui(e.get("destination"))
        for r in routes
        if r is not managed
        for e in r.get("route") or []
    )
    if managed.get("name") == "ui-canary" or (not alone and "name" not in managed):
        managed["name"] = "main"
    named = "name" in managed and (not alone or draw(st.booleans()))
    spec = draw(rollout_specs(vs))
    reference = {"name": "ui", "route": managed["name"]} if named else {"name": "ui"}
    wire = {**spec.wire(), "virtualService": reference}
    return vs, RolloutSpec.model_validate(wire)
