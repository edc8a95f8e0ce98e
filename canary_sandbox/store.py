"""Thread-safe object storage with one global resourceVersion counter and a watch history.

Like etcd behind the real API server: every write gets the next resourceVersion and produces one
event; the last `history` events are kept so watches can resume, and a watch that asks for a
resourceVersion older than that gets "410 Expired".
"""

from __future__ import annotations

import copy
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from canary.core.objects import Obj

StorageKey = tuple[str, str]
ObjectKey = tuple[str, str]


@dataclass(frozen=True)
class StoredEvent:
    type: str  # ADDED | MODIFIED | DELETED
    storage_key: StorageKey
    namespace: str
    obj: Obj
    old: Obj | None
    resource_version: int


class WatchExpiredError(Exception):
    """The requested resourceVersion is older than the kept history."""


@dataclass(eq=False)
class WatchHandle:
    """One open watch; faults can ask it to end (`dropped`) or to report 410 (`expired`)."""

    dropped: bool = False
    expired: bool = False
    opened_at: float = field(default_factory=time.monotonic)


class Store:
    def __init__(self, history: int = 1000) -> None:
        if history < 1:
            raise ValueError("history must keep at least one event")
        self.lock = threading.RLock()
        self._changed = threading.Condition(self.lock)
        self._resource_version = 0
        self._objects: dict[StorageKey, dict[ObjectKey, Obj]] = {}
        self._history: deque[StoredEvent] = deque(maxlen=history)
        self._compacted_through = 0
        self._watches: set[WatchHandle] = set()
        self._closed = False

    @property
    def resource_version(self) -> int:
        with self.lock:
            return self._resource_version

    @property
    def compacted_through(self) -> int:
        """Events up to and including this resourceVersion are no longer in the history."""
        with self.lock:
            return self._compacted_through

    def get(self, storage_key: StorageKey, namespace: str, name: str) -> Obj | None:
        with self.lock:
            found = self._objects.get(storage_key, {}).get((namespace, name))
            return copy.deepcopy(found) if found is not None else None

    def list_objects(self, storage_key: StorageKey, namespace: str | None = None) -> list[Obj]:
        with self.lock:
            bucket = self._objects.get(storage_key, {})
            return [
                copy.deepcopy(bucket[key])
                for key in sorted(bucket)
                if namespace is None or key[0] == namespace
            ]

    def namespaces_in_use(self, namespace: str) -> list[tuple[StorageKey, Obj]]:
        with self.lock:
            return [
                (storage_key, copy.deepcopy(obj))
                for storage_key, bucket in self._objects.items()
                for (ns, _name), obj in bucket.items()
                if ns == namespace
            ]

    def write(self, storage_key: StorageKey, obj: Obj, old: Obj | None) -> Obj:
        """Store `obj` with the next resourceVersion; ADDED if `old` is None, else MODIFIED."""
        with self.lock:
            stored = self._stamp(obj)
            namespace, name = _object_key(stored)
            self._objects.setdefault(storage_key, {})[(namespace, name)] = stored
            event_type = "ADDED" if old is None else "MODIFIED"
            self._record(event_type, storage_key, stored, old)
            return copy.deepcopy(stored)

    def remove(self, storage_key: StorageKey, obj: Obj) -> Obj:
        """Delete the object; the DELETED event carries its last state at a new resourceVersion."""
        with self.lock:
            namespace, name = _object_key(obj)
            self._objects.get(storage_key, {}).pop((namespace, name), None)
            final = self._stamp(obj)
            self._record("DELETED", storage_key, final, obj)
            return copy.deepcopy(final)

    def _stamp(self, obj: Obj) -> Obj:
        self._resource_version += 1
        stamped = copy.deepcopy(obj)
        stamped.setdefault("metadata", {})["resourceVersion"] = str(self._resource_version)
        return stamped

    def _record(self, event_type: str, key: StorageKey, obj: Obj, old: Obj | None) -> None:
        if len(self._history) == self._history.maxlen:
            self._compacted_through = self._history[0].resource_version
        namespace = obj.get("metadata", {}).get("namespace", "")
        event = StoredEvent(event_type, key, namespace, obj, old, self._resource_version)
        self._history.append(event)
        self._changed.notify_all()

    # --- watches -------------------------------------------------------------------------

    def open_watch(self) -> WatchHandle:
        with self.lock:
            handle = WatchHandle()
            self._watches.add(handle)
            return handle

    def close_watch(self, handle: WatchHandle) -> None:
        with self.lock:
            self._watches.discard(handle)

    def open_watch_count(self) -> int:
        with self.lock:
            return len(self._watches)

    def check_not_expired(self, since: int) -> None:
        with self.lock:
            if since < self._compacted_through:
                raise WatchExpiredError

    def wait_for_events(
        self, since: int, handle: WatchHandle, timeout: float
    ) -> list[StoredEvent] | None:
        """Events after `since`, waiting up to `timeout` seconds for the first one.

        Returns None when the watch must end (dropped, or the server is stopping); raises
        WatchExpiredError when the history no longer reaches back to `since`.
        """
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                if handle.dropped or self._closed:
                    return None
                if handle.expired or since < self._compacted_through:
                    raise WatchExpiredError
                if self._resource_version > since:
                    return self._events_after(since)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self._changed.wait(remaining)

    def _events_after(self, since: int) -> list[StoredEvent]:
        """The history's events after `since`, read from the newest end (usually a few)."""
        newer = []
        for event in reversed(self._history):
            if event.resource_version <= since:
                break
            newer.append(event)
        return newer[::-1]

    def drop_watches(self) -> None:
        with self.lock:
            for handle in self._watches:
                handle.dropped = True
            self._changed.notify_all()

    def expire_watches(self) -> None:
        with self.lock:
            for handle in self._watches:
                handle.expired = True
            self._changed.notify_all()

    def close(self) -> None:
        with self.lock:
            self._closed = True
            self._changed.notify_all()


def _object_key(obj: Obj) -> ObjectKey:
    metadata = obj.get("metadata", {})
    return (metadata.get("namespace", ""), metadata["name"])
