"""Every VirtualService and DestinationRule canary writes, accepted by Istio's real CRD schema.

Covers: each step of `canary plan` on examples/ui (mirror, header canary, every split weight,
the release with the stable subset moved, the end) and the rollback, written over the objects
of examples/ui with strict field validation (an unknown or misspelt field is an error, never
pruned), checked by Istio's CRDs (the `istio.io/api` module's schema and validation rules) on
the real kube-apiserver, and stored exactly as planned.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cluster_helpers import ISTIO_GROUP
from kubernetes import client, config

from canary.cli.offline import load_rollout, plan
from canary.core.traffic import stable_only
from canary.mesh.istio import plan_virtual_service
from canary_sandbox.controlplane import ControlPlane
from canary_sandbox.stack import EXAMPLE, example

PLURALS = {"VirtualService": "virtualservices", "DestinationRule": "destinationrules"}
STEPS = plan(
    str(EXAMPLE / "rollout.yaml"),
    str(EXAMPLE / "virtualservice.yaml"),
    str(EXAMPLE / "destinationrule.yaml"),
    version="v2",  # the example asks for v1, the live version: plan the release of v2
)


def rollback() -> dict[str, Any]:
    """The VirtualService of a rollback from the header canary stage (stable 100, no mirror,
    no header route): one write, from a state that had all of them."""
    rollout = load_rollout(str(EXAMPLE / "rollout.yaml"), "v2")
    during = next(step for step in STEPS if step.traffic.header_route)
    stable = stable_only(during.traffic.stable_version, during.traffic.canary_version)
    planned: dict[str, Any] = plan_virtual_service(
        during.virtual_service, rollout.metadata.name, rollout.spec, stable
    ).obj
    return planned


def write(custom: client.CustomObjectsApi, namespace: str, desired: dict[str, Any]) -> Any:
    """Replace the stored object with `desired` (strict field validation); the stored object."""
    plural = PLURALS[desired["kind"]]
    name = desired["metadata"]["name"]
    current = custom.get_namespaced_custom_object(ISTIO_GROUP, "v1", namespace, plural, name)
    body = {
        "apiVersion": f"{ISTIO_GROUP}/v1",
        "kind": desired["kind"],
        "metadata": {
            **desired["metadata"],
            "namespace": namespace,
            "resourceVersion": current["metadata"]["resourceVersion"],
        },
        "spec": desired["spec"],
    }
    return custom.replace_namespaced_custom_object(
        ISTIO_GROUP, "v1", namespace, plural, name, body, field_validation="Strict"
    )


@pytest.fixture
def istio(
    real_namespace: str, control_plane: ControlPlane
) -> Iterator[tuple[client.CustomObjectsApi, str]]:
    """examples/ui's VirtualService and DestinationRule in a namespace of the real apiserver."""
    configuration = client.Configuration()
    config.load_kube_config(
        config_file=str(control_plane.kubeconfig), client_configuration=configuration
    )
    api = client.ApiClient(configuration)
    custom = client.CustomObjectsApi(api)
    for kind in ("virtualservice", "destinationrule"):
        body = example(kind)
        body["apiVersion"] = f"{ISTIO_GROUP}/v1"
        body["metadata"]["namespace"] = real_namespace
        custom.create_namespaced_custom_object(
            ISTIO_GROUP, "v1", real_namespace, f"{kind}s", body, field_validation="Strict"
        )
    try:
        yield custom, real_namespace
    finally:
        api.close()


def test_the_plan_has_every_stage():
    weights = [step.traffic.canary_weight for step in STEPS]

    assert any(step.traffic.mirror_percent > 0 for step in STEPS)
    assert any(step.traffic.header_route for step in STEPS)
    assert {10, 25, 50, 75, 100} <= set(weights)
    assert weights[-1] == 0


@pytest.mark.parametrize("step", STEPS, ids=lambda step: f"{step.number}-{step.position}")
def test_every_planned_step_is_accepted_and_stored_as_planned(
    istio: tuple[client.CustomObjectsApi, str], step: Any
):
    custom, namespace = istio

    stored_dr = write(custom, namespace, step.destination_rule)
    stored_vs = write(custom, namespace, step.virtual_service)

    assert stored_dr["spec"] == step.destination_rule["spec"]
    assert stored_vs["spec"] == step.virtual_service["spec"]


def test_the_rollback_is_accepted_and_stored_as_planned(
    istio: tuple[client.CustomObjectsApi, str],
):
    custom, namespace = istio
    during = next(step for step in STEPS if step.traffic.header_route)
    write(custom, namespace, during.virtual_service)

    planned = rollback()
    stored = write(custom, namespace, planned)

    assert stored["spec"] == planned["spec"]
    assert [route["name"] for route in stored["spec"]["http"]] == ["health", "primary"]
