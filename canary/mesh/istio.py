"""The Istio planner: desired VirtualService and DestinationRule objects from a `Traffic`.

Pure functions over plain dicts as the Kubernetes API returns them; the input is never mutated
and every route, field and annotation that is not ours survives unchanged, in order.

What a Rollout manages in a VirtualService:
- the route named `spec.virtualService.route`: its `route` destinations (stable alone at canary
  weight 0; stable 100-w and canary w otherwise, stable kept at weight 0 when w is 100) and its
  `mirror`/`mirrorPercentage` when the mirror points at the canary subset;
- the route `<rollout>-canary`, directly above it, while the header canary runs;
- the annotations `canary.dev/route.<route>` (the claim) and `canary.dev/original-spec` (the
  spec as it was before the first write, kept while any route of the VirtualService is claimed).

A route is claimed the first time a plan changes the VirtualService: an idle Rollout in front
of an untouched VirtualService plans no write at all.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from typing import Any

from canary.core.model import MatchRequest, RolloutSpec
from canary.core.traffic import Traffic, stable_only
from canary.mesh.router import MeshError, MeshRouter, Planned

__all__ = [
    "CLAIM_PREFIX",
    "ORIGINAL_SPEC_ANNOTATION",
    "IstioRouter",
    "MeshError",
    "Planned",
    "check_ownership",
    "header_route_name",
    "plan_destination_rule",
    "plan_virtual_service",
    "release_virtual_service",
]

Json = dict[str, Any]

CLAIM_PREFIX = "canary.dev/route."
ORIGINAL_SPEC_ANNOTATION = "canary.dev/original-spec"
CLIENT_IP_HEADER = "x-forwarded-for"

_ANNOTATION_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_ANNOTATION_NAME_MAX = 63
_MIRROR_KEYS = ("mirror", "mirrorPercentage", "mirrorPercent")
# Everything else on the managed route (timeout, retries, rewrite, headers, fault, ...) is
# copied to the header route, so canary requests are handled like the stable ones.
_NOT_INHERITED_BY_HEADER_ROUTE = frozenset({"name", "match", "route", "mirrors", *_MIRROR_KEYS})
_MATCH_MAPS = frozenset({"headers", "withoutHeaders", "queryParams", "sourceLabels"})


class IstioRouter:
    """`MeshRouter` for Istio VirtualServices and DestinationRules."""

    def plan_virtual_service(
        self, vs: Mapping[str, Any], rollout: str, spec: RolloutSpec, traffic: Traffic
    ) -> Planned:
        return plan_virtual_service(vs, rollout, spec, traffic)

    def plan_destination_rule(
        self, dr: Mapping[str, Any], spec: RolloutSpec, traffic: Traffic
    ) -> Planned:
        return plan_destination_rule(dr, spec, traffic)

    def release_virtual_service(
        self, vs: Mapping[str, Any], rollout: str, spec: RolloutSpec, stable_version: str
    ) -> Planned:
        return release_virtual_service(vs, rollout, spec, stable_version)

    def check_ownership(self, vs: Mapping[str, Any], rollout: str, spec: RolloutSpec) -> None:
        check_ownership(vs, rollout, spec)

    def observe_traffic(
        self, vs: Mapping[str, Any], dr: Mapping[str, Any], rollout: str, spec: RolloutSpec
    ) -> Traffic | None:
        return observe_traffic(vs, dr, rollout, spec)

    def stable_version(self, dr: Mapping[str, Any], rollout: str, spec: RolloutSpec) -> str:
        return stable_version(dr, rollout, spec)

    def canary_fit(
        self, dr: Mapping[str, Any], spec: RolloutSpec, workload: str, pod_labels: Mapping[str, str]
    ) -> str | None:
        return canary_fit(dr, spec, workload, pod_labels)


def _conforms(router: IstioRouter) -> MeshRouter:
    return router  # mypy proves here that IstioRouter implements the port


# ---------------------------------------------------------------- public functions


def plan_virtual_service(
    vs: Mapping[str, Any], rollout: str, spec: RolloutSpec, traffic: Traffic
) -> Planned:
    """The VirtualService whose managed route carries `traffic`."""
    _check_traffic(traffic)
    check_ownership(vs, rollout, spec)
    desired = copy.deepcopy(dict(vs))
    routes = _http_routes(desired, rollout, spec)
    managed = routes[_managed_index(desired, routes, rollout, spec)]
    stable = _steer(desired, managed, rollout, spec, traffic)
    if traffic.header_route:
        _insert_header_route(desired, routes, rollout, spec, stable)
    else:
        _remove_header_route(desired, rollout)
    if desired.get("spec") != vs.get("spec"):
        _claim(desired, vs, rollout, spec)
    return _planned(desired, vs)


def plan_destination_rule(dr: Mapping[str, Any], spec: RolloutSpec, traffic: Traffic) -> Planned:
    """The DestinationRule whose stable and canary subsets select the traffic's versions."""
    desired = copy.deepcopy(dict(dr))
    _check_destination_rule_host(desired, spec)
    for field, subset_name, version in (
        ("stable", spec.stable.subset, traffic.stable_version),
        ("canary", spec.canary.subset, traffic.canary_version),
    ):
        subset = _subset(desired, subset_name, field, spec)
        labels = subset.get("labels")
        if not isinstance(labels, dict):
            labels = subset["labels"] = {}
        labels[spec.version_label] = version
    return _planned(desired, dr)


