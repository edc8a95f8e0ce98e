"""The Istio planner: desired VirtualService and DestinationRule objects from a `Traffic`.

Pure functions over plain dicts as the Kubernetes API returns them; the input is never mutated
and every route, field and annotation that is not ours survives unchanged, in order.

What a Rollout manages in a VirtualService:
- its managed http route: the route named `spec.virtualService.route` or, when that is left
  out, the one http route that sends traffic to `spec.host` (found again by that rule at every
  plan; the header routes of Rollouts do not count). Of that route it manages the `route`
  destinations (stable alone at canary weight 0; stable 100-w and canary w otherwise, stable
  kept at weight 0 when w is 100) and the mirror keys when the mirror points at the canary;
- the route `<rollout>-canary`, directly above it, while the header canary runs;
- its entries in the annotation `canary.dev/claims` and `canary.dev/original-spec` (the spec as
  it was before the first write, kept while any route of the VirtualService is claimed).

In a DestinationRule it manages the `versionLabel` of its stable and canary subsets and its
entries in `canary.dev/claims`.

Claims. `canary.dev/claims` holds one JSON object per VirtualService or DestinationRule:
`{"routes": {ROUTE: ROLLOUT}, "unnamedRoutes": {HOST: {"rollout": ROLLOUT, "match": MATCH}},
"subsets": {SUBSET: ROLLOUT}}` (Rollouts of the object's namespace), so any route name Istio
accepts and any Rollout name fit. A route or subset claimed by one Rollout is never steered by
another: the second is refused with a message naming the first. A Rollout claims what it steers
the first time a plan changes the object or sends the canary traffic, keeps its claims while it
exists, and gives them back on deletion. Claims of earlier releases (one annotation
`canary.dev/route.<route>` per route) are read as claims and moved into `canary.dev/claims` at
the next write. An unnamed route's claim records its match: the route is its match, so the same
rule finding a route with another match while the canary has traffic is refused.

Unchecked traffic. Besides the managed route and the header route, nothing in the VirtualService
may send traffic to the canary's pods, since those requests would pass no stage: a route or a
mirror (http, tcp or tls) to `spec.host` must name a subset, not the canary subset, and (where
the DestinationRule is known) a subset whose `versionLabel` selects another version than the
canary's. The managed route may only send to the stable and canary subsets, since the plan
rewrites its destinations and would drop any other.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from canary.core.objects import Obj
from canary.core.spec import MatchRequest, RolloutSpec
from canary.core.traffic import Traffic, stable_only
from canary.mesh.router import MeshError, MeshRouter, Planned

__all__ = [
    "CLAIMS_ANNOTATION",
    "LEGACY_CLAIM_PREFIX",
    "ORIGINAL_SPEC_ANNOTATION",
    "IstioRouter",
    "MeshError",
    "Planned",
    "check",
    "header_route_name",
    "plan_destination_rule",
    "plan_virtual_service",
    "release_destination_rule",
    "release_virtual_service",
    "route_index",
]


CLAIMS_ANNOTATION = "canary.dev/claims"
LEGACY_CLAIM_PREFIX = "canary.dev/route."
ORIGINAL_SPEC_ANNOTATION = "canary.dev/original-spec"
CLIENT_IP_HEADER = "x-forwarded-for"

_MIRROR_KEYS = ("mirror", "mirrorPercentage", "mirrorPercent", "mirror_percent")
# Everything else on the managed route (timeout, retries, rewrite, headers, fault, ...) is
# copied to the header route, so canary requests are handled like the stable ones.
_NOT_INHERITED_BY_HEADER_ROUTE = frozenset({"name", "match", "route", "mirrors", *_MIRROR_KEYS})
_MATCH_MAPS = frozenset({"headers", "withoutHeaders", "queryParams", "sourceLabels"})
_SHOWN_MATCH_CHARS = 80


# ---------------------------------------------------------------- public functions


def check(vs: Mapping[str, Any], dr: Mapping[str, Any], rollout: str, spec: RolloutSpec) -> None:
    """Raise MeshError for anything that stops `rollout` steering these two objects safely.

    The managed route cannot be found (or not by one rule), a route or subset is claimed by
    another Rollout, the managed route sends traffic the plan would drop or mirrors where the
    mirror stage would overwrite, or another route could send the canary unchecked traffic.
    """
    virtual_service, rule = dict(vs), dict(dr)  # read only: no copies
    routes = _http_routes(virtual_service, rollout, spec)
    claims = _read_claims(virtual_service, "VirtualService")
    managed = _managed(virtual_service, routes, claims, rollout, spec, steering=False)
    _stable_destination(virtual_service, managed.route, rollout, spec)
    if spec.stages.mirror is not None:
        _check_mirror_replaceable(virtual_service, managed.route, rollout, spec)
    if spec.stages.header_canary is not None:
        _check_header_route_name(virtual_service, routes, claims, rollout)
        _header_matches(virtual_service, managed.route, rollout, spec)
    _check_destination_rule(rule, rollout, spec)
    _check_other_routes(virtual_service, claims, managed.index, rollout, spec, rule)


def plan_virtual_service(
    vs: Mapping[str, Any], rollout: str, spec: RolloutSpec, traffic: Traffic
) -> Planned:
    """The VirtualService whose managed route carries `traffic`."""
    _check_traffic(traffic)
    desired = copy.deepcopy(dict(vs))
    routes = _http_routes(desired, rollout, spec)
    claims = _read_claims(desired, "VirtualService")
    managed = _managed(desired, routes, claims, rollout, spec, _steering(traffic))
    _release_stale_routes(desired, claims, rollout, spec, keep=managed.claim)
    _check_other_routes(desired, claims, managed.index, rollout, spec, None)
    stable = _steer(desired, managed.route, rollout, spec, traffic)
    mine = Claims(routes={}, unnamed={}, subsets={})
    managed.claim.add_to(mine, rollout)
    if traffic.header_route:
        _insert_header_route(desired, claims, rollout, spec, stable)
        mine.routes[header_route_name(rollout)] = rollout
    else:
        _remove_header_route(desired, claims, rollout)
    changed = desired.get("spec") != vs.get("spec")
    if changed or _steering(traffic) or claims.held_by(rollout):
        _save_original_spec(desired, vs)
        _write_claims(desired, claims.without(rollout).merged(mine))
    return _planned(desired, vs)


def plan_destination_rule(
    dr: Mapping[str, Any], rollout: str, spec: RolloutSpec, traffic: Traffic
) -> Planned:
    """The DestinationRule whose stable and canary subsets select the traffic's versions."""
    desired = copy.deepcopy(dict(dr))
    claims = _check_destination_rule(desired, rollout, spec)
    for field_name, subset_name, version in (
        ("stable", spec.stable.subset, traffic.stable_version),
        ("canary", spec.canary.subset, traffic.canary_version),
    ):
        subset = _subset(desired, subset_name, field_name, rollout, spec)
        labels = subset.get("labels")
        if not isinstance(labels, dict):
            labels = subset["labels"] = {}
        labels[spec.version_label] = version
    if desired != dict(dr) or _steering(traffic) or claims.held_by(rollout):
        mine = Claims(routes={}, unnamed={}, subsets={})
        mine.subsets.update({spec.stable.subset: rollout, spec.canary.subset: rollout})
        _write_claims(desired, claims.without(rollout).merged(mine))
    return _planned(desired, dr)


