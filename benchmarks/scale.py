"""Thousands of Rollouts in one controller process: optimized vs the naive baseline, side by side.

For each mode a fresh API server (the sandbox in its own process, or with `--api real` the
real control plane: kube-apiserver, etcd, controller-manager, scheduler, kwok; their CPU and
memory are reported too), a stub Prometheus (its own process, answering every query with an
empty vector) and a fresh controller process with N
Rollouts in 50 namespaces, each at split 10 % with a one-hour step and a 10 s analysis
interval: every interval tick runs one check. Scenarios (`--scenario`):

- hold (default): `noData: hold`, so every check holds and says what the last one said: a tick
  that changes nothing;
- pass: `noData: pass`, so every check counts as a pass toward the (one-hour) step: a state
  change, one status write per tick in both modes.

Modes:

- optimized: informer caches for VirtualServices/DestinationRules, batched PromQL, repeated
  checks not stored (a 5-minute heartbeat);
- naive: the same controller with all three switched off (`--no-informers
  --no-batch-queries --store-every-check`).

Reported per mode: tick lag (actual start minus scheduled start of interval ticks) p50/p99,
missed ticks (coalesced or skipped runs, and ticks due while the last one's reconcile still
waited in the work queue, which merges them), resident memory, Kubernetes API requests per tick
(reads and writes), Prometheus queries per interval. Then rollback reaction and CLI start-up.

    .venv/bin/python benchmarks/scale.py            # 2,000 Rollouts, 60 s measured per mode
    .venv/bin/python benchmarks/scale.py --api real # the same on the real control plane
    .venv/bin/python benchmarks/scale.py --small    # 200 Rollouts, 5 s interval, 10 s per mode
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

NAMESPACES = 50
EMPTY_VECTOR = b'{"status":"success","data":{"resultType":"vector","result":[]}}'


# ---------------------------------------------------------------- helper processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_stub_prometheus(port: int) -> None:
    """Answer every query with an empty vector (the canary has no traffic: no data, hold)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(EMPTY_VECTOR)))
            self.end_headers()
            self.wfile.write(EMPTY_VECTOR)

        def do_POST(self) -> None:
            self.do_GET()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


def start(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


# ---------------------------------------------------------------- the objects


def objects(
    index: int, prometheus_url: str, options: argparse.Namespace
) -> tuple[dict[str, Any], ...]:
    namespace, name = f"team-{index % NAMESPACES:02d}", f"svc-{index:05d}"
    meta = {"name": name, "namespace": namespace}
    vs = {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "VirtualService",
        "metadata": meta,
        "spec": {
            "hosts": [name],
            "http": [
                {"name": "primary", "route": [{"destination": {"host": name, "subset": "stable"}}]}
            ],
        },
    }
    dr = {
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "DestinationRule",
        "metadata": meta,
        "spec": {
            "host": name,
            "subsets": [
                {"name": "stable", "labels": {"version": "v1"}},
                {"name": "canary", "labels": {"version": "v2"}},
            ],
        },
    }
    rollout = {
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": meta,
        "spec": {
            "host": name,
            "virtualService": {"name": name, "route": "primary"},
            "destinationRule": {"name": name},
            "stable": {"subset": "stable"},
            "canary": {"subset": "canary", "version": "v2"},
            "stages": {"split": {"steps": [10, 100], "interval": "1h"}},
            "analysis": {
                "interval": f"{options.interval:g}s",
                "window": "1m",
                "failureLimit": 2,
                "minRequests": 50,
                "noData": options.scenario,
                "gates": [
                    {"name": "success-rate", "successRate": {"min": 99.0}},
                    {"name": "p99-latency", "latency": {"quantile": 0.99, "maxMs": 500}},
                ],
            },
            "prometheus": {"url": prometheus_url, "timeout": "5s"},
        },
    }
    return vs, dr, rollout


def populate(create: Any, prometheus_url: str, options: argparse.Namespace) -> None:
    """Every namespace, then every service's objects, with `create(obj)` (8 at a time)."""
    from concurrent.futures import ThreadPoolExecutor

    for index in range(NAMESPACES):
        create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"team-{index:02d}"}})
    with ThreadPoolExecutor(max_workers=8) as pool:
        for done in pool.map(
            lambda index: [create(obj) for obj in objects(index, prometheus_url, options)],
            range(options.rollouts),
        ):
            assert done


