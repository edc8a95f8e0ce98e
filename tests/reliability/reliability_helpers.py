"""Helpers for the reliability tests: a recorder of every stored version of the VirtualService
read straight from the sandbox's store (so HTTP faults aimed at the controller never blind the
test), a controller process's readiness, the checks of a release attributed to its positions
(from every stored Rollout version), and a TCP proxy that can go silent (a dead connection).
The in-process controller is `support.controller`'s."""

from __future__ import annotations

import json
import socket
import threading
import urllib.request
from contextlib import suppress
from typing import Any

from support.polling import wait_until

from canary_sandbox.apiserver import ApiServer
from canary_sandbox.recorder import StoreRecorder, named
from canary_sandbox.stack import ControllerProcess

Obj = dict[str, Any]


def store_recorder(api: ApiServer, plural: str, name: str = "ui") -> StoreRecorder:
    """Every stored version of `plural`/`name`, read from the store (see StoreRecorder)."""
    return StoreRecorder(api.store, named(plural, name))


def stored_rollout(api: ApiServer, name: str = "ui", namespace: str = "shop") -> Obj:
    """The Rollout as stored, read past the HTTP layer (and so past injected faults)."""
    return api.store.get(("canary.dev", "rollouts"), namespace, name) or {}


def position(status: dict[str, Any]) -> tuple[str, str | None, int]:
    return status.get("phase", ""), status.get("stage"), int(status.get("stepIndex", 0))


def checks_by_position(versions: list[dict[str, Any]]) -> dict[tuple[Any, ...], list[str]]:
    """Each analysis record, attributed to the position in force when the check ran."""
    by_position: dict[tuple[Any, ...], list[str]] = {}
    previous: dict[str, Any] = {}
    seen: set[str] = set()
    for obj in versions:
        status = obj.get("status", {})
        record = status.get("lastAnalysis") or {}
        moment = record.get("time")
        if moment and moment not in seen:
            seen.add(moment)
            where = position(previous)[1:]
            by_position.setdefault(where, []).append(record["countedAs"])
        previous = status
    return by_position


def wait_until_ready(controller: ControllerProcess) -> None:
    """Until the controller's /readyz answers 200 (its Rollout cache is synced)."""

    def address() -> str | None:
        for line in controller.logs().splitlines():
            if '"metrics_addr"' in line:
                return str(json.loads(line)["metrics_addr"])
        return None

    base = wait_until(address, "the controller to start", 60, every=0.05)

    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"http://{base}/readyz", timeout=1) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    wait_until(ready, "the controller to be ready", 60, every=0.05)


class StallingProxy:
    """A TCP proxy to `target` on a free port of 127.0.0.1 that can go silent: after `stall()`
    it forwards nothing more in either direction and answers no new connection, while keeping
    every socket open, as a dead connection or a partition looks to a client (no RST, no FIN:
    only its timeouts end a request)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._stalled = threading.Event()
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = [self._listener]

    def start(self) -> StallingProxy:
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()
        return self

    def stall(self) -> None:
        self._stalled.set()

    def close(self) -> None:
        self._closed.set()
        for sock in self._sockets:
            with suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._sockets.append(client)
            if self._stalled.is_set():
                continue  # accepted, never answered
            upstream = socket.create_connection(self.target)
            self._sockets.append(upstream)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        while not self._closed.is_set():
            try:
                data = source.recv(65536)
                if not data:
                    return
                if self._stalled.is_set():
                    self._closed.wait()  # swallow it, and everything after it
                    return
                sink.sendall(data)
            except OSError:
                return