def release_virtual_service(
    vs: Mapping[str, Any], rollout: str, spec: RolloutSpec, stable_version: str
) -> Planned:
    """The VirtualService handed back to its user when the Rollout is deleted.

    Only what this Rollout claimed is undone: its routes go back to stable alone (no mirror),
    its header route and claims go. A route that is gone or no longer points at `spec.host` is
    left as the user made it. `canary.dev/original-spec` goes with the last route claim, so a
    later take-over saves a fresh one.
    """
    desired = copy.deepcopy(dict(vs))
    try:
        claims = _read_claims(desired, "VirtualService")
    except MeshError:
        return _planned(desired, vs)  # unreadable claims: touch nothing
    _release_stale_routes(desired, claims, rollout, spec, keep=None)
    _remove_header_route(desired, claims, rollout)
    if claims.held_by(rollout):
        _write_claims(desired, claims.without(rollout))
    return _planned(desired, vs)


def release_destination_rule(
    dr: Mapping[str, Any], rollout: str, spec: RolloutSpec, stable_version: str
) -> Planned:
    """The DestinationRule handed back when the Rollout is deleted: its two subsets select the
    stable version, its claims go. A subset another Rollout claims is never touched."""
    desired = copy.deepcopy(dict(dr))
    try:
        claims = _read_claims(desired, "DestinationRule")
    except MeshError:
        return _planned(desired, dr)
    for subset_name in (spec.stable.subset, spec.canary.subset):
        if claims.subsets.get(subset_name, rollout) != rollout:
            continue
        subset = _find_subset(desired, subset_name)
        if subset is None:
            continue
        labels = subset.get("labels")
        if not isinstance(labels, dict):
            labels = subset["labels"] = {}
        labels[spec.version_label] = stable_version
    if claims.held_by(rollout):
        _write_claims(desired, claims.without(rollout))
    return _planned(desired, dr)


def header_route_name(rollout: str) -> str:
    return f"{rollout}-canary"


def route_index(vs: Mapping[str, Any], host: str, route: str | None = None) -> int:
    """The index in `spec.http` of the route a Rollout of `host` steers (by name, or the only
    route to the host), as the controller finds it; MeshError when there is no such route."""
    routes = vs.get("spec", {}).get("http") if isinstance(vs.get("spec"), dict) else None
    if not isinstance(routes, list):
        raise MeshError(f"VirtualService {_ref(vs)} has no http routes.")
    claims = _read_claims(vs, "VirtualService")
    return _select(vs, routes, claims, host, route, "the Rollout")[0]


# ---------------------------------------------------------------- claims


@dataclass
class Claims:
    """The `canary.dev/claims` annotation of one object, legacy claims included."""

    routes: dict[str, str]
    unnamed: dict[str, Obj]  # host FQDN -> {"rollout": name, "match": the route's match}
    subsets: dict[str, str]

    def held_by(self, rollout: str) -> bool:
        return (
            rollout in self.routes.values()
            or rollout in self.subsets.values()
            or any(claim.get("rollout") == rollout for claim in self.unnamed.values())
        )

    def without(self, rollout: str) -> Claims:
        return Claims(
            routes={k: v for k, v in self.routes.items() if v != rollout},
            unnamed={k: v for k, v in self.unnamed.items() if v.get("rollout") != rollout},
            subsets={k: v for k, v in self.subsets.items() if v != rollout},
        )

    def merged(self, other: Claims) -> Claims:
        return Claims(
            routes={**self.routes, **other.routes},
            unnamed={**self.unnamed, **other.unnamed},
            subsets={**self.subsets, **other.subsets},
        )

    def is_header_route(self, name: Any) -> bool:
        owner = self.routes.get(name) if isinstance(name, str) else None
        return owner is not None and name == header_route_name(owner)

    def wire(self) -> Obj:
        wire: Obj = {}
        for key, value in (
            ("routes", self.routes),
            ("subsets", self.subsets),
            ("unnamedRoutes", self.unnamed),
        ):
            if value:
                wire[key] = value
        return wire


@dataclass(frozen=True)
class RouteClaim:
    """What claiming the managed route writes: by name, or by host (and match) when unnamed."""

    name: str | None
    host: str
    match: Any = None

    def add_to(self, claims: Claims, rollout: str) -> None:
        if self.name is not None:
            claims.routes[self.name] = rollout
        else:
            claims.unnamed[self.host] = {"rollout": rollout, "match": copy.deepcopy(self.match)}


