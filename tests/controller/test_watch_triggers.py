"""Which watch events make the controller reconcile at once (#8).

Covers: a new Rollout, a spec change and a request annotation each trigger a reconcile; the
echo of the controller's own status write (the status alone changed) and a repeated
resourceVersion only refresh the cache, which the next tick reads.
"""

from __future__ import annotations

import copy

from controller_helpers import Env
from support.controlplane import ON_BOTH

from canary.controller.runtime import Controller
from canary.controller.telemetry import Telemetry
from canary.core.objects import Obj, without_managed_fields
from canary.kube.port import WatchEvent
from canary_sandbox.stack import example_release


def stored(env: Env) -> Obj:
    env.apply(example_release())
    return env.rollout()


def triggers(controller: Controller) -> int:
    """How many reconciles the events so far have queued (and forget them)."""
    queued = len(controller.queue)
    for _ in range(queued):
        controller.queue.done(controller.queue.get() or "")
    return queued


def next_version(obj: Obj, change: str) -> Obj:
    later = copy.deepcopy(obj)
    meta = later["metadata"]
    meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)
    if change == "status":
        later["status"] = {"phase": "Progressing", "stage": "mirror"}
    elif change == "spec":
        later["spec"]["canary"]["version"] = "v9"
    else:
        meta.setdefault("annotations", {})["canary.dev/request"] = '{"action":"pause","id":"1"}'
    return later


@ON_BOTH
def test_only_news_triggers_a_reconcile(env: Env) -> None:
    controller = Controller(env.cluster, env.reconciler, telemetry=Telemetry())
    obj = stored(env)
    controller._on_event(WatchEvent("ADDED", obj))
    assert triggers(controller) == 1

    controller._on_event(WatchEvent("MODIFIED", obj))  # the same resourceVersion again
    echo = next_version(obj, "status")
    controller._on_event(WatchEvent("MODIFIED", echo))  # our own status write, echoed
    assert triggers(controller) == 0
    # the next tick reads it (the cache keeps no managedFields)
    assert controller.rollouts.get(env.namespace, "ui") == without_managed_fields(echo)

    edited = next_version(echo, "spec")
    controller._on_event(WatchEvent("MODIFIED", edited))
    assert triggers(controller) == 1

    controller._on_event(WatchEvent("MODIFIED", next_version(edited, "annotation")))
    assert triggers(controller) == 1
