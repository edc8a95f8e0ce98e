"""Is a workload ready to take traffic? Read from the Deployment's status, as kubectl does."""

from __future__ import annotations

from canary.core.objects import Obj
from canary.kube.port import WorkloadState


def deployment_state(namespace: str, name: str, deployment: Obj | None) -> WorkloadState:
    """Ready when the latest spec is observed and every desired replica is updated and available."""
    what = f"Deployment {namespace}/{name}"
    if deployment is None:
        return WorkloadState(
            exists=False,
            ready=False,
            message=f"{what} does not exist: create it or fix spec.canary.workloadRef.name",
        )
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    pods = {str(key): str(value) for key, value in labels.items()}
    generation = int(deployment.get("metadata", {}).get("generation") or 0)
    observed = int(status.get("observedGeneration") or 0)
    replicas = spec.get("replicas")
    desired = 1 if replicas is None else int(replicas)
    updated = int(status.get("updatedReplicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    if observed < generation:
        return WorkloadState(
            True,
            False,
            f"{what} is rolling out: generation {generation} not yet observed "
            f"(observed {observed})",
            pods,
        )
    if updated != desired:
        message = f"{what} has {updated} of {desired} replicas updated"
        return WorkloadState(True, False, message, pods)
    ready = available >= desired > 0
    if desired == 0:
        message = f"{what} is scaled to 0 replicas: scale it up to release it"
    else:
        message = f"{what} has {available} of {desired} replicas ready"
    return WorkloadState(True, ready, message, pods)