def release_virtual_service(
    vs: Mapping[str, Any], rollout: str, spec: RolloutSpec, stable_version: str
) -> Planned:
    """The VirtualService handed back to its user when the Rollout is deleted.

    Only what this Rollout claimed is undone: its route goes back to stable alone (no mirror),
    its header route and claims go. A route that is gone or no longer points at `spec.host` is
    left as the user made it. `canary.dev/original-spec` goes with the last claim, so a later
    take-over saves a fresh one.
    """
    desired = copy.deepcopy(dict(vs))
    claim = _claim_key(spec.virtual_service.route)
    if _annotations(desired).get(claim) == rollout:
        _return_to_stable(desired, rollout, spec, stable_version)
        _drop_annotation(desired, claim)
    _remove_header_route(desired, rollout)
    if not any(key.startswith(CLAIM_PREFIX) for key in _annotations(desired)):
        _drop_annotation(desired, ORIGINAL_SPEC_ANNOTATION)
    return _planned(desired, vs)


def check_ownership(vs: Mapping[str, Any], rollout: str, spec: RolloutSpec) -> None:
    """Raise MeshError when another Rollout already manages the same route."""
    route = spec.virtual_service.route
    owner = _annotations(vs).get(_claim_key(route))
    if owner is not None and owner != rollout:
        namespace = _namespace(vs)
        raise MeshError(
            f"VirtualService {_ref(vs)} route '{route}' is already managed by Rollout "
            f"{namespace}/{owner}; point spec.virtualService.route of Rollout "
            f"{namespace}/{rollout} at another route or delete Rollout {namespace}/{owner}."
        )


def header_route_name(rollout: str) -> str:
    return f"{rollout}-canary"


# ---------------------------------------------------------------- the managed route


def _http_routes(vs: Json, rollout: str, spec: RolloutSpec) -> list[Json]:
    body = vs.get("spec")
    routes = body.get("http") if isinstance(body, dict) else None
    if not isinstance(routes, list) or not routes:
        raise MeshError(
            f"VirtualService {_ref(vs)} has no http routes: add an http route named "
            f"'{spec.virtual_service.route}' to steer or fix spec.virtualService in Rollout "
            f"{_namespace(vs)}/{rollout}."
        )
    return routes


def _managed_index(vs: Json, routes: list[Json], rollout: str, spec: RolloutSpec) -> int:
    name = spec.virtual_service.route
    where = f"Rollout {_namespace(vs)}/{rollout}"
    if name == header_route_name(rollout):
        raise MeshError(
            f"{where} steers route '{name}', the name its header canary route takes: "
            f"rename that route in VirtualService {_ref(vs)} and in spec.virtualService.route."
        )
    found = [index for index, route in enumerate(routes) if route.get("name") == name]
    if not found:
        raise MeshError(
            f"VirtualService {_ref(vs)} has no http route named '{name}': add `name: {name}` "
            f"to the route to steer or fix spec.virtualService.route in {where}."
        )
    if len(found) > 1:
        raise MeshError(
            f"VirtualService {_ref(vs)} has {len(found)} http routes named '{name}': "
            f"give each route its own name so {where} steers exactly one."
        )
    return found[0]


