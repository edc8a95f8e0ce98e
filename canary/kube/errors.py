"""Turning API answers into the port's typed errors, each one sentence naming object and fix.

Pure: the adapter hands in the HTTP status, the response body and headers it got; nothing
here imports `kubernetes`. Messages never carry credentials: the API address is shown
without any user-info part.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from canary.common import pacing
from canary.common.urls import redacted_url
from canary.kube.port import (
    ConflictError,
    ForbiddenError,
    InvalidError,
    KubeError,
    NotFoundError,
    UnavailableError,
)

ROLLOUT_CRD_MISSING = (
    "the Rollout CRD (rollouts.canary.dev) is not installed: run `kubectl apply -f crds/`"
)
ISTIO_CRDS_MISSING = (
    "the Istio CRDs (virtualservices.networking.istio.io, destinationrules.networking.istio.io) "
    "are not installed: install Istio, or `kubectl apply -f canary_sandbox/crds/` in a sandbox"
)

NOT_FOUND_HINTS = {
    "VirtualService": "create it or fix spec.virtualService.name in the Rollout",
    "DestinationRule": "create it or fix spec.destinationRule.name in the Rollout",
    "Deployment": "create it or fix spec.canary.workloadRef.name in the Rollout",
    "Rollout": "it may have been deleted; check the name and namespace",
    "Event": "it may have expired; a new one will be recorded",
    "Lease": "it will be created on the next attempt",
}


class ExpiredError(KubeError):
    """410 Gone: the resourceVersion is too old to watch from; list again."""


class ServerBusyError(UnavailableError):
    """A transient failure (connection, 429, 5xx) worth retrying, after `retry_after` if given."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Request:
    """What the adapter asked for, in the words its error messages use."""

    verb: str  # get, list, watch, create, update, patch
    resource: str  # plural, e.g. virtualservices
    kind: str  # e.g. VirtualService
    namespace: str | None
    name: str | None = None
    subresource: str = ""

    @property
    def resource_path(self) -> str:
        """`rollouts/status` for a subresource, else the plural; used to count requests."""
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource

    @property
    def target(self) -> str:
        if self.name is not None:
            return f"{self.kind} {self.namespace}/{self.name}"
        return f"{self.resource} in {self._scope}"

    @property
    def _scope(self) -> str:
        return f"namespace {self.namespace}" if self.namespace else "all namespaces"

    def forbidden(self) -> ForbiddenError:
        role = "Role" if self.namespace else "ClusterRole"
        return ForbiddenError(
            f"the controller may not {self.verb} {self.resource_path} in {self._scope}: "
            f"grant it in the controller's {role}"
        )

    def not_found(self) -> NotFoundError:
        hint = NOT_FOUND_HINTS.get(self.kind, "check the name and namespace")
        return NotFoundError(f"{self.target} not found: {hint}")


def safe_host(url: str) -> str:
    """The API address without user-info, path or query: https://10.0.0.1:6443."""
    return redacted_url(url, path=False)


def unreachable(host: str) -> ServerBusyError:
    return ServerBusyError(
        f"cannot reach the Kubernetes API at {host}: "
        "check --kubeconfig/--context and that the cluster is running"
    )


def from_status(
    request: Request, status: int, body: str | None, headers: Mapping[str, str] | None, host: str
) -> KubeError:
    """The typed error for an HTTP error answer `status` to `request`."""
    message = status_message(body)
    if status in (400, 422):
        return InvalidError(f"the API server rejected {request.target}: {message}")
    if status == 401:
        return ForbiddenError(
            f"the Kubernetes API at {host} did not accept the controller's credentials: "
            "check the kubeconfig user or the service account token"
        )
    if status == 403:
        return request.forbidden()
    if status == 404:
        return request.not_found()
    if status == 409:
        return ConflictError(f"{request.target} changed while canary wrote it: {message}")
    if status == 410:
        return ExpiredError(f"the watch on {request.target} expired: {message}")
    if status == 429 or status >= 500:
        return busy(request, status, message, retry_after(headers, body), host)
    return KubeError(f"the Kubernetes API answered {status} to {request.verb} {request.target}")


def busy(
    request: Request, status: int, message: str, after: float | None, host: str
) -> ServerBusyError:
    what = "is throttling requests" if status == 429 else f"failed ({status}: {message})"
    return ServerBusyError(
        f"the Kubernetes API at {host} {what} to {request.verb} {request.target}: "
        "retry later or check the API server's health",
        after,
    )


def status_message(body: str | None) -> str:
    """The `message` of a Kubernetes Status body, else the start of the body as text."""
    status = _json_object(body)
    message = status.get("message")
    if isinstance(message, str) and message:
        return message
    return (body or "no details").strip()[:200]


def retry_after(headers: Mapping[str, str] | None, body: str | None) -> float | None:
    """Seconds the server asked us to wait (Retry-After, or details.retryAfterSeconds)."""
    header = _header(headers, "Retry-After")
    if header is not None:
        return pacing.retry_after(header)
    details = _json_object(body).get("details")
    seconds = details.get("retryAfterSeconds") if isinstance(details, dict) else None
    return float(seconds) if isinstance(seconds, int | float) else None


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name.lower():
            return value
    return None


def _json_object(body: str | None) -> dict[str, Any]:
    try:
        parsed = json.loads(body or "")
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