def _read_claims(obj: Mapping[str, Any], kind: str) -> Claims:
    annotations = _annotations(obj)
    claims = Claims(routes={}, unnamed={}, subsets={})
    text = annotations.get(CLAIMS_ANNOTATION)
    if text is not None:
        try:
            wire: Any = json.loads(text) if isinstance(text, str) else None
        except ValueError:
            wire = None
        if not isinstance(wire, dict) or not _claims_shape(wire):
            raise MeshError(
                f"{kind} {_ref(obj)} has an annotation {CLAIMS_ANNOTATION} that is not the "
                f"JSON object of claims canary writes: restore it from an earlier version of "
                f"the object, or delete it and let each Rollout claim again."
            )
        claims.routes.update(wire.get("routes", {}))
        claims.unnamed.update(wire.get("unnamedRoutes", {}))
        claims.subsets.update(wire.get("subsets", {}))
    for key, value in annotations.items():
        if key.startswith(LEGACY_CLAIM_PREFIX) and isinstance(value, str):
            claims.routes.setdefault(key[len(LEGACY_CLAIM_PREFIX) :], value)
    return claims


def _claims_shape(wire: Any) -> bool:
    if not isinstance(wire, dict) or set(wire) - {"routes", "unnamedRoutes", "subsets"}:
        return False
    by_name = [wire.get("routes", {}), wire.get("subsets", {})]
    if not all(_names_to_rollouts(m) for m in by_name):
        return False
    unnamed = wire.get("unnamedRoutes", {})
    return isinstance(unnamed, dict) and all(
        isinstance(v, dict) and isinstance(v.get("rollout"), str) for v in unnamed.values()
    )


def _names_to_rollouts(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())


def _write_claims(obj: Obj, claims: Claims) -> None:
    """Store `claims` whole; legacy claim annotations are now part of it and go."""
    for key in [k for k in _annotations(obj) if k.startswith(LEGACY_CLAIM_PREFIX)]:
        _drop_annotation(obj, key)
    wire = claims.wire()
    if wire:
        _set_annotation(obj, CLAIMS_ANNOTATION, json.dumps(wire, separators=(",", ":")))
    else:
        _drop_annotation(obj, CLAIMS_ANNOTATION)
    if not claims.routes and not claims.unnamed:
        _drop_annotation(obj, ORIGINAL_SPEC_ANNOTATION)


def _save_original_spec(desired: Obj, original: Mapping[str, Any]) -> None:
    if ORIGINAL_SPEC_ANNOTATION not in _annotations(desired):
        saved = json.dumps(original.get("spec"), separators=(",", ":"))
        _set_annotation(desired, ORIGINAL_SPEC_ANNOTATION, saved)


def _steering(traffic: Traffic) -> bool:
    """Whether the canary gets any of the managed route's requests (or copies of them)."""
    return traffic.canary_weight > 0 or traffic.mirror_percent > 0 or traffic.header_route


# ---------------------------------------------------------------- finding the managed route


@dataclass(frozen=True)
class Managed:
    index: int
    route: Obj
    claim: RouteClaim


def _http_routes(vs: Obj, rollout: str, spec: RolloutSpec) -> list[Obj]:
    body = vs.get("spec")
    routes = body.get("http") if isinstance(body, dict) else None
    if not isinstance(routes, list) or not routes or not all(isinstance(r, dict) for r in routes):
        raise MeshError(
            f"VirtualService {_ref(vs)} has no http routes: add an http route to host "
            f"{spec.host} or fix spec.virtualService of Rollout {_namespace(vs)}/{rollout}."
        )
    return routes


def _managed(
    vs: Obj, routes: list[Obj], claims: Claims, rollout: str, spec: RolloutSpec, steering: bool
) -> Managed:
    """The managed route, found by the Rollout's rule and checked against every claim."""
    who = f"Rollout {_namespace(vs)}/{rollout}"
    index, route = _select(vs, routes, claims, spec.host, spec.virtual_service.route, who)
    host = _fqdn(spec.host, _namespace(vs))
    route_name = route.get("name")
    if route_name == header_route_name(rollout):  # by name, or the only route to the host
        raise MeshError(
            f"{who} steers route '{route_name}', the name its header canary route takes: "
            f"rename that route in VirtualService {_ref(vs)} (and in spec.virtualService.route)."
        )
    if isinstance(route_name, str):
        claim = RouteClaim(route_name, host)
        owner = claims.routes.get(route_name)
        if owner is not None and owner != rollout:
            how = " as its header canary route" if claims.is_header_route(route_name) else ""
            raise MeshError(
                f"VirtualService {_ref(vs)} route '{route_name}' is already managed by Rollout "
                f"{_namespace(vs)}/{owner}{how}: point spec.virtualService.route of {who} at "
                f"another route or delete Rollout {_namespace(vs)}/{owner}."
            )
        return Managed(index, route, claim)
    match = route.get("match")
    claim = RouteClaim(None, host, match)
    held = claims.unnamed.get(host)
    owner = held.get("rollout") if held is not None else None
    if held is not None and owner != rollout:
        raise MeshError(
            f"VirtualService {_ref(vs)} http[{index}], its only route to host {spec.host} (it "
            f"has no name), is already managed by Rollout {_namespace(vs)}/{owner}: delete "
            f"Rollout {_namespace(vs)}/{owner} or give the route a name so that each of the "
            f"Rollouts steers its own route by spec.virtualService.route."
        )
    if held is not None and steering and held.get("match") != match:
        raise MeshError(
            f"VirtualService {_ref(vs)} http[{index}], the unnamed route to host {spec.host} "
            f"that {who} steers, changed its match from {_shown(held.get('match'))} to "
            f"{_shown(match)} while the canary has traffic: restore that match, or abort the "
            f"release (`canary abort {rollout}`) before changing the route."
        )
    return Managed(index, route, claim)


