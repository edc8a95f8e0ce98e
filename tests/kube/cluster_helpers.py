"""Test data and helpers for the `KubeCluster` tests (fixtures are in cluster_fixtures.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kubernetes import client

from canary.core.model import GROUP, PLURAL, VERSION
from canary.kube.port import WatchEvent
from canary.sandbox.stack import example_release

REPO = Path(__file__).resolve().parents[2]
ROLLOUT_CRD = REPO / "crds" / "rollout.yaml"
NAMESPACE = "shop"
ISTIO_GROUP = "networking.istio.io"


def rollout(name: str = "ui", version: str = "v2") -> dict[str, Any]:
    obj = example_release(version)
    obj["metadata"]["name"] = name
    return obj


class FakeSleep:
    """Records the delays the adapter asked for instead of waiting."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def create_rollout(custom: client.CustomObjectsApi, body: dict[str, Any]) -> dict[str, Any]:
    created: dict[str, Any] = custom.create_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, PLURAL, body
    )
    return created


class Collector:
    """Consumes `stream_rollouts` on a thread; tests wait for events without sleeping blind."""

    def __init__(self, events: Iterator[WatchEvent]) -> None:
        self.events: list[WatchEvent] = []
        self.error: BaseException | None = None
        self._source = events
        self._changed = threading.Condition()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for event in self._source:
                with self._changed:
                    self.events.append(event)
                    self._changed.notify_all()
        except BaseException as error:
            self.error = error

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
    from canary.sandbox.objects import WriteOptions

    resource_type = server.registry.lookup(GROUP, VERSION, PLURAL)
    server.objects.create(resource_type, body["metadata"]["namespace"], body, WriteOptions())


def wait_until(condition: Any, what: str, attempts: int = 400) -> None:
    """Poll `condition` (every 25 ms, bounded) for state another thread produces."""
    pause = threading.Event()
    for _ in range(attempts):
        if condition():
            return
        pause.wait(0.025)
    raise AssertionError(f"never happened: {what}")
