"""The e2e tests' stack and each test's `Env` on it (the fixtures live in conftest.py)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any, TypeVar

from e2e_helpers import ROLLOUT, Obj, Recorder
from support.polling import wait_until
from support.stacks import ExampleStack

from canary_sandbox.client import SandboxClient, SandboxError
from canary_sandbox.stack import (
    SERVICE,
    ControllerProcess,
    deploy_version,
    fast_rollout,
    install_example,
)

T = TypeVar("T")


INTERVAL = 1.0  # the analysis interval of every e2e release, seconds


RELEASE_TIMEOUT = 90.0  # a guard against hanging, never an assertion on speed


CANARY = Path(sys.executable).with_name("canary")


@dataclass
class Stack(ExampleStack):
    """examples/ui on one API server, the simulator following it, Prometheus scraping that
    (`support.stacks`).

    On the sandbox `api` is the ApiServer (its faults and store) and `namespace` is shop; on
    the real control plane `plane` is the session's ControlPlane and `namespace` this
    module's own."""

    _numbers: Iterator[int] = field(default_factory=lambda: count(3))

    @property
    def kind(self) -> str:
        return "sandbox" if self.api is not None else "real"

    def next_version(self) -> str:
        """v3, v4, ...: v2 is examples/ui's own canary, kept for the test that plans it."""
        return f"v{next(self._numbers)}"


def reset_stack(stack: Stack) -> None:
    """No Rollout; the VirtualService and DestinationRule as in git; every version healthy."""
    install_example(stack.client, stack.namespace)
    for version in list(stack.simulator.service(stack.namespace, SERVICE).versions):
        stack.simulator.set_version(stack.namespace, SERVICE, version, error_rate=0.0)


@dataclass
class Env:
    """One test's view of the stack: releases, controllers, the recorder, polling, the CLI."""

    stack: Stack
    tmp_path: Path
    controllers: list[ControllerProcess] = field(default_factory=list)
    recorder: Recorder | None = None

    @property
    def client(self) -> SandboxClient:
        return self.stack.client

    @property
    def kubeconfig(self) -> Path:
        return self.stack.kubeconfig

    @property
    def namespace(self) -> str:
        return self.stack.namespace

    # ------------------------------------------------------------ processes

    def start_controller(self, *extra_args: str, name: str = "controller") -> ControllerProcess:
        log_path = self.tmp_path / f"{name}-{len(self.controllers)}.log"
        controller = ControllerProcess(self.kubeconfig, log_path, extra_args).start()
        self.controllers.append(controller)
        return controller

    def record(self) -> Recorder:
        self.recorder = Recorder(self.client, self.namespace).start()
        return self.recorder

    def canary(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """`canary ARGS -n NS --kubeconfig K` as a user runs it; never raises on exit codes."""
        command = [str(CANARY), *args, "-n", self.namespace, "--kubeconfig", str(self.kubeconfig)]
        return subprocess.run(command, check=False, capture_output=True, text=True, timeout=timeout)

    # ------------------------------------------------------------ the Rollout

    def new_version(self) -> str:
        """A canary version no other test of this module used, deployed and ready."""
        version = self.stack.next_version()
        deploy_version(self.client, version, namespace=self.namespace)
        return version

    def rollout_body(self, version: str, change: Callable[[Obj], None] | None = None) -> Obj:
        body = fast_rollout(INTERVAL, self.stack.prometheus.url, self.namespace)
        body["spec"]["canary"]["version"] = version
        body["spec"]["canary"]["workloadRef"]["name"] = f"ui-{version}"
        if change is not None:
            change(body["spec"])
        return body

    def release(self, version: str, change: Callable[[Obj], None] | None = None) -> Obj:
        return self.client.apply(self.rollout_body(version, change))

    def rollout(self) -> Obj:
        return self.client.get(*ROLLOUT, self.namespace, SERVICE)

    def status(self) -> Obj:
        status: Obj = self.rollout().get("status") or {}
        return status

    def virtual_service(self) -> Obj:
        return self.client.get(
            "networking.istio.io/v1beta1", "VirtualService", self.namespace, SERVICE
        )

    def destination_rule(self) -> Obj:
        return self.client.get(
            "networking.istio.io/v1beta1", "DestinationRule", self.namespace, SERVICE
        )

    def events(self, reason: str | None = None) -> list[Obj]:
        """Events about the current Rollout object (by uid), oldest first."""
        uid = self.rollout()["metadata"]["uid"]
        listing = self.client.request("GET", self.client.path("v1", "Event", self.namespace))
        return [
            e
            for e in listing.get("items", [])
            if e.get("involvedObject", {}).get("uid") == uid
            and (reason is None or e.get("reason") == reason)
        ]

    # ------------------------------------------------------------ waiting

    def wait_for(
        self,
        predicate: Callable[[], T],
        timeout: float = RELEASE_TIMEOUT,
        what: str = "",
        every: float = 0.2,
    ) -> T:
        """Poll until `predicate()` is truthy; on timeout fail with the status and the logs."""
        return wait_until(
            predicate, what or "the condition", timeout, every=every, describe=self.describe
        )

    def wait_for_status(
        self,
        predicate: Callable[[Obj], Any],
        timeout: float = RELEASE_TIMEOUT,
        what: str = "",
        every: float = 0.2,
    ) -> Obj:
        def check() -> Obj | None:
            status = self.status()
            return status if predicate(status) else None

        return self.wait_for(check, timeout, what, every)

    def wait_for_phase(self, version: str, *phases: str, timeout: float = RELEASE_TIMEOUT) -> Obj:
        return self.wait_for_status(
            lambda s: s.get("canaryVersion") == version and s.get("phase") in phases,
            timeout,
            f"the release of {version} to reach {' or '.join(phases)}",
        )

    def describe(self) -> str:
        try:
            status = self.status()
        except (OSError, SandboxError) as error:
            status = {"unreadable": repr(error)}
        status = {k: v for k, v in status.items() if k not in ("history", "conditions")}
        parts = [f"Rollout status: {status}"]
        for controller in self.controllers:
            running = controller.process is not None and controller.process.poll() is None
            tail = "\n".join(controller.logs().splitlines()[-30:])
            state = "running" if running else "exited"
            parts.append(f"--- {controller.log_path.name} (pid {controller.pid}, {state}):\n{tail}")
        return "\n".join(parts)

    def close(self) -> None:
        for controller in self.controllers:
            controller.stop()
        if self.recorder is not None:
            self.recorder.stop()