def _steer(vs: Json, managed: Json, rollout: str, spec: RolloutSpec, traffic: Traffic) -> Json:
    """Set the managed route's destinations and mirror; return its stable destination."""
    stable = _stable_destination(vs, managed, rollout, spec)
    managed["route"] = _weighted(stable, spec.canary.subset, traffic.canary_weight)
    wanted_mirror = _mirror_keys(stable, spec.canary.subset, traffic.mirror_percent)
    _set_mirror(vs, managed, rollout, spec, wanted_mirror)
    return stable


def _stable_destination(vs: Json, managed: Json, rollout: str, spec: RolloutSpec) -> Json:
    entries = managed.get("route")
    if not isinstance(entries, list) or not entries:
        raise MeshError(
            f"VirtualService {_ref(vs)} route '{managed['name']}' has no destinations to steer: "
            f"give it `route: [{{destination: {{host: {spec.host}}}}}]`."
        )
    for entry in entries:
        _check_destination_host(vs, managed["name"], entry, rollout, spec)
    stable = next(
        (e for e in entries if e["destination"].get("subset") == spec.stable.subset), entries[0]
    )
    return _with_subset(stable, spec.stable.subset)


def _check_destination_host(
    vs: Json, route: str, entry: Any, rollout: str, spec: RolloutSpec
) -> None:
    destination = entry.get("destination") if isinstance(entry, dict) else None
    host = destination.get("host") if isinstance(destination, dict) else None
    if not isinstance(host, str) or not _same_host(host, spec.host, _namespace(vs)):
        raise MeshError(
            f"VirtualService {_ref(vs)} route '{route}' sends traffic to host '{host}', not "
            f"'{spec.host}': point every destination of that route at {spec.host} or fix "
            f"spec.host in Rollout {_namespace(vs)}/{rollout}."
        )


def _weighted(stable: Json, canary_subset: str, canary_weight: int) -> list[Json]:
    if canary_weight == 0:
        alone = copy.deepcopy(stable)
        if alone.get("weight") != 100:  # keep the user's explicit `weight: 100`, drop the rest
            alone.pop("weight", None)
        return [alone]
    canary = _with_subset(stable, canary_subset)
    return [{**stable, "weight": 100 - canary_weight}, {**canary, "weight": canary_weight}]


def _with_subset(entry: Json, subset: str) -> Json:
    copied = copy.deepcopy(entry)
    copied["destination"] = {**copied["destination"], "subset": subset}
    return copied


def _return_to_stable(vs: Json, rollout: str, spec: RolloutSpec, stable_version: str) -> None:
    try:
        routes = _http_routes(vs, rollout, spec)
        managed = routes[_managed_index(vs, routes, rollout, spec)]
        _steer(vs, managed, rollout, spec, stable_only(stable_version, stable_version))
    except MeshError:
        return  # nothing of ours left to undo in that route


# ---------------------------------------------------------------- mirror


def _set_mirror(
    vs: Json, managed: Json, rollout: str, spec: RolloutSpec, wanted: Json | None
) -> None:
    """Give the managed route the `wanted` mirror keys, or take ours away when None."""
    ours = _mirror_is_ours(managed, spec, _namespace(vs))
    if wanted is None:
        if ours:
            for key in _MIRROR_KEYS:
                managed.pop(key, None)
        return
    if not ours and ("mirror" in managed or "mirrors" in managed):
        raise MeshError(
            f"VirtualService {_ref(vs)} route '{managed['name']}' already mirrors to another "
            f"destination: remove that mirror or drop spec.stages.mirror from Rollout "
            f"{_namespace(vs)}/{rollout}."
        )
    managed.pop("mirrorPercent", None)
    managed.update(wanted)


def _mirror_keys(stable: Json, canary_subset: str, percent: float) -> Json | None:
    if percent == 0:
        return None
    destination = stable["destination"]
    mirror = {"host": destination["host"], "subset": canary_subset}
    if "port" in destination:
        mirror["port"] = copy.deepcopy(destination["port"])
    return {"mirror": mirror, "mirrorPercentage": {"value": percent}}


def _mirror_is_ours(managed: Json, spec: RolloutSpec, namespace: str) -> bool:
    mirror = managed.get("mirror")
    if not isinstance(mirror, dict) or "mirrors" in managed:
        return False
    host = mirror.get("host")
    return (
        mirror.get("subset") == spec.canary.subset
        and isinstance(host, str)
        and _same_host(host, spec.host, namespace)
    )


# ---------------------------------------------------------------- header route


