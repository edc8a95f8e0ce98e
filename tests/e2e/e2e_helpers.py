"""Shared pieces of the end-to-end tests: watch recorders, the controller's log, Prometheus.

Aspects: recording every version of the VirtualService, DestinationRule and Rollout through the
API's HTTP watch, on the sandbox or a real kube-apiserver (list, then watch from the list's
resourceVersion, re-watching on each server timeout, as an informer does), and the traffic each
write left (`support.traffic`); the plan's states read the same way; the controller's JSON log
lines; the 5xx Prometheus saw. (`Env.wait_for`, in env_helpers.py, is the poll that fails with
the Rollout's status and the controller's log tail.)
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from support.traffic import TrafficState, collapse, traffic_state

from canary_sandbox.client import SandboxClient
from canary_sandbox.stack import NAMESPACE, SERVICE

Obj = dict[str, Any]

ROLLOUT = ("canary.dev/v1alpha1", "Rollout")


# ---------------------------------------------------------------- watching the API


@dataclass(frozen=True)
class Seen:
    resource_version: int
    kind: str  # the plural: virtualservices, destinationrules, rollouts
    type: str  # ADDED, MODIFIED, DELETED
    obj: Obj


class ResourceWatch:
    """Every version of one named object, through the API's HTTP watch, on a thread."""

    def __init__(self, client: SandboxClient, collection: str, name: str, sink: Recorder) -> None:
        self.client = client
        self.url = collection
        self.kind = collection.rsplit("/", 1)[-1]
        self.name = name
        self.sink = sink
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self.client.open(self.url, timeout=10) as response:
            listing = json.load(response)
        for item in listing.get("items", []):
            if item["metadata"]["name"] == self.name:
                self._add("ADDED", item)
        since = int(listing["metadata"]["resourceVersion"])
        self._thread = threading.Thread(
            target=self._run, args=(since,), name=f"watch-{self.kind}", daemon=True
        )
        self._thread.start()

    def _add(self, event_type: str, obj: Obj) -> None:
        rv = int(obj["metadata"]["resourceVersion"])
        self.sink.add(Seen(rv, self.kind, event_type, obj))

    def _run(self, since: int) -> None:
        try:
            while not self._stop.is_set():
                since = self._watch_once(since)
        except BaseException as error:  # surfaced by Recorder.stop()
            self.error = error

    def _watch_once(self, since: int) -> int:
        url = f"{self.url}?watch=true&resourceVersion={since}&timeoutSeconds=1"
        with self.client.open(url, timeout=30) as response:
            for line in response:
                if not line.strip():
                    continue
                event = json.loads(line)
                if event["type"] == "ERROR":
                    raise RuntimeError(f"watch of {self.kind} failed: {event['object']}")
                obj = event["object"]
                since = max(since, int(obj["metadata"]["resourceVersion"]))
                if obj["metadata"]["name"] == self.name:
                    self._add(event["type"], obj)
        return since

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


class Recorder:
    """Watches the VirtualService, DestinationRule and Rollout `ui` and keeps every version,
    in resourceVersion order (one counter for the whole sandbox store, and etcd's revision on
    a real control plane)."""

    def __init__(
        self, client: SandboxClient, namespace: str = NAMESPACE, name: str = SERVICE
    ) -> None:
        base = f"/apis/networking.istio.io/v1beta1/namespaces/{namespace}"
        self._lock = threading.Lock()
        self._seen: list[Seen] = []
        self.watches = [
            ResourceWatch(client, f"{base}/virtualservices", name, self),
            ResourceWatch(client, f"{base}/destinationrules", name, self),
            ResourceWatch(
                client, f"/apis/canary.dev/v1alpha1/namespaces/{namespace}/rollouts", name, self
            ),
        ]

    def add(self, seen: Seen) -> None:
        with self._lock:
            self._seen.append(seen)

    def start(self) -> Recorder:
        for watch in self.watches:
            watch.start()
        return self

    def stop(self) -> None:
        for watch in self.watches:
            watch.stop()
        errors = [w.error for w in self.watches if w.error is not None]
        if errors:
            raise AssertionError(f"a watch failed: {errors[0]!r}")

    def seen(self, kind: str | None = None) -> list[Seen]:
        with self._lock:
            ordered = sorted(self._seen, key=lambda s: s.resource_version)
        return [s for s in ordered if kind is None or s.kind == kind]

    def virtual_services(self) -> list[Obj]:
        return [s.obj for s in self.seen("virtualservices") if s.type != "DELETED"]

    def states(self) -> list[TrafficState]:
        """The traffic after each write to the VirtualService or DestinationRule, in order."""
        vs: Obj | None = None
        dr: Obj | None = None
        states = []
        for seen in self.seen():
            if seen.kind == "virtualservices":
                vs = seen.obj
            elif seen.kind == "destinationrules":
                dr = seen.obj
            else:
                continue
            if vs is not None and dr is not None:
                states.append(traffic_state(vs, dr))
        return states

    def weights(self) -> list[int]:
        return collapse(state.canary_weight for state in self.states())


# ---------------------------------------------------------------- the plan, the log, Prometheus


def planned_states(steps: Sequence[Any]) -> list[TrafficState]:
    """The traffic of each step of `canary.cli.offline.plan`, read like the recorded ones."""
    return collapse(traffic_state(s.virtual_service, s.destination_rule) for s in steps)


def log_records(text: str) -> list[Obj]:
    """The controller's JSON log lines, parsed; anything else (a traceback) is skipped."""
    records = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records


def logged(text: str, event: str) -> list[Obj]:
    return [r for r in log_records(text) if r.get("event") == event]


def errors_in_window(
    prometheus_url: str, version: str, window: str = "15s", namespace: str = NAMESPACE
) -> float:
    """5xx answers of `version` in `namespace` that Prometheus saw in the last `window` (0 when
    none)."""
    selector = (
        f'reporter="destination", destination_service_name="{SERVICE}", '
        f'destination_workload_namespace="{namespace}", destination_version="{version}", '
        'response_code=~"5.."'
    )
    query = f"sum(increase(istio_requests_total{{{selector}}}[{window}]))"
    url = f"{prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=5) as response:
        result = json.load(response)["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0