def _select(
    vs: Mapping[str, Any],
    routes: list[Any],
    claims: Claims,
    host: str,
    name: str | None,
    who: str,
) -> tuple[int, Obj]:
    """The route named `name`, or the only route to `host` that no Rollout created."""
    if name is not None:
        found = [i for i, r in enumerate(routes) if isinstance(r, dict) and r.get("name") == name]
        if not found:
            raise MeshError(
                f"VirtualService {_ref(vs)} has no http route named '{name}': add `name: {name}` "
                f"to the route to steer, or fix spec.virtualService.route of {who} (leave it "
                f"out when the VirtualService has one http route to {host})."
            )
        if len(found) > 1:
            raise MeshError(
                f"VirtualService {_ref(vs)} has {len(found)} http routes named '{name}': "
                f"give each route its own name so {who} steers exactly one."
            )
        return found[0], routes[found[0]]
    namespace = _namespace(vs)
    candidates = [
        index
        for index, route in enumerate(routes)
        if isinstance(route, dict)
        and not claims.is_header_route(route.get("name"))
        and any(_same_host(h, host, namespace) for h in _route_hosts(route))
    ]
    if len(candidates) == 1:
        return candidates[0], routes[candidates[0]]
    if not candidates:
        delegates = [
            f"http[{index}] delegates to VirtualService {_delegate_ref(route, namespace)}"
            for index, route in enumerate(routes)
            if isinstance(route, dict) and isinstance(route.get("delegate"), dict)
        ]
        hint = f" ({', '.join(delegates)}: point spec.virtualService.name there)"
        hint = hint if delegates else ""
        raise MeshError(
            f"VirtualService {_ref(vs)} has no http route to host {host}{hint}: add a route "
            f"with `route: [{{destination: {{host: {host}}}}}]` or fix spec.host or "
            f"spec.virtualService of {who}."
        )
    listing = ", ".join(_describe_candidate(index, routes[index]) for index in candidates)
    raise MeshError(
        f"VirtualService {_ref(vs)} has {len(candidates)} http routes to host {host} "
        f"({listing}): give the one to steer a `name` and set spec.virtualService.route of "
        f"{who} to it."
    )


def _describe_candidate(index: int, route: Obj) -> str:
    name = route.get("name")
    label = f"http[{index}] '{name}'" if isinstance(name, str) else f"http[{index}] with no name"
    match = route.get("match")
    return f"{label} matching {_shown(match) if match else 'every request'}"


def _shown(value: Any) -> str:
    text = json.dumps(value, separators=(",", ":"), sort_keys=False)
    if len(text) > _SHOWN_MATCH_CHARS:
        text = text[: _SHOWN_MATCH_CHARS - 3] + "..."
    return text


def _route_hosts(route: Obj) -> Iterator[str]:
    entries = route.get("route")
    for entry in entries if isinstance(entries, list) else []:
        destination = entry.get("destination") if isinstance(entry, dict) else None
        host = destination.get("host") if isinstance(destination, dict) else None
        if isinstance(host, str):
            yield host


def _delegate_ref(route: Obj, namespace: str) -> str:
    delegate = route["delegate"]
    return f"{delegate.get('namespace') or namespace}/{delegate.get('name')}"


def _describe_route(kind: str, index: int, route: Obj) -> str:
    name = route.get("name")
    return f"{kind} route '{name}'" if isinstance(name, str) else f"{kind}[{index}]"


def _label(route: Obj) -> str:
    """The managed route in a message: by name, or as the unnamed one."""
    name = route.get("name")
    return f"route '{name}'" if isinstance(name, str) else "route without a name"


# ---------------------------------------------------------------- steering the managed route


def _steer(vs: Obj, managed: Obj, rollout: str, spec: RolloutSpec, traffic: Traffic) -> Obj:
    """Set the managed route's destinations and mirror; return its stable destination."""
    stable = _stable_destination(vs, managed, rollout, spec)
    managed["route"] = _weighted(stable, spec.canary.subset, traffic.canary_weight)
    wanted_mirror = _mirror_keys(stable, spec.canary.subset, traffic.mirror_percent)
    _set_mirror(vs, managed, rollout, spec, wanted_mirror)
    return stable


def _stable_destination(vs: Obj, managed: Obj, rollout: str, spec: RolloutSpec) -> Obj:
    where = f"VirtualService {_ref(vs)} {_label(managed)}"
    who = f"Rollout {_namespace(vs)}/{rollout}"
    entries = managed.get("route")
    if not isinstance(entries, list) or not entries:
        if isinstance(managed.get("delegate"), dict):
            raise MeshError(
                f"{where} delegates to VirtualService "
                f"{_delegate_ref(managed, _namespace(vs))}: point spec.virtualService of {who} "
                f"at that VirtualService and the route there that sends traffic to {spec.host}."
            )
        raise MeshError(
            f"{where} has no destinations to steer: give it "
            f"`route: [{{destination: {{host: {spec.host}}}}}]` or steer another route with {who}."
        )
    ours = (spec.stable.subset, spec.canary.subset)
    for entry in entries:
        destination = _check_destination_host(vs, where, entry, rollout, spec)
        subset = destination.get("subset")
        if subset in ours or (subset is None and len(entries) == 1):
            continue
        what = f"subset '{subset}'" if subset is not None else "no subset (every pod of the host)"
        raise MeshError(
            f"{where} also sends traffic to {what}, which {who} would drop when it sets the "
            f"route's destinations to its subsets '{spec.stable.subset}' and "
            f"'{spec.canary.subset}': send that route to subset '{spec.stable.subset}' alone "
            f"or steer another route."
        )
    stable = next(
        (e for e in entries if e["destination"].get("subset") == spec.stable.subset), entries[0]
    )
    return _with_subset(stable, spec.stable.subset)


