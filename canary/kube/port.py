"""The `Cluster` port: everything the controller and the CLI ask of a Kubernetes API.

Objects travel as plain dicts, exactly as the API serves them (camelCase). Only
`canary.kube.client` imports the `kubernetes` package; the rest of the code sees this port.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from canary.core.objects import Obj

Mutation = Callable[[Obj], Obj | None]
"""Given the object as it is now, return the object to write, or None to write nothing.

The object given may be a cache's own copy: a mutation builds a new object and never modifies
the one it is given (the mesh planner is tested for exactly that)."""


class KubeError(Exception):
    """A Kubernetes API problem, with one sentence that names the object and the fix."""


class NotFoundError(KubeError):
    pass


class ConflictError(KubeError):
    """The object changed since it was read (409), and retries from fresh reads ran out."""


class ForbiddenError(KubeError):
    pass


class InvalidError(KubeError):
    """The API server rejected the object (422); the message lists the fields."""


class UnavailableError(KubeError):
    """The API server cannot be reached, timed out, or answered 5xx/429."""


class CrdMissingError(KubeError):
    """The Rollout (or Istio) CRD is not installed."""


@dataclass(frozen=True)
class WatchEvent:
    """SYNC carries the full list (`objects`) after every (re)list; the others one object."""

    type: Literal["SYNC", "ADDED", "MODIFIED", "DELETED"]
    object: Obj | None = None
    objects: tuple[Obj, ...] = ()


@dataclass(frozen=True)
class Written:
    obj: Obj
    written: bool  # False: the mutation said nothing would change, so nothing was sent


@dataclass(frozen=True)
class WorkloadState:
    exists: bool
    ready: bool
    message: str  # e.g. "Deployment shop/ui-v2 has 1 of 2 replicas ready"
    pod_labels: Mapping[str, str] | None = None  # the pod template's labels, when it exists


class Cluster(Protocol):
    # Rollouts
    def list_rollouts(self, namespace: str | None) -> list[Obj]: ...
    def get_rollout(self, namespace: str, name: str) -> Obj: ...
    def stream_rollouts(self, namespace: str | None, stop: threading.Event) -> Iterator[WatchEvent]:
        """SYNC first, then changes; reconnects from the last resourceVersion, relists on 410."""
        ...

    def patch_rollout_status(
        self, namespace: str, name: str, status: Obj, resource_version: str | None = None
    ) -> Obj:
        """Merge-patch through the status subresource; with `resource_version`, only if the
        Rollout is still at that version (ConflictError otherwise)."""
        ...

    def patch_rollout_metadata(self, namespace: str, name: str, metadata: Obj) -> Obj:
        """Merge-patch of metadata (annotations for requests, finalizers)."""
        ...

    # Istio objects: read-modify-write with resourceVersion, retried from a fresh read on 409.
    # What a get returns may be a cache's own object: read it, never modify it.
    def get_virtual_service(self, namespace: str, name: str) -> Obj: ...
    def update_virtual_service(self, namespace: str, name: str, mutate: Mutation) -> Written: ...
    def get_destination_rule(self, namespace: str, name: str) -> Obj: ...
    def update_destination_rule(self, namespace: str, name: str, mutate: Mutation) -> Written: ...

    # Workloads, events, leases
    def workload_state(self, namespace: str, kind: str, name: str) -> WorkloadState: ...
    def record_event(
        self, involved: Obj, type_: Literal["Normal", "Warning"], reason: str, message: str
    ) -> None: ...
    def list_events(self, namespace: str, name: str) -> list[Obj]: ...

    # Secrets (notification receivers' URLs)
    def get_secret(self, namespace: str, name: str) -> dict[str, str]:
        """The Secret's data, decoded; never logged."""
        ...

    def try_acquire_lease(
        self,
        namespace: str,
        name: str,
        identity: str,
        duration_seconds: int,
        timeout: float | None = None,
    ) -> bool:
        """Acquire or renew; False when another holder's lease has not expired. With
        `timeout`, a KubeError when the answer would take longer than that many seconds."""
        ...

    def list_leases(self, namespace: str, prefix: str, timeout: float | None = None) -> list[Obj]:
        """The Leases in `namespace` whose name begins with `prefix` (the shard Leases and the
        replicas' member Leases of `--shards`). With `timeout`, one attempt that long at most."""
        ...

    def release_lease(
        self, namespace: str, name: str, identity: str, timeout: float | None = None
    ) -> bool:
        """Hand the Lease back (holderIdentity empty) if `identity` holds it; False if not."""
        ...

    def delete_lease(
        self, namespace: str, name: str, resource_version: str, timeout: float | None = None
    ) -> bool:
        """Delete the Lease if still at `resource_version`; False if gone or changed."""
        ...
