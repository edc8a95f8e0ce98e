"""The mesh port: what the controller asks of any service mesh, and what it gets back.

One module per mesh implements `MeshRouter` (see `canary.mesh.istio`); a second mesh is a new
module, not a new `if`. Every method is pure: plain dicts in (as the Kubernetes API returns
them), a `Planned` object out, a `MeshError` for problems the user caused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from canary.core.spec import RolloutSpec
from canary.core.traffic import Traffic


@dataclass(frozen=True)
class Planned:
    """A desired object and whether writing it would change anything.

    obj: the full desired object, a deep copy that shares nothing with the input.
    changed: False means the object already is as desired: the controller makes no write.
    """

    obj: dict[str, Any]
    changed: bool


class MeshError(ValueError):
    """A problem the user caused: one sentence naming the object and the fix."""


class MeshRouter(Protocol):
    def check(
        self, vs: Mapping[str, Any], dr: Mapping[str, Any], rollout: str, spec: RolloutSpec
    ) -> None:
        """Raise MeshError when the Rollout cannot steer these objects safely: its route cannot
        be found, a route or subset is another Rollout's, or traffic would reach the canary
        unchecked."""
        ...

    def plan_virtual_service(
        self, vs: Mapping[str, Any], rollout: str, spec: RolloutSpec, traffic: Traffic
    ) -> Planned:
        """The VirtualService that carries `traffic` on the Rollout's managed route."""
        ...

    def plan_destination_rule(
        self, dr: Mapping[str, Any], rollout: str, spec: RolloutSpec, traffic: Traffic
    ) -> Planned:
        """The DestinationRule whose stable and canary subsets select the traffic's versions."""
        ...

    def release_virtual_service(
        self, vs: Mapping[str, Any], rollout: str, spec: RolloutSpec, stable_version: str
    ) -> Planned:
        """The VirtualService handed back to its user when the Rollout is deleted."""
        ...

    def release_destination_rule(
        self, dr: Mapping[str, Any], rollout: str, spec: RolloutSpec, stable_version: str
    ) -> Planned:
        """The DestinationRule handed back when the Rollout is deleted; subsets another
        Rollout claims are left alone."""
        ...

    def observe_traffic(
        self, vs: Mapping[str, Any], dr: Mapping[str, Any], rollout: str, spec: RolloutSpec
    ) -> Traffic | None:
        """The position the objects carry now; None when they do not read as one."""
        ...

    def stable_version(self, dr: Mapping[str, Any], rollout: str, spec: RolloutSpec) -> str:
        """The version the stable subset selects today; MeshError when it cannot be read."""
        ...

    def canary_fit(
        self, dr: Mapping[str, Any], spec: RolloutSpec, workload: str, pod_labels: Mapping[str, str]
    ) -> str | None:
        """Why the subsets would select none of the canary's pods; None when they fit."""
        ...
