"""`canary demo`: a healthy release and an automatic rollback, with nothing to set up.

Starts, all on 127.0.0.1: the sandbox Kubernetes API, the traffic simulator (following the
VirtualService the controller writes), a real Prometheus scraping it, and the controller as a
child process, exactly as it runs in a cluster. Then releases `ui` v1 -> v2 (healthy, through
all four stages) and v2 -> v3 (v3 answers with 5xx errors, so it is rolled back).

With `--kubeconfig FILE` the same releases run on the cluster that kubeconfig names instead of
the sandbox (a real control plane as `./dev cluster --kubeconfig FILE` starts it, with the CRDs
installed): examples/ui is installed in `--namespace` (shop) and left there afterwards; its
Deployments become ready from the cluster's own Pods (kwok's there), never by the demo saying so.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from canary.core.model import API_VERSION, KIND
from canary.core.status import TERMINAL_PHASES
from canary_sandbox.client import SandboxClient, SandboxError
from canary_sandbox.prometheus import PrometheusProcess, find_prometheus
from canary_sandbox.stack import (
    NAMESPACE,
    SERVICE,
    ControllerProcess,
    cluster_with_example,
    deploy_version,
    fast_rollout,
    sandbox_with_example,
    simulated_traffic,
)
from canary_sandbox.traffic import TrafficSimulator

RELEASE_TIMEOUT = 120.0


Say = Callable[[str], None]


class DemoError(Exception):
    """The demo could not run; the message says why and what to do."""


@dataclass
class Release:
    version: str
    expected: str
    outcome: str = ""
    message: str = ""
    seconds: float = 0.0
    stages: list[dict[str, Any]] = field(default_factory=list)
    gates: list[dict[str, Any]] = field(default_factory=list)

    @property
    def as_expected(self) -> bool:
        return self.outcome == self.expected


def run_demo(
    interval: float,
    error_rate: float,
    output: str,
    use_prometheus: bool = True,
    kubeconfig: Path | None = None,
    namespace: str = NAMESPACE,
) -> bool:
    console = Console(stderr=output == "json", highlight=False, soft_wrap=True)
    with tempfile.TemporaryDirectory(prefix="canary-demo-") as workdir, _stack() as stack:
        say = _narrator(console)
        if kubeconfig is None:
            namespace = NAMESPACE
            kubeconfig = Path(workdir) / "kubeconfig"
            client = stack.enter_context(_sandbox(Path(workdir), say))
        else:
            client = stack.enter_context(_cluster(kubeconfig, namespace, say))
        simulator = stack.enter_context(_traffic(kubeconfig, namespace, say))
        metrics_url, source = stack.enter_context(
            _metrics(simulator, say) if use_prometheus else _simulator_directly(simulator, say)
        )
        stack.enter_context(_controller(kubeconfig, Path(workdir), source, say))
        rollout = fast_rollout(interval, metrics_url, namespace)
        releases = [
            _release(client, rollout, "v2", "Succeeded", say),
            _bad_release(client, simulator, rollout, error_rate, say),
        ]
    ok = all(r.as_expected for r in releases)
    _report(console, releases, ok, output)
    return ok


# ---------------------------------------------------------------- the moving parts


@contextlib.contextmanager
def _stack() -> Iterator[contextlib.ExitStack]:
    with contextlib.ExitStack() as stack:
        yield stack


def _narrator(console: Console) -> Callable[[str], None]:
    started = time.monotonic()

    def say(message: str) -> None:
        console.print(f"[dim]{time.monotonic() - started:6.1f}s[/dim]  {message}")

    return say


@contextlib.contextmanager
def _sandbox(workdir: Path, say: Callable[[str], None]) -> Iterator[SandboxClient]:
    with sandbox_with_example(workdir) as (api, client):
        say(f"sandbox Kubernetes API on {api.url}; installed the CRDs and examples/ui")
        yield client


@contextlib.contextmanager
def _cluster(kubeconfig: Path, namespace: str, say: Say) -> Iterator[SandboxClient]:
    say(f"installing examples/ui in namespace {namespace} of the cluster in {kubeconfig}")
    try:
        with cluster_with_example(kubeconfig, namespace, cleanup=False) as client:
            say(f"Kubernetes API on {client.url}; ui-v1 and ui-v2 are ready")
            yield client
    except (OSError, ValueError, KeyError, SandboxError, TimeoutError) as error:
        raise DemoError(
            f"cannot install examples/ui with {kubeconfig}: {error} (is the cluster running, "
            "with crds/ and Istio's CRDs installed, as `./dev cluster` does?)"
        ) from None
    say(f"left examples/ui and the Rollout in namespace {namespace}")


@contextlib.contextmanager
def _traffic(kubeconfig: Path, namespace: str, say: Say) -> Iterator[TrafficSimulator]:
    with simulated_traffic(kubeconfig, namespace=namespace) as simulator:
        say(f"traffic simulator on {simulator.url}: 60 req/s to ui, 20% carry `version: beta`")
        yield simulator


@contextlib.contextmanager
def _metrics(simulator: TrafficSimulator, say: Say) -> Iterator[tuple[str, str]]:
    """A real Prometheus scraping the simulator, or the simulator itself when there is none."""
    if find_prometheus() is None:
        say("no `prometheus` binary (./dev demo installs it): reading the simulator directly")
        with _simulator_directly(simulator, say) as direct:
            yield direct
        return
    with PrometheusProcess(targets=[simulator.address], scrape_interval="1s") as prometheus:
        say(f"Prometheus on {prometheus.url}, scraping the simulator every second")
        yield prometheus.url, "prometheus"


@contextlib.contextmanager
def _simulator_directly(simulator: TrafficSimulator, say: Say) -> Iterator[tuple[str, str]]:
    say(f"the controller reads Istio's metrics from {simulator.url}/metrics itself")
    yield simulator.url, "scrape"


@contextlib.contextmanager
def _controller(
    kubeconfig: Path, workdir: Path, source: str, say: Say
) -> Iterator[ControllerProcess]:
    controller = ControllerProcess(
        kubeconfig, workdir / "controller.log", ("--metrics-source", source)
    )
    with controller:
        say(f"controller started (pid {controller.pid}); its JSON logs go to a file")
        yield controller
        if controller.process is not None and controller.process.poll() is not None:
            sys.stderr.write(controller.logs()[-4000:])


# ---------------------------------------------------------------- the releases


def _release(
    client: SandboxClient, rollout: dict[str, Any], version: str, expected: str,
    say: Callable[[str], None],
) -> Release:  # fmt: skip
    rollout["spec"]["canary"]["version"] = version
    rollout["spec"]["canary"]["workloadRef"]["name"] = f"ui-{version}"
    say(f"[bold]release {version}[/bold]: spec.canary.version = {version}")
    started = time.monotonic()
    client.apply(rollout)
    status = _follow(client, rollout["metadata"]["namespace"], version, say)
    release = Release(version=version, expected=expected, seconds=time.monotonic() - started)
    release.outcome, release.message = status.get("phase", ""), status.get("message", "")
    release.stages = _stage_timings(status.get("history", []), status.get("releaseStartedAt"))
    release.gates = (status.get("lastAnalysis") or {}).get("gates", [])
    return release


def _bad_release(
    client: SandboxClient, simulator: TrafficSimulator, rollout: dict[str, Any],
    error_rate: float, say: Callable[[str], None],
) -> Release:  # fmt: skip
    namespace = rollout["metadata"]["namespace"]
    deploy_version(client, "v3", namespace=namespace)
    simulator.set_version(namespace, SERVICE, "v3", error_rate=error_rate)
    say(f"deployed ui-v3, which answers {error_rate:.0%} of its requests with 503")
    return _release(client, rollout, "v3", "RolledBack", say)


def _follow(
    client: SandboxClient, namespace: str, version: str, say: Callable[[str], None]
) -> dict[str, Any]:
    """Print each change of the Rollout's position until this release ends."""
    deadline = time.monotonic() + RELEASE_TIMEOUT
    last = None
    while time.monotonic() < deadline:
        status = client.get(API_VERSION, KIND, namespace, SERVICE).get("status", {})
        line = _position_line(status) if status else None
        if line is not None and line != last:
            say(line)
            last = line
        if status.get("canaryVersion") == version and status.get("phase") in TERMINAL_PHASES:
            return dict(status)
        time.sleep(0.25)
    raise DemoError(f"the release of {version} did not finish within {RELEASE_TIMEOUT:.0f}s")


