"""Every stored version of the objects a test or benchmark follows, read from the sandbox's own
store (past the HTTP layer, so faults aimed at the controller never blind the observer), each
timed the moment the store's watch delivered it."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from canary_sandbox.store import Store, StoredEvent, WatchExpiredError


@dataclass(frozen=True)
class Recorded:
    at: float  # time.monotonic() when the store's watch delivered the write
    kind: tuple[str, str]  # (group, plural)
    obj: dict[str, Any]


def named(plural: str, name: str, namespace: str | None = None) -> Callable[[StoredEvent], bool]:
    """Writes to the objects `plural`/`name` (in `namespace`, when given)."""

    def wanted(event: StoredEvent) -> bool:
        return (
            event.storage_key[1] == plural
            and event.obj.get("metadata", {}).get("name") == name
            and namespace in (None, event.namespace)
        )

    return wanted


class StoreRecorder:
    """The writes `wanted` keeps, in resourceVersion order, from the moment it starts. A watch
    that a fault expires is reopened from where it was."""

    def __init__(self, store: Store, wanted: Callable[[StoredEvent], bool]) -> None:
        self.store, self.wanted = store, wanted
        self._recorded: list[Recorded] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._since = store.resource_version
        self._thread = threading.Thread(target=self._run, name="store-recorder", daemon=True)

    def start(self) -> StoreRecorder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def __enter__(self) -> StoreRecorder:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def recorded(self) -> list[Recorded]:
        with self._lock:
            return list(self._recorded)

    @property
    def versions(self) -> list[dict[str, Any]]:
        """The recorded objects, oldest first."""
        return [write.obj for write in self.recorded()]

    def _run(self) -> None:
        while not self._stop.is_set():
            handle = self.store.open_watch()
            try:
                self._follow(handle)
            except WatchExpiredError:
                pass  # reopen from where we were
            finally:
                self.store.close_watch(handle)
            self._stop.wait(0.05)  # a dropped watch: reopen, without spinning on a closed store

    def _follow(self, handle: Any) -> None:
        while not self._stop.is_set():
            events = self.store.wait_for_events(self._since, handle, 0.2)
            if events is None:
                return
            now = time.monotonic()
            for event in events:
                self._since = max(self._since, event.resource_version)
                if self.wanted(event):
                    with self._lock:
                        self._recorded.append(Recorded(now, event.storage_key, event.obj))


QUIET_SECONDS = 2.0


class EtcdRecorder:
    """Every stored version of the objects under `prefixes` of a real control plane's etcd
    (`/registry/<group>/<plural>/` for a custom resource), read from etcd's own watch, past
    kube-apiserver: a killed or restarted apiserver never blinds it and never makes it miss a
    revision (an apiserver watch cannot resume across a restart: the new watch cache answers
    410 for anything older than itself, and a relist skips whatever changed in between).

    etcd numbers every write with one revision counter; the watch is reopened from the revision
    after the last one seen, so a stopped and restarted etcd loses nothing either. Custom
    resources are stored as JSON: each recorded object is that JSON with its
    `metadata.resourceVersion` (the write's revision), as the apiserver would serve it.
    """

    def __init__(self, etcd_url: str, prefixes: Sequence[str], since: int | None = None) -> None:
        self.etcd_url = etcd_url.rstrip("/")
        self.prefixes = tuple(prefixes)
        self._recorded: list[Recorded] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        first = since if since is not None else self.revision() + 1
        self._next_of = dict.fromkeys(self.prefixes, first)  # the next revision each watch wants
        self.lost: str | None = None
        self._threads = [
            threading.Thread(target=self._run, args=(p,), name="etcd-recorder", daemon=True)
            for p in self.prefixes
        ]

    def start(self) -> EtcdRecorder:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2 * QUIET_SECONDS + 5)

    def __enter__(self) -> EtcdRecorder:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def revision(self) -> int:
        """etcd's current revision."""
        answer = self._post("/v3/kv/range", {"key": _b64(b"\0"), "limit": 1}, timeout=5)
        return int(json.loads(answer.read())["header"]["revision"])

    def recorded(self) -> list[Recorded]:
        """Every write recorded, in revision order; AssertionError if some were lost."""
        if self.lost is not None:
            raise AssertionError(self.lost)
        with self._lock:
            return sorted(self._recorded, key=lambda r: int(r.obj["metadata"]["resourceVersion"]))

    def versions(self, plural: str, name: str | None = None) -> list[dict[str, Any]]:
        """The recorded objects of `plural` (named `name`, when given), oldest first."""
        return [
            r.obj
            for r in self.recorded()
            if r.kind[1] == plural and (name is None or r.obj["metadata"].get("name") == name)
        ]

    def caught_up(self) -> bool:
        """Whether every watch has delivered every write etcd holds under its prefix."""
        return not any(self._changed_since(p, after) for p, after in self._next_of.items())

    def _changed_since(self, prefix: str, revision: int) -> bool:
        """Whether a key under `prefix` was written at `revision` or later."""
        key = prefix.encode()
        # keys only: etcd's `count` is taken before the revision filter
        body = {"key": _b64(key), "range_end": _b64(_prefix_end(key)), "keys_only": True,
                "min_mod_revision": revision}  # fmt: skip
        answer = json.loads(self._post("/v3/kv/range", body, timeout=5).read())
        return bool(answer.get("kvs"))

    # ------------------------------------------------------------ the watch

    def _post(self, path: str, body: dict[str, Any], timeout: float | None) -> Any:
        request = urllib.request.Request(
            f"{self.etcd_url}{path}", data=json.dumps(body).encode(), method="POST"
        )
        return urllib.request.urlopen(request, timeout=timeout)

    def _run(self, prefix: str) -> None:
        while not self._stop.is_set():
            # etcd away, or the stream cut: reopen from the next revision
            with contextlib.suppress(OSError, ValueError, http.client.HTTPException):
                self._follow(prefix)
            if self._stop.wait(0.1):
                return

    def _follow(self, prefix: str) -> None:
        key = prefix.encode()
        body = {"create_request": {"key": _b64(key), "range_end": _b64(_prefix_end(key)),
                                   "start_revision": self._next_of[prefix]}}  # fmt: skip
        # A read that waits QUIET_SECONDS ends the stream (the caller reopens it from the next
        # revision): so `stop` is noticed, and a connection to a vanished etcd is never waited on
        response = self._post("/v3/watch", body, timeout=QUIET_SECONDS)
        try:
            for line in response:
                if self._stop.is_set():
                    return
                if not line.strip():
                    continue
                result = json.loads(line).get("result") or {}
                if result.get("compact_revision"):
                    self._skip_compacted(prefix, int(result["compact_revision"]))
                    return
                self._add(prefix, result.get("events") or [])
        finally:
            response.close()

    def _skip_compacted(self, prefix: str, compacted: int) -> None:
        """Reopened from a revision etcd has compacted away: harmless when no key under the
        prefix changed since (the watch was quiet), else revisions are lost for good. (A key
        deleted in between would go unnoticed: deletions are not what the recorder is for.)"""
        if self._changed_since(prefix, self._next_of[prefix]):
            self.lost = (
                f"etcd compacted revision {self._next_of[prefix]} of {prefix} before the "
                f"recorder read it (compacted up to {compacted})"
            )
            self._stop.set()
        else:
            self._next_of[prefix] = compacted

    def _add(self, prefix: str, events: list[dict[str, Any]]) -> None:
        now = time.monotonic()
        for event in events:
            kv = event["kv"]
            revision = int(kv["mod_revision"])
            self._next_of[prefix] = max(self._next_of[prefix], revision + 1)
            if event.get("type") == "DELETE":
                continue
            obj = json.loads(base64.b64decode(kv["value"]))
            obj.setdefault("metadata", {})["resourceVersion"] = str(revision)
            parts = base64.b64decode(kv["key"]).decode().split("/")  # /registry/g/plural/ns/n
            with self._lock:
                self._recorded.append(Recorded(now, (parts[2], parts[3]), obj))


def custom_resource_prefix(group: str, plural: str, namespace: str | None = None) -> str:
    """Where kube-apiserver keeps a custom resource's objects in etcd."""
    return f"/registry/{group}/{plural}/" + (f"{namespace}/" if namespace else "")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _prefix_end(key: bytes) -> bytes:
    """etcd's range end for every key starting with `key`."""
    return key[:-1] + bytes([key[-1] + 1])
