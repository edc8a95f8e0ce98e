"""Shared samples for the mesh tests: the `ui` service of the reference Istio talk.

The talk's VirtualService routes every request to subset version-1 of host ui; the
DestinationRule has subsets version-1 (version: v1) and version-2-beta (version: v2).
The only addition is `name: primary` on the route, which tells the Rollout what to steer.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from canary.core.spec import RolloutSpec
from canary.core.traffic import Traffic
from canary.mesh.istio import MeshError

ROLLOUT = "ui"
NAMESPACE = "shop"
STABLE = "version-1"
CANARY = "version-2-beta"

UI_VIRTUAL_SERVICE: dict[str, Any] = {
    "apiVersion": "networking.istio.io/v1alpha3",
    "kind": "VirtualService",
    "metadata": {"name": "ui", "namespace": NAMESPACE, "resourceVersion": "7"},
    "spec": {
        "hosts": ["ui"],
        "http": [{"name": "primary", "route": [{"destination": {"host": "ui", "subset": STABLE}}]}],
    },
}

UI_DESTINATION_RULE: dict[str, Any] = {
    "apiVersion": "networking.istio.io/v1alpha3",
    "kind": "DestinationRule",
    "metadata": {"name": "ui", "namespace": NAMESPACE},
    "spec": {
        "host": "ui",
        "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}},
        "subsets": [
            {"name": STABLE, "labels": {"app": "ui", "version": "v1"}},
            {"name": CANARY, "labels": {"app": "ui", "version": "v2"}},
        ],
    },
}


def rollout_spec(**overrides: Any) -> RolloutSpec:
    """The Rollout spec for `ui`; keyword arguments replace top-level wire fields."""
    wire: dict[str, Any] = {
        "host": "ui",
        "virtualService": {"name": "ui", "route": "primary"},
        "destinationRule": {"name": "ui"},
        "stable": {"subset": STABLE},
        "canary": {"subset": CANARY, "version": "v2"},
        "stages": {
            "mirror": {"percent": 100},
            "headerCanary": {"match": [{"headers": {"version": {"exact": "beta"}}}]},
            "split": {"steps": [10, 25, 50, 75, 100]},
        },
        "analysis": {"gates": [{"name": "success-rate", "successRate": {"min": 99}}]},
    }
    wire.update(overrides)
    return RolloutSpec.model_validate(wire)


def traffic(
    weight: int = 0,
    mirror: float = 0.0,
    header: bool = False,
    stable_version: str = "v1",
    canary_version: str = "v2",
) -> Traffic:
    return Traffic(
        canary_weight=weight,
        mirror_percent=mirror,
        header_route=header,
        stable_version=stable_version,
        canary_version=canary_version,
    )


def ui_virtual_service() -> dict[str, Any]:
    return copy.deepcopy(UI_VIRTUAL_SERVICE)


def ui_destination_rule() -> dict[str, Any]:
    return copy.deepcopy(UI_DESTINATION_RULE)


def http(vs: dict[str, Any]) -> list[dict[str, Any]]:
    routes: list[dict[str, Any]] = vs["spec"]["http"]
    return routes


def route_named(vs: dict[str, Any], name: str) -> dict[str, Any]:
    return next(route for route in http(vs) if route.get("name") == name)


def annotations(obj: dict[str, Any]) -> dict[str, str]:
    found: dict[str, str] = obj.get("metadata", {}).get("annotations", {})
    return found


def claims(obj: dict[str, Any]) -> dict[str, Any]:
    """The `canary.dev/claims` annotation of an object, parsed ({} when it has none)."""
    text = annotations(obj).get("canary.dev/claims")
    parsed: dict[str, Any] = json.loads(text) if text is not None else {}
    return parsed


def refusal(call: Any, *args: Any) -> str:
    """The one sentence `call(*args)` refuses with (a MeshError, or the test fails)."""
    with pytest.raises(MeshError) as error:
        call(*args)
    return str(error.value)