def _check_destination_host(
    vs: Obj, where: str, entry: Any, rollout: str, spec: RolloutSpec
) -> Obj:
    destination = entry.get("destination") if isinstance(entry, dict) else None
    host = destination.get("host") if isinstance(destination, dict) else None
    if not isinstance(host, str) or not _same_host(host, spec.host, _namespace(vs)):
        raise MeshError(
            f"{where} sends traffic to host '{host}', not '{spec.host}': point every "
            f"destination of that route at {spec.host} or fix spec.host in Rollout "
            f"{_namespace(vs)}/{rollout}."
        )
    assert isinstance(destination, dict)
    return destination


def _weighted(stable: Obj, canary_subset: str, canary_weight: int) -> list[Obj]:
    if canary_weight == 0:
        alone = copy.deepcopy(stable)
        if alone.get("weight") != 100:  # keep the user's explicit `weight: 100`, drop the rest
            alone.pop("weight", None)
        return [alone]
    canary = _with_subset(stable, canary_subset)
    return [{**stable, "weight": 100 - canary_weight}, {**canary, "weight": canary_weight}]


def _with_subset(entry: Obj, subset: str) -> Obj:
    copied = copy.deepcopy(entry)
    copied["destination"] = {**copied["destination"], "subset": subset}
    return copied


def _release_stale_routes(
    vs: Obj, claims: Claims, rollout: str, spec: RolloutSpec, keep: RouteClaim | None
) -> None:
    """Return every route this Rollout claims, other than `keep` and its header route, to
    stable alone: the route it steered before a change of spec, or all of them on deletion."""
    routes = vs.get("spec", {}).get("http") if isinstance(vs.get("spec"), dict) else None
    if not isinstance(routes, list):
        return
    header = header_route_name(rollout)
    stale: list[Obj] = []
    for name, owner in claims.routes.items():
        if owner != rollout or name == header or (keep is not None and name == keep.name):
            continue
        stale += [r for r in routes if isinstance(r, dict) and r.get("name") == name]
    for host, held in claims.unnamed.items():
        if held.get("rollout") != rollout or (keep is not None and keep.name is None):
            continue
        unnamed = [
            r
            for r in routes
            if isinstance(r, dict)
            and "name" not in r
            and any(_same_host(h, host, _namespace(vs)) for h in _route_hosts(r))
        ]
        stale += unnamed if len(unnamed) == 1 else []
    for route in stale:
        try:
            _steer(vs, route, rollout, spec, stable_only("stable", "stable"))
        except MeshError:
            continue  # nothing of ours left to undo in that route


# ---------------------------------------------------------------- mirror


def _set_mirror(vs: Obj, managed: Obj, rollout: str, spec: RolloutSpec, wanted: Obj | None) -> None:
    """Give the managed route the `wanted` mirror keys, or take ours away when None."""
    ours = _mirror_is_ours(managed, spec, _namespace(vs))
    if wanted is None:
        if ours:
            for key in _MIRROR_KEYS:
                managed.pop(key, None)
        return
    _check_mirror_replaceable(vs, managed, rollout, spec)
    for key in _MIRROR_KEYS:
        managed.pop(key, None)
    managed.update(wanted)


def _check_mirror_replaceable(vs: Obj, managed: Obj, rollout: str, spec: RolloutSpec) -> None:
    if _mirror_is_ours(managed, spec, _namespace(vs)):
        return
    if "mirror" not in managed and "mirrors" not in managed:
        return
    target = managed.get("mirror") if "mirror" in managed else managed.get("mirrors")
    raise MeshError(
        f"VirtualService {_ref(vs)} {_label(managed)} already mirrors to {_shown(target)}, "
        f"which the mirror stage of Rollout {_namespace(vs)}/{rollout} would replace with its "
        f"own mirror to subset '{spec.canary.subset}': remove that mirror from the route or "
        f"drop spec.stages.mirror from the Rollout."
    )


def _mirror_keys(stable: Obj, canary_subset: str, percent: float) -> Obj | None:
    if percent == 0:
        return None
    destination = stable["destination"]
    mirror = {"host": destination["host"], "subset": canary_subset}
    if "port" in destination:
        mirror["port"] = copy.deepcopy(destination["port"])
    return {"mirror": mirror, "mirrorPercentage": {"value": percent}}


def _mirror_is_ours(managed: Obj, spec: RolloutSpec, namespace: str) -> bool:
    mirror = managed.get("mirror")
    if not isinstance(mirror, dict) or "mirrors" in managed:
        return False
    host = mirror.get("host")
    return (
        mirror.get("subset") == spec.canary.subset
        and isinstance(host, str)
        and _same_host(host, spec.host, namespace)
    )


# ---------------------------------------------------------------- unchecked traffic


def _check_other_routes(
    vs: Obj,
    claims: Claims,
    managed_index: int,
    rollout: str,
    spec: RolloutSpec,
    dr: Obj | None,
) -> None:
    """Refuse any route or mirror besides ours that could reach the canary's pods."""
    body = vs.get("spec")
    if not isinstance(body, dict):
        return
    for kind in ("http", "tcp", "tls"):
        routes = body.get(kind)
        for index, route in enumerate(routes if isinstance(routes, list) else []):
            if not isinstance(route, dict):
                continue
            if kind == "http" and index == managed_index:
                if not _mirror_is_ours(route, spec, _namespace(vs)):
                    for target in _mirror_targets(route):
                        _check_target(vs, kind, index, route, target, "mirrors", rollout, spec, dr)
                continue
            name = route.get("name")
            if kind == "http" and isinstance(name, str) and claims.routes.get(name) == rollout:
                continue  # our header route, or a route of ours that the plan returns to stable
            entries = route.get("route")
            for entry in entries if isinstance(entries, list) else []:
                target = entry.get("destination") if isinstance(entry, dict) else None
                _check_target(vs, kind, index, route, target, "sends traffic", rollout, spec, dr)
            for target in _mirror_targets(route) if kind == "http" else []:
                _check_target(vs, kind, index, route, target, "mirrors", rollout, spec, dr)


