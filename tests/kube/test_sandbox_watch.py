"""Sandbox API server, watches through `kubernetes.watch.Watch().stream(...)` over HTTP.

Covers: synthetic ADDED for current objects, events after a resourceVersion, resuming from the
last seen resourceVersion, 410 Expired once the history has rolled over, selectors (objects
leaving a selector are DELETED for that watch), finalizer deletions, and the watch faults.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException
from sandbox_helpers import WIDGET_CRD, WIDGET_GROUP, WIDGET_PLURAL, WIDGET_VERSION, widget

from canary_sandbox.apiserver import ApiServer

G, V, P, NS = WIDGET_GROUP, WIDGET_VERSION, WIDGET_PLURAL, "default"
SAFETY_TIMEOUT = 10  # seconds; only bounds a broken test, never asserted on


def events(
    custom: client.CustomObjectsApi, count: int, **kwargs: Any
) -> list[tuple[str, str, Any]]:
    """The first `count` events of a watch as (type, name, spec or status object)."""
    watcher = watch.Watch()
    seen: list[tuple[str, str, Any]] = []
    kwargs.setdefault("timeout_seconds", SAFETY_TIMEOUT)
    for event in watcher.stream(custom.list_namespaced_custom_object, G, V, NS, P, **kwargs):
        obj = event["object"]
        seen.append((event["type"], obj["metadata"]["name"], obj.get("spec", {}).get("weight")))
        if len(seen) == count:
            watcher.stop()
    return seen


class BackgroundWatch:
    """A watch running in a thread, so a test can write while it listens."""

    def __init__(self, custom: client.CustomObjectsApi, **kwargs: Any) -> None:
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.error: Exception | None = None
        self.finished = threading.Event()
        self._watch = watch.Watch()
        kwargs.setdefault("timeout_seconds", SAFETY_TIMEOUT)
        self._thread = threading.Thread(target=self._run, args=(custom, kwargs), daemon=True)
        self._thread.start()

    def _run(self, custom: client.CustomObjectsApi, kwargs: dict[str, Any]) -> None:
        try:
            for event in self._watch.stream(
                custom.list_namespaced_custom_object, G, V, NS, P, **kwargs
            ):
                self.events.put(event)
        except Exception as error:  # surfaced to the test through `self.error`
            self.error = error
        finally:
            self.finished.set()

    def next(self) -> tuple[str, str]:
        event = self.events.get(timeout=SAFETY_TIMEOUT)
        return event["type"], event["object"]["metadata"]["name"]

    def stop(self) -> None:
        self._watch.stop()
        self.finished.wait(SAFETY_TIMEOUT)


def rv(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["resourceVersion"])


def test_watch_without_version_starts_with_current_objects(custom: client.CustomObjectsApi) -> None:
    custom.create_namespaced_custom_object(G, V, NS, P, widget("a", weight=1))
    custom.create_namespaced_custom_object(G, V, NS, P, widget("b", weight=2))
    assert events(custom, 2) == [("ADDED", "a", 1), ("ADDED", "b", 2)]


def test_watch_from_resource_version_sends_later_events_in_order(
    custom: client.CustomObjectsApi,
) -> None:
    first = custom.create_namespaced_custom_object(G, V, NS, P, widget("a", weight=1))
    custom.create_namespaced_custom_object(G, V, NS, P, widget("b", weight=2))
    custom.patch_namespaced_custom_object(G, V, NS, P, "a", {"spec": {"weight": 3}})
    custom.delete_namespaced_custom_object(G, V, NS, P, "b")
    assert events(custom, 3, resource_version=rv(first)) == [
        ("ADDED", "b", 2),
        ("MODIFIED", "a", 3),
        ("DELETED", "b", 2),
    ]


def test_live_events_and_resume_from_last_seen_version(custom: client.CustomObjectsApi) -> None:
    listed = custom.list_namespaced_custom_object(G, V, NS, P)
    background = BackgroundWatch(custom, resource_version=rv(listed))
    custom.create_namespaced_custom_object(G, V, NS, P, widget("a"))
    assert background.next() == ("ADDED", "a")
    patched = custom.patch_namespaced_custom_object(G, V, NS, P, "a", {"spec": {"weight": 5}})
    assert background.next() == ("MODIFIED", "a")
    background.stop()
    custom.patch_namespaced_custom_object(G, V, NS, P, "a", {"spec": {"weight": 6}})
    assert events(custom, 1, resource_version=rv(patched)) == [("MODIFIED", "a", 6)]


def test_watch_from_version_older_than_history_is_expired(kubeconfig: Any) -> None:
    with ApiServer(history=5) as small:
        small.install_crds([WIDGET_CRD])
        configuration = client.Configuration()
        config.load_kube_config(
            config_file=str(small.write_kubeconfig(kubeconfig.parent / "small")),
            client_configuration=configuration,
        )
        with client.ApiClient(configuration) as api:
            custom = client.CustomObjectsApi(api)
            first = custom.create_namespaced_custom_object(G, V, NS, P, widget("a"))
            for weight in range(10):
                custom.patch_namespaced_custom_object(
                    G, V, NS, P, "a", {"spec": {"weight": weight}}
                )
            with pytest.raises(ApiException) as caught:
                events(custom, 1, resource_version=rv(first))
            assert caught.value.status == 410
            assert "too old resource version" in str(caught.value.reason)
            recent = custom.get_namespaced_custom_object(G, V, NS, P, "a")
            custom.patch_namespaced_custom_object(G, V, NS, P, "a", {"spec": {"weight": 42}})
            assert events(custom, 1, resource_version=rv(recent)) == [("MODIFIED", "a", 42)]


def test_objects_leaving_a_label_selector_are_deleted_for_that_watch(
    custom: client.CustomObjectsApi,
) -> None:
    body = widget("a")
    body["metadata"]["labels"] = {"track": "canary"}
    created = custom.create_namespaced_custom_object(G, V, NS, P, body)
    custom.patch_namespaced_custom_object(
        G, V, NS, P, "a", {"metadata": {"labels": {"track": "stable"}}}
    )
    custom.patch_namespaced_custom_object(
        G, V, NS, P, "a", {"metadata": {"labels": {"track": "canary"}}}
    )
    seen = events(custom, 2, resource_version=rv(created), label_selector="track=canary")
    assert [event_type for event_type, _, _ in seen] == ["DELETED", "ADDED"]


def test_field_selector_watch_sees_only_its_object(custom: client.CustomObjectsApi) -> None:
    listed = custom.list_namespaced_custom_object(G, V, NS, P)
    custom.create_namespaced_custom_object(G, V, NS, P, widget("a"))
    custom.create_namespaced_custom_object(G, V, NS, P, widget("b"))
    seen = events(custom, 1, resource_version=rv(listed), field_selector="metadata.name=b")
    assert seen == [("ADDED", "b", None)]


def test_finalized_deletion_ends_with_deleted_event(custom: client.CustomObjectsApi) -> None:
    body = widget("a")
    body["metadata"]["finalizers"] = ["canary.dev/cleanup"]
    created = custom.create_namespaced_custom_object(G, V, NS, P, body)
    custom.delete_namespaced_custom_object(G, V, NS, P, "a")
    custom.patch_namespaced_custom_object(G, V, NS, P, "a", {"metadata": {"finalizers": []}})
    seen = events(custom, 2, resource_version=rv(created))
    assert [event_type for event_type, _, _ in seen] == ["MODIFIED", "DELETED"]


@pytest.fixture
def background(custom: client.CustomObjectsApi) -> Iterator[BackgroundWatch]:
    listed = custom.list_namespaced_custom_object(G, V, NS, P)
    watcher = BackgroundWatch(custom, resource_version=rv(listed))
    custom.create_namespaced_custom_object(G, V, NS, P, widget("a"))
    assert watcher.next() == ("ADDED", "a")  # the watch is open now
    yield watcher
    watcher.stop()


def test_expire_watches_fault_sends_410(api_server: ApiServer, background: BackgroundWatch) -> None:
    api_server.faults.expire_watches()
    assert background.finished.wait(SAFETY_TIMEOUT)
    assert isinstance(background.error, ApiException)
    assert background.error.status == 410


def test_drop_watches_fault_ends_streams(
    api_server: ApiServer, custom: client.CustomObjectsApi
) -> None:
    listed = custom.list_namespaced_custom_object(G, V, NS, P)
    watcher = watch.Watch()
    stream = watcher.stream(
        custom.list_namespaced_custom_object,
        G,
        V,
        NS,
        P,
        resource_version=rv(listed),
        timeout_seconds=SAFETY_TIMEOUT,
    )
    custom.create_namespaced_custom_object(G, V, NS, P, widget("a"))
    assert next(stream)["type"] == "ADDED"
    before = api_server.store.open_watch_count()
    api_server.faults.drop_watches()
    assert list(stream) == []  # the server ended the stream; the client saw no more events
    assert before == 1
    assert api_server.store.open_watch_count() == 0