def admin_create(plane: Any) -> Any:
    """create(obj) as the real control plane's admin (POST to the object's collection)."""

    def create(obj: dict[str, Any]) -> dict[str, Any]:
        group_version, kind = obj["apiVersion"], obj["kind"]
        if kind == "Namespace":
            return dict(plane.request("POST", "/api/v1/namespaces", obj))
        plural = {"VirtualService": "virtualservices", "DestinationRule": "destinationrules"}
        resource = plural.get(kind, "rollouts")
        namespace = obj["metadata"]["namespace"]
        path = f"/apis/{group_version}/namespaces/{namespace}/{resource}"
        return dict(plane.request("POST", path, obj))

    return create


# ---------------------------------------------------------------- one mode (child process)


def rss_megabytes() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class TickRecorder:
    """Tick lag of interval jobs (actual start minus scheduled start) and missed runs."""

    def __init__(self, controller: Any) -> None:
        from apscheduler.events import (
            EVENT_JOB_MAX_INSTANCES,
            EVENT_JOB_MISSED,
            EVENT_JOB_SUBMITTED,
        )

        self.scheduled: dict[str, float] = {}
        self.lags: list[float] = []
        self.missed: Counter[str] = Counter()
        self.reconciles = 0.0  # all of them: interval ticks, watch events, requeues
        self.collections: list[float] = []  # seconds of each full (generation 2) collection
        self._collecting = 0.0
        self.measuring = threading.Event()
        self._reconcile_once = controller._reconcile_once
        controller._reconcile_once = self.timed_reconcile
        controller.scheduler.add_listener(self.submitted, EVENT_JOB_SUBMITTED)
        controller.scheduler.add_listener(self.skipped, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)

    def submitted(self, event: Any) -> None:
        if event.job_id.endswith("#tick"):
            if self.measuring.is_set() and event.job_id in self.scheduled:
                # the last tick's reconcile has not started: the queue merges this one into it
                self.missed["merged"] += 1
            self.scheduled[event.job_id] = event.scheduled_run_times[-1].timestamp()
            if self.measuring.is_set() and len(event.scheduled_run_times) > 1:
                self.missed["coalesced"] += len(event.scheduled_run_times) - 1

    def skipped(self, event: Any) -> None:
        if self.measuring.is_set() and event.job_id.endswith("#tick"):
            self.missed[str(event.code)] += 1

    def collected(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._collecting = time.perf_counter()
        elif self.measuring.is_set():
            self.collections.append(time.perf_counter() - self._collecting)

    def timed_reconcile(self, key: str, obj: Any) -> None:
        """The lag of an interval tick is from its scheduled time to its reconcile's start (the
        tick job only adds the key to the work queue)."""
        at = self.scheduled.pop(f"{key}#tick", None)  # one-off (watch, requeue) runs find none
        if self.measuring.is_set() and at is not None:
            self.lags.append(max(0.0, time.time() - at))
        self._reconcile_once(key, obj)


def build_controller(options: argparse.Namespace, stop: threading.Event) -> tuple[Any, Any, Any]:
    """The controller of `canary controller` (`compose`) with the mode's switches;
    (controller, kube, query counter)."""
    from canary.controller.main import ControllerOptions, compose
    from canary.controller.telemetry import Telemetry

    optimized = options.mode == "optimized"
    settings = ControllerOptions(
        kubeconfig=options.kubeconfig,
        qps=options.qps,
        burst=options.qps * 2,
        informers=optimized,
        batch_queries=optimized,
        store_every_check=not optimized,
        workers=options.workers,
    )
    composition = compose(settings, stop, Telemetry())
    controller = composition.controller
    queries: Counter[str] = Counter()
    metrics = controller.reconciler.metrics
    for source in (metrics, getattr(metrics, "_unbatched", None)):
        if source is not None:
            wrap_counting(source, queries)
    return controller, composition.kube, queries


def run_mode(options: argparse.Namespace) -> dict[str, Any]:
    """The controller in this process, measured; returns the figures."""
    from canary.controller.logs import configure_logging

    configure_logging("error", True)
    stop = threading.Event()
    controller, kube, queries = build_controller(options, stop)
    recorder = TickRecorder(controller)
    gc.callbacks.append(recorder.collected)
    thread = threading.Thread(target=controller.run, args=(stop,), daemon=True)
    thread.start()
    warm_up(controller, options)
    recorder.scheduled.clear()
    kube.request_counts.clear()
    queries.clear()
    reconciles_before = reconciles(controller)
    recorder.measuring.set()
    started, measured_from = time.monotonic(), time.time()
    time.sleep(options.seconds)
    recorder.measuring.clear()
    elapsed = time.monotonic() - started
    recorder.reconciles = reconciles(controller) - reconciles_before
    requests = Counter(kube.request_counts)
    figures = summarize(options, recorder, requests, queries, elapsed)
    figures.update({"measured from": measured_from, "measured to": time.time()})
    stop.set()
    thread.join(timeout=30)
    return figures


def reconciles(controller: Any) -> float:
    registry = controller.telemetry.registry
    return float(registry.get_sample_value("canary_reconcile_duration_seconds_count") or 0)


def wrap_counting(source: Any, queries: Counter[str]) -> None:
    """Count Prometheus queries through the source's on_query hook."""
    previous = getattr(source, "_on_query", None)

    def counted(outcome: str) -> None:
        queries[outcome] += 1
        if previous is not None:
            previous(outcome)

    if hasattr(source, "_on_query"):
        source._on_query = counted
    if hasattr(source, "_client_factory") and hasattr(source, "_environ"):
        from canary.metrics.prometheus import PrometheusClient

        environ = source._environ
        source._client_factory = lambda ref: PrometheusClient(ref, environ, counted)
    elif hasattr(source, "_client_factory"):
        from canary.metrics.prometheus import PrometheusClient

        source._client_factory = lambda ref: PrometheusClient(ref, None, counted)


def warm_up(controller: Any, options: argparse.Namespace) -> None:
    """Wait until every Rollout at split 10 % has stored its first check there (the first hold
    is news, and stored), then one more interval for the backlog of the start to drain: the
    measured ticks are the steady state, all alike."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        rollouts = controller.rollouts.objects()
        if sum(1 for obj in rollouts if checked_in_split(obj)) >= options.rollouts:
            break
        time.sleep(0.5)
    time.sleep(options.interval)


def checked_in_split(obj: dict[str, Any]) -> bool:
    status = obj.get("status") or {}
    check = (status.get("lastAnalysis") or {}).get("time", "")
    return status.get("stage") == "split" and check > status.get("stepStartedAt", "~")


def summarize(
    options: argparse.Namespace,
    recorder: TickRecorder,
    requests: Counter[tuple[str, str]],
    queries: Counter[str],
    elapsed: float,
) -> dict[str, Any]:
    lags, missed = recorder.lags, recorder.missed
    ticks = max(1, len(lags))
    reads = sum(n for (verb, _), n in requests.items() if verb in ("get", "list"))
    writes = sum(n for (verb, _), n in requests.items() if verb not in ("get", "list", "watch"))
    intervals = elapsed / options.interval
    expected_ticks = options.rollouts * intervals
    return {
        "mode": options.mode,
        "rollouts": options.rollouts,
        "seconds": round(elapsed, 1),
        "interval ticks": len(lags),
        "expected ticks": round(expected_ticks),
        "tick lag p50 (ms)": round(percentile(lags, 0.50) * 1000, 1),
        "tick lag p99 (ms)": round(percentile(lags, 0.99) * 1000, 1),
        "missed ticks": sum(missed.values()),
        "missed by kind": dict(missed),
        "reconciles per tick": round(recorder.reconciles / ticks, 2),
        "full GC pauses": len(recorder.collections),
        "longest GC pause (ms)": round(max(recorder.collections, default=0.0) * 1000, 1),
        "RSS (MB)": round(rss_megabytes(), 1),
        "API requests per tick": round((reads + writes) / ticks, 2),
        "API reads per tick": round(reads / ticks, 2),
        "API writes per tick": round(writes / ticks, 2),
        "queries per interval": round(sum(queries.values()) / intervals, 1),
        "requests by verb": {f"{v} {r}": n for (v, r), n in sorted(requests.items())},
    }


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


# ---------------------------------------------------------------- the comparison


def measure_mode(mode: str, options: argparse.Namespace) -> dict[str, Any]:
    """One mode's figures, with a fresh API server (the sandbox, or the real control plane,
    whose kube-apiserver's and etcd's CPU and memory over the measured seconds are added)."""
    import contextlib

    prom_port = free_port()
    with tempfile.TemporaryDirectory() as workdir, contextlib.ExitStack() as cleanup:
        prometheus = start(__file__, "--serve-prometheus", str(prom_port))
        cleanup.callback(stop, prometheus)
        if options.api == "real":
            from canary_sandbox.controlplane import ControlPlane
            from canary_sandbox.k8s_assets import ensure_assets

            plane = ControlPlane(workdir=Path(workdir) / "plane", assets=ensure_assets())
            plane.start()
            cleanup.callback(plane.stop)
            kubeconfig, create = str(plane.kubeconfig), admin_create(plane)
            servers = {"kube-apiserver": plane.pid("kube-apiserver"), "etcd": plane.pid("etcd")}
        else:
            from canary_sandbox.client import SandboxClient

            api_port, kubeconfig = free_port(), str(Path(workdir) / "kubeconfig")
            sandbox = start("-m", "canary", "sandbox", "--port", str(api_port),
                            "--kubeconfig", kubeconfig)  # fmt: skip
            cleanup.callback(stop, sandbox)
            wait_for_port(api_port)
            create = SandboxClient(f"http://127.0.0.1:{api_port}").apply
            servers = {"sandbox API": sandbox.pid}
        wait_for_port(prom_port)
        populate(create, f"http://127.0.0.1:{prom_port}", options)
        child = subprocess.Popen(
            [sys.executable, __file__, "--run-mode", mode, "--kubeconfig", kubeconfig,
             "--rollouts", str(options.rollouts), "--seconds", str(options.seconds),
             "--qps", str(options.qps), "--workers", str(options.workers),
             "--interval", str(options.interval), "--scenario", options.scenario],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        usage = ServerUsage(servers)
        threading.Thread(target=usage.sample_while, args=(child,), daemon=True).start()
        output, _ = child.communicate()
        if child.returncode != 0:
            raise RuntimeError(f"the {mode} run failed (exit {child.returncode})")
        figures = dict(json.loads(output.strip().splitlines()[-1]))
        return {
            **figures,
            **usage.figures(figures.get("measured from"), figures.get("measured to")),
        }


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=10)


class ServerUsage:
    """CPU (cores) and resident memory of the API server's processes, sampled every second
    from /proc, reported for the child's measured seconds."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = {name: pid for name, pid in pids.items() if pid is not None}
        self.samples: list[tuple[float, dict[str, tuple[float, float]]]] = []

    def sample_while(self, child: subprocess.Popen[str]) -> None:
        while child.poll() is None:
            self.samples.append((time.time(), {n: _cpu_and_rss(p) for n, p in self.pids.items()}))
            time.sleep(1.0)

    def figures(self, start: float | None, end: float | None) -> dict[str, Any]:
        inside = [s for s in self.samples if start is not None and end is not None
                  and start <= s[0] <= end]  # fmt: skip
        if len(inside) < 2:
            return {}
        (t0, first), (t1, last) = inside[0], inside[-1]
        out: dict[str, Any] = {}
        for name in self.pids:
            out[f"{name} CPU (cores)"] = round((last[name][0] - first[name][0]) / (t1 - t0), 2)
            out[f"{name} RSS (MB)"] = round(max(sample[name][1] for _, sample in inside), 1)
        return out