def _mirror_targets(route: Obj) -> Iterator[Any]:
    if "mirror" in route:
        yield route["mirror"]
    mirrors = route.get("mirrors")
    for entry in mirrors if isinstance(mirrors, list) else []:
        yield entry.get("destination") if isinstance(entry, dict) else None


def _check_target(
    vs: Obj,
    kind: str,
    index: int,
    route: Obj,
    target: Any,
    verb: str,
    rollout: str,
    spec: RolloutSpec,
    dr: Obj | None,
) -> None:
    host = target.get("host") if isinstance(target, dict) else None
    if not isinstance(host, str) or not _same_host(host, spec.host, _namespace(vs)):
        return
    assert isinstance(target, dict)
    subset = target.get("subset")
    where = f"VirtualService {_ref(vs)} {_describe_route(kind, index, route)}"
    who = f"Rollout {_namespace(vs)}/{rollout}"
    fix = f"point it at subset '{spec.stable.subset}' or at a subset of one fixed version"
    if subset is None:
        raise MeshError(
            f"{where} {verb} to host {spec.host} without a subset, so the canary's pods would "
            f"get those requests without any check by {who}: {fix}."
        )
    if subset == spec.canary.subset:
        raise MeshError(
            f"{where} {verb} to subset '{subset}', the canary subset that only {who} may "
            f"steer, so those requests would reach the canary without any check: {fix}."
        )
    if dr is None or subset == spec.stable.subset:
        return
    found = _find_subset(dr, subset)
    labels = found.get("labels") if found is not None else None
    if found is None or not isinstance(labels, dict):
        return  # Istio answers 503 for a subset without pods: no canary traffic
    version = labels.get(spec.version_label)
    if version is None or version == spec.canary.version != _live_version(dr, spec):
        selects = (
            f"pods of every version (it has no {spec.version_label} label)"
            if version is None
            else f"the canary version {version}"
        )
        raise MeshError(
            f"{where} {verb} to subset '{subset}' of DestinationRule {_ref(dr)}, which selects "
            f"{selects}, so the canary's pods would get those requests without any check by "
            f"{who}: {fix}."
        )


def _live_version(dr: Obj, spec: RolloutSpec) -> Any:
    """The version the stable subset selects: the canary's version is live once it is that."""
    stable = _find_subset(dr, spec.stable.subset)
    labels = stable.get("labels") if stable is not None else None
    return labels.get(spec.version_label) if isinstance(labels, dict) else None


# ---------------------------------------------------------------- header route


def _insert_header_route(
    vs: Obj, claims: Claims, rollout: str, spec: RolloutSpec, stable: Obj
) -> None:
    name = header_route_name(rollout)
    routes: list[Obj] = vs["spec"]["http"]
    _check_header_route_name(vs, routes, claims, rollout)
    routes[:] = [route for route in routes if route.get("name") != name]
    who = f"Rollout {_namespace(vs)}/{rollout}"
    index, managed = _select(vs, routes, claims, spec.host, spec.virtual_service.route, who)
    routes.insert(index, _header_route(vs, managed, rollout, spec, stable))


def _check_header_route_name(vs: Obj, routes: list[Obj], claims: Claims, rollout: str) -> None:
    """The name `<rollout>-canary` is free for the header route, or already its own."""
    name = header_route_name(rollout)
    owner = claims.routes.get(name)
    if owner is not None and owner != rollout:
        raise MeshError(
            f"VirtualService {_ref(vs)} route '{name}', the name of the header canary route of "
            f"Rollout {_namespace(vs)}/{rollout}, is managed by Rollout {_namespace(vs)}/{owner}: "
            f"point spec.virtualService.route of Rollout {_namespace(vs)}/{owner} at another "
            f"route or rename Rollout {_namespace(vs)}/{rollout}."
        )
    if owner is None and any(route.get("name") == name for route in routes):
        raise MeshError(
            f"VirtualService {_ref(vs)} already has an http route named '{name}' that Rollout "
            f"{_namespace(vs)}/{rollout} did not create: rename or remove that route so the "
            f"header canary can use the name."
        )


def _remove_header_route(vs: Obj, claims: Claims, rollout: str) -> None:
    name = header_route_name(rollout)
    if claims.routes.get(name) != rollout:
        return
    body = vs.get("spec")
    routes = body.get("http") if isinstance(body, dict) else None
    if isinstance(routes, list):
        routes[:] = [r for r in routes if not isinstance(r, dict) or r.get("name") != name]


def _header_route(vs: Obj, managed: Obj, rollout: str, spec: RolloutSpec, stable: Obj) -> Obj:
    canary = _with_subset(stable, spec.canary.subset)
    canary.pop("weight", None)
    inherited = {
        key: copy.deepcopy(value)
        for key, value in managed.items()
        if key not in _NOT_INHERITED_BY_HEADER_ROUTE
    }
    return {
        "name": header_route_name(rollout),
        "match": _header_matches(vs, managed, rollout, spec),
        "route": [canary],
        **inherited,
    }


def _header_matches(vs: Obj, managed: Obj, rollout: str, spec: RolloutSpec) -> list[Obj]:
    """The stage's matches, each ANDed with each of the managed route's own matches.

    Without the managed route's match the header route would also take requests that the
    managed route never sees (another path, another port) away from the routes below it.
    """
    stage = spec.stages.header_canary
    if stage is None:
        raise MeshError(
            f"Rollout {_namespace(vs)}/{rollout} asks for a header canary but has no "
            f"spec.stages.headerCanary: add that stage with a match."
        )
    canary_matches = [_istio_match(vs, rollout, match) for match in stage.match]
    route_matches = managed.get("match") or [{}]
    where = _label(managed)
    return [
        _merged_match(vs, where, rollout, route_match, canary_match)
        for route_match in route_matches
        for canary_match in canary_matches
    ]


