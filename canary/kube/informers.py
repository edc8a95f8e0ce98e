"""Watch-fed caches (informers) for the objects a reconcile reads every tick.

`CachedCluster` is the `Cluster` port over a `KubeCluster`, with VirtualServices,
DestinationRules and Deployments (the canary's readiness) served from caches that a
list+watch per kind keeps current. A reconcile that
changes nothing then sends no request at all. Writes stay read-modify-write with
resourceVersion: the mutation runs on the cached object and the PUT carries its
resourceVersion; on 409 (the cache was behind) the update starts again from a fresh GET, with
the adapter's usual retries. Every object the API answers a write with goes into the cache at
once, so the next tick never plans from an object older than its own write.

A cache miss (not synced yet, or an object the watch has not delivered) is a plain GET, so
a missing object is still reported by the API as NotFound. A read hands out the cache's own
object, not a copy (a copy was a third of a tick's CPU): the port's readers never modify it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Literal, NamedTuple

from canary.core.objects import Obj, is_newer, key_of, without_managed_fields
from canary.kube.client import KubeCluster
from canary.kube.port import (
    ConflictError,
    KubeError,
    Mutation,
    WatchEvent,
    WorkloadState,
    Written,
)
from canary.kube.workloads import deployment_state

Stream = Callable[[str | None, threading.Event], Iterator[WatchEvent]]


class Replaced(NamedTuple):
    stored: bool  # False: the cache held a newer version, and keeps it
    previous: Obj | None


class ObjectCache:
    """One kind's objects by namespace/name (`key_of`), fed by its watch and by our own writes,
    kept without their managedFields. The informers keep one per kind; the controller's runtime
    keeps its Rollouts in one."""

    def __init__(self) -> None:
        self._objects: dict[str, Obj] = {}
        self._lock = threading.Lock()
        self.synced = threading.Event()

    def get(self, namespace: str, name: str) -> Obj | None:
        with self._lock:
            return self._objects.get(f"{namespace}/{name}")

    def all_keys(self) -> list[str]:
        with self._lock:
            return list(self._objects)

    def objects(self) -> list[Obj]:
        with self._lock:
            return list(self._objects.values())

    def put(self, obj: Obj) -> Replaced:
        """Store `obj` unless the cache holds a newer version of it."""
        key, obj = key_of(obj), without_managed_fields(obj)
        with self._lock:
            previous = self._objects.get(key)
            stored = is_newer(obj, previous)
            if stored:
                self._objects[key] = obj
        return Replaced(stored, previous)

    def remove(self, key: str) -> None:
        with self._lock:
            self._objects.pop(key, None)

    def apply(self, event: WatchEvent) -> None:
        if event.type == "SYNC":
            with self._lock:
                self._objects = {key_of(obj): without_managed_fields(obj) for obj in event.objects}
            self.synced.set()
        elif event.object is not None and event.type == "DELETED":
            self.remove(key_of(event.object))
        elif event.object is not None:
            self.put(event.object)

    def __len__(self) -> int:
        with self._lock:
            return len(self._objects)


class CachedCluster:
    """The Cluster port, with VirtualServices and DestinationRules read from informer caches."""

    def __init__(self, cluster: KubeCluster, namespace: str | None = None) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.virtual_services = ObjectCache()
        self.destination_rules = ObjectCache()
        self.deployments = ObjectCache()

    # ------------------------------------------------------------ the informers

    def start(self, stop: threading.Event) -> None:
        """Start one list+watch thread per cached kind; they end when `stop` is set."""
        feeds = (
            ("virtualservices", self.cluster.stream_virtual_services, self.virtual_services),
            ("destinationrules", self.cluster.stream_destination_rules, self.destination_rules),
            ("deployments", self.cluster.stream_deployments, self.deployments),
        )
        for name, stream, cache in feeds:
            threading.Thread(
                target=self._feed,
                args=(stream, cache, stop),
                name=f"informer-{name}",
                daemon=True,
            ).start()

    def wait_synced(self, timeout: float) -> bool:
        caches = (self.virtual_services, self.destination_rules, self.deployments)
        return all(cache.synced.wait(timeout) for cache in caches)

    def _feed(self, stream: Stream, cache: ObjectCache, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                for event in stream(self.namespace, stop):
                    cache.apply(event)
            except KubeError:
                stop.wait(2.0)  # the stream retries transient faults itself; this is the rest

    # ------------------------------------------------------------ Istio, from the caches

    def get_virtual_service(self, namespace: str, name: str) -> Obj:
        return self._get(self.virtual_services, namespace, name, self.cluster.get_virtual_service)

    def get_destination_rule(self, namespace: str, name: str) -> Obj:
        return self._get(self.destination_rules, namespace, name, self.cluster.get_destination_rule)

    def update_virtual_service(self, namespace: str, name: str, mutate: Mutation) -> Written:
        return self._update(self.virtual_services, "virtualservices", namespace, name, mutate)

    def update_destination_rule(self, namespace: str, name: str, mutate: Mutation) -> Written:
        return self._update(self.destination_rules, "destinationrules", namespace, name, mutate)

    def _get(
        self, cache: ObjectCache, namespace: str, name: str, fetch: Callable[[str, str], Obj]
    ) -> Obj:
        cached = cache.get(namespace, name)
        if cached is None:
            cached = fetch(namespace, name)
            cache.put(cached)
        return cached  # the cache's own: the port's readers never modify it (the router's are pure)

    def _update(
        self,
        cache: ObjectCache,
        plural: Literal["virtualservices", "destinationrules"],
        namespace: str,
        name: str,
        mutate: Mutation,
    ) -> Written:
        cached = cache.get(namespace, name)
        if cached is not None:
            desired = mutate(cached)  # a Mutation never modifies what it is given: no copy
            if desired is None:
                return Written(cached, False)
            desired.setdefault("metadata", {})["resourceVersion"] = (
                cached.get("metadata") or {}
            ).get("resourceVersion")
            try:
                stored = self._replace(plural, namespace, desired)
            except ConflictError:
                pass  # the cache was behind: plan again from a fresh read
            else:
                cache.put(stored)
                return Written(stored, True)
        written = self._update_from_fresh_read(plural, namespace, name, mutate)
        cache.put(written.obj)
        return written

    def _replace(self, plural: str, namespace: str, obj: Obj) -> Obj:
        if plural == "virtualservices":
            return self.cluster.replace_virtual_service(namespace, obj)
        return self.cluster.replace_destination_rule(namespace, obj)

    def _update_from_fresh_read(
        self, plural: str, namespace: str, name: str, mutate: Mutation
    ) -> Written:
        if plural == "virtualservices":
            return self.cluster.update_virtual_service(namespace, name, mutate)
        return self.cluster.update_destination_rule(namespace, name, mutate)

    # ------------------------------------------------------------ everything else: the API

    def list_rollouts(self, namespace: str | None) -> list[Obj]:
        return self.cluster.list_rollouts(namespace)

    def get_rollout(self, namespace: str, name: str) -> Obj:
        return self.cluster.get_rollout(namespace, name)

    def stream_rollouts(self, namespace: str | None, stop: threading.Event) -> Iterator[WatchEvent]:
        return self.cluster.stream_rollouts(namespace, stop)

    def patch_rollout_status(
        self, namespace: str, name: str, status: Obj, resource_version: str | None = None
    ) -> Obj:
        return self.cluster.patch_rollout_status(namespace, name, status, resource_version)

    def patch_rollout_metadata(self, namespace: str, name: str, metadata: Obj) -> Obj:
        return self.cluster.patch_rollout_metadata(namespace, name, metadata)

    def workload_state(self, namespace: str, kind: str, name: str) -> WorkloadState:
        """From the Deployment cache once it is synced (a Deployment it lacks does not exist);
        from the API before that."""
        if kind != "Deployment" or not self.deployments.synced.is_set():
            return self.cluster.workload_state(namespace, kind, name)
        return deployment_state(namespace, name, self.deployments.get(namespace, name))

    def record_event(
        self, involved: Obj, type_: Literal["Normal", "Warning"], reason: str, message: str
    ) -> None:
        self.cluster.record_event(involved, type_, reason, message)

    def list_events(self, namespace: str, name: str) -> list[Obj]:
        return self.cluster.list_events(namespace, name)

    def get_secret(self, namespace: str, name: str) -> dict[str, str]:
        return self.cluster.get_secret(namespace, name)

    def try_acquire_lease(
        self,
        namespace: str,
        name: str,
        identity: str,
        duration_seconds: int,
        timeout: float | None = None,
    ) -> bool:
        return self.cluster.try_acquire_lease(namespace, name, identity, duration_seconds, timeout)

    def list_leases(self, namespace: str, prefix: str, timeout: float | None = None) -> list[Obj]:
        return self.cluster.list_leases(namespace, prefix, timeout)

    def release_lease(
        self, namespace: str, name: str, identity: str, timeout: float | None = None
    ) -> bool:
        return self.cluster.release_lease(namespace, name, identity, timeout)

    def delete_lease(
        self, namespace: str, name: str, resource_version: str, timeout: float | None = None
    ) -> bool:
        return self.cluster.delete_lease(namespace, name, resource_version, timeout)
