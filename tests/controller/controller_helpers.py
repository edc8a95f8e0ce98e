"""Shared pieces of the controller tests (the fixtures live in conftest.py).

`Env` is examples/ui in one namespace of an API server, with the real `KubeCluster` and one
`Reconciler` on it, on either backend (`ON_BOTH` runs a test on each):

- the sandbox: namespace `shop`; a Deployment's status is set by the test, playing the
  Deployment controller (`SandboxClient.set_deployment_ready`);
- the real control plane: the test's own namespace; a Deployment is ready when the real
  Deployment controller says so of the Pods kwok runs, and unready when its Pods fit no Node
  (a nodeSelector no kwok Node matches).

Its operations (get/apply/put/patch/delete an object, deploy a version, make a Deployment ready
or unready, scale it) mean the same on both, and return once the backend has done its part.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.rollouts import quick_rollout

from canary.controller.reconcile import Reconciler
from canary.kube.client import KubeCluster
from canary.testing import FixedVerdicts, ManualClock
from canary_sandbox.apiserver import ApiServer
from canary_sandbox.client import SandboxClient
from canary_sandbox.controlplane import ControlPlane
from canary_sandbox.stack import UNSCHEDULABLE, example_release, version_deployment

ROLLOUT_API = "canary.dev/v1alpha1"
ISTIO_API = "networking.istio.io/v1beta1"
# A nodeSelector that no kwok Node matches: the Deployment's Pods stay Pending, never Ready.
NO_NODE = {UNSCHEDULABLE: "true"}


@dataclass
class Env:
    backend: str  # "sandbox" or "real"
    namespace: str
    client: SandboxClient  # the test's own requests (over TLS as the admin on the real one)
    cluster: KubeCluster
    metrics: FixedVerdicts
    clock: ManualClock
    reconciler: Reconciler
    kubeconfig: Path  # the admin's
    api: ApiServer | None = None
    plane: ControlPlane | None = None

    @property
    def sandbox(self) -> ApiServer:
        """The sandbox's own handles (request log, faults, store), for sandbox-only tests."""
        assert self.api is not None, "this test needs the sandbox's handles"
        return self.api

    # ------------------------------------------------------------ objects

    def path(self, api_version: str, kind: str, name: str = "") -> str:
        return self.client.path(api_version, kind, self.namespace, name)

    def get(self, api_version: str, kind: str, name: str) -> dict:
        return self.client.get(api_version, kind, self.namespace, name)

    def rollout(self, name: str = "ui") -> dict:
        return self.get(ROLLOUT_API, "Rollout", name)

    def vs(self) -> dict:
        return self.get(ISTIO_API, "VirtualService", "ui")

    def dr(self) -> dict:
        return self.get(ISTIO_API, "DestinationRule", "ui")

    def apply(self, obj: dict) -> dict:
        """Create the object in the test's namespace, or merge it over the stored one."""
        body = copy.deepcopy(obj)
        body["metadata"]["namespace"] = self.namespace
        return self.client.apply(body)

    def path_of(self, obj: dict) -> str:
        """The path of the object of `obj`'s kind and name in the test's namespace."""
        return self.path(obj["apiVersion"], obj["kind"], obj["metadata"]["name"])

    def put(self, obj: dict) -> dict:
        return self.client.request("PUT", self.path_of(obj), obj)

    def patch(self, obj: dict, patch: dict) -> dict:
        """A JSON merge patch of the object `obj` names (only its kind and name count)."""
        return self.client.merge_patch(self.path_of(obj), patch)

    def delete(self, obj: dict) -> dict:
        return self.client.delete(self.path_of(obj))

    def reconcile(self, name: str = "ui") -> None:
        self.reconciler.reconcile(self.rollout(name))

    # ------------------------------------------------------------ workloads

    def deploy_version(self, version: str, ready: bool = True) -> None:
        """A Deployment ui-<version> like ui-v2, ready (or not: its Pods fit no Node)."""
        body = version_deployment(version, self.namespace)
        if not ready and self.plane is not None:
            body["spec"]["template"]["spec"]["nodeSelector"] = dict(NO_NODE)
        self.client.apply(body)
        self._settle(f"ui-{version}", ready)

    def set_ready(self, name: str, ready: bool = True) -> None:
        """Make the Deployment `name` ready, or unready: on the real control plane its Pods are
        replaced (strategy Recreate) by Pods that fit no Node, so none of them is ready."""
        if self.plane is not None:
            path = self.path("apps/v1", "Deployment", name)
            if ready:
                patch: dict[str, Any] = {"spec": {"template": {"spec": {"nodeSelector": None}}}}
            else:
                patch = {
                    "spec": {
                        "strategy": {"type": "Recreate", "rollingUpdate": None},
                        "template": {"spec": {"nodeSelector": dict(NO_NODE)}},
                    }
                }
            self.client.merge_patch(path, patch)
        self._settle(name, ready)

    def scale(self, name: str, replicas: int) -> None:
        """Set spec.replicas; returns once the Deployment controller has observed it."""
        self.client.merge_patch(
            self.path("apps/v1", "Deployment", name), {"spec": {"replicas": replicas}}
        )
        self._settle(name, True)

    def _settle(self, name: str, ready: bool) -> None:
        """The sandbox: report the Deployment's status. The real control plane: wait until its
        controller has observed the spec and its Pods are all ready (or none is)."""
        if self.plane is None:
            self.client.set_deployment_ready(self.namespace, name, ready)
        else:
            self.plane.wait_for_deployment(self.namespace, name, ready)


