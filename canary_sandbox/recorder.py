"""Every stored version of the objects a test or benchmark follows, read from the sandbox's own
store (past the HTTP layer, so faults aimed at the controller never blind the observer), each
timed the moment the store's watch delivered it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
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
