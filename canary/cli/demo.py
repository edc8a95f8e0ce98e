"""`canary demo`: a healthy release and an automatic rollback, with nothing to set up.

Starts, all on 127.0.0.1: the sandbox Kubernetes API, the traffic simulator (following the
VirtualService the controller writes), a real Prometheus scraping it, and the controller as a
child process, exactly as it runs in a cluster. Then releases `ui` v1 -> v2 (healthy, through
all four stages) and v2 -> v3 (v3 answers with 5xx errors, so it is rolled back).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.markup import escape

from canary.core.crd import rollout_crd
from canary.core.model import TERMINAL_PHASES
from canary.sandbox.apiserver import ApiServer, bundled_crd_paths
from canary.sandbox.client import SandboxClient
from canary.sandbox.prometheus import PrometheusNotFoundError, PrometheusProcess
from canary.sandbox.traffic import KubeRouting, TrafficSimulator

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ui"
NAMESPACE, SERVICE = "shop", "ui"
RELEASE_TIMEOUT = 120.0


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


def run_demo(interval: float, error_rate: float, output: str) -> bool:
    console = Console(stderr=output == "json", highlight=False, soft_wrap=True)
    with tempfile.TemporaryDirectory(prefix="canary-demo-") as workdir, _stack() as stack:
        say = _narrator(console)
        api, client = stack.enter_context(_sandbox(Path(workdir), say))
        simulator = stack.enter_context(_traffic(api.url, say))
        prometheus = stack.enter_context(_prometheus(simulator.address, say))
        stack.enter_context(_controller(Path(workdir), say))
        rollout = _demo_rollout(interval, prometheus.url)
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
def _sandbox(workdir: Path, say: Callable[[str], None]) -> Iterator[tuple[ApiServer, Any]]:
    with ApiServer() as api:
        api.install_crd_files(bundled_crd_paths())
        api.install_crds([rollout_crd()])
        client = SandboxClient(api.url)
        for name in ("namespace", "service", "deployment-v1", "deployment-v2"):
            client.apply(_example(name))
        for name in ("destinationrule", "virtualservice"):
            client.apply(_example(name))
        for version in ("v1", "v2"):
            client.set_deployment_ready(NAMESPACE, f"ui-{version}")
        api.write_kubeconfig(workdir / "kubeconfig")
        say(f"sandbox Kubernetes API on {api.url}; installed the CRDs and examples/ui")
        yield api, client


@contextlib.contextmanager
def _traffic(api_url: str, say: Callable[[str], None]) -> Iterator[TrafficSimulator]:
    routing = KubeRouting(api_url, NAMESPACE, SERVICE, SERVICE).start()
    simulator = TrafficSimulator(seed=7)
    simulator.add_service(
        SERVICE,
        NAMESPACE,
        versions=("v1", "v2", "v3"),
        rps=60.0,
        header_share=0.2,
        routing=routing,
    )
    simulator.start()
    say(f"traffic simulator on {simulator.url}: 60 req/s to ui, 20% carry `version: beta`")
    try:
        yield simulator
    finally:
        simulator.stop()
        routing.stop()


@contextlib.contextmanager
def _prometheus(target: str, say: Callable[[str], None]) -> Iterator[PrometheusProcess]:
    try:
        with PrometheusProcess(targets=[target], scrape_interval="1s") as prometheus:
            say(f"Prometheus on {prometheus.url}, scraping the simulator every second")
            yield prometheus
    except PrometheusNotFoundError:
        raise DemoError(
            "the demo needs Prometheus: run `./dev demo`, which installs it, "
            "or `apt-get install prometheus`"
        ) from None


@contextlib.contextmanager
def _controller(workdir: Path, say: Callable[[str], None]) -> Iterator[subprocess.Popen[bytes]]:
    log_path = workdir / "controller.log"
    command = [
        sys.executable, "-m", "canary", "controller",
        "--kubeconfig", str(workdir / "kubeconfig"), "--metrics-addr", "127.0.0.1:0",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=os.environ)
    say(f"controller started (pid {process.pid}); its JSON logs go to a file")
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        if process.returncode not in (0, -15):
            sys.stderr.write(log_path.read_text(errors="replace")[-4000:])


# ---------------------------------------------------------------- the releases


def _example(name: str) -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load((EXAMPLE / f"{name}.yaml").read_text())
    return body


def _demo_rollout(interval: float, prometheus_url: str) -> dict[str, Any]:
    """examples/ui/rollout.yaml with demo timings: every stage a couple of checks long."""
    rollout = _example("rollout")
    spec = rollout["spec"]
    step = f"{interval:g}s"
    spec["stages"]["mirror"]["duration"] = f"{2 * interval:g}s"
    spec["stages"]["headerCanary"]["duration"] = f"{2 * interval:g}s"
    spec["stages"]["split"]["interval"] = step
    spec["analysis"].update(interval=step, window=f"{max(10.0, interval):g}s", minRequests=20)
    spec["prometheus"] = {"url": prometheus_url, "timeout": "2s"}
    spec["promotion"]["settleDelay"] = step
    return rollout


def _release(
    client: SandboxClient, rollout: dict[str, Any], version: str, expected: str,
    say: Callable[[str], None],
) -> Release:  # fmt: skip
    rollout["spec"]["canary"]["version"] = version
    rollout["spec"]["canary"]["workloadRef"]["name"] = f"ui-{version}"
    say(f"[bold]release {version}[/bold]: spec.canary.version = {version}")
    started = time.monotonic()
    client.apply(rollout)
    status = _follow(client, version, say)
    release = Release(version=version, expected=expected, seconds=time.monotonic() - started)
    release.outcome, release.message = status.get("phase", ""), status.get("message", "")
    release.stages = _stage_timings(status.get("history", []), status.get("releaseStartedAt"))
    release.gates = (status.get("lastAnalysis") or {}).get("gates", [])
    return release


def _bad_release(
    client: SandboxClient, simulator: TrafficSimulator, rollout: dict[str, Any],
    error_rate: float, say: Callable[[str], None],
) -> Release:  # fmt: skip
    deployment = _example("deployment-v2")
    text = yaml.safe_dump(deployment).replace("v2", "v3").replace("2.0.0", "3.0.0")
    client.apply(yaml.safe_load(text))
    client.set_deployment_ready(NAMESPACE, "ui-v3")
    simulator.set_version(NAMESPACE, SERVICE, "v3", error_rate=error_rate)
    say(f"deployed ui-v3, which answers {error_rate:.0%} of its requests with 503")
    return _release(client, rollout, "v3", "RolledBack", say)


def _follow(client: SandboxClient, version: str, say: Callable[[str], None]) -> dict[str, Any]:
    """Print each change of the Rollout's position until this release ends."""
    deadline = time.monotonic() + RELEASE_TIMEOUT
    last = None
    while time.monotonic() < deadline:
        status = client.get("canary.dev/v1alpha1", "Rollout", NAMESPACE, SERVICE).get("status", {})
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
            console.print(
                f"    gate {gate['name']}: {_gate_text(gate)} (threshold {gate.get('threshold')})"
            )
    console.print("[green]demo passed[/green]" if ok else "[red]demo failed[/red]")
