"""What the mesh should carry, derived from a Rollout's status alone.

The planner in `canary.mesh` turns a `Traffic` into VirtualService and DestinationRule objects;
because traffic is a pure function of status, a controller that restarts after a crash writes
exactly what the status it finds says, never a step ahead or behind.
"""

from __future__ import annotations

from dataclasses import dataclass

from canary.core.model import Phase, RolloutSpec, RolloutStatus, Stage


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