def _istio_match(vs: Obj, rollout: str, match: MatchRequest) -> Obj:
    """Istio's HTTPMatchRequest: `clientIP` becomes a match on the first X-Forwarded-For."""
    istio = match.wire()
    client_ip = istio.pop("clientIP", None)
    if client_ip is None:
        return istio
    headers: Obj = istio.setdefault("headers", {})
    if any(header.lower() == CLIENT_IP_HEADER for header in headers):
        raise MeshError(
            f"Rollout {_namespace(vs)}/{rollout} gives both clientIP and an {CLIENT_IP_HEADER} "
            f"header in one spec.stages.headerCanary.match entry: keep only one of them."
        )
    headers[CLIENT_IP_HEADER] = {"regex": f"^{re.escape(client_ip)}(\\s*,.*)?$"}
    return istio


def _merged_match(vs: Obj, where: str, rollout: str, route_match: Any, canary_match: Obj) -> Obj:
    if not isinstance(route_match, dict):
        raise MeshError(
            f"VirtualService {_ref(vs)} {where} has a match entry that is not an object: "
            f"fix that match so Rollout {_namespace(vs)}/{rollout} can add its header canary."
        )
    merged = copy.deepcopy(route_match)
    for key, value in canary_match.items():
        if key == "name" or key not in merged:
            merged[key] = copy.deepcopy(value)
        elif key in _MATCH_MAPS and isinstance(merged[key], dict):
            if _clashing_keys(merged[key], value):
                raise _contradiction(vs, where, rollout, key)
            merged[key] = {**merged[key], **copy.deepcopy(value)}
        elif merged[key] != value:
            raise _contradiction(vs, where, rollout, key)
    return merged


def _contradiction(vs: Obj, where: str, rollout: str, key: str) -> MeshError:
    return MeshError(
        f"spec.stages.headerCanary.match of Rollout {_namespace(vs)}/{rollout} and {where} of "
        f"VirtualService {_ref(vs)} both match on {key} with different values: drop {key} from "
        f"the headerCanary match, the header route already inherits the route's own match."
    )


def _clashing_keys(left: Mapping[str, Any], right: Mapping[str, Any]) -> bool:
    return any(key in left and left[key] != value for key, value in right.items())


# ---------------------------------------------------------------- destination rule


def _check_destination_rule(dr: Obj, rollout: str, spec: RolloutSpec) -> Claims:
    """The DestinationRule's host, both subsets, and their claims; the claims as read."""
    body = dr.get("spec")
    host = body.get("host") if isinstance(body, dict) else None
    who = f"Rollout {_namespace(dr)}/{rollout}"
    if isinstance(host, str) and not _same_host(host, spec.host, _namespace(dr)):
        raise MeshError(
            f"DestinationRule {_ref(dr)} is for host '{host}', not '{spec.host}': point "
            f"spec.destinationRule.name of {who} at the DestinationRule of {spec.host}."
        )
    claims = _read_claims(dr, "DestinationRule")
    for field_name, subset_name in (("stable", spec.stable.subset), ("canary", spec.canary.subset)):
        _subset(dr, subset_name, field_name, rollout, spec)
        owner = claims.subsets.get(subset_name)
        if owner is not None and owner != rollout:
            raise MeshError(
                f"DestinationRule {_ref(dr)} subset '{subset_name}' is already steered by "
                f"Rollout {_namespace(dr)}/{owner}, and two Rollouts never steer one subset: give "
                f"{who} subsets of its own (spec.stable.subset, spec.canary.subset) or delete "
                f"Rollout {_namespace(dr)}/{owner}."
            )
    return claims


def _find_subset(dr: Mapping[str, Any], name: str) -> Obj | None:
    body = dr.get("spec")
    subsets = body.get("subsets") if isinstance(body, dict) else None
    for subset in subsets if isinstance(subsets, list) else []:
        if isinstance(subset, dict) and subset.get("name") == name:
            return subset
    return None


def _subset(dr: Obj, name: str, field_name: str, rollout: str, spec: RolloutSpec) -> Obj:
    subset = _find_subset(dr, name)
    if subset is not None:
        return subset
    raise MeshError(
        f"DestinationRule {_ref(dr)} has no subset named '{name}': add a subset `name: {name}` "
        f"(the controller sets its {spec.version_label} label) or fix spec.{field_name}.subset "
        f"of Rollout {_namespace(dr)}/{rollout}."
    )


# ---------------------------------------------------------------- hosts


def _same_host(host: str, expected: str, namespace: str) -> bool:
    return _fqdn(host, namespace) == _fqdn(expected, namespace)


def _fqdn(host: str, namespace: str) -> str:
    """Istio's short names: `ui`, `ui.shop`, `ui.shop.svc` all mean ui.shop.svc.cluster.local."""
    parts = host.lower().split(".")
    if len(parts) == 1:
        return f"{parts[0]}.{namespace}.svc.cluster.local"
    if len(parts) == 2:
        return f"{'.'.join(parts)}.svc.cluster.local"
    if len(parts) == 3 and parts[2] == "svc":
        return f"{'.'.join(parts)}.cluster.local"
    return ".".join(parts)


# ---------------------------------------------------------------- annotations


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = obj.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    return annotations if isinstance(annotations, dict) else {}


def _set_annotation(obj: Obj, key: str, value: str) -> None:
    metadata = obj.setdefault("metadata", {})
    if not isinstance(metadata.get("annotations"), dict):
        metadata["annotations"] = {}
    metadata["annotations"][key] = value


def _drop_annotation(obj: Obj, key: str) -> None:
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict) or key not in _annotations(obj):
        return
    del metadata["annotations"][key]
    if not metadata["annotations"]:
        del metadata["annotations"]


# ---------------------------------------------------------------- small helpers


def _check_traffic(traffic: Traffic) -> None:
    if not 0 <= traffic.canary_weight <= 100:
        raise ValueError(f"canary weight must lie in 0..100, got {traffic.canary_weight}")
    if not 0 <= traffic.mirror_percent <= 100:
        raise ValueError(f"mirror percent must lie in 0..100, got {traffic.mirror_percent}")


