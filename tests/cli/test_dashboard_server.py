"""`canary dashboard`'s HTTP API, served in-process against each API server (the `sandbox`
fixture: the sandbox and the real control plane, as every online CLI test).

Aspects: the list and one Rollout's detail as JSON; the page and its static files are served
(and nothing outside static/); the Host check (DNS rebinding) and the POST header (CSRF), both
refused before anything is written; a POST abort writes the same request annotation `canary
abort` writes and answers with the controller's answer, as the CLI prints it; the live stream
sends the list, then a change; an API that stops answering is an `api-error` on the stream,
and `api-ok` when it is back (sandbox only: it takes the API offline).
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any, cast

import pytest
from test_online_sandbox import Sandbox, sandbox_fixture, status, until  # noqa: F401

from canary.cli.dashboard.server import Dashboard, DashboardServer, start_in_thread
from canary.cli.session import Session, Target, open_session
from canary.core.model import REQUEST_ANNOTATION

Obj = dict[str, Any]


@pytest.fixture
def dashboard(sandbox: Sandbox) -> Iterator[DashboardServer]:
    session = open_session(Target(str(sandbox.kubeconfig), None, "shop"))
    server = start_in_thread(session)
    try:
        yield server
    finally:
        server.close()


def call(
    server: DashboardServer,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.putrequest(method, path, skip_host=True)
        sent = {"Host": f"127.0.0.1:{server.port}", **(headers or {})}
        if body is not None:
            sent["Content-Length"] = str(len(body))
        for name, value in sent.items():
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def get_json(server: DashboardServer, path: str, **headers: str) -> tuple[int, Obj]:
    code, data = call(server, "GET", path, headers)
    return code, json.loads(data)


def listed(server: DashboardServer) -> list[Obj]:
    code, body = get_json(server, "/api/rollouts")
    assert code == 200
    rows: list[Obj] = body["rollouts"]
    return rows


def test_the_list_and_the_detail(sandbox: Sandbox, dashboard: DashboardServer) -> None:
    sandbox.create_rollout(with_status=status("Progressing", stage="split", canaryWeight=25))
    until(lambda: [r["key"] for r in listed(dashboard)] == ["shop/ui"])
    until(lambda: listed(dashboard)[0]["stage"] == "split")
    row = listed(dashboard)[0]
    assert (row["phase"], row["canaryWeight"], row["canaryVersion"]) == ("Progressing", 25, "v2")

    code, detail = get_json(dashboard, "/api/rollouts/shop/ui")
    assert code == 200
    assert detail["traffic"] == {"stable": 75, "canary": 25, "mirror": 0.0, "headerRoute": False}
    assert detail["charts"]["traffic"]["series"][0]["points"][-1][1] == 25
    assert detail["apiError"] is None
    assert isinstance(detail["events"], list)

    code, missing = get_json(dashboard, "/api/rollouts/shop/nope")
    assert code == 404
    assert "not on this dashboard" in missing["error"]


def test_the_page_and_its_files(dashboard: DashboardServer) -> None:
    code, page = call(dashboard, "GET", "/")
    assert code == 200
    assert b'id="api-error"' in page
    for name in ("app.js", "charts.js", "style.css"):
        code, data = call(dashboard, "GET", f"/static/{name}")
        assert code == 200, name
        assert data
    for path in ("/static/../server.py", "/static/server.py", "/static/%2e%2e/state.py"):
        assert call(dashboard, "GET", path)[0] == 404, path


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8765", "127.0.0.1:1", ""])
def test_a_foreign_host_is_refused(dashboard: DashboardServer, host: str) -> None:
    code, body = get_json(dashboard, "/api/rollouts", Host=host)
    assert code == 403
    assert "Host" in body["error"]


def test_loopback_names_are_this_server(dashboard: DashboardServer) -> None:
    for host in (f"localhost:{dashboard.port}", f"127.0.0.1:{dashboard.port}"):
        assert get_json(dashboard, "/api/rollouts", Host=host)[0] == 200


def test_a_post_without_the_header_or_from_a_foreign_host_writes_nothing(
    sandbox: Sandbox, dashboard: DashboardServer
) -> None:
    sandbox.create_rollout(with_status=status("Progressing", stage="split"))
    for headers in ({}, {"X-Canary-Dashboard": "1", "Host": "evil.example"}):
        code, _ = call(dashboard, "POST", "/api/rollouts/shop/ui/abort", headers, b"{}")
        assert code == 403
    annotations = sandbox.rollout()["metadata"].get("annotations") or {}
    assert REQUEST_ANNOTATION not in annotations


def test_abort_writes_the_clis_request_and_answers_with_the_controllers_answer(
    sandbox: Sandbox, dashboard: DashboardServer
) -> None:
    before = sandbox.create_rollout(with_status=status("Progressing", stage="split"))
    sandbox.fake_controller(lambda action: f"{action}ed: all traffic back to stable")
    code, data = call(
        dashboard, "POST", "/api/rollouts/shop/ui/abort", {"X-Canary-Dashboard": "1"}, b"{}"
    )
    answer = json.loads(data)
    assert code == 200, answer
    assert answer == {
        "ok": True,
        "code": 0,
        "message": "Rollout shop/ui: aborted: all traffic back to stable",
    }
    after = sandbox.rollout()
    request = json.loads(after["metadata"]["annotations"][REQUEST_ANNOTATION])
    assert request["action"] == "abort"
    assert after["status"]["handledRequest"]["id"] == request["id"]
    assert after["spec"] == before["spec"]


def test_an_unknown_action_or_namespace_is_refused(
    sandbox: Sandbox, dashboard: DashboardServer
) -> None:
    sandbox.create_rollout()
    header = {"X-Canary-Dashboard": "1"}
    assert call(dashboard, "POST", "/api/rollouts/shop/ui/delete", header, b"")[0] == 404
    assert call(dashboard, "POST", "/api/rollouts/other/ui/abort", header, b"")[0] == 404
    assert REQUEST_ANNOTATION not in (sandbox.rollout()["metadata"].get("annotations") or {})


class Stream:
    """The server-sent events of /api/stream, one (event, data) at a time."""

    def __init__(self, server: DashboardServer) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        self.connection.request("GET", "/api/stream")
        self.response = self.connection.getresponse()
        assert self.response.status == 200
        assert self.response.headers["Content-Type"] == "text/event-stream"

    def next(self) -> tuple[str, Obj]:
        event, data = "", ""
        while True:
            line = self.response.readline().decode().rstrip("\n")
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = line.removeprefix("data: ")
            elif not line and event:
                return event, json.loads(data)

    def until(self, wanted: str, check: Any = lambda data: True) -> Obj:
        for _ in range(200):
            event, data = self.next()
            if event == wanted and check(data):
                return data
        raise AssertionError(f"no {wanted} event")

    def close(self) -> None:
        self.connection.close()


def test_the_stream_sends_the_list_then_changes(
    sandbox: Sandbox, dashboard: DashboardServer
) -> None:
    stream = Stream(dashboard)
    try:
        first = stream.until("change")
        assert first["changed"] is None
        sandbox.create_rollout(with_status=status("Progressing", stage="mirror"))
        stream.until("change", lambda d: d["changed"] == "shop/ui")
        sandbox.set_status({"stage": "headerCanary"})
        changed = stream.until(
            "change", lambda d: [r["stage"] for r in d["rollouts"]] == ["headerCanary"]
        )
        assert changed["changed"] == "shop/ui"
    finally:
        stream.close()


@pytest.mark.sandbox_only  # takes the API offline: the real one is the whole session's
def test_an_api_outage_is_an_error_event_then_ok(
    sandbox: Sandbox, dashboard: DashboardServer
) -> None:
    sandbox.create_rollout(with_status=status("Progressing", stage="split"))
    until(lambda: len(listed(dashboard)) == 1)
    stream = Stream(dashboard)
    try:
        sandbox.sandbox.faults.offline = True
        error = stream.until("api-error")
        assert error["message"]
        code, detail = get_json(dashboard, "/api/rollouts/shop/ui")  # the last data, still
        assert code == 200
        assert detail["apiError"] == error["message"]
        assert detail["stage"] == "split"
        sandbox.sandbox.faults.offline = False
        stream.until("api-ok")
        assert get_json(dashboard, "/api/rollouts/shop/ui")[1]["apiError"] is None
    finally:
        stream.close()


def rollout_at(version: str, phase: str) -> Obj:
    return {
        "metadata": {"namespace": "shop", "name": "ui", "resourceVersion": version},
        "status": {"phase": phase},
    }


def test_a_relist_keeps_what_the_watch_brought_and_takes_what_it_missed() -> None:
    board = Dashboard(cast(Session, None))  # the session is only used to reach the API
    changes = board.subscribe()
    board.apply("MODIFIED", rollout_at("12", "Progressing"))
    changes.get_nowait()
    board.replace_all([rollout_at("10", "Pending")])  # a list older than the watch
    assert board.rollouts["shop/ui"]["status"]["phase"] == "Progressing" and changes.empty()
    board.replace_all([rollout_at("12", "Progressing")])  # nothing new
    assert changes.empty()
    board.replace_all([rollout_at("15", "Succeeded")])  # the watch was down and missed it
    assert board.rollouts["shop/ui"]["status"]["phase"] == "Succeeded"
    assert changes.get_nowait()[0] == "change"
    board.replace_all([])
    assert board.rollouts == {} and changes.get_nowait()[0] == "change"