def _insert_header_route(
    vs: Json, routes: list[Json], rollout: str, spec: RolloutSpec, stable: Json
) -> None:
    name = header_route_name(rollout)
    claim = _claim_key(name)
    _check_claimable(vs, name)
    if _annotations(vs).get(claim) != rollout and _route_named(routes, name):
        raise MeshError(
            f"VirtualService {_ref(vs)} already has an http route named '{name}' that Rollout "
            f"{_namespace(vs)}/{rollout} did not create: rename or remove that route so the "
            f"header canary can use the name."
        )
    routes[:] = [route for route in routes if route.get("name") != name]
    index = _managed_index(vs, routes, rollout, spec)
    routes.insert(index, _header_route(vs, routes[index], rollout, spec, stable))
    _set_annotation(vs, claim, rollout)


def _remove_header_route(vs: Json, rollout: str) -> None:
    name = header_route_name(rollout)
    claim = _claim_key(name)
    if _annotations(vs).get(claim) != rollout:
        return
    body = vs.get("spec")
    routes = body.get("http") if isinstance(body, dict) else None
    if isinstance(routes, list):
        routes[:] = [route for route in routes if route.get("name") != name]
    _drop_annotation(vs, claim)


def _header_route(vs: Json, managed: Json, rollout: str, spec: RolloutSpec, stable: Json) -> Json:
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


def _header_matches(vs: Json, managed: Json, rollout: str, spec: RolloutSpec) -> list[Json]:
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
    return [
        _merged_match(vs, managed["name"], rollout, route_match, canary_match)
        for route_match in route_matches
        for canary_match in canary_matches
    ]


def _istio_match(vs: Json, rollout: str, match: MatchRequest) -> Json:
    """Istio's HTTPMatchRequest: `clientIP` becomes a match on the first X-Forwarded-For."""
    istio = match.wire()
    client_ip = istio.pop("clientIP", None)
    if client_ip is None:
        return istio
    headers: Json = istio.setdefault("headers", {})
    if any(header.lower() == CLIENT_IP_HEADER for header in headers):
        raise MeshError(
            f"Rollout {_namespace(vs)}/{rollout} gives both clientIP and an {CLIENT_IP_HEADER} "
            f"header in one spec.stages.headerCanary.match entry: keep only one of them."
        )
    headers[CLIENT_IP_HEADER] = {"regex": f"^{re.escape(client_ip)}(\\s*,.*)?$"}
    return istio


def _merged_match(
    vs: Json, route: str, rollout: str, route_match: Json, canary_match: Json
) -> Json:
    merged = copy.deepcopy(route_match)
    for key, value in canary_match.items():
        if key == "name" or key not in merged:
            merged[key] = copy.deepcopy(value)
        elif key in _MATCH_MAPS and not _clashing_keys(merged[key], value):
            merged[key] = {**merged[key], **copy.deepcopy(value)}
        elif merged[key] != value:
            raise MeshError(
                f"spec.stages.headerCanary.match of Rollout {_namespace(vs)}/{rollout} and "
                f"route '{route}' of VirtualService {_ref(vs)} both match on {key} with "
                f"different values: drop {key} from the headerCanary match, the header route "
                f"already inherits the route's own match."
            )
    return merged


def _clashing_keys(left: Mapping[str, Any], right: Mapping[str, Any]) -> bool:
    return any(key in left and left[key] != value for key, value in right.items())


def _route_named(routes: list[Json], name: str) -> bool:
    return any(route.get("name") == name for route in routes)


# ---------------------------------------------------------------- destination rule


def _subset(dr: Json, name: str, field: str, spec: RolloutSpec) -> Json:
    body = dr.get("spec")
    subsets = body.get("subsets") if isinstance(body, dict) else None
    for subset in subsets if isinstance(subsets, list) else []:
        if isinstance(subset, dict) and subset.get("name") == name:
            return subset
    raise MeshError(
        f"DestinationRule {_ref(dr)} has no subset named '{name}': add a subset `name: {name}` "
        f"(the controller sets its {spec.version_label} label) or fix spec.{field}.subset "
        f"in the Rollout."
    )


