"""A whole local environment: sandbox API, traffic simulator, Prometheus, controller process.

`canary demo` and the end-to-end tests build the same stack from these pieces, so what the
tests prove is what the demo shows.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from canary.core.crd import rollout_crd
from canary.core.model import API_VERSION, KIND
from canary_sandbox.apiserver import ApiServer, bundled_crd_paths
from canary_sandbox.client import SandboxClient, SandboxError
from canary_sandbox.polling import poll
from canary_sandbox.traffic import KubeRouting, TrafficSimulator

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "ui"
NAMESPACE, SERVICE = "shop", "ui"
READY_TIMEOUT = 120.0  # a guard against a control plane that never schedules, not a figure
UNSCHEDULABLE = "canary.dev/no-such-node"  # a node-selector label no Node has


def example(name: str, namespace: str = NAMESPACE) -> dict[str, Any]:
    """One object of examples/ui, e.g. `example("rollout")`, moved to `namespace`."""
    body: dict[str, Any] = yaml.safe_load((EXAMPLE / f"{name}.yaml").read_text())
    metadata = body["metadata"]
    if body["kind"] == "Namespace":
        metadata["name"] = namespace
    else:
        metadata["namespace"] = namespace
    return body


def example_release(
    version: str = "v2", name: str = "rollout", namespace: str = NAMESPACE
) -> dict[str, Any]:
    """examples/ui/rollout.yaml asked to release `version` from its Deployment ui-<version>,
    as a pipeline's commit does (the file itself asks for v1, the live version)."""
    rollout = example(name, namespace)
    canary = rollout["spec"]["canary"]
    canary["version"] = version
    canary["workloadRef"]["name"] = f"ui-{version}"
    return rollout


def fast_rollout(
    interval: float, prometheus_url: str, namespace: str = NAMESPACE
) -> dict[str, Any]:
    """The release of v2 with short timings: every stage a couple of checks long."""
    rollout = example_release(namespace=namespace)
    spec = rollout["spec"]
    step = f"{interval:g}s"
    spec["stages"]["mirror"]["duration"] = f"{2 * interval:g}s"
    spec["stages"]["headerCanary"]["duration"] = f"{2 * interval:g}s"
    spec["stages"]["split"]["interval"] = step
    spec["analysis"].update(interval=step, window=f"{max(10.0, interval):g}s", minRequests=20)
    spec["prometheus"] = {"url": prometheus_url, "timeout": "2s"}
    spec["promotion"]["settleDelay"] = step
    return rollout


EXAMPLE_OBJECTS = ("service", "deployment-v1", "deployment-v2", "destinationrule", "virtualservice")