def _position_line(status: dict[str, Any]) -> str:
    weight = int(status.get("canaryWeight", 0))
    bar = "█" * (weight // 5) + "░" * (20 - weight // 5)
    extras = []
    if status.get("mirrorPercent"):
        extras.append(f"mirror {status['mirrorPercent']:g}%")
    if status.get("headerRoute"):
        extras.append("header route")
    gates = (status.get("lastAnalysis") or {}).get("gates", [])
    readings = ", ".join(_gate_text(g) for g in gates)
    return (
        f"{status.get('phase', '-'):<11} {status.get('stage') or '-':<12} {bar} {weight:>3}%  "
        + "  ".join(extras)
        + (escape(f"  [{readings}]") if readings else "")
    )


def _gate_text(gate: dict[str, Any]) -> str:
    value = gate.get("value")
    shown = "—" if value is None else f"{value:.3g}"
    return f"{gate['name']} {shown} {gate.get('verdict')}"


def _stage_timings(history: list[dict[str, Any]], since: str | None) -> list[dict[str, Any]]:
    """How long each position of this release lasted, from the status history."""
    if since is not None:
        history = [e for e in history if e["time"] >= since]
    timings = []
    for entry, following in zip(history, [*history[1:], None], strict=True):
        start = datetime.fromisoformat(entry["time"])
        end = datetime.fromisoformat(following["time"]) if following else start
        timings.append(
            {
                "phase": entry.get("phase"),
                "stage": entry.get("stage"),
                "step": entry.get("step"),
                "canaryWeight": entry.get("canaryWeight", 0),
                "seconds": round((end - start).total_seconds(), 1),
                "message": entry.get("message", ""),
            }
        )
    return timings


# ---------------------------------------------------------------- the summary


def _report(console: Console, releases: list[Release], ok: bool, output: str) -> None:
    if output == "json":
        summary = {
            "ok": ok,
            "releases": [r.__dict__ | {"asExpected": r.as_expected} for r in releases],
        }
        print(json.dumps(summary, indent=2))
        return
    console.rule("summary")
    for release in releases:
        mark = "[green]as expected[/green]" if release.as_expected else "[red]UNEXPECTED[/red]"
        console.print(
            f"[bold]{release.version}[/bold]: {release.outcome} in {release.seconds:.0f}s "
            f"({mark}) — {escape(release.message)}"
        )
        for stage in release.stages:
            if stage["stage"]:
                console.print(
                    f"    {stage['stage']:<12} step {stage['step']}  {stage['canaryWeight']:>3}%  "
                    f"{stage['seconds']:>5.1f}s"
                )
        for gate in release.gates:
            console.print(f"    gate {_gate_text(gate)} (threshold {gate.get('threshold')})")
    console.print("[green]demo passed[/green]" if ok else "[red]demo failed[/red]")