def _cpu_and_rss(pid: int) -> tuple[float, float]:
    """(CPU seconds so far, resident MB) of a process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0, 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    rss = next((int(line.split()[1]) / 1024 for line in status.splitlines()
                if line.startswith("VmRSS:")), 0.0)  # fmt: skip
    return cpu, rss


def rollback_reaction(runs: int) -> list[float]:
    """Seconds from the check that crosses failureLimit (the metrics answer) to the rollback
    VirtualService write acknowledged, in-process, against the sandbox API over HTTP."""
    from canary.controller.logs import configure_logging

    configure_logging("error", True)
    return [one_rollback() for _ in range(runs)]


class FailingOnCue:
    """Gates that pass until told to fail; remembers when it last answered."""

    def __init__(self) -> None:
        from canary.core.status import Verdict

        self.verdict = Verdict.PASS
        self.answered = 0.0

    def evaluate(self, rollout: Any) -> tuple[Any, ...]:
        from canary.core.status import GateResult

        results = tuple(
            GateResult(name=g.name, verdict=self.verdict, value=50.0, threshold=">= 99.0%")
            for g in rollout.spec.analysis.gates
        )
        self.answered = time.perf_counter()
        return results


def one_rollback() -> float:
    from datetime import UTC, datetime

    from canary.controller.reconcile import Reconciler
    from canary.core.status import Verdict
    from canary.kube.client import KubeCluster
    from canary.kube.informers import CachedCluster
    from canary.mesh.istio import IstioRouter
    from canary_sandbox.stack import example_release, sandbox_with_example

    metrics, now, acknowledged = FailingOnCue(), [time.time()], [0.0]
    with (
        tempfile.TemporaryDirectory() as workdir,
        sandbox_with_example(Path(workdir)) as (
            api,
            client,
        ),
    ):
        stop = threading.Event()
        kube = KubeCluster.from_kubeconfig(str(Path(workdir) / "kubeconfig"), qps=1000, burst=1000)
        cluster = CachedCluster(kube)
        cluster.start(stop)
        cluster.wait_synced(10)
        reconciler = Reconciler(
            cluster=cluster,
            router=IstioRouter(),
            metrics=metrics,
            clock=lambda: datetime.fromtimestamp(now[0], UTC),
        )
        rollout = example_release()
        spec = rollout["spec"]
        for stage in ("mirror", "headerCanary"):
            spec["stages"][stage]["duration"] = "10s"
        spec["stages"]["split"]["interval"] = "10s"
        spec["analysis"]["interval"] = "10s"
        client.apply(rollout)

        def tick() -> None:
            now[0] += 10
            reconciler.reconcile(api.store.get(("canary.dev", "rollouts"), "shop", "ui"))

        for _step in range(3):
            tick()
        metrics.verdict = Verdict.FAIL
        tick()  # failedChecks 1 of 2
        update = cluster.update_virtual_service

        def timed_update(*args: Any) -> Any:
            written = update(*args)
            acknowledged[0] = time.perf_counter()
            return written

        cluster.update_virtual_service = timed_update  # type: ignore[method-assign]
        tick()  # crosses failureLimit: rollback
        stored = api.store.get(("canary.dev", "rollouts"), "shop", "ui") or {}
        assert stored["status"]["phase"] == "RolledBack", stored["status"]
        stop.set()
    return acknowledged[0] - metrics.answered


def cli_startup(runs: int) -> dict[str, float]:
    def best(command: list[str]) -> float:
        times = []
        for _ in range(runs):
            began = time.perf_counter()
            subprocess.run(command, capture_output=True, check=True)
            times.append(time.perf_counter() - began)
        return statistics.median(times)

    # the installed console script (canary.cli.entry), what users and kubectl run
    canary = best([str(Path(sys.executable).with_name("canary")), "--help"])
    bare = best([sys.executable, "-c", "pass"])
    return {"canary --help (ms)": canary * 1000, "python -c pass (ms)": bare * 1000}


def print_table(rows: list[dict[str, Any]]) -> None:
    optimized, naive = rows
    hidden = ("mode", "requests by verb", "missed by kind", "measured from", "measured to")
    keys = [k for k in optimized if k not in hidden]
    print(f"{'':28} {'optimized':>12} {'naive':>12} {'naive/optimized':>16}")
    for key in keys:
        a, b = optimized[key], naive.get(key, "-")
        ratio = f"{b / a:.1f}x" if isinstance(a, int | float) and a else "-"
        print(f"{key:28} {a:>12} {b:>12} {ratio:>16}")
    for row in rows:
        print(f"{row['mode']} requests: {row['requests by verb']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--small", action="store_true", help="200 Rollouts, 5 s interval, 10 s per mode"
    )
    parser.add_argument("--rollouts", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--qps", type=float, default=1000.0, help="the client rate limit")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--interval", type=float, default=None, help="analysis interval, s")
    parser.add_argument("--only", choices=["optimized", "naive"], default=None)
    parser.add_argument("--scenario", choices=["hold", "pass"], default="hold")
    parser.add_argument("--skip-scale", action="store_true", help="rollback and start-up only")
    parser.add_argument(
        "--api",
        choices=["sandbox", "real"],
        default="sandbox",
        help="the API server: the sandbox (default) or the real control plane (kube-apiserver, "
        "etcd; built by ./dev test)",
    )
    parser.add_argument("--run-mode", help=argparse.SUPPRESS)
    parser.add_argument("--kubeconfig", help=argparse.SUPPRESS)
    parser.add_argument("--serve-prometheus", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.serve_prometheus:
        serve_stub_prometheus(options.serve_prometheus)
        return 0
    options.rollouts = options.rollouts or (200 if options.small else 2000)
    options.seconds = options.seconds or (10.0 if options.small else 60.0)
    options.interval = options.interval or (5.0 if options.small else 10.0)
    if options.run_mode:
        options.mode = options.run_mode
        print(json.dumps(run_mode(options)), flush=True)
        return 0
    modes = [options.only] if options.only else ["optimized", "naive"]
    rows = [] if options.skip_scale else [measure_mode(mode, options) for mode in modes]
    print(
        f"API: {options.api}, scenario: {options.scenario}, {options.rollouts} Rollouts,",
        f"interval {options.interval:g} s, {options.seconds:g} s measured per mode",
    )
    if len(rows) == 2:
        print_table(rows)
    elif rows:
        print(json.dumps(rows[0], indent=2))
    reactions = rollback_reaction(runs=5 if options.small else 30)
    print(
        f"rollback reaction (ms) over {len(reactions)} runs: "
        f"p50 {percentile(reactions, 0.5) * 1000:.1f}, p99 {percentile(reactions, 0.99) * 1000:.1f}"
    )
    startup = cli_startup(runs=5)
    ratio = startup["canary --help (ms)"] / startup["python -c pass (ms)"]
    print(" ".join(f"{k}: {v:.0f}" for k, v in startup.items()), f"ratio: {ratio:.1f}x")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