def example_objects(namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    """examples/ui's Service, Deployments ui-v1 and ui-v2, DestinationRule and VirtualService
    (not its Namespace or Rollout), in `namespace`."""
    return [example(name, namespace) for name in EXAMPLE_OBJECTS]


def version_deployment(version: str, namespace: str = NAMESPACE) -> dict[str, Any]:
    """A Deployment ui-<version> like examples/ui's ui-v2 (pods labelled version=<version>)."""
    text = yaml.safe_dump(example("deployment-v2", namespace))
    body: dict[str, Any] = yaml.safe_load(
        text.replace("v2", version).replace("2.0.0", f"{version}.0")
    )
    return body


@contextlib.contextmanager
def sandbox_with_example(workdir: Path) -> Iterator[tuple[ApiServer, SandboxClient]]:
    """The API server with the CRDs and examples/ui (v1 and v2 ready), and a kubeconfig."""
    with ApiServer() as api:
        api.install_crd_files(bundled_crd_paths())
        api.install_crds([rollout_crd()])
        client = SandboxClient(api.url)
        install_example(client)
        api.write_kubeconfig(workdir / "kubeconfig")
        yield api, client


@contextlib.contextmanager
def cluster_with_example(
    kubeconfig: Path, namespace: str = NAMESPACE, cleanup: bool = True
) -> Iterator[SandboxClient]:
    """examples/ui installed in `namespace` on the API server `kubeconfig` names (a real
    control plane with crds/ and Istio's CRDs, as `./dev cluster` starts it); the namespace's
    deletion is requested afterwards when `cleanup`."""
    client = SandboxClient.from_kubeconfig(kubeconfig)
    install_example(client, namespace)
    try:
        yield client
    finally:
        if cleanup:
            delete_example(client, namespace)


def install_example(
    client: SandboxClient, namespace: str = NAMESPACE, timeout: float = READY_TIMEOUT
) -> None:
    """examples/ui in `namespace` (its CRDs already installed): the Namespace, the Service,
    Deployments ui-v1 and ui-v2 (ready before this returns), the DestinationRule and the
    VirtualService as in git (created anew when they exist: a controller's earlier writes go),
    and no Rollout `ui`. On the sandbox the Deployments are reported ready by hand; on a real
    control plane kwok's Pods make them ready."""
    for name in ("00-namespace", "service", "deployment-v1", "deployment-v2"):
        client.apply(example(name, namespace))
    remove_rollout(client, namespace)
    for name in ("destinationrule", "virtualservice"):
        obj = example(name, namespace)
        with contextlib.suppress(SandboxError):
            client.delete(client.path_of(obj))
        client.request("POST", client.path_of(obj).rsplit("/", 1)[0], obj)
    for version in ("v1", "v2"):
        make_ready(client, namespace, f"ui-{version}", timeout=timeout)


def remove_rollout(client: SandboxClient, namespace: str = NAMESPACE) -> None:
    """Rollout `ui` deleted and gone before this returns, its finalizer dropped (no controller
    need be running). Deleted first, then the finalizer dropped until it is gone: a running
    controller that saw the finalizer dropped before the deletion would put it back, and a
    Rollout applied next would then land on the old one, still being deleted, and go with it."""
    path = client.path(API_VERSION, KIND, namespace, SERVICE)
    with contextlib.suppress(SandboxError):
        client.delete(path)

    def gone() -> bool:
        try:
            client.merge_patch(path, {"metadata": {"finalizers": None}})
        except SandboxError as error:
            if error.code == 404:
                return True
            raise
        return False

    poll(gone, READY_TIMEOUT, f"Rollout {namespace}/{SERVICE} gone", every=0.05)


def delete_example(client: SandboxClient, namespace: str = NAMESPACE) -> None:
    """The namespace's deletion requested (the Rollout's finalizer dropped first, so that no
    controller is needed for it to finish)."""
    remove_rollout(client, namespace)
    with contextlib.suppress(SandboxError):
        client.delete(client.path("v1", "Namespace", None, namespace))


def deploy_version(
    client: SandboxClient, version: str, ready: bool = True, namespace: str = NAMESPACE
) -> None:
    """A Deployment ui-<version> like ui-v2, ready before this returns (or never ready).

    On a real control plane a version that must never be ready gets a node selector that no
    Node matches: its Pods stay Pending, as a bad rollout's would."""
    deployment = version_deployment(version, namespace)
    if not ready and not client.reports_workloads:
        deployment["spec"]["template"]["spec"]["nodeSelector"] = {UNSCHEDULABLE: "true"}
    client.apply(deployment)
    if client.reports_workloads:
        client.set_deployment_ready(namespace, f"ui-{version}", ready)
    elif ready:
        make_ready(client, namespace, f"ui-{version}")


def make_ready(
    client: SandboxClient, namespace: str, name: str, timeout: float = READY_TIMEOUT
) -> None:
    """Deployment `name` ready: reported so on the sandbox, waited for on a real control plane
    (every replica updated and available for the Deployment's latest generation)."""
    if client.reports_workloads:
        client.set_deployment_ready(namespace, name)
        return
    from canary_sandbox.controlplane import deployment_ready  # not on the sandbox demo's path

    deadline = time.monotonic() + timeout
    while not deployment_ready(client.get("apps/v1", "Deployment", namespace, name)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"Deployment {namespace}/{name} not ready within {timeout:g}s")
        time.sleep(0.2)


@contextlib.contextmanager
def simulated_traffic(
    kubeconfig: str | Path,
    versions: Sequence[str] = ("v1", "v2", "v3"),
    rps: float = 60.0,
    seed: int = 7,
    namespace: str = NAMESPACE,
) -> Iterator[TrafficSimulator]:
    """The simulator, routing `ui` in `namespace` the way its VirtualService says on the API
    server `kubeconfig` names (the sandbox's, or a real kube-apiserver's)."""
    routing = KubeRouting.from_kubeconfig(kubeconfig, namespace, SERVICE).start()
    simulator = TrafficSimulator(seed=seed)
    simulator.add_service(
        SERVICE, namespace, versions=tuple(versions), rps=rps, header_share=0.2, routing=routing
    )
    simulator.start()
    try:
        yield simulator
    finally:
        simulator.stop()
        routing.stop()


@dataclass
class ControllerProcess:
    """`canary controller` as a child process, as it runs in a cluster."""

    kubeconfig: Path
    log_path: Path
    extra_args: Sequence[str] = ()
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> ControllerProcess:
        command = [
            sys.executable, "-m", "canary", "controller",
            "--kubeconfig", str(self.kubeconfig), "--metrics-addr", "127.0.0.1:0",
            *self.extra_args,
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=os.environ
            )
        return self

    def kill(self) -> None:
        """SIGKILL: no clean-up, as a crash or an OOM kill would leave things."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> int | None:
        if self.process is None:
            return None
        self.process.terminate()
        try:
            return self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=10)

    @property
    def pid(self) -> int:
        return self.process.pid if self.process is not None else -1

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def metrics_address(self) -> str | None:
        """host:port of /metrics, from the start-up log line (it listens on port 0)."""
        for line in self.logs().splitlines():
            if line.startswith("{") and "metrics_addr" in line:
                return str(json.loads(line)["metrics_addr"])
        return None

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples of `name` whose labels include `labels` (0 when none)."""
        return sum(
            value
            for sample, value in self.samples(name)
            if all(sample.get(key) == wanted for key, wanted in labels.items())
        )

    def samples(self, name: str) -> list[tuple[dict[str, str], float]]:
        """Every sample of `name` on /metrics now: (its labels, its value); [] before start-up."""
        address = self.metrics_address()
        if address is None:
            return []
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
            text = response.read().decode()
        found = []
        for line in text.splitlines():
            sample, _, value = line.rpartition(" ")
            metric, _, rest = sample.partition("{")
            if metric != name:
                continue
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', rest))
            found.append((labels, float(value)))
        return found

    def __enter__(self) -> ControllerProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
