"""Builders shared by the metrics tests: Rollouts to measure and tiny stand-in HTTP servers."""

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
