"""The dashboard's web server: the page, a JSON API and a live stream, on 127.0.0.1 by default.

One watcher thread follows every Rollout the session may see (`get.rollout_changes`) and keeps
the last version of each, with a `state.Timeline` of how it changed; a prober lists them every
few seconds, which both notices an API that stopped answering (the watch itself waits through
outages silently) and drops Rollouts deleted while the watch was away. Pages subscribe to
`GET /api/stream` (server-sent events); while the API is unreachable they get an `api-error`
event and keep showing the last data, then `api-ok` when it is back.

Routes: `GET /` and `/static/<file>`; `GET /api/rollouts`; `GET /api/rollouts/<ns>/<name>`
(the detail, with its Events and, with `--prometheus`, each gate's line over the release from
`ranges`); `GET /api/stream`; `POST /api/rollouts/<ns>/<name>/<action>`
(promote, pause, resume, abort, retry; the same request annotation as `canary <action>`,
through `requests.send_request`), answered with the controller's answer as JSON.

Defences for a server on a person's machine with their credentials: requests whose Host is not
this server's address (DNS rebinding) get 403, and a POST without the `X-Canary-Dashboard: 1`
header (which no cross-site form can send without a preflight this server never allows) too.
"""

from __future__ import annotations

import json
import queue
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from canary.cli import get as getting
from canary.cli.dashboard import state
from canary.cli.errors import UserError, first_line
from canary.cli.requests import RequestOptions, send_request
from canary.cli.session import Session, explained
from canary.common.pacing import Backoff
from canary.core.objects import Obj, is_newer, key_of, resource_version
from canary.kube.port import KubeError

if TYPE_CHECKING:
    from canary.cli.dashboard.ranges import RangeReader

DEFAULT_ADDRESS, DEFAULT_PORT = "127.0.0.1", 8765
CSRF_HEADER = "X-Canary-Dashboard"
PROBE_SECONDS = 2.0
WATCH_RETRY_BASE, WATCH_RETRY_CAP = 0.5, 10.0  # seconds, for a watch that failed
KEEPALIVE_SECONDS = 15.0
REQUEST_TIMEOUT = timedelta(seconds=10)
ACTIONS = frozenset({*state.ACTIONS, "promote-full"})
STATIC_NAME = re.compile(r"^[a-z0-9_-]+\.(html|js|css|svg|png)$")
CONTENT_TYPES = {
    "html": "text/html; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "svg": "image/svg+xml",
    "png": "image/png",
}
LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})


def now_millis() -> int:
    return int(time.time() * 1000)


@dataclass
class Answer:
    status: int
    body: Obj