def _planned(desired: Obj, original: Mapping[str, Any]) -> Planned:
    return Planned(obj=desired, changed=desired != dict(original))


def _namespace(obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata")
    namespace = metadata.get("namespace") if isinstance(metadata, dict) else None
    return namespace if isinstance(namespace, str) and namespace else "default"


def _ref(obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return f"{_namespace(obj)}/{name}"


# ---------------------------------------------------------------- reading the mesh


def observe_traffic(
    vs: Mapping[str, Any], dr: Mapping[str, Any], rollout: str, spec: RolloutSpec
) -> Traffic | None:
    """The position the objects carry now, as a `Traffic`; None when they do not read as one
    (the managed route or a subset's version label is missing: a person changed them)."""
    try:
        routes = _http_routes(dict(vs), rollout, spec)
        claims = _read_claims(vs, "VirtualService")
        who = f"Rollout {_namespace(vs)}/{rollout}"
        _, managed = _select(vs, routes, claims, spec.host, spec.virtual_service.route, who)
    except MeshError:
        return None
    stable = _subset_version(dr, spec.stable.subset, spec)
    canary = _subset_version(dr, spec.canary.subset, spec)
    if stable is None or canary is None:
        return None
    header = header_route_name(rollout)
    return Traffic(
        canary_weight=_canary_weight(managed, spec),
        mirror_percent=_mirrored_percent(managed, spec, _namespace(vs)),
        header_route=claims.routes.get(header) == rollout
        and any(route.get("name") == header for route in routes),
        stable_version=stable,
        canary_version=canary,
    )


def _canary_weight(managed: Obj, spec: RolloutSpec) -> int:
    entries = [e for e in managed.get("route") or [] if isinstance(e, dict)]
    to_canary = [
        e for e in entries if (e.get("destination") or {}).get("subset") == spec.canary.subset
    ]
    if not to_canary:
        return 0
    if len(entries) == 1:
        return 100
    return sum(int(e.get("weight") or 0) for e in to_canary)


def _mirrored_percent(managed: Obj, spec: RolloutSpec, namespace: str) -> float:
    if not _mirror_is_ours(managed, spec, namespace):
        return 0.0
    percentage = managed.get("mirrorPercentage")
    if isinstance(percentage, dict) and isinstance(percentage.get("value"), int | float):
        return float(percentage["value"])
    return 100.0


def _subset_version(dr: Mapping[str, Any], name: str, spec: RolloutSpec) -> str | None:
    subset = _find_subset(dr, name)
    version = _labels(subset).get(spec.version_label) if subset is not None else None
    return str(version) if version is not None else None


def _labels(subset: Obj) -> dict[str, Any]:
    labels = subset.get("labels")
    return labels if isinstance(labels, dict) else {}


def stable_version(dr: Mapping[str, Any], rollout: str, spec: RolloutSpec) -> str:
    """The version the stable subset selects today: the live version when a Rollout starts.

    Without it there is no telling which version is live, so nothing may be released: a
    MeshError names the DestinationRule, the subset and the fix.
    """
    labels = _labels(_subset(dict(dr), spec.stable.subset, "stable", rollout, spec))
    version = labels.get(spec.version_label)
    if isinstance(version, str) and version:
        return version
    others = ", ".join(f"{key}={value}" for key, value in labels.items()) or "no labels"
    raise MeshError(
        f"DestinationRule {_ref(dr)} subset '{spec.stable.subset}' has no {spec.version_label} "
        f"label ({others}), so Rollout {_namespace(dr)}/{rollout} cannot tell which version is "
        f"live: add `{spec.version_label}: <the version running now>` to that subset's labels, "
        f"or set spec.versionLabel to the label that tells your versions apart."
    )


def canary_fit(
    dr: Mapping[str, Any], spec: RolloutSpec, workload: str, pod_labels: Mapping[str, str]
) -> str | None:
    """Why the subsets would select none of the canary's pods, or None when they fit.

    Both subsets select the canary version at some point (the canary subset during the
    release, the stable subset after it), with their other labels kept: a label the canary's
    pods lack means a subset with no endpoints, and every request routed to it fails.
    """
    version = pod_labels.get(spec.version_label)
    if version != spec.canary.version:
        carried = f"{spec.version_label}={version}" if version else f"no {spec.version_label} label"
        return (
            f"{workload} runs pods with {carried}, not {spec.version_label}="
            f"{spec.canary.version}: point spec.canary.workloadRef at the Deployment of "
            f"{spec.canary.version} or label its pod template {spec.version_label}: "
            f"{spec.canary.version}"
        )
    for name in (spec.canary.subset, spec.stable.subset):
        labels = _labels(_find_subset(dr, name) or {})
        missing = {
            key: value
            for key, value in labels.items()
            if key != spec.version_label and pod_labels.get(key) != value
        }
        if missing:
            wanted = ", ".join(f"{key}={value}" for key, value in missing.items())
            return (
                f"DestinationRule {_ref(dr)} subset '{name}' also selects {wanted}, which the "
                f"pods of {workload} do not carry, so it would select none of them: remove "
                f"that label from the subset or add it to the pod template"
            )
    return None


class IstioRouter:
    """`MeshRouter` for Istio VirtualServices and DestinationRules: this module's functions."""

    check = staticmethod(check)
    plan_virtual_service = staticmethod(plan_virtual_service)
    plan_destination_rule = staticmethod(plan_destination_rule)
    release_virtual_service = staticmethod(release_virtual_service)
    release_destination_rule = staticmethod(release_destination_rule)
    observe_traffic = staticmethod(observe_traffic)
    stable_version = staticmethod(stable_version)
    canary_fit = staticmethod(canary_fit)


def _conforms(router: IstioRouter) -> MeshRouter:
    return router  # mypy proves here that IstioRouter implements the port
