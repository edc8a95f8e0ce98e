"""Test data and helpers for the `KubeCluster` tests (their fixtures are in conftest.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubernetes import client

from canary.core.model import GROUP, PLURAL, VERSION
from canary.kube.client import KubeCluster
from canary.kube.port import WatchEvent

if TYPE_CHECKING:
    from canary_sandbox.apiserver import ApiServer
    from canary_sandbox.controlplane import ControlPlane

REPO = Path(__file__).resolve().parents[2]
ROLLOUT_CRD = REPO / "crds" / "rollout.yaml"
NAMESPACE = "shop"
ISTIO_GROUP = "networking.istio.io"


@dataclass(frozen=True)
class Backend:
    """The API server a test talks to, and its test namespace (`shop` on the sandbox, a fresh
    one per test on the real control plane, which the whole session shares)."""

    name: str
    kubeconfig: Path
    namespace: str
    sandbox: ApiServer | None = None
    plane: ControlPlane | None = None
    more_namespaces: list[str] = field(default_factory=list)  # deleted after the test

    def create_namespace(self, stem: str) -> str:
        """Another namespace for this test; its name (made unique on the real control plane)."""
        if self.sandbox is not None:
            self.sandbox.create_namespace(stem)
            return stem
        assert self.plane is not None
        name = f"{self.namespace}-{stem}"[:63]
        self.plane.create_namespace(name)
        self.more_namespaces.append(name)
        return name


class FakeSleep:
    """Records the delays the adapter asked for instead of waiting."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def create_rollout(custom: client.CustomObjectsApi, body: dict[str, Any]) -> dict[str, Any]:
    created: dict[str, Any] = custom.create_namespaced_custom_object(
        GROUP, VERSION, body["metadata"]["namespace"], PLURAL, body
    )
    return created


class Collector:
    """Consumes `stream_rollouts` on a thread; tests wait for events without sleeping blind.

    With `namespaces`, it keeps only the objects of those namespaces (on the real control plane
    an all-namespaces stream also sees other tests' namespaces being deleted)."""

    def __init__(
        self, events: Iterator[WatchEvent], namespaces: Collection[str] | None = None
    ) -> None:
        self.events: list[WatchEvent] = []
        self.error: BaseException | None = None
        self._source = events
        self._namespaces = namespaces
        self._changed = threading.Condition()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for received in self._source:
                event = self._ours(received)
                if event is None:
                    continue
                with self._changed:
                    self.events.append(event)
                    self._changed.notify_all()
        except BaseException as error:
            self.error = error

    def _ours(self, event: WatchEvent) -> WatchEvent | None:
        if self._namespaces is None:
            return event
        if event.type == "SYNC":
            kept = tuple(o for o in event.objects if o["metadata"]["namespace"] in self._namespaces)
            return WatchEvent("SYNC", objects=kept)
        assert event.object is not None
        return event if event.object["metadata"]["namespace"] in self._namespaces else None

    def wait_for(self, count: int, timeout: float = 10) -> list[WatchEvent]:
        with self._changed:
            self._changed.wait_for(lambda: len(self.events) >= count, timeout)
            assert len(self.events) >= count, f"only {self.types()} after {timeout}s"
            return list(self.events)

    def types(self) -> list[str]:
        return [event.type for event in self.events]

    def names(self, index: int) -> list[str]:
        event = self.events[index]
        objects = event.objects if event.type == "SYNC" else (event.object,)
        return [obj["metadata"]["name"] for obj in objects if obj is not None]


def store_rollout(server: Any, body: dict[str, Any]) -> None:
    """Create a Rollout inside the sandbox, not over HTTP: works while it refuses requests."""
    from canary_sandbox.objects import WriteOptions

    resource_type = server.registry.lookup(GROUP, VERSION, PLURAL)
    server.objects.create(resource_type, body["metadata"]["namespace"], body, WriteOptions())


def cluster_at(kubeconfig: Path, clock: Callable[[], datetime]) -> KubeCluster:
    """A KubeCluster whose Lease and Event times come from `clock`."""
    return KubeCluster.from_kubeconfig(str(kubeconfig), qps=0, now=clock)