class Dashboard:
    """What the server knows: the Rollouts, their timelines, whether the API answers, and the
    pages listening for changes."""

    def __init__(
        self,
        session: Session,
        clock: Callable[[], int] = now_millis,
        ranges: RangeReader | None = None,
    ) -> None:
        self.session = session
        self.clock = clock
        self.ranges = ranges  # --prometheus: each gate's line over the release
        self.lock = threading.Lock()
        self.rollouts: dict[str, Obj] = {}
        self.timelines: dict[str, state.Timeline] = {}
        self.events: dict[str, list[Obj]] = {}
        self.error: str | None = None
        self.subscribers: list[queue.Queue[tuple[str, Obj]]] = []
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    # ------------------------------------------------------------ following the cluster

    def start(self) -> Dashboard:
        """The first list (a UserError when the API cannot be read at all), then the watcher
        and the prober threads."""
        self.replace_all(self.list_rollouts())
        for work in (self._watch_loop, self._probe_loop):
            thread = threading.Thread(target=work, daemon=True, name=f"dashboard{work.__name__}")
            thread.start()
            self.threads.append(thread)
        return self

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=5)

    def list_rollouts(self) -> list[Obj]:
        with explained(self.session, "list"):
            return self.session.cluster.list_rollouts(getting.list_namespace(self.session))

    def _watch_loop(self) -> None:
        backoff = Backoff(WATCH_RETRY_BASE, WATCH_RETRY_CAP)
        while not self.stop.is_set():
            try:
                for event_type, obj in getting.rollout_changes(self.session, None, self.stop):
                    if obj is not None:
                        self.apply(event_type, obj)
                    backoff.reset()
            except (UserError, KubeError, OSError) as error:
                self.set_error(first_line(error))
                self.stop.wait(backoff.next_delay())

    def _probe_loop(self) -> None:
        while not self.stop.wait(PROBE_SECONDS):
            try:
                listed = self.list_rollouts()
            except UserError as error:
                self.set_error(str(error))
                continue
            self.replace_all(listed)
            self.set_error(None)

    def apply(self, event_type: str, obj: Obj) -> None:
        key = key_of(obj)
        with self.lock:
            if event_type == "DELETED":
                self.rollouts.pop(key, None)
                self.timelines.pop(key, None)
            else:
                self.rollouts[key] = obj
                state.observe(self.timelines.setdefault(key, state.Timeline()), obj, self.clock())
        self.publish("change", {"changed": key})

    def replace_all(self, listed: list[Obj]) -> None:
        """The listed Rollouts become the known ones, except where the watch already brought
        a version at least as recent (the list may be older than the watch, or newer while
        the watch is down)."""
        fresh = {key_of(r): r for r in listed}
        with self.lock:
            gone = set(self.rollouts) - set(fresh)
            for key in gone:
                self.rollouts.pop(key, None)
                self.timelines.pop(key, None)
            updated = [obj for key, obj in fresh.items() if _replaces(obj, self.rollouts.get(key))]
            for obj in updated:
                key = key_of(obj)
                self.rollouts[key] = obj
                state.observe(self.timelines.setdefault(key, state.Timeline()), obj, self.clock())
        if gone or updated:
            self.publish("change", {"changed": None})

    def set_error(self, message: str | None) -> None:
        with self.lock:
            if message == self.error:
                return
            self.error = message
        if message is None:
            self.publish("api-ok", {})
        else:
            self.publish("api-error", {"message": message})

    # ------------------------------------------------------------ the pages

    def subscribe(self) -> queue.Queue[tuple[str, Obj]]:
        subscriber: queue.Queue[tuple[str, Obj]] = queue.Queue(maxsize=1000)
        with self.lock:
            self.subscribers.append(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: queue.Queue[tuple[str, Obj]]) -> None:
        with self.lock:
            if subscriber in self.subscribers:
                self.subscribers.remove(subscriber)

    def publish(self, event: str, data: Obj) -> None:
        with self.lock:
            subscribers = list(self.subscribers)
            if event == "change":
                data = {**data, "rollouts": state.list_rows(self.rollouts.values())}
        for subscriber in subscribers:
            try:
                subscriber.put_nowait((event, data))
            except queue.Full:  # a page that stopped reading: it reloads on reconnect
                self.unsubscribe(subscriber)

    def snapshot(self) -> Obj:
        with self.lock:
            return {"rollouts": state.list_rows(self.rollouts.values()), "error": self.error}

    def session_for(self, namespace: str) -> Session | None:
        """The session aimed at `namespace`, or None when this dashboard does not show it."""
        if not self.session.all_namespaces and namespace != self.session.namespace:
            return None
        context = replace(self.session.context, namespace=namespace)
        return replace(self.session, context=context, all_namespaces=False)

    def detail(self, namespace: str, name: str) -> Answer:
        key = f"{namespace}/{name}"
        with self.lock:
            rollout, error = self.rollouts.get(key), self.error
            timeline = self.timelines.get(key, state.Timeline())
        session = self.session_for(namespace)
        if rollout is None or session is None:
            return Answer(404, state.error_payload(f"Rollout {key} is not on this dashboard"))
        if error is None:
            self.events[key] = getting.read_events(session, rollout)
        lines = self.ranges.read(rollout) if self.ranges is not None else None
        body = state.detail(rollout, self.events.get(key, []), timeline, lines)
        return Answer(200, {**body, "apiError": error})

    def act(self, namespace: str, name: str, action: str) -> Answer:
        from canary.core.requests import Action

        session = self.session_for(namespace)
        if action not in ACTIONS:
            return Answer(404, {"ok": False, "message": f"unknown action {action!r}"})
        if session is None:
            return Answer(404, {"ok": False, "message": f"namespace {namespace} is not shown"})
        options = RequestOptions(timeout=REQUEST_TIMEOUT, wait=True)
        try:
            outcome = send_request(session, name, Action(action), options)
        except UserError as error:
            return Answer(502 if error.transient else 400, {"ok": False, "message": str(error)})
        return Answer(
            200, {"ok": outcome.code == 0, "code": outcome.code, "message": outcome.message}
        )


# ---------------------------------------------------------------- HTTP


class DashboardServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, dashboard: Dashboard, address: str, port: int) -> None:
        self.dashboard = dashboard
        super().__init__((address, port), Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        host = str(self.server_address[0])
        return f"http://{host}:{self.port}/"

    def allowed_host(self, header: str | None) -> bool:
        """The Host header names this server (its address or a loopback name, and its port)."""
        if not header:
            return False
        parsed = urlsplit(f"//{header}")
        host = (parsed.hostname or "").lower()
        try:
            port = parsed.port
        except ValueError:
            return False
        names = {str(self.server_address[0]).lower()}
        if names & {"127.0.0.1", "localhost", "::1"}:
            names |= {"localhost", "127.0.0.1", "::1"}
        return host in names and port in (None, self.port)

    def close(self) -> None:
        """Stop serving (from another thread than serve_forever's), the watch and the prober."""
        self.dashboard.stop.set()
        self.shutdown()
        self.dashboard.close()
        self.server_close()


class Handler(BaseHTTPRequestHandler):
    server: DashboardServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the dashboard prints its URL and nothing per request."""

    # ------------------------------------------------------------ dispatch

    def do_GET(self) -> None:
        if not self._host_ok():
            return
        path = urlsplit(self.path).path
        dashboard = self.server.dashboard
        if path in ("/", "/index.html"):
            self._static("index.html")
        elif path.startswith("/static/"):
            self._static(path.removeprefix("/static/"))
        elif path == "/api/rollouts":
            self._json(200, dashboard.snapshot())
        elif path == "/api/stream":
            self._stream()
        elif (parts := _rollout_path(path)) is not None and len(parts) == 2:
            answer = dashboard.detail(*parts)
            self._json(answer.status, answer.body)
        else:
            self._json(404, state.error_payload(f"no such page: {path}"))

    def do_POST(self) -> None:
        if not self._host_ok():
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(min(length, 65536))
        if self.headers.get(CSRF_HEADER) != "1":
            message = f"a POST needs the header {CSRF_HEADER}: 1 (the dashboard's page sends it)"
            self._json(403, state.error_payload(message))
            return
        parts = _rollout_path(urlsplit(self.path).path)
        if parts is None or len(parts) != 3:
            self._json(404, state.error_payload("POST /api/rollouts/<ns>/<name>/<action>"))
            return
        answer = self.server.dashboard.act(*parts)
        self._json(answer.status, answer.body)

    # ------------------------------------------------------------ answers

    def _host_ok(self) -> bool:
        if self.server.allowed_host(self.headers.get("Host")):
            return True
        self._json(403, state.error_payload("this Host is not the dashboard's address"))
        return False

    def _json(self, status: int, body: Obj) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def _static(self, name: str) -> None:
        match = STATIC_NAME.match(name)
        resource = resources.files("canary.cli.dashboard") / "static" / name
        if match is None or not resource.is_file():
            self._json(404, state.error_payload(f"no such file: {name}"))
            return
        data = resource.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPES[match.group(1)])
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Content-Security-Policy", "default-src 'self'; img-src 'self' data:")
        self.end_headers()
        self.wfile.write(data)

    def _stream(self) -> None:
        dashboard = self.server.dashboard
        subscriber = dashboard.subscribe()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            snapshot = dashboard.snapshot()
            self._event("change", {"changed": None, "rollouts": snapshot["rollouts"]})
            if snapshot["error"] is not None:
                self._event("api-error", {"message": snapshot["error"]})
            quiet = 0.0
            while not dashboard.stop.is_set():
                try:
                    event, data = subscriber.get(timeout=1.0)
                except queue.Empty:
                    quiet += 1.0
                    if quiet >= KEEPALIVE_SECONDS:
                        self.wfile.write(b": keepalive\n\n")
                        self.wfile.flush()
                        quiet = 0.0
                    continue
                quiet = 0.0
                self._event(event, data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the page went away
        finally:
            dashboard.unsubscribe(subscriber)

    def _event(self, event: str, data: Obj) -> None:
        self.wfile.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
        self.wfile.flush()


def _rollout_path(path: str) -> list[str] | None:
    """`/api/rollouts/<ns>/<name>[/<action>]` as its parts; None for any other path."""
    if not path.startswith("/api/rollouts/"):
        return None
    parts = path.removeprefix("/api/rollouts/").split("/")
    if len(parts) not in (2, 3) or not all(re.fullmatch(r"[a-z0-9.-]+", p) for p in parts):
        return None
    return parts


def serve(
    session: Session,
    address: str = DEFAULT_ADDRESS,
    port: int = DEFAULT_PORT,
    say: Callable[[str], None] = print,
    prometheus: str | None = None,
) -> None:
    """Serve until interrupted (Ctrl-C); with `prometheus`, gate lines from its range data."""
    dashboard = Dashboard(session, ranges=_range_reader(prometheus)).start()
    try:
        server = DashboardServer(dashboard, address, port)
    except OSError as error:
        dashboard.close()
        raise UserError(f"cannot listen on {address}:{port}: {error.strerror}") from None
    say(f"canary dashboard on {server.url} (Ctrl-C stops it)")
    try:
        server.serve_forever()
    finally:
        dashboard.close()
        server.server_close()


def start_in_thread(
    session: Session, address: str = DEFAULT_ADDRESS, port: int = 0, prometheus: str | None = None
) -> DashboardServer:
    """A running server in a background thread (for tests and scripts): `.url`, `.close()`."""
    dashboard = Dashboard(session, ranges=_range_reader(prometheus)).start()
    server = DashboardServer(dashboard, address, port)
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="dashboard-http")
    thread.start()
    return server


def _replaces(listed: Obj, known: Obj | None) -> bool:
    """Whether a listed Rollout is news: unknown, or a later version than the one held."""
    if known is None:
        return True
    return resource_version(listed) != resource_version(known) and is_newer(listed, known)


def _range_reader(prometheus: str | None) -> RangeReader | None:
    if prometheus is None:
        return None
    from pydantic import ValidationError

    from canary.cli.dashboard.ranges import RangeReader
    from canary.core.spec import PrometheusRef

    try:  # the URL rule of spec.prometheus.url, which the lines are read with
        PrometheusRef(url=prometheus)
    except ValidationError:
        raise UserError(
            f"--prometheus {prometheus} is not an http(s) URL: give e.g. http://127.0.0.1:9090"
        ) from None

    return RangeReader(prometheus)