class MeshRecorder:
    """Every stored version of the test namespace's VirtualServices and DestinationRules from
    the moment it starts, as a watch through the API delivers them (the same on both backends;
    its own client, so the controller's request counts are untouched). `versions` is in
    resourceVersion order across both kinds: etcd's revision on the real apiserver, the store's
    counter on the sandbox, one sequence for every kind on both."""

    def __init__(self, env: Env) -> None:
        self._env = env
        self._cluster = KubeCluster.from_kubeconfig(str(env.kubeconfig), qps=0)
        self._stop = threading.Event()
        self._seen: list[dict] = []
        self._synced: set[str] = set()
        self._lock = threading.Condition()
        self._threads = [
            threading.Thread(target=self._follow, args=(kind, stream), daemon=True)
            for kind, stream in (
                ("VirtualService", self._cluster.stream_virtual_services),
                ("DestinationRule", self._cluster.stream_destination_rules),
            )
        ]

    def __enter__(self) -> MeshRecorder:
        for thread in self._threads:
            thread.start()
        with self._lock:
            assert self._lock.wait_for(lambda: len(self._synced) == 2, 30), "no SYNC"
        self._before = {
            obj["metadata"]["resourceVersion"] for obj in (self._env.vs(), self._env.dr())
        }
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._cluster.close()

    def _follow(self, kind: str, stream: Callable[..., Iterator[Any]]) -> None:
        for event in stream(self._env.namespace, self._stop):
            with self._lock:
                if event.type == "SYNC":
                    self._synced.add(kind)
                elif event.type in ("ADDED", "MODIFIED"):
                    self._seen.append(event.object)
                self._lock.notify_all()

    @property
    def versions(self) -> list[dict]:
        """What was stored since the start, oldest first; waits for the latest of each."""
        latest = {obj["metadata"]["resourceVersion"] for obj in (self._env.vs(), self._env.dr())}

        def arrived() -> bool:
            seen = {obj["metadata"]["resourceVersion"] for obj in self._seen}
            return latest <= seen | self._before

        with self._lock:
            self._lock.wait_for(arrived, 30)
            return sorted(self._seen, key=lambda obj: int(obj["metadata"]["resourceVersion"]))


def turn_invalid(env: Env) -> str:
    """Edit the Rollout into a spec that the CRD lets through, on the real apiserver too (its
    CEL rules refuse most invalid specs), and the controller's models refuse: a webhook whose
    timeout is over 60 s. What the models say of it."""
    slow = {"name": "slow", "type": "gate", "url": "http://127.0.0.1:9/", "timeout": "90s"}
    env.patch(env.rollout(), {"spec": {"analysis": {"webhooks": [slow]}}})
    return "webhook 'slow': timeout must be between 0s and 60s"


def start(env: Env, rollout: dict | None = None) -> None:
    env.apply(rollout if rollout is not None else quick_rollout())
    env.reconcile()


def run_until(env: Env, done: Callable[[dict], bool], seconds: float = 10, ticks: int = 60) -> dict:
    """Reconcile every `seconds` of the manual clock until `done(status)`; the status."""
    for _ in range(ticks):
        status = env.rollout().get("status") or {}
        if done(status):
            return status
        env.clock.advance(seconds)
        env.reconcile()
    raise AssertionError(f"never reached: {env.rollout().get('status')}")


def example_rollout(env: Env) -> dict:
    return example_release()


def writes(env: Env) -> int:
    """The controller's API writes since `env.cluster.request_counts` was last cleared, counted
    by its own client (the same on both backends)."""
    return sum(
        count
        for (verb, _resource), count in env.cluster.request_counts.items()
        if verb in ("create", "update", "patch", "delete")
    )


def sent(env: Env, verb: str, resource: str) -> int:
    """How many `verb` requests on `resource` (e.g. `rollouts/status`) the controller sent."""
    return env.cluster.request_counts[(verb, resource)]


def events(env: Env, reason: str, name: str = "ui") -> list[dict]:
    return [e for e in env.cluster.list_events(env.namespace, name) if e.get("reason") == reason]
