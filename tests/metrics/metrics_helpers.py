"""Builders shared by the metrics tests: Rollouts to measure, tiny stand-in HTTP servers, and the
scenarios the session's simulator runs (conftest.py), each its own service."""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from canary.core.model import Rollout
from canary_sandbox.traffic import Split, TrafficSimulator

NAMESPACE = "shop"
SUCCESS_RATE = {"name": "success-rate", "successRate": {"min": 99.0}}
P99_LATENCY = {"name": "p99-latency", "latency": {"quantile": 0.99, "maxMs": 500}}


def rollout(
    service: str,
    prometheus_url: str,
    *,
    gates: list[dict[str, Any]] | None = None,
    canary_version: str = "v2",
    status_canary_version: str | None = None,
    stable_version: str | None = "v1",
    namespace: str = NAMESPACE,
    min_requests: int = 20,
    prometheus: dict[str, Any] | None = None,
) -> Rollout:
    """A Rollout of `service` measured over a 10s window, checked every second."""
    return Rollout.model_validate(
        {
            "metadata": {"name": "app", "namespace": namespace},
            "spec": {
                "host": f"{service}.{namespace}.svc.cluster.local",
                "virtualService": {"name": "app", "route": "primary"},
                "destinationRule": {"name": "app"},
                "stable": {"subset": "stable"},
                "canary": {"subset": "canary", "version": canary_version},
                "stages": {"split": {"steps": [10, 50, 100]}},
                "analysis": {
                    "interval": "1s",
                    "window": "10s",
                    "minRequests": min_requests,
                    "gates": gates or [SUCCESS_RATE, P99_LATENCY],
                },
                "prometheus": {"url": prometheus_url, "timeout": "5s", **(prometheus or {})},
            },
            "status": {"stableVersion": stable_version, "canaryVersion": status_canary_version},
        }
    )


Handler = Callable[[BaseHTTPRequestHandler], None]


@contextmanager
def tiny_server(handle: Handler) -> Iterator[str]:
    """An HTTP server on a free local port answering every GET with `handle`; yields its URL."""

    class _Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            handle(self)

        def do_POST(self) -> None:
            handle(self)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def reply(handler: BaseHTTPRequestHandler, status: int, body: bytes, kind: str) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", kind)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def sleeping(seconds: float) -> Handler:
    def handle(handler: BaseHTTPRequestHandler) -> None:
        time.sleep(seconds)
        empty = b'{"status":"success","data":{"resultType":"vector","result":[]}}'
        with contextlib.suppress(OSError):  # the client gave up waiting: nobody reads this
            reply(handler, 200, empty, "application/json")

    return handle


def auth_proxy(upstream: str, accepted: set[str]) -> Handler:
    """Forward to `upstream` when the Authorization header is one of `accepted`, else 401."""

    def handle(handler: BaseHTTPRequestHandler) -> None:
        if handler.headers.get("Authorization") not in accepted:
            reply(handler, 401, b"Unauthorized\n", "text/plain")
            return
        with urllib.request.urlopen(upstream + handler.path, timeout=5) as response:
            reply(handler, response.status, response.read(), "application/json")

    return handle


# ---------------------------------------------------------------- the simulated scenarios

INJECTION = 'ui"} or vector(1) #'


WEIRD_VERSION = 'v"2\\n}\n{x=~".*"} \' $1 ` é ☃ \ufffd'


SETTLE_SECONDS = 4.0  # let the 10s windows hold a few scrapes before the first test reads them


def add_scenarios(simulator: TrafficSimulator) -> None:
    """One service per scenario, canary v2 next to stable v1 unless the scenario says otherwise."""
    half = Split({"v1": 50, "v2": 50})
    scenarios = {
        "healthy": {},
        "errors": {"error_rate": 0.10},
        "slow": {"p50_ms": 20, "p99_ms": 800},
        INJECTION: {"error_rate": 0.5},
    }
    for name, behaviour in scenarios.items():
        simulator.add_service(name, NAMESPACE, versions=("v1", "v2"), rps=100)
        simulator.set_version(NAMESPACE, name, "v2", **behaviour)
        simulator.set_split(NAMESPACE, name, half)
    simulator.add_service("idle", NAMESPACE, versions=("v1", "v2"), rps=100)
    simulator.set_split(NAMESPACE, "idle", Split({"v1": 100}))
    simulator.add_service("trickle", NAMESPACE, versions=("v1", "v2"), rps=1)
    simulator.set_split(NAMESPACE, "trickle", half)
    simulator.add_service("mirrored", NAMESPACE, versions=("v1", "v2"), rps=50)
    simulator.set_split(NAMESPACE, "mirrored", Split({"v1": 100, "v2": 0}, "v2", 100.0))
    simulator.add_service("weird", NAMESPACE, versions=(WEIRD_VERSION,), rps=20)
