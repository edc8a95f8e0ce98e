"""What the mesh should carry, derived from a Rollout's status alone.

The planner in `canary.mesh` turns a `Traffic` into VirtualService and DestinationRule objects;
because traffic is a pure function of status, a controller that restarts after a crash writes
exactly what the status it finds says, never a step ahead or behind.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from canary.core.spec import RolloutSpec, Stage
from canary.core.status import Phase, RolloutStatus


@dataclass(frozen=True)
class Traffic:
    """The desired routing of one Rollout's managed route.

    canary_weight: percent of the managed route's requests sent to the canary subset (0..100).
    mirror_percent: percent of the stable traffic copied to the canary subset; 0 = no mirror.
    header_route: whether the `<rollout>-canary` match route sits above the managed route.
    stable_version / canary_version: the `versionLabel` value each DestinationRule subset selects.
    """

    canary_weight: int
    mirror_percent: float
    header_route: bool
    stable_version: str
    canary_version: str

    @property
    def stable_weight(self) -> int:
        return 100 - self.canary_weight


def stable_only(stable_version: str, canary_version: str) -> Traffic:
    """All traffic to stable: no mirror, no header route (rollback, abort, idle)."""
    return Traffic(
        canary_weight=0,
        mirror_percent=0.0,
        header_route=False,
        stable_version=stable_version,
        canary_version=canary_version,
    )


def traffic_for(spec: RolloutSpec, status: RolloutStatus) -> Traffic | None:
    """The routing that `status` stands for; None when traffic must not be touched."""
    if status.phase in (None, Phase.INVALID) or status.stable_version is None:
        return None
    canary_version = status.canary_version or status.stable_version
    stable_version = canary_version if status.stable_subset_moved else status.stable_version
    return Traffic(
        canary_weight=status.canary_weight,
        mirror_percent=status.mirror_percent,
        header_route=status.header_route,
        stable_version=stable_version,
        canary_version=canary_version,
    )


def routing_of(stage: Stage | None, weight: int, spec: RolloutSpec) -> tuple[int, float, bool]:
    """(canary weight, mirror percent, header route) for a stage at a split weight."""
    if stage is Stage.MIRROR and spec.stages.mirror is not None:
        return 0, spec.stages.mirror.percent, False
    if stage is Stage.HEADER_CANARY:
        return 0, 0.0, True
    if stage in (Stage.SPLIT, Stage.RELEASE):
        return weight, 0.0, False
    return 0, 0.0, False


# ---------------------------------------------------------------- the order of the writes

MeshObject = Literal["destinationRule", "virtualService"]


@dataclass(frozen=True)
class MeshWrite:
    """One write of a change: a DestinationRule write takes the subsets' versions from
    `traffic`, a VirtualService write its weights, mirror and header route."""

    target: MeshObject
    traffic: Traffic


def exposure(traffic: Traffic) -> frozenset[tuple[str, str]]:
    """(subset, version) for every subset that receives requests: routed, mirrored or matched."""
    exposed = set()
    if traffic.stable_weight > 0:
        exposed.add(("stable", traffic.stable_version))
    if traffic.canary_weight > 0 or traffic.mirror_percent > 0 or traffic.header_route:
        exposed.add(("canary", traffic.canary_version))
    return frozenset(exposed)


def without_canary(traffic: Traffic) -> Traffic:
    return replace(traffic, canary_weight=0, mirror_percent=0.0, header_route=False)


def write_plan(before: Traffic | None, after: Traffic) -> tuple[MeshWrite, ...]:
    """The writes that take the mesh from `before` to `after`, ordered so that between any two
    of them no request reaches a subset that selects a version other than the one it is sent to
    before or after the change (`exposure`).

    Traffic up: the subsets first, then the route. Traffic down, or a subset that carries
    traffic re-pointed at another version: the route first, then the subset. A change that
    needs more (both subsets re-pointed while one carries traffic, as when a new version
    arrives during the settle) moves one subset at a time, or takes the traffic of the changing
    subset away first. `before` None means the mesh could not be read as a position (a person
    edited it): canary traffic goes first, then the subsets, then the route.
    """
    if before is None:
        conservative = (
            MeshWrite("virtualService", without_canary(after)),
            MeshWrite("destinationRule", after),
            MeshWrite("virtualService", after),
        )
        return conservative
    path = _shortest_safe_path(before, after)
    # Each object is written at least once, for what it carries besides the traffic (claims):
    # the DestinationRule before any request moves, the VirtualService last. Where the traffic
    # needs no write of that object, the write changes no routing, so it is safe anywhere.
    targets = {write.target for write in path}
    if "destinationRule" not in targets:
        path = (MeshWrite("destinationRule", after), *path)
    if "virtualService" not in targets:
        path = (*path, MeshWrite("virtualService", after))
    return path


_Routes = tuple[int, float, bool]
_State = tuple[_Routes, str, str]  # (routes, stable subset's version, canary subset's version)


def _routes(traffic: Traffic) -> _Routes:
    return traffic.canary_weight, traffic.mirror_percent, traffic.header_route


def _traffic(state: _State) -> Traffic:
    (weight, mirror, header), stable, canary = state
    return Traffic(weight, mirror, header, stable, canary)


def _shortest_safe_path(before: Traffic, after: Traffic) -> tuple[MeshWrite, ...]:
    allowed = exposure(before) | exposure(after)
    start: _State = (_routes(before), before.stable_version, before.canary_version)
    goal: _State = (_routes(after), after.stable_version, after.canary_version)
    routes = [_routes(t) for t in (after, without_canary(after), without_canary(before))]
    routes.append((100, 0.0, False))  # everything on the canary subset
    frontier: list[tuple[_State, tuple[MeshWrite, ...]]] = [(start, ())]
    seen = {start}
    while frontier:
        state, path = frontier.pop(0)
        if state == goal:
            return path
        for write, following in _moves(state, goal, routes):
            if following not in seen and exposure(_traffic(following)) <= allowed:
                seen.add(following)
                frontier.append((following, (*path, write)))
    raise AssertionError(f"no safe order of writes from {before} to {after}")  # pragma: no cover


def _moves(state: _State, goal: _State, routes: list[_Routes]) -> list[tuple[MeshWrite, _State]]:
    """Every single write from `state`, the whole DestinationRule change first."""
    current, stable, canary = state
    subsets = [(goal[1], goal[2]), (goal[1], canary), (stable, goal[2])]
    moves = []
    for new_stable, new_canary in subsets:
        if (new_stable, new_canary) != (stable, canary):
            following: _State = (current, new_stable, new_canary)
            moves.append((MeshWrite("destinationRule", _traffic(following)), following))
    for new_routes in routes:
        if new_routes != current:
            following = (new_routes, stable, canary)
            moves.append((MeshWrite("virtualService", _traffic(following)), following))
    return moves
