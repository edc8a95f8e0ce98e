"""How a VirtualService and DestinationRule route examples/ui's traffic, read for the tests.

`traffic(vs, dr)` is the one reader: the mesh planner's own (`canary.mesh.istio.observe_traffic`,
which the controller reads its position with), for examples/ui's Rollout `ui`, as a
`canary.core.traffic.Traffic`; it fails when the objects do not read as a position. Without a
DestinationRule it reads the VirtualService alone (the subsets' versions then are examples/ui's).
`TrafficState` is a `Traffic` without the canary subset's version, what a release's sequence of
states is compared on; `routing(vs)` its VirtualService part, for tests that record only the
VirtualService, and a check that the managed route's weights add up to 100.

`http_route`, `managed_route` and `weights` read routes by name: the managed route `primary`,
the header route `ui-canary`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, TypeVar

from canary.core.model import Rollout
from canary.core.traffic import Traffic
from canary.mesh.istio import header_route_name, observe_traffic
from canary_sandbox.stack import SERVICE, example, example_release

Obj = dict[str, Any]
T = TypeVar("T")

MANAGED_ROUTE = "primary"
HEADER_ROUTE = header_route_name(SERVICE)  # ui-canary
_SPEC = Rollout.model_validate(example_release()).spec
_DESTINATION_RULE = example("destinationrule")


def http_route(vs: Mapping[str, Any], name: str = MANAGED_ROUTE) -> Obj | None:
    """The HTTP route `name` of the VirtualService (itself: a change to it changes `vs`); None
    when it has none."""
    for route in vs.get("spec", {}).get("http") or []:
        if route.get("name") == name:
            found: Obj = route
            return found
    return None


def managed_route(vs: Mapping[str, Any], name: str = MANAGED_ROUTE) -> Obj:
    """The HTTP route `name` (the managed one by default); AssertionError when it is missing."""
    found = http_route(vs, name)
    assert found is not None, f"no HTTP route {name!r} in {vs.get('spec', {}).get('http')}"
    return found


def weights(vs: Mapping[str, Any], name: str = MANAGED_ROUTE) -> dict[str, int]:
    """{subset: weight} of the route `name`; a lone destination weighs 100, as Istio says."""
    route = managed_route(vs, name)
    return {d["destination"]["subset"]: d.get("weight", 100) for d in route["route"]}


def traffic(vs: Mapping[str, Any], dr: Mapping[str, Any] | None = None) -> Traffic:
    """The position the objects carry, as the controller reads it (`observe_traffic`)."""
    found = observe_traffic(vs, _DESTINATION_RULE if dr is None else dr, SERVICE, _SPEC)
    assert found is not None, f"the objects do not read as a position: {vs}, {dr}"
    return found


class TrafficState(NamedTuple):
    """What one VirtualService + DestinationRule pair does to the managed route's traffic."""

    canary_weight: int
    mirror_percent: float
    header_route: bool
    stable_version: str | None

    @classmethod
    def of(cls, traffic: Traffic) -> TrafficState:
        return cls(
            traffic.canary_weight,
            traffic.mirror_percent,
            traffic.header_route,
            traffic.stable_version,
        )


def traffic_state(vs: Mapping[str, Any], dr: Mapping[str, Any]) -> TrafficState:
    return TrafficState.of(traffic(vs, dr))


def routing(vs: Mapping[str, Any]) -> tuple[int, float, bool]:
    """(canary weight, mirror percent, header route present) of the VirtualService alone,
    whose managed route's weights must add up to 100."""
    assert sum(weights(vs).values()) == 100, weights(vs)
    read = traffic(vs)
    return read.canary_weight, read.mirror_percent, read.header_route


def collapse(items: Iterable[T]) -> list[T]:
    """Consecutive repeats folded into one: [a, a, b, a] -> [a, b, a]."""
    folded: list[T] = []
    for item in items:
        if not folded or folded[-1] != item:
            folded.append(item)
    return folded