def _check_destination_rule_host(dr: Json, spec: RolloutSpec) -> None:
    body = dr.get("spec")
    host = body.get("host") if isinstance(body, dict) else None
    if isinstance(host, str) and not _same_host(host, spec.host, _namespace(dr)):
        raise MeshError(
            f"DestinationRule {_ref(dr)} is for host '{host}', not '{spec.host}': point "
            f"spec.destinationRule.name of the Rollout at the DestinationRule of {spec.host}."
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


# ---------------------------------------------------------------- claims and annotations


def _claim(vs: Json, original: Mapping[str, Any], rollout: str, spec: RolloutSpec) -> None:
    if ORIGINAL_SPEC_ANNOTATION not in _annotations(vs):
        saved = json.dumps(original.get("spec"), separators=(",", ":"))
        _set_annotation(vs, ORIGINAL_SPEC_ANNOTATION, saved)
    _check_claimable(vs, spec.virtual_service.route)
    _set_annotation(vs, _claim_key(spec.virtual_service.route), rollout)


def _claim_key(route: str) -> str:
    return f"{CLAIM_PREFIX}{route}"


def _check_claimable(vs: Mapping[str, Any], route: str) -> None:
    name = _claim_key(route).split("/", 1)[1]
    if len(name) > _ANNOTATION_NAME_MAX or not _ANNOTATION_NAME.match(name):
        limit = _ANNOTATION_NAME_MAX - len(name) + len(route)
        raise MeshError(
            f"VirtualService {_ref(vs)} route name '{route}' cannot be part of the annotation "
            f"key {_claim_key(route)}: rename the route to at most {limit} letters, digits, "
            f"'-', '_' or '.'."
        )


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, str]:
    metadata = obj.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    return annotations if isinstance(annotations, dict) else {}


def _set_annotation(obj: Json, key: str, value: str) -> None:
    metadata = obj.setdefault("metadata", {})
    if not isinstance(metadata.get("annotations"), dict):
        metadata["annotations"] = {}
    metadata["annotations"][key] = value


def _drop_annotation(obj: Json, key: str) -> None:
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


def _planned(desired: Json, original: Mapping[str, Any]) -> Planned:
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
        managed = routes[_managed_index(dict(vs), routes, rollout, spec)]
        stable = _subset_version(dr, spec.stable.subset, spec)
        canary = _subset_version(dr, spec.canary.subset, spec)
    except MeshError:
        return None
    if stable is None or canary is None:
        return None
    return Traffic(
        canary_weight=_canary_weight(managed, spec),
        mirror_percent=_mirrored_percent(managed, spec, _namespace(vs)),
        header_route=_annotations(vs).get(_claim_key(header_route_name(rollout))) == rollout
        and _route_named(routes, header_route_name(rollout)),
        stable_version=stable,
        canary_version=canary,
    )


def _canary_weight(managed: Json, spec: RolloutSpec) -> int:
    entries = [e for e in managed.get("route") or [] if isinstance(e, dict)]
    to_canary = [
        e for e in entries if (e.get("destination") or {}).get("subset") == spec.canary.subset
    ]
    if not to_canary:
        return 0
    if len(entries) == 1:
        return 100
    return sum(int(e.get("weight") or 0) for e in to_canary)


def _mirrored_percent(managed: Json, spec: RolloutSpec, namespace: str) -> float:
    if not _mirror_is_ours(managed, spec, namespace):
        return 0.0
    percentage = managed.get("mirrorPercentage")
    if isinstance(percentage, dict) and isinstance(percentage.get("value"), int | float):
        return float(percentage["value"])
    return 100.0


def _subset_version(dr: Mapping[str, Any], name: str, spec: RolloutSpec) -> str | None:
    for subset in _subsets(dr):
        if subset.get("name") == name:
            version = _labels(subset).get(spec.version_label)
            return str(version) if version is not None else None
    return None


def _labels(subset: Json) -> dict[str, Any]:
    labels = subset.get("labels")
    return labels if isinstance(labels, dict) else {}


def _subsets(dr: Mapping[str, Any]) -> list[Json]:
    body = dr.get("spec")
    subsets = body.get("subsets") if isinstance(body, dict) else None
    return [s for s in subsets if isinstance(s, dict)] if isinstance(subsets, list) else []


def stable_version(dr: Mapping[str, Any], rollout: str, spec: RolloutSpec) -> str:
    """The version the stable subset selects today: the live version when a Rollout starts.

    Without it there is no telling which version is live, so nothing may be released: a
    MeshError names the DestinationRule, the subset and the fix.
    """
    labels = _labels(_subset(dict(dr), spec.stable.subset, "stable", spec))
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
        labels = _labels(next((s for s in _subsets(dr) if s.get("name") == name), {}))
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
