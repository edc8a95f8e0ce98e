"""A local HTTP receiver on 127.0.0.1 that records every POST: for notification and webhook
tests and for trying a Rollout's webhooks by hand.

    with Receiver() as slack:
        ...                                   # point a Secret or a webhook at slack.url
        slack.answer(503)                     # from now on, fail
        slack.hang()                          # from now on, hold every request until release()
        slack.bodies()                        # the JSON bodies received, in order

Behaviour changes apply to requests that arrive afterwards; `release()` lets hung ones go.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    body: Any
    headers: dict[str, str]


class Receiver:
    def __init__(self, status: int = 200, answer_body: bytes = b"ok\n") -> None:
        self._status = status
        self._answer_body = answer_body
        self._hanging = False
        self._released = threading.Event()
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self.arrived = threading.Condition(self._lock)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hook"

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------ behaviour

    def answer(self, status: int, body: bytes = b"ok\n") -> None:
        with self._lock:
            self._status, self._answer_body, self._hanging = status, body, False

    def hang(self) -> None:
        """Hold every later request without answering until `release()` (or stop)."""
        with self._lock:
            self._hanging = True
            self._released.clear()

    def release(self) -> None:
        with self._lock:
            self._hanging = False
        self._released.set()

    # ------------------------------------------------------------ what arrived

    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def bodies(self) -> list[Any]:
        return [r.body for r in self.received()]

    def count(self) -> int:
        with self._lock:
            return len(self._received)

    def _record(self, item: Received) -> tuple[int, bytes, bool]:
        with self._lock:
            self._received.append(item)
            self.arrived.notify_all()
            return self._status, self._answer_body, self._hanging

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                item = Received(self.path, body, dict(self.headers.items()))
                status, answer, hanging = receiver._record(item)
                if hanging:
                    receiver._released.wait()
                    return  # the caller sees a dropped connection or its own timeout
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:
                return

        return Handler
